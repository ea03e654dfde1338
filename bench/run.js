#!/usr/bin/env node
// uit's benchmark suite (`npm run bench`; docs/performance.md). Separate from the tests: nothing
// here asserts a time. For every bench model it runs, in child processes (one per engine, so
// each engine's peak RSS is its own) and interleaved run by run:
//   generate   our engine vs @huggingface/transformers (the peer) on the same ONNX folder: greedy
//              batch 1, 16 samples of one prompt, a batch of 8 different prompts; RSS over 100 calls
//   score      UIT scoring of 8 candidates x M instances of a real Ni-v2 task: ours with prefix
//              reuse, ours without, and the peer's forward passes computing the same numbers
//   reference  the UIT reference code's cost model: greedy decoding that re-runs the whole
//              sequence for every token (no KV cache), on our engine, vs our KV-cached decoding
//   limit      the model's FLOPs per token against MatMul-only ONNX graphs of its weight shapes
//   cache      a rerun of a finished scoring job through the SQLite cache
// It prints a table on stdout and writes bench/results/<timestamp>.json and bench/results/latest.json.
//
//   npm run bench                                   # the full run (about 20 minutes on 2 cores)
//   npm run bench -- --quick                        # a smoke check (about 2 minutes)
//   npm run bench -- --only generate,score --runs 5 --threads 2
//   npm run bench -- --model path/to/model --model models/uit-tiny
//   npm run bench -- --device cuda                  # on a CUDA machine (docs/performance.md)
//   npm run bench -- --device webgpu --no-peer      # on a GPU through Vulkan (scripts/gpu-check.mjs runs it)
import { fork, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { machine, median, round, ROOT, SHARED_DATA, summary, versions } from './lib/common.js';

const SECTIONS = ['prefill', 'generate', 'score', 'reference', 'limit', 'cache'];
const KINDS = ['greedy_b1', 'greedy_b1_plain', 'samples_16', 'batch_8'];
const { values: args } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    threads: { type: 'string', default: '1' },
    runs: { type: 'string' },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    model: { type: 'string', multiple: true },
    task: { type: 'string' },
    'new-tokens': { type: 'string' },
    'prompt-tokens': { type: 'string', default: '290' },
    'memory-calls': { type: 'string' },
    basis: { type: 'string' },
    'no-peer': { type: 'boolean', default: false },
    sequential: { type: 'boolean', default: false },
    workloads: { type: 'string' },
    'score-candidates': { type: 'string', default: '8' },
    'score-instances': { type: 'string', default: '32' },
    'no-score-baseline': { type: 'boolean', default: false },
    'no-save': { type: 'boolean', default: false },
    out: { type: 'string' },
    progress: { type: 'boolean', default: false },
    python: { type: 'string', default: '/usr/bin/python3' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`usage: npm run bench -- [options]
  --device cpu|cuda|webgpu  execution provider for both engines (default cpu)
  --threads N            onnxruntime intra-op threads for both engines (default 1: steadiest on a shared machine)
  --runs N               timed runs per measurement, after one warm-up (default 3; --quick 1)
  --quick                a smoke check: uit-tiny only unless --model, fewer tokens and calls
  --only LIST            sections, comma-separated: ${SECTIONS.join(',')} (prefill: the prompt's
                         forward alone; limit builds float32 MatMul graphs of the model's size)
  --model DIR            bench this model folder instead of the defaults (repeatable; add
                         --model models/uit-tiny --model bench/models/gptj-100m to keep them)
  --task FILE            Ni-v2 task file for the scoring sections
  --basis cpu|wall       which time the ratios use (default cpu on cpu, wall on a GPU)
  --no-peer              skip @huggingface/transformers
  --sequential           one engine process at a time (ours, then the peer's): for models that fit in
                         memory once but not twice; every process's peak RSS is recorded either way
  --workloads LIST       generate workloads, comma-separated: ${KINDS.join(',')} (default all)
  --score-candidates N   candidates of the scoring section (default 8)
  --score-instances M    instances per candidate (default 32; the task may have fewer)
  --no-score-baseline    skip the scoring run without prefix reuse (large models)
  --no-save              print only, write no bench/results files
  --out FILE             write the JSON to FILE instead of bench/results/<timestamp>.json and latest.json
  --progress             progress lines on stderr even when it is not a terminal
  --python PATH          Python with torch + onnx for making the 100M model (default /usr/bin/python3)`);
  process.exit(0);
}

