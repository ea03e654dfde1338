// Quick measurement of UIT candidate scoring (issue 5's numbers): 8 candidate definitions x M
// instances of one real Ni-v2 task, scored
//   (a) by our engine with prefix reuse (one prefill per candidate, continuations batched),
//   (b) by the same engine and graph scoring every full sequence separately (batch of 1, no reuse),
//   (c) by @huggingface/transformers 4.3.1 forward passes on the same model folder (full logits out,
//       log-softmax and gather in JS), batch of 1 and padded batches,
//   (d) by a rerun of the finished job through the SQLite cache.
// It checks that (c) gives our numbers within 1e-3 and prints (or with --json writes) the results.
//
// Run from the repository root (this compiles src/ and bench/ into dist/.bench, ignored by git):
//   npx tsc -p tsconfig.json --outDir dist/.bench --declaration false --sourceMap false
//   node dist/.bench/bench/score-quick.js [--model DIR] [--task FILE] [--threads N] [--json OUT]
// Default model: models/uit-tiny when trained, else bench/models/gptj-25m-random, made with
//   /usr/bin/python3 scripts/export-gptj.py --random-init CONFIG bench/models/gptj-25m-random
// (CONFIG: d=512, 8 layers, 8 heads, byte vocabulary: see docs/scoring.md, "Measured").
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { openCache } from '../src/cache/index.js';
import { niv2 } from '../src/formats/niv2.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { Scorer, scoreCandidates, uitPairs, uitSetup, type ScorePair } from '../src/perplexity/index.js';
import { loadModel, ortVersion, type Model } from '../src/runtime/index.js';
import type { Task } from '../src/types.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    task: { type: 'string', default: '../shared/data/niv2/tasks/task1665_trainglecopa_question_generation.json' },
    candidates: { type: 'string', default: '8' },
    instances: { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    'batch-size': { type: 'string', default: '8' },
    'skip-transformers': { type: 'boolean', default: false },
    'tf-batch': { type: 'string', multiple: true },
    json: { type: 'string' },
  },
});

const modelDir = resolve(
  args.model ?? (existsSync('models/uit-tiny/onnx/model.onnx') ? 'models/uit-tiny' : 'bench/models/gptj-25m-random'),
);
const threads = Number(args.threads);
const batchSize = Number(args['batch-size']);
const numCandidates = Number(args.candidates);
const M = Number(args.instances);

/** The task, read with the project's Ni-v2 reader. */
async function readTask(file: string): Promise<Task> {
  for await (const lazy of niv2.read(file, {})) return lazy.task;
  throw new Error(`${file}: no task`);
}

/** The task's own definition, then real definitions of other Ni-v2 tasks (every 97th), as candidates. */
function candidateDefinitions(task: Task, n: number): string[] {
  const lines = readFileSync(join(dirname(resolve(args.task!)), '..', 'definitions.jsonl'), 'utf8').trim().split('\n');
  const others = lines.map((l) => JSON.parse(l) as { task: string; definition: string }).filter((d) => d.task !== task.id);
  const out = [task.definition];
  for (let i = 0; out.length < n; i += 97) out.push(others[i % others.length].definition);
  return out;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Wall time and this process's CPU time (all threads): on a shared machine the CPU time is the steadier number. */
async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; cpu: number; value: T }> {
  const t0 = performance.now();
  const c0 = cpuMs();
  const value = await fn();
  return { ms: performance.now() - t0, cpu: cpuMs() - c0, value };
}

