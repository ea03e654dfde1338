#!/usr/bin/env node
// Quick generation throughput: uit's engine vs @huggingface/transformers on the same model folder,
// same machine, same run, interleaved. Two workloads from issue 4:
//   - 16 sampled continuations x 64 new tokens of one ~300-token prompt (peer: the prompt 16 times
//     in one batch, and num_return_sequences: 16; its best counts);
//   - greedy, batch 1, 64 new tokens.
// Both sides generate exactly 64 tokens (EOS off / min_new_tokens) with the same thread count.
// Also: resident memory across 100 consecutive generate calls; with --copy-path, uit's 16 samples
// again with the prompt copied into every row (loadModel({sharedKv: false}), the path for fast
// graphs without shared_key_values inputs).
//
//   npm run build
//   /usr/bin/python3 scripts/export-gptj.py --random-init bench/gptj-25m.json bench/models/gptj-25m --seed 1
//   node --expose-gc bench/generate-quick.mjs --model bench/models/gptj-25m --runs 3 --threads 2
//   node --expose-gc bench/generate-quick.mjs --model models/uit-tiny --runs 3 --threads 1 --copy-path
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generate, loadModel } from '../dist/runtime/index.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'bench/models/gptj-25m' },
    runs: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    'new-tokens': { type: 'string', default: '64' },
    samples: { type: 'string', default: '16' },
    'skip-peer': { type: 'boolean', default: false },
    'memory-calls': { type: 'string', default: '100' },
    'copy-path': { type: 'boolean', default: false },
    'prompt-tokens': { type: 'string', default: '290' },
  },
});
const dir = resolve(args.model);
const runs = Number(args.runs);
const threads = Number(args.threads);
const NEW = Number(args['new-tokens']);
const SAMPLES = Number(args.samples);