const quick = args.quick;
const device = args.device;
if (!['cpu', 'cuda', 'webgpu'].includes(device)) throw new Error(`--device must be cpu, cuda or webgpu, not ${device}`);
// Dawn (WebGPU) wants a writable XDG_RUNTIME_DIR in every worker: set it before they fork.
if (device === 'webgpu') (await import('../dist/runtime/webgpu.js')).ensureRuntimeDir();
const threads = Number(args.threads);
const runs = Number(args.runs ?? (quick ? 1 : 3));
const newTokens = Number(args['new-tokens'] ?? (quick ? 16 : 64));
const promptTokens = Number(args['prompt-tokens']);
const memoryCalls = Number(args['memory-calls'] ?? (quick ? 20 : 100));
const basis = args.basis ?? (device === 'cpu' ? 'cpu' : 'wall');
const only = args.only ? args.only.split(',').map((s) => s.trim()) : SECTIONS;
for (const s of only) if (!SECTIONS.includes(s)) throw new Error(`--only: unknown section ${s} (${SECTIONS.join(', ')})`);
const sequential = args.sequential;
const kinds = args.workloads ? args.workloads.split(',').map((s) => s.trim()) : KINDS;
for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`--workloads: unknown workload ${k} (${KINDS.join(', ')})`);
if (only.includes('limit') && !kinds.includes('greedy_b1_plain')) throw new Error('--only limit needs the greedy_b1_plain workload');
// greedy_b1_plain is ours without prompt-lookup drafts, against the same peer runs as greedy_b1.
const peerKind = (k) => k !== 'greedy_b1_plain';
const scoreCandidates = Number(args['score-candidates']);
const scoreInstances = Number(args['score-instances']);
const scoreBaseline = !args['no-score-baseline'];
const wantPeer = !args['no-peer'] && (only.includes('generate') || only.includes('score'));
const refLengths = quick ? [4, 8] : [8, 16, 32, 64];
const notes = [];
const isTty = process.stderr.isTTY;
const progress = (s) => {
  if (isTty) process.stderr.write(`\x1b[2K\r${s.slice(0, (process.stderr.columns ?? 100) - 1)}`);
  else if (args.progress) process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
};
const log = (s) => process.stderr.write(`${isTty ? '\x1b[2K\r' : ''}${s}\n`);

// ---------------------------------------------------------------- models
const BIG = { dir: join(ROOT, 'bench/models/gptj-100m'), config: join(ROOT, 'bench/gptj-100m.json') };
function ensureBigModel() {
  if (existsSync(join(BIG.dir, 'onnx/model.onnx'))) return true;
  const check = spawnSync(args.python, ['-c', 'import torch, onnx'], { encoding: 'utf8' });
  if (check.status !== 0) {
    notes.push(`${args.python} lacks torch or onnx (${(check.stderr || check.error?.message || '').trim().split('\n').pop()}): the ~100M random GPT-J was not made, so only the embedded model ran`);
    return false;
  }
  log(`making the ~100M random GPT-J: ${args.python} scripts/export-gptj.py --random-init bench/gptj-100m.json bench/models/gptj-100m --seed 1 --tokenizer models/uit-tiny`);
  const r = spawnSync(
    args.python,
    ['scripts/export-gptj.py', '--random-init', BIG.config, BIG.dir, '--seed', '1', '--tokenizer', join(ROOT, 'models/uit-tiny')],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' },
  );
  if (r.status !== 0) {
    notes.push(`making the ~100M model failed (exit ${r.status}): only the embedded model ran`);
    return false;
  }
  return true;
}
let modelDirs;
if (args.model?.length) modelDirs = args.model.map((m) => resolve(m));
else {
  modelDirs = [join(ROOT, 'models/uit-tiny')];
  if (!quick && ensureBigModel()) modelDirs.push(BIG.dir);
}

function modelFacts(dir) {
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const d = c.n_embd ?? c.hidden_size;
  const L = c.n_layer ?? c.num_hidden_layers;
  const inner = c.n_inner ?? c.intermediate_size ?? 4 * d;
  const V = c.vocab_size;
  const matmulParams = L * (4 * d * d + 2 * d * inner);
  // GPT-J: wte, and an untied lm_head with bias; per layer q/k/v/out (no bias but out... none), fc_in/fc_out with biases, ln_1.
  const params = V * d + (d * V + V) + L * (4 * d * d + 2 * d * inner + inner + d + 2 * d) + 2 * d;
  return { name: relative(ROOT, dir) || dir, dir, eos: c.eos_token_id ?? null, d, layers: L, inner, vocab: V, heads: c.n_head ?? c.num_attention_heads, matmul_params: matmulParams, params_approx: params, dtype: c.torch_dtype ?? null, quantization: c.uit_quantization ?? null };
}
/** FLOPs of one token at context c (positions attended, itself included), and of a P-token prefill. */
const flops = {
  // weight MatMuls 2 x params; attention QK^T and AV: 2 x 2 x d per attended position per layer;
  // LM head 2 x d x vocab (decode: every token; prefill: the last position only, as our graph does).
  decodeToken: (m, c) => 2 * m.matmul_params + 4 * m.layers * m.d * c + 2 * m.d * m.vocab,
  prefill: (m, P) => 2 * m.matmul_params * P + 2 * m.layers * m.d * P * (P + 1) + 2 * m.d * m.vocab,
};