/** (c): transformers.js forward passes; log-softmax + gather of the target positions in JS. */
async function transformersScores(pairs: readonly { prefixIds: number[]; targetIds: number[] }[], rows: number): Promise<{ ms: number; cpu: number; meanCe: number[] }> {
  const tf = await import('@huggingface/transformers');
  tf.env.allowRemoteModels = false;
  tf.env.allowLocalModels = true;
  tf.env.localModelPath = dirname(modelDir);
  const model = await tf.AutoModelForCausalLM.from_pretrained(basename(modelDir), {
    dtype: 'fp32',
    device: 'cpu',
    local_files_only: true,
    session_options: { intraOpNumThreads: threads },
  });
  const run = async (batch: readonly { prefixIds: number[]; targetIds: number[] }[]): Promise<number[]> => {
    const seqs = batch.map((p) => [...p.prefixIds, ...p.targetIds]);
    const width = Math.max(...seqs.map((s) => s.length));
    const ids = new BigInt64Array(batch.length * width);
    const mask = new BigInt64Array(batch.length * width);
    seqs.forEach((s, r) => s.forEach((id, t) => ((ids[r * width + t] = BigInt(id)), (mask[r * width + t] = 1n))));
    const out = (await model({
      input_ids: new tf.Tensor('int64', ids, [batch.length, width]),
      attention_mask: new tf.Tensor('int64', mask, [batch.length, width]),
    })) as { logits: { data: Float32Array; dims: number[] } };
    const vocab = out.logits.dims[2];
    const logits = out.logits.data;
    return batch.map((p, r) => {
      let sum = 0;
      for (let k = 0; k < p.targetIds.length; k++) {
        const t = p.prefixIds.length + k - 1; // the position that predicts target token k
        const base = (r * width + t) * vocab;
        let max = -Infinity;
        for (let v = 0; v < vocab; v++) max = Math.max(max, logits[base + v]);
        let z = 0;
        for (let v = 0; v < vocab; v++) z += Math.exp(logits[base + v] - max);
        sum -= logits[base + p.targetIds[k]] - max - Math.log(z);
      }
      return sum / p.targetIds.length;
    });
  };
  await run(pairs.slice(0, 1)); // warm-up
  const r = await timed(async () => {
    const meanCe: number[] = [];
    for (let i = 0; i < pairs.length; i += rows) meanCe.push(...(await run(pairs.slice(i, i + rows))));
    return meanCe;
  });
  await model.dispose();
  return { ms: r.ms, cpu: r.cpu, meanCe: r.value };
}