// Real Ni-v2 definitions (shared data), cut to --prompt-tokens tokens of the model's tokenizer, then
// "\nOutput:" (298 tokens with a byte-level vocabulary).
const defs = readFileSync(resolve('../shared/data/niv2/definitions.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const longDefs = defs.filter((d) => d.definition.length > 400).map((d) => d.definition);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Wall seconds, and CPU seconds of this process (user + system, all threads): on a shared
 * machine wall time measures the neighbours too; with --threads 1 CPU time measures the work. */
async function timed(fn) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const c = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
}

// --- uit
const model = await loadModel(dir, { threads });
const PROMPT = (() => {
  const ids = model.tokenizer.encode(`Definition: ${longDefs.join('\n\n')}`).slice(0, Number(args['prompt-tokens']));
  return `${model.tokenizer.decode(ids).replace(/\uFFFD+$/, '')}\nOutput:`;
})();
const promptTokens = model.tokenizer.encode(PROMPT).length;
const copies = args['copy-path'] ? await loadModel(dir, { threads, sharedKv: false }) : undefined;
const uitSampled = () =>
  generate(model, [{ prompt: PROMPT, numSamples: SAMPLES }], { maxNewTokens: NEW, temperature: 1, seed: 1, stopOnEos: false, batchSize: SAMPLES });
const uitGreedy = () => generate(model, [{ prompt: PROMPT }], { maxNewTokens: NEW, greedy: true, stopOnEos: false });
const uitCopies = () =>
  generate(copies, [{ prompt: PROMPT, numSamples: SAMPLES }], { maxNewTokens: NEW, temperature: 1, seed: 1, stopOnEos: false, batchSize: SAMPLES });

// --- peer
let peer;
if (!args['skip-peer']) {
  const { AutoModelForCausalLM, AutoTokenizer, env } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = `${dirname(dir)}/`;
  const name = basename(dir);
  const tokenizer = await AutoTokenizer.from_pretrained(name);
  const m = await AutoModelForCausalLM.from_pretrained(name, {
    dtype: 'fp32',
    device: 'cpu',
    session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
  });
  const one = tokenizer(PROMPT);
  const many = tokenizer(new Array(SAMPLES).fill(PROMPT), { padding: true });
  const common = { max_new_tokens: NEW, min_new_tokens: NEW };
  peer = {
    batch: () => m.generate({ ...many, ...common, do_sample: true, top_k: 0 }),
    numReturn: () => m.generate({ ...one, ...common, do_sample: true, top_k: 0, num_return_sequences: SAMPLES }),
    greedy: () => m.generate({ ...one, ...common, do_sample: false }),
    dispose: () => m.dispose(),
    check: async () => {
      const out = await m.generate({ ...one, ...common, do_sample: false });
      return out.dims[1] - one.input_ids.dims[1];
    },
  };
}

// Warm up (first runs pay allocation and kernel selection), and check the token counts.
const w1 = await uitSampled();
await uitGreedy();
if (copies) await uitCopies();
const uitCount = w1.outputs[0].samples.reduce((n, s) => n + s.tokenIds.length, 0);
if (uitCount !== SAMPLES * NEW) throw new Error(`uit generated ${uitCount} tokens, expected ${SAMPLES * NEW}`);
if (peer) {
  const n = await peer.check();
  if (n !== NEW) throw new Error(`the peer generated ${n} tokens, expected ${NEW}`);
  await peer.batch();
  // transformers.js 4.3.1 accepts num_return_sequences but returns one row: count it only if it works.
  const nr = await peer.numReturn().catch((err) => err);
  if (nr instanceof Error || nr.dims[0] !== SAMPLES) {
    console.error(`peer num_return_sequences: ${nr instanceof Error ? nr.message : `returned ${nr.dims[0]} rows, not ${SAMPLES}`}; using the batch call only`);
    peer.numReturn = undefined;
  }
}

const t = { uitSampled: [], uitCopies: [], uitGreedy: [], peerBatch: [], peerNumReturn: [], peerGreedy: [] };
for (let r = 0; r < runs; r++) {
  t.uitSampled.push(await timed(uitSampled));
  if (copies) t.uitCopies.push(await timed(uitCopies));
  if (peer) t.peerBatch.push(await timed(peer.batch));
  if (peer?.numReturn) t.peerNumReturn.push(await timed(peer.numReturn));
  t.uitGreedy.push(await timed(uitGreedy));
  if (peer) t.peerGreedy.push(await timed(peer.greedy));
}

const tpsOf = (kind) => (xs, tokens) => (xs.length ? tokens / median(xs.map((x) => x[kind])) : null);
const tps = tpsOf('wall');
const tpsCpu = tpsOf('cpu');
const peerSampled = Math.max(tps(t.peerBatch, SAMPLES * NEW) ?? 0, tps(t.peerNumReturn, SAMPLES * NEW) ?? 0) || null;
const peerSampledCpu = Math.max(tpsCpu(t.peerBatch, SAMPLES * NEW) ?? 0, tpsCpu(t.peerNumReturn, SAMPLES * NEW) ?? 0) || null;
const loadavg = (await import('node:os')).loadavg();
const result = {
  load_average_at_end: loadavg.map((x) => Math.round(x * 100) / 100),
  model: dir,
  params: 'see config.json',
  prompt_tokens: promptTokens,
  new_tokens: NEW,
  samples: SAMPLES,
  threads,
  runs,
  fast_generation: model.info.fastGeneration,
  shared_prefix: model.info.sharedKv,
  tokens_per_s: {
    uit_sampled: tps(t.uitSampled, SAMPLES * NEW),
    uit_sampled_copy_path: tps(t.uitCopies, SAMPLES * NEW),
    peer_sampled_batch: tps(t.peerBatch, SAMPLES * NEW),
    peer_sampled_num_return_sequences: tps(t.peerNumReturn, SAMPLES * NEW),
    uit_greedy_b1: tps(t.uitGreedy, NEW),
    peer_greedy_b1: tps(t.peerGreedy, NEW),
  },
  seconds: t,
};
result.tokens_per_cpu_s = {
  uit_sampled: tpsCpu(t.uitSampled, SAMPLES * NEW),
  uit_sampled_copy_path: tpsCpu(t.uitCopies, SAMPLES * NEW),
  peer_sampled: peerSampledCpu,
  uit_greedy_b1: tpsCpu(t.uitGreedy, NEW),
  peer_greedy_b1: tpsCpu(t.peerGreedy, NEW),
};
result.ratio_sampled = peerSampled ? result.tokens_per_s.uit_sampled / peerSampled : null;
result.ratio_greedy_b1 = result.tokens_per_s.peer_greedy_b1 ? result.tokens_per_s.uit_greedy_b1 / result.tokens_per_s.peer_greedy_b1 : null;
const c = result.tokens_per_cpu_s;
result.ratio_sampled_cpu = c.peer_sampled ? c.uit_sampled / c.peer_sampled : null;
result.ratio_greedy_b1_cpu = c.peer_greedy_b1 ? c.uit_greedy_b1 / c.peer_greedy_b1 : null;
if (peer) await peer.dispose();

// Resident memory across consecutive calls (tensors must be released, not accumulated).
const calls = Number(args['memory-calls']);
if (calls > 0) {
  const gc = globalThis.gc ?? (() => {});
  const small = () => generate(model, [{ prompt: PROMPT, numSamples: 4 }], { maxNewTokens: 16, temperature: 1, seed: 3, stopOnEos: false });
  for (let i = 0; i < 10; i++) await small();
  gc();
  const before = process.memoryUsage().rss;
  const samples = [];
  for (let i = 0; i < calls; i++) {
    await small();
    if (i % 10 === 9) {
      gc();
      samples.push(Math.round(process.memoryUsage().rss / 2 ** 20));
    }
  }
  gc();
  const after = process.memoryUsage().rss;
  result.memory = {
    calls,
    gc_exposed: globalThis.gc !== undefined,
    rss_before_mib: Math.round(before / 2 ** 20),
    rss_after_mib: Math.round(after / 2 ** 20),
    rss_every_10_calls_mib: samples,
  };
}
await model.dispose();
await copies?.dispose();

const f = (x) => (x === null ? '-' : x.toFixed(1));
console.log(`model ${dir} (${promptTokens}-token prompt, ${NEW} new tokens, ${threads} threads, median of ${runs})`);
console.log(`16 samples: uit ${f(result.tokens_per_s.uit_sampled)} tok/s | peer batch ${f(result.tokens_per_s.peer_sampled_batch)} | peer num_return_sequences ${f(result.tokens_per_s.peer_sampled_num_return_sequences)} | ratio ${f(result.ratio_sampled)}x`);
if (copies) console.log(`16 samples, prompt copied into every row: uit ${f(result.tokens_per_s.uit_sampled_copy_path)} tok/s (${f(c.uit_sampled_copy_path)} per CPU second)`);
console.log(`greedy b1:  uit ${f(result.tokens_per_s.uit_greedy_b1)} tok/s | peer ${f(result.tokens_per_s.peer_greedy_b1)} | ratio ${f(result.ratio_greedy_b1)}x`);
console.log(`per CPU second: 16 samples uit ${f(c.uit_sampled)} | peer ${f(c.peer_sampled)} | ratio ${f(result.ratio_sampled_cpu)}x; greedy b1 uit ${f(c.uit_greedy_b1)} | peer ${f(c.peer_greedy_b1)} | ratio ${f(result.ratio_greedy_b1_cpu)}x`);
console.log(`load average at the end: ${result.load_average_at_end.join(' ')} (this machine has ${(await import('node:os')).cpus().length} cores)`);
if (result.memory) console.log(`memory: RSS ${result.memory.rss_before_mib} -> ${result.memory.rss_after_mib} MiB over ${calls} calls (every 10: ${result.memory.rss_every_10_calls_mib.join(' ')})`);
mkdirSync('bench/results', { recursive: true });
writeFileSync(`bench/results/generate-quick-${basename(dir)}-${threads}t.json`, `${JSON.stringify(result, null, 2)}\n`);