// ---------------------------------------------------------------- task
function pickTask() {
  if (args.task) return resolve(args.task);
  const dir = join(SHARED_DATA, 'niv2/tasks');
  const preferred = join(dir, 'task1665_trainglecopa_question_generation.json');
  const counts = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ file: join(dir, f), n: JSON.parse(readFileSync(join(dir, f), 'utf8').replace(/\bNaN\b/g, 'null')).Instances?.length ?? 0 }));
  const big = counts.filter((c) => c.n >= 32);
  const most = Math.max(...counts.map((c) => c.n));
  if (big.length) return big.find((c) => c.file === preferred)?.file ?? big[0].file;
  const note = `no task file in ../shared/data/niv2/tasks has 32 instances (the most is ${most}, in all ${counts.length} files): M = all the task's instances, not 32`;
  if (!notes.includes(note)) notes.push(note);
  return preferred;
}

// ---------------------------------------------------------------- workers
function startWorker(label) {
  const child = fork(join(ROOT, 'bench/lib/worker.js'), [], { execArgv: ['--expose-gc'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const pending = new Map();
  let next = 0;
  child.on('message', ({ id, ok, result, error }) => {
    const p = pending.get(id);
    pending.delete(id);
    if (ok) p.resolve(result);
    else p.reject(new Error(`${label}: ${error}`));
  });
  child.on('exit', (code) => {
    for (const p of pending.values()) p.reject(new Error(`${label} exited (${code})`));
    pending.clear();
  });
  return {
    label,
    call: (cmd, a) =>
      new Promise((res, rej) => {
        const id = next++;
        pending.set(id, { resolve: res, reject: rej });
        child.send({ id, cmd, args: a });
      }),
    async close() {
      const r = await this.call('exit').catch(() => null);
      return r;
    },
  };
}

const pick = (xs, key) => xs.map((x) => x[key]);
const t = (x) => x[basis];
/** Summary of rate = amount / time over runs (median of the rates). */
const rate = (xs, amount) => summary(xs.map((x) => (typeof amount === 'function' ? amount(x) : amount) / t(x)));
const firstDiff = (a, b) => {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
};

// ---------------------------------------------------------------- sections
/** Our runs of the generate workloads (warm-up, then `runs` rounds), and the peer's beside them when it runs alongside. */
async function measureGenerate(m, uit, peer, res) {
  for (const k of kinds) {
    progress(`${m.name}: generate warm-up ${k}`);
    res.uit[k] = [];
    res.peer[k] = [];
    await uit.call('generate', { kind: k });
    if (peer && peerKind(k)) await peer.call('generate', { kind: k });
  }
  for (let r = 0; r < runs; r++) {
    for (const k of kinds) {
      progress(`${m.name}: generate run ${r + 1}/${runs} ${k}`);
      res.uit[k].push(await uit.call('generate', { kind: k }));
      if (peer && peerKind(k)) res.peer[k].push(await peer.call('generate', { kind: k }));
    }
  }
}

/** The peer's runs of the generate workloads alone (--sequential: after our engine has exited). */
async function measurePeerGenerate(m, peer, res) {
  for (const k of kinds.filter(peerKind)) {
    progress(`${m.name}: peer generate warm-up ${k}`);
    await peer.call('generate', { kind: k });
  }
  for (let r = 0; r < runs; r++) {
    for (const k of kinds.filter(peerKind)) {
      progress(`${m.name}: peer generate run ${r + 1}/${runs} ${k}`);
      res.peer[k].push(await peer.call('generate', { kind: k }));
    }
  }
}

function summarizeGenerate(m, res, uitLoad) {
  res.peer.greedy_b1_plain = res.peer.greedy_b1;
  const sec = { new_tokens: newTokens, prompt_tokens: uitLoad.prompt_tokens, batch_prompt_tokens: uitLoad.batch_prompt_tokens, workloads: {} };
  for (const k of kinds) {
    const side = (xs) =>
      xs?.length
        ? {
            tokens: xs[0].tokens,
            tokens_per_s_wall: rate(xs.map((x) => ({ ...x, [basis]: x.wall })), (x) => x.tokens),
            tokens_per_s_cpu: rate(xs.map((x) => ({ ...x, [basis]: x.cpu })), (x) => x.tokens),
            seconds_wall: summary(pick(xs, 'wall')),
            seconds_cpu: summary(pick(xs, 'cpu')),
            peak_rss_mib: Math.max(...pick(xs, 'peak_rss_mib')),
          }
        : null;
    const w = { ours: side(res.uit[k]), peer: side(res.peer[k]) };
    if (w.peer) {
      const key = `tokens_per_s_${basis}`;
      w.ratio = w.ours[key].median / w.peer[key].median;
      w.ratio_wall = w.ours.tokens_per_s_wall.median / w.peer.tokens_per_s_wall.median;
      w.ratio_cpu = w.ours.tokens_per_s_cpu.median / w.peer.tokens_per_s_cpu.median;
      if (res.uit[k][0].ids) {
        const a = res.uit[k][0].ids;
        const b = res.peer[k][0].ids;
        const diffs = a.map((row, i) => firstDiff(row, b[i]));
        // The peer's min_new_tokens masks EOS; ours (stopOnEos false) may pick it: rows that agree
        // up to our first EOS count as agreeing.
        const agree = diffs.filter((x, i) => x === -1 || a[i][x] === m.eos).length;
        w.same_tokens = { rows: a.length, rows_identical: diffs.filter((x) => x === -1).length, rows_agree_until_eos: agree, first_difference: diffs, eos: m.eos };
      }
    }
    const tm = res.uit[k].map((x) => x.timings);
    if (tm[0]?.draftedTokens > 0) {
      w.drafts = { forwards: tm[0].steps, drafted: tm[0].draftedTokens, accepted: tm[0].acceptedTokens, new_tokens: tm[0].newTokens };
    }
    // Milliseconds per decode forward (one token a row): generate()'s decoding time over its steps.
    w.ms_per_decode_step = summary(tm.map((x) => x.decodeMs / Math.max(1, x.steps)));
    sec.workloads[k] = w;
  }
  return sec;
}

/** Our scoring runs (with and without prefix reuse), and the peer's beside them when it runs alongside. */
async function measureScore(m, uit, peer) {
  const taskFile = pickTask();
  progress(`${m.name}: scoring setup`);
  const setup = await uit.call('scoreSetup', { taskFile, candidates: scoreCandidates, instances: scoreInstances });
  const pairIds = setup.pair_ids;
  delete setup.pair_ids;
  const res = { reuse: [], no_reuse: [], peer: [] };
  for (let r = 0; r < runs; r++) {
    progress(`${m.name}: scoring run ${r + 1}/${runs} with reuse`);
    res.reuse.push(await uit.call('score', { reuse: true }));
    if (scoreBaseline) {
      progress(`${m.name}: scoring run ${r + 1}/${runs} without reuse`);
      res.no_reuse.push(await uit.call('score', { reuse: false }));
    }
    if (peer) {
      progress(`${m.name}: scoring run ${r + 1}/${runs} peer`);
      res.peer.push(await peer.call('scorePeer', { pairs: pairIds }));
    }
  }
  return { taskFile, setup, pairIds, res };
}

async function measurePeerScore(m, peer, score) {
  for (let r = 0; r < runs; r++) {
    progress(`${m.name}: peer scoring run ${r + 1}/${runs}`);
    score.res.peer.push(await peer.call('scorePeer', { pairs: score.pairIds }));
  }
}

function summarizeScore({ taskFile, setup, res }) {
  const side = (xs) =>
    xs.length
      ? { seconds_wall: summary(pick(xs, 'wall')), seconds_cpu: summary(pick(xs, 'cpu')), target_tokens_per_s: rate(xs, setup.target_tokens), peak_rss_mib: Math.max(...pick(xs, 'peak_rss_mib')), stats: xs[0].stats }
      : null;
  const maxDiff = (a, b) => Math.max(0, ...a.map((x, i) => (x === null || b[i] === null ? (x === b[i] ? 0 : Infinity) : Math.abs(x - b[i]))));
  const sec = { ...setup, task_file: relative(ROOT, taskFile), ours_reuse: side(res.reuse), ours_no_reuse: side(res.no_reuse), peer: side(res.peer) };
  const ours = res.reuse[0].mean_ce;
  sec.checks = {};
  const tm = (xs) => median(xs.map(t));
  const wm = (xs) => median(pick(xs, 'wall'));
  if (res.no_reuse.length) {
    sec.checks.reuse_vs_no_reuse_max_diff = maxDiff(ours, res.no_reuse[0].mean_ce);
    sec.ratio_vs_no_reuse = tm(res.no_reuse) / tm(res.reuse);
    sec.ratio_vs_no_reuse_wall = wm(res.no_reuse) / wm(res.reuse);
  }
  if (res.peer.length) {
    sec.ratio_vs_peer_wall = wm(res.peer) / wm(res.reuse);
    sec.checks.peer_max_diff = maxDiff(ours, res.peer[0].mean_ce);
    sec.checks.peer_within_1e3 = sec.checks.peer_max_diff <= 1e-3;
    sec.ratio_vs_peer = tm(res.peer) / tm(res.reuse);
  }
  return sec;
}

async function benchModel(dir) {
  const m = modelFacts(dir);
  const out = { model: m, sections: {} };
  const uit = startWorker(`uit ${m.name}`);
  // --sequential: the peer starts only after our engine's process has exited, so that two copies of
  // a large model are never in memory together.
  let peer = wantPeer && !sequential ? startWorker(`peer ${m.name}`) : null;
  const loadArgs = { model: dir, threads, device, newTokens, promptTokens };
  const uitLoad = await uit.call('load', { ...loadArgs, engine: 'uit' });
  out.model.engine = uitLoad.info;
  out.model.prompt_tokens = uitLoad.prompt_tokens;
  out.model.batch_prompt_tokens = uitLoad.batch_prompt_tokens;
  out.model.load_seconds = uitLoad.load_s;
  out.model.rss_after_load_mib = uitLoad.rss_mib;
  if (peer) await peer.call('load', { ...loadArgs, engine: 'peer' });
  const P = uitLoad.prompt_tokens;
  let genRuns = null;
  let gen = null;
  let score = null;
  let memory = null;

  if (only.includes('prefill')) {
    const xs = [];
    await uit.call('prefill');
    for (let r = 0; r < runs; r++) {
      progress(`${m.name}: prefill run ${r + 1}/${runs}`);
      xs.push(await uit.call('prefill'));
    }
    out.sections.prefill = { prompt_tokens: P, seconds_wall: summary(pick(xs, 'wall')), seconds_cpu: summary(pick(xs, 'cpu')), tokens_per_s: rate(xs, P) };
  }
  if (only.includes('generate')) {
    gen = { uit: {}, peer: {} };
    await measureGenerate(m, uit, peer, gen);
    genRuns = gen.uit;
    if (memoryCalls > 0) {
      progress(`${m.name}: RSS over ${memoryCalls} calls`);
      memory = await uit.call('memory', { calls: memoryCalls });
    }
  }
  if (only.includes('score')) score = await measureScore(m, uit, peer);
  if (peer) out.peer_max_rss_mib = (await peer.close())?.max_rss_mib ?? null;
  peer = null;

  if (only.includes('reference')) {
    const sec = { prompt_tokens: P, lengths: {} };
    for (const N of refLengths) {
      const ref = [];
      const kv = [];
      await uit.call('reference', { newTokens: Math.min(N, 2) }); // warm-up
      for (let r = 0; r < runs; r++) {
        progress(`${m.name}: reference ${N} tokens, run ${r + 1}/${runs}`);
        ref.push(await uit.call('reference', { newTokens: N }));
        kv.push(await uit.call('generate', { kind: 'greedy_b1_plain', newTokens: N }));
      }
      sec.lengths[N] = {
        new_tokens: N,
        rerun_whole_sequence: { seconds_wall: summary(pick(ref, 'wall')), seconds_cpu: summary(pick(ref, 'cpu')), tokens_per_s: rate(ref, N) },
        kv_cached: { seconds_wall: summary(pick(kv, 'wall')), seconds_cpu: summary(pick(kv, 'cpu')), tokens_per_s: rate(kv, N) },
        speedup: median(ref.map(t)) / median(kv.map(t)),
        same_tokens: firstDiff(ref[0].ids, kv[0].ids[0]) === -1,
      };
    }
    out.sections.reference = sec;
  }

  if (only.includes('limit')) {
    progress(`${m.name}: MatMul-only graphs`);
    const mm = await uit.call('matmul', { rows: [1, 16, P], runs: Math.max(runs, 3) });
    const pre = [];
    await uit.call('prefill');
    for (let r = 0; r < Math.max(runs, 3); r++) pre.push(await uit.call('prefill'));
    let g = genRuns;
    if (!g) {
      g = { greedy_b1_plain: [], samples_16: [] };
      await uit.call('generate', { kind: 'greedy_b1_plain' }); // warm-up
      await uit.call('generate', { kind: 'samples_16' });
      for (let r = 0; r < runs; r++) {
        progress(`${m.name}: decode timings, run ${r + 1}/${runs}`);
        g.greedy_b1_plain.push(await uit.call('generate', { kind: 'greedy_b1_plain' }));
        g.samples_16.push(await uit.call('generate', { kind: 'samples_16' }));
      }
    }
    const limitAt = (layersRows, headRows) => {
      const a = mm.layers[layersRows];
      const h = mm.head[headRows];
      const sec = basis === 'cpu' ? a.cpu_s + h.cpu_s : a.wall_s + h.wall_s;
      return (a.flops + h.flops) / sec / 1e9;
    };
    const preFlops = flops.prefill(m, P);
    const preAchieved = summary(pre.map((x) => preFlops / t(x) / 1e9));
    const decode = (xs, rows) => {
      // decodeMs is wall time inside generate(); on the CPU basis scale it by the run's cpu/wall.
      const vals = xs.map((x) => {
        const steps = x.timings.steps;
        let f = 0;
        for (let j = 1; j <= steps; j++) f += rows * flops.decodeToken(m, P + j);
        const sec = (x.timings.decodeMs / 1000) * (basis === 'cpu' ? x.cpu / x.wall : 1);
        return f / sec / 1e9;
      });
      return summary(vals);
    };
    // One token per forward: the plain greedy runs (a verified draft computes more than it keeps).
    const dec1 = decode(g.greedy_b1_plain, 1);
    const dec16 = decode(g.samples_16, 16);
    const lim = { prefill: limitAt(P, 1), decode_b1: limitAt(1, 1), decode_16: limitAt(16, 16) };
    out.sections.limit = {
      counted:
        'FLOPs per token = 2 x weight MatMul parameters (q, k, v, out, fc_in, fc_out per layer) + 4 x layers x d x attended positions (QK^T and AV) + 2 x d x vocab for the LM head (every decode token; once per prefill, which computes the last position only); embeddings, layer norms, rotary, softmax and GELU not counted',
      flops_per_token_decode_at_prompt: flops.decodeToken(m, P),
      flops_prefill: preFlops,
      matmul_graph: mm,
      limit_gflops: lim,
      achieved_gflops: { prefill: preAchieved, decode_b1: dec1, decode_16: dec16 },
      fraction_of_limit: { prefill: preAchieved.median / lim.prefill, decode_b1: dec1.median / lim.decode_b1, decode_16: dec16.median / lim.decode_16 },
      prefill_seconds: { wall: summary(pick(pre, 'wall')), cpu: summary(pick(pre, 'cpu')) },
    };
  }

  if (only.includes('cache')) {
    if (!only.includes('score')) await uit.call('scoreSetup', { taskFile: pickTask(), candidates: 8, instances: 32 });
    const xs = [];
    for (let r = 0; r < runs; r++) {
      progress(`${m.name}: cache run ${r + 1}/${runs}`);
      xs.push(await uit.call('cache'));
    }
    out.sections.cache = {
      first_seconds: { wall: summary(xs.map((x) => x.first.wall)), cpu: summary(xs.map((x) => x.first.cpu)) },
      rerun_seconds: { wall: summary(xs.map((x) => x.rerun.wall)), cpu: summary(xs.map((x) => x.rerun.cpu)) },
      speedup: summary(xs.map((x) => x.first[basis] / x.rerun[basis])),
      rerun_model_calls: Math.max(...xs.map((x) => x.rerun_model_calls)),
      rerun_identical: xs.every((x) => x.identical),
    };
  }
  out.uit_max_rss_mib = (await uit.close())?.max_rss_mib ?? null;

  if (sequential && wantPeer && (gen || score)) {
    const alone = startWorker(`peer ${m.name}`);
    await alone.call('load', { ...loadArgs, engine: 'peer' });
    if (gen) await measurePeerGenerate(m, alone, gen);
    if (score) await measurePeerScore(m, alone, score);
    out.peer_max_rss_mib = (await alone.close())?.max_rss_mib ?? null;
  }
  if (gen) {
    out.sections.generate = summarizeGenerate(m, gen, uitLoad);
    if (memory) out.sections.generate.memory = memory;
  }
  if (score) out.sections.score = summarizeScore(score);
  return out;
}


// ---------------------------------------------------------------- run
const started = new Date();
const result = {
  date: started.toISOString(),
  machine: machine(),
  versions: versions(),
  settings: { device, threads, runs, quick, only, workloads: kinds, sequential, new_tokens: newTokens, prompt_tokens_asked: promptTokens, memory_calls: memoryCalls, basis, peer: wantPeer, reference_lengths: refLengths, score_candidates: scoreCandidates, score_instances: scoreInstances, score_baseline: scoreBaseline },
  notes,
  models: [],
};
for (const dir of modelDirs) {
  log(`benchmarking ${relative(ROOT, dir) || dir}`);
  result.models.push(await benchModel(dir));
}
result.machine.load_average_at_end = loadavg().map((x) => round(x, 2));
result.duration_s = round((Date.now() - started.getTime()) / 1000, 1);

// ratios: from the largest model benched
const main = result.models.reduce((a, b) => (b.model.params_approx > a.model.params_approx ? b : a));
const s = main.sections;
result.ratios_model = main.model.name;
result.ratios_basis = basis;
// Generation and scoring ratios on the basis (suffix '') or on wall-clock time ('_wall').
const speedRatios = (sfx) => ({
  generate_16_samples_vs_peer: s.generate?.workloads.samples_16?.[`ratio${sfx}`] ?? null,
  generate_greedy_b1_vs_peer: s.generate?.workloads.greedy_b1?.[`ratio${sfx}`] ?? null,
  generate_greedy_b1_no_drafts_vs_peer: s.generate?.workloads.greedy_b1_plain?.[`ratio${sfx}`] ?? null,
  score_vs_no_reuse: s.score?.[`ratio_vs_no_reuse${sfx}`] ?? null,
  score_vs_peer: s.score?.[`ratio_vs_peer${sfx}`] ?? null,
});
result.ratios = {
  ...speedRatios(''),
  cache_rerun_speedup: s.cache?.speedup.median ?? null,
  prefill_fraction_of_limit: s.limit?.fraction_of_limit.prefill ?? null,
  decode_fraction_of_limit: s.limit?.fraction_of_limit.decode_b1 ?? null,
};
// The same ratios on wall-clock time, for comparison with the basis above.
result.ratios_wall = speedRatios('_wall');
const target = (ratio, min, what) => ({ target: min === null ? null : `>= ${min}`, measured: ratio, met: ratio === null || min === null ? null : ratio >= min, issue: what });
const r = result.ratios;
result.targets = {
  generate_16_samples_vs_peer: target(r.generate_16_samples_vs_peer, 10, 'runtime: 16 sampled continuations >= 10x the peer (its best call: the prompt 16 times in one batch)'),
  generate_greedy_b1_vs_peer: target(r.generate_greedy_b1_vs_peer, 2, 'runtime: greedy batch 1 >= 2x the peer'),
  rss_no_growth_100_calls: (() => {
    const mem = s.generate?.memory;
    return mem ? { target: 'no growth (< 16 MiB)', measured: round(mem.growth_mib, 1), met: mem.growth_mib < 16, issue: `runtime: RSS does not grow across ${mem.calls} consecutive calls` } : { target: 'no growth', measured: null, met: null };
  })(),
  score_vs_no_reuse: target(r.score_vs_no_reuse, 3, 'scoring: prefix reuse >= 3x the same engine without reuse'),
  score_vs_peer: target(r.score_vs_peer, 5, 'scoring: >= 5x transformers.js forward passes'),
  cache_rerun_speedup: {
    ...target(r.cache_rerun_speedup, 50, 'scoring: a rerun of a finished job makes no model calls (and is >= 50x faster)'),
    rerun_model_calls: s.cache?.rerun_model_calls ?? null,
    met: s.cache ? s.cache.rerun_model_calls === 0 && r.cache_rerun_speedup >= 50 : null,
  },
  prefill_fraction_of_limit: target(r.prefill_fraction_of_limit, null, 'reported, no target'),
  decode_fraction_of_limit: target(r.decode_fraction_of_limit, null, 'reported, no target'),
};

// GPT-J 6B on this machine (issue 19): batch-1 decode <= 150 ms a token at <= 6 GiB RSS, 16 samples >= 10 tokens/s.
for (const mo of result.models) {
  if (mo.model.params_approx < 5e9) continue;
  const g = mo.sections.generate?.workloads;
  const ms = g?.greedy_b1_plain?.ms_per_decode_step?.median ?? null;
  const tps = g?.samples_16?.ours.tokens_per_s_wall.median ?? null;
  const rss = mo.uit_max_rss_mib ?? null;
  mo.targets = {
    decode_ms_per_token: { target: '<= 150', measured: ms, met: ms === null ? null : ms <= 150 },
    peak_rss_mib: { target: '<= 6144', measured: rss, met: rss === null ? null : rss <= 6144 },
    samples_16_tokens_per_s_wall: { target: '>= 10', measured: tps, met: tps === null ? null : tps >= 10 },
  };
}

// ---------------------------------------------------------------- table
const f = (x, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const range = (sm, d = 1) => (sm ? `${f(sm.median, d)} [${f(sm.min, d)}-${f(sm.max, d)}]` : '-');
const lines = [];
const L = (s = '') => lines.push(s);
L(`uit bench ${result.date}: ${result.machine.cpu}, ${result.machine.cores} cores, ${result.machine.memory_gib} GiB; node ${result.versions.node}, onnxruntime-node ${result.versions['onnxruntime-node']}, transformers.js ${result.versions['@huggingface/transformers']}`);
L(`device ${device}, ${threads} thread(s), median [min-max] of ${runs} run(s), ratios on ${basis} time; load average ${result.machine.load_average_at_start.join(' ')} at start, ${result.machine.load_average_at_end.join(' ')} at end`);
for (const n of notes) L(`note: ${n}`);
for (const mo of result.models) {
  const m = mo.model;
  const sec = mo.sections;
  L();
  const q = m.quantization;
  const weights = q ? `${q.scheme} ${q.op}${q.block_size ? ` block ${q.block_size}${q.symmetric ? '' : ' asym'}, accuracy_level ${q.accuracy_level}` : ''}${q.lm_head ? ', LM head too' : ''}` : (m.dtype ?? 'float32');
  L(`## ${m.name}: GPT-J ${(m.params_approx / 1e6).toFixed(1)}M parameters (d ${m.d}, ${m.layers} layers, vocab ${m.vocab}), weights ${weights}, ${m.prompt_tokens}-token prompt`);
  L(`  peak RSS: ours ${f(mo.uit_max_rss_mib, 0)} MiB (${f(m.rss_after_load_mib, 0)} after loading in ${f(m.load_seconds, 1)} s)${mo.peer_max_rss_mib ? `, peer ${f(mo.peer_max_rss_mib, 0)} MiB` : ''}${sequential ? ', one engine at a time' : ''}`);
  if (sec.prefill) L(`  prefill of ${sec.prefill.prompt_tokens} tokens: ${range(sec.prefill[`seconds_${basis}`], 2)} s, ${f(sec.prefill.tokens_per_s.median, 1)} tokens/s`);
  if (sec.generate) {
    const g = sec.generate;
    L(`  ${`generation, ${g.new_tokens} new tokens`.padEnd(30)} ${`ours tok/s (${basis})`.padEnd(22)} ${`peer tok/s (${basis})`.padEnd(22)} ${'ratio'.padStart(7)}  ${'peak RSS MiB'.padEnd(14)} greedy tokens agree`);
    for (const [k, label] of [['greedy_b1', 'greedy, batch 1'], ['greedy_b1_plain', 'greedy, batch 1, no drafts'], ['samples_16', '16 samples, one prompt'], ['batch_8', 'batch of 8 prompts, greedy']]) {
      const w = g.workloads[k];
      if (!w) continue;
      const key = `tokens_per_s_${basis}`;
      const same = w.same_tokens ? `${w.same_tokens.rows_agree_until_eos}/${w.same_tokens.rows} rows` : '';
      L(`  ${label.padEnd(30)} ${range(w.ours[key]).padEnd(22)} ${range(w.peer?.[key]).padEnd(22)} ${f(w.ratio, 2).padStart(6)}x  ${`${f(w.ours.peak_rss_mib, 0)} / ${f(w.peer?.peak_rss_mib, 0)}`.padEnd(14)} ${same}`);
      if (w.drafts) L(`  ${''.padEnd(30)} prompt lookup: ${w.drafts.new_tokens} tokens in ${w.drafts.forwards} decode forwards; ${w.drafts.accepted} of ${w.drafts.drafted} drafted tokens kept`);
      else if (w.ms_per_decode_step) L(`  ${''.padEnd(30)} ${f(w.ms_per_decode_step.median, 1)} ms per decode step (wall)`);
    }
    if (g.memory) L(`  RSS over ${g.memory.calls} generate calls: ${f(g.memory.rss_before_mib, 0)} -> ${f(g.memory.rss_after_mib, 0)} MiB (${f(g.memory.growth_mib, 1)} MiB)`);
  }
  if (sec.score) {
    const c = sec.score;
    L(`scoring ${c.task}: ${c.candidates} candidates x ${c.instances} instances (${c.pairs} pairs, ${c.target_tokens} target tokens)`);
    L(`  ${'ours, prefix reuse'.padEnd(30)} ${range(c.ours_reuse[`seconds_${basis}`], 2)} s   positions run ${c.ours_reuse.stats.positions}`);
    L(`  ${''.padEnd(30)} ${f(c.ours_reuse.target_tokens_per_s.median, 1)} target tokens/s`);
    if (c.ours_no_reuse) L(`  ${'ours, no reuse (batch 1)'.padEnd(30)} ${range(c.ours_no_reuse[`seconds_${basis}`], 2)} s   positions run ${c.ours_no_reuse.stats.positions}   reuse ${f(c.ratio_vs_no_reuse, 2)}x faster`);
    if (c.peer) L(`  ${'peer forward passes (batch 1)'.padEnd(30)} ${range(c.peer[`seconds_${basis}`], 2)} s   ours ${f(c.ratio_vs_peer, 2)}x faster; same numbers: max |diff| ${c.checks.peer_max_diff.toExponential(1)}`);
  }
  if (sec.reference) {
    const parts = Object.values(sec.reference.lengths).map((x) => `${x.new_tokens}: ${f(x.speedup, 1)}x${x.same_tokens ? '' : ' (tokens differ)'}`);
    L(`reference cost model (whole sequence re-run per token) vs KV cache, speedup by new tokens: ${parts.join(', ')}`);
  }
  if (sec.limit) {
    const l = sec.limit;
    L(`limit (MatMul-only graph, GFLOP/s ${basis}): prefill ${f(l.achieved_gflops.prefill.median)} of ${f(l.limit_gflops.prefill)} = ${f(l.fraction_of_limit.prefill, 2)}; decode b1 ${f(l.achieved_gflops.decode_b1.median)} of ${f(l.limit_gflops.decode_b1)} = ${f(l.fraction_of_limit.decode_b1, 2)}; decode 16 rows ${f(l.achieved_gflops.decode_16.median)} of ${f(l.limit_gflops.decode_16)} = ${f(l.fraction_of_limit.decode_16, 2)}`);
  }
  if (sec.cache) {
    const c = sec.cache;
    L(`cache: first run ${range(c.first_seconds[basis], 2)} s, rerun ${range(c.rerun_seconds[basis], 3)} s = ${f(c.speedup.median, 0)}x, rerun model calls ${c.rerun_model_calls}, identical ${c.rerun_identical}`);
  }
  if (mo.targets) for (const [k, v] of Object.entries(mo.targets)) L(`  target ${k.padEnd(30)} ${f(v.measured, 1).padStart(8)}   ${v.target}   ${v.met === null ? '' : v.met ? 'met' : 'NOT met'}`);
}
L();
L(`ratios (${result.ratios_model}, ${basis} time; higher is better):`);
for (const [k, v] of Object.entries(result.targets)) L(`  ${k.padEnd(30)} ${f(v.measured, 2).padStart(8)}   target ${v.target ?? '-'}   ${v.met === null ? '' : v.met ? 'met' : 'NOT met'}`);
L(`took ${result.duration_s} s`);
if (isTty) process.stderr.write('\x1b[2K\r');
console.log(lines.join('\n'));
result.table = lines;

if (!args['no-save']) {
  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const text = `${JSON.stringify(result, (k, v) => (typeof v === 'number' && Number.isFinite(v) && !Number.isInteger(v) ? Number(v.toPrecision(7)) : v), 2)}\n`;
  if (args.out) {
    writeFileSync(resolve(args.out), text);
    log(`wrote ${args.out}`);
  } else {
    const stamp = started.toISOString().replace(/[:.]/g, '-');
    writeFileSync(join(dir, `${stamp}.json`), text);
    writeFileSync(join(dir, 'latest.json'), text);
    log(`wrote bench/results/${stamp}.json and bench/results/latest.json`);
  }
}
process.exit(0);