async function main(): Promise<void> {
  const task = await readTask(resolve(args.task!));
  const candidates = candidateDefinitions(task, numCandidates);
  const model: Model = await loadModel(modelDir, { threads });
  const scorerId = await model.identity();
  const setup = uitSetup(task, { instances: M });
  const pairs: ScorePair[] = candidates.flatMap((d) => uitPairs(setup, d));
  const tok = pairs.map((p) => ({ prefixIds: model.tokenizer.encode(p.prefix), targetIds: model.tokenizer.encode(p.target) }));
  const prefixTokens = tok.reduce((n, p) => n + p.prefixIds.length, 0);
  const targetTokens = tok.reduce((n, p) => n + p.targetIds.length, 0);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log(`model ${modelDir} (${model.info.numLayers} layers, fast scoring ${model.info.fastScoring}), ${threads} threads, onnxruntime-node ${ortVersion()}`);
  log(`task ${task.id}: ${candidates.length} candidates x ${setup.instances.length} instances = ${pairs.length} pairs, ${prefixTokens} prefix + ${targetTokens} target tokens`);

  // warm-up (session initialisation, first-run allocations), not timed
  await new Scorer(model, { scorerId, batchSize }).score(pairs.slice(0, batchSize));

  const reuse = new Scorer(model, { scorerId, batchSize });
  const a = await timed(() => reuse.score(pairs));
  log(`(a) prefix reuse, batch ${batchSize}: ${(a.ms / 1000).toFixed(2)} s (cpu ${(a.cpu / 1000).toFixed(2)} s), ${reuse.stats.prefills} prefills + ${reuse.stats.batches} batches, ${reuse.stats.positions} positions run`);
  const whole = new Scorer(model, { scorerId, batchSize: 1, reuse: false });
  const b = await timed(() => whole.score(pairs));
  log(`(b) no reuse, batch 1: ${(b.ms / 1000).toFixed(2)} s (cpu ${(b.cpu / 1000).toFixed(2)} s), ${whole.stats.modelCalls} calls, ${whole.stats.positions} positions run`);

  // (d) the same job through a cache: a first run, then the rerun
  const dir = mkdtempSync(join(tmpdir(), 'uit-bench-score-'));
  let d1: number;
  let d2: number;
  let rerunCalls: number;
  let identical: boolean;
  try {
    const cache = openCache(join(dir, 'cache.sqlite'));
    const first = await timed(() => scoreCandidates(new Scorer(model, { scorerId, batchSize, cache }), task, candidates, { instances: M }));
    const rerunScorer = new Scorer(model, { scorerId, batchSize, cache });
    const second = await timed(() => scoreCandidates(rerunScorer, task, candidates, { instances: M }));
    cache.close();
    d1 = first.ms;
    d2 = second.ms;
    rerunCalls = rerunScorer.stats.modelCalls;
    identical = JSON.stringify(first.value.candidates) === JSON.stringify(second.value.candidates);
    log(`(d) first run with cache ${(d1 / 1000).toFixed(2)} s, rerun ${d2.toFixed(1)} ms, ${rerunCalls} model calls, identical ${identical}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const c: { rows: number; ms: number; cpu: number; maxDiff: number }[] = [];
  if (!args['skip-transformers']) {
    for (const rows of (args['tf-batch'] ?? ['1']).map(Number)) {
      const r = await transformersScores(tok, rows);
      let maxDiff = 0;
      r.meanCe.forEach((ce, i) => (maxDiff = Math.max(maxDiff, Math.abs(ce - a.value[i].meanCe!))));
      c.push({ rows, ms: r.ms, cpu: r.cpu, maxDiff });
      log(`(c) transformers.js forward, batch ${rows}: ${(r.ms / 1000).toFixed(2)} s (cpu ${(r.cpu / 1000).toFixed(2)} s), max |mean CE - ours| = ${maxDiff.toExponential(2)}`);
    }
  }
  let maxReuseDiff = 0;
  a.value.forEach((s, i) => (maxReuseDiff = Math.max(maxReuseDiff, Math.abs(s.meanCe! - b.value[i].meanCe!))));

  const bestC = c.length ? Math.min(...c.map((x) => x.ms)) : NaN;
  const bestCcpu = c.length ? Math.min(...c.map((x) => x.cpu)) : NaN;
  const result = {
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, threads, onnxruntime_node: ortVersion() },
    model: { dir: modelDir, layers: model.info.numLayers, fast_scoring: model.info.fastScoring },
    task: task.id,
    candidates: candidates.length,
    instances: setup.instances.length,
    pairs: pairs.length,
    prefix_tokens: prefixTokens,
    target_tokens: targetTokens,
    positions_run: { a: reuse.stats.positions, b: whole.stats.positions },
    a_reuse_ms: round(a.ms),
    a_reuse_cpu_ms: round(a.cpu),
    b_no_reuse_ms: round(b.ms),
    b_no_reuse_cpu_ms: round(b.cpu),
    c_transformers_ms: Object.fromEntries(c.map((x) => [`batch_${x.rows}`, round(x.ms)])),
    c_transformers_cpu_ms: Object.fromEntries(c.map((x) => [`batch_${x.rows}`, round(x.cpu)])),
    d_first_ms: round(d1),
    d_rerun_ms: round(d2),
    d_rerun_model_calls: rerunCalls,
    d_rerun_identical: identical,
    target_tokens_per_s: { a: round((targetTokens * 1000) / a.ms), b: round((targetTokens * 1000) / b.ms) },
    ratios: {
      a_over_b: round(b.ms / a.ms),
      a_over_b_cpu: round(b.cpu / a.cpu),
      a_over_c_best: round(bestC / a.ms),
      a_over_c_best_cpu: round(bestCcpu / a.cpu),
      rerun_speedup: round(d1 / d2),
    },
    checks: {
      reuse_vs_no_reuse_max_diff: maxReuseDiff,
      transformers_max_diff: c.length ? Math.max(...c.map((x) => x.maxDiff)) : null,
    },
  };
  await model.dispose();
  const text = `${JSON.stringify(result, null, 2)}\n`;
  if (args.json) writeFileAtomic(args.json, text);
  process.stdout.write(text);
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

await main();
