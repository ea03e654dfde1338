// One engine on one model, in its own process (so that its peak RSS is its own): bench/run.js
// forks it and sends it workloads over IPC, alternating between our engine and the peer.
//   engine "uit":  dist/runtime (loadModel, generate), dist/perplexity (Scorer, scoreCandidates),
//                  dist/cache, and the MatMul-only limit graphs;
//   engine "peer": @huggingface/transformers on the same model folder (onnx/model.onnx).
// Every timed workload answers {wall, cpu, peak_rss_mib, ...} (seconds, MiB) from this process.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { batchPrompts, benchPrompt, timed, median, SHARED_DATA } from './common.js';
import { measureMatmul } from './matmul-onnx.js';

const state = {};

/** The peer's inputs from our token ids: [rows, width] int64, left-padded (mask 0 on pads). */
function peerInputs(Tensor, rowsIds, padId) {
  const width = Math.max(...rowsIds.map((r) => r.length));
  const ids = new BigInt64Array(rowsIds.length * width).fill(BigInt(padId));
  const mask = new BigInt64Array(rowsIds.length * width);
  rowsIds.forEach((r, i) => {
    const off = i * width + width - r.length;
    r.forEach((id, t) => {
      ids[off + t] = BigInt(id);
      mask[off + t] = 1n;
    });
  });
  return { input_ids: new Tensor('int64', ids, [rowsIds.length, width]), attention_mask: new Tensor('int64', mask, [rowsIds.length, width]), width };
}

const handlers = {
  // ------------------------------------------------------------------ loading
  async load({ engine, model: dir, threads, device, newTokens, promptTokens }) {
    Object.assign(state, { engine, dir, threads, device, newTokens });
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    state.config = cfg;
    // Prompts come from our tokenizer in both processes (the same tokenizer.json), so both engines
    // get the same ids.
    const { loadTokenizer } = await import('../../dist/runtime/index.js');
    const tok = await loadTokenizer(dir);
    state.tokenizer = tok;
    state.promptIds = tok.encode(benchPrompt(tok, promptTokens));
    state.batchIds = batchPrompts(tok, 8, promptTokens).map((p) => tok.encode(p));
    const t0 = performance.now();
    if (engine === 'uit') {
      const rt = await import('../../dist/runtime/index.js');
      state.rt = rt;
      state.model = await rt.loadModel(dir, { threads, device });
      state.info = state.model.info;
    } else {
      const tf = await import('@huggingface/transformers');
      tf.env.allowRemoteModels = false;
      tf.env.allowLocalModels = true;
      tf.env.localModelPath = `${dirname(dir)}/`;
      state.tf = tf;
      state.peer = await tf.AutoModelForCausalLM.from_pretrained(basename(dir), {
        dtype: 'fp32',
        device,
        local_files_only: true,
        session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
      });
      state.padId = cfg.eos_token_id ?? 0;
    }
    return {
      load_s: (performance.now() - t0) / 1000,
      rss_mib: process.memoryUsage.rss() / 2 ** 20,
      prompt_tokens: state.promptIds.length,
      batch_prompt_tokens: state.batchIds.map((x) => x.length),
      info: state.info ?? null,
    };
  },

  // ------------------------------------------------------------------ generation
  /**
   * kind: greedy_b1 | greedy_b1_plain (ours without prompt-lookup drafts; the peer runs greedy_b1)
   * | samples_16 | batch_8; returns timings and the new token ids (greedy).
   */
  async generate({ kind, samples = 16, newTokens = state.newTokens }) {
    if (state.engine === 'uit') {
      const { generate } = state.rt;
      const common = { maxNewTokens: newTokens, stopOnEos: false };
      const run =
        kind === 'greedy_b1' || kind === 'greedy_b1_plain'
          ? () => generate(state.model, [{ promptIds: state.promptIds }], { ...common, greedy: true, draftTokens: kind === 'greedy_b1' ? undefined : 0 })
          : kind === 'samples_16'
            ? () => generate(state.model, [{ promptIds: state.promptIds, numSamples: samples }], { ...common, temperature: 1, seed: 1, batchSize: samples })
            : () => generate(state.model, state.batchIds.map((promptIds) => ({ promptIds })), { ...common, greedy: true, batchSize: 8 });
      const r = await timed(run);
      const samplesOut = r.value.outputs.flatMap((o) => o.samples);
      const tokens = samplesOut.reduce((n, s) => n + s.tokenIds.length, 0);
      return { wall: r.wall, cpu: r.cpu, peak_rss_mib: r.peak_rss_mib, tokens, timings: r.value.timings, ids: kind === 'samples_16' ? null : samplesOut.map((s) => s.tokenIds) };
    }
    const { Tensor } = state.tf;
    const common = { max_new_tokens: newTokens, min_new_tokens: newTokens };
    const rowsIds = kind.startsWith('greedy_b1') ? [state.promptIds] : kind === 'samples_16' ? new Array(samples).fill(state.promptIds) : state.batchIds;
    const { input_ids, attention_mask, width } = peerInputs(Tensor, rowsIds, state.padId);
    const opts = kind === 'samples_16' ? { do_sample: true, top_k: 0 } : { do_sample: false };
    const r = await timed(() => state.peer.generate({ input_ids, attention_mask, ...common, ...opts }));
    const [rows, cols] = r.value.dims;
    const data = r.value.data;
    const ids = [];
    for (let i = 0; i < rows; i++) ids.push(Array.from(data.slice(i * cols + width, (i + 1) * cols), Number));
    const tokens = ids.reduce((n, x) => n + x.length, 0);
    return { wall: r.wall, cpu: r.cpu, peak_rss_mib: r.peak_rss_mib, tokens, ids: kind === 'samples_16' ? null : ids };
  },

  /** RSS across `calls` consecutive generate calls (4 samples x 16 tokens), GC every 10 calls. */
  async memory({ calls }) {
    const { generate } = state.rt;
    const gc = globalThis.gc ?? (() => {});
    const small = () => generate(state.model, [{ promptIds: state.promptIds, numSamples: 4 }], { maxNewTokens: 16, temperature: 1, seed: 3, stopOnEos: false });
    for (let i = 0; i < 10; i++) await small();
    gc();
    const before = process.memoryUsage.rss();
    const every10 = [];
    for (let i = 0; i < calls; i++) {
      await small();
      if (i % 10 === 9) {
        gc();
        every10.push(Math.round(process.memoryUsage.rss() / 2 ** 20));
      }
    }
    gc();
    const after = process.memoryUsage.rss();
    return { calls, gc_exposed: globalThis.gc !== undefined, rss_before_mib: before / 2 ** 20, rss_after_mib: after / 2 ** 20, growth_mib: (after - before) / 2 ** 20, rss_every_10_calls_mib: every10 };
  },

  // ------------------------------------------------------------------ reference cost model
  /** Greedy decoding that runs the whole sequence for every new token (no KV cache), as the UIT reference code does. */
  async reference({ newTokens }) {
    const { KvCache, step, argmax } = state.rt;
    const backend = state.model.backend;
    const r = await timed(async () => {
      const ids = [...state.promptIds];
      const out = [];
      for (let i = 0; i < newTokens; i++) {
        const cache = KvCache.create(backend.shape, 1, 0);
        const s = await step(backend, cache, ids, ids.length, 'last', { writeKv: false });
        const next = argmax(s.last);
        out.push(next);
        ids.push(next);
      }
      return out;
    });
    return { wall: r.wall, cpu: r.cpu, peak_rss_mib: r.peak_rss_mib, ids: r.value };
  },

  // ------------------------------------------------------------------ scoring
  /** Reads the task, picks the candidates, fits the prompts once (scoreCandidates) and warms up. */
  async scoreSetup({ taskFile, candidates: n, instances }) {
    const { niv2 } = await import('../../dist/formats/niv2.js');
    const px = await import('../../dist/perplexity/index.js');
    state.px = px;
    let task;
    for await (const lazy of niv2.read(taskFile, {})) {
      task = lazy.task;
      break;
    }
    // The task's own definition, then real definitions of other Ni-v2 tasks (every 97th line).
    const lines = readFileSync(join(SHARED_DATA, 'niv2', 'definitions.jsonl'), 'utf8').trim().split('\n');
    const others = lines.map((l) => JSON.parse(l)).filter((d) => d.task !== task.id);
    const defs = [task.definition];
    for (let i = 0; defs.length < n; i += 97) defs.push(others[i % others.length].definition);
    state.task = task;
    state.candidates = defs;
    state.instances = instances;
    state.scorerId = await state.model.identity();
    // One untimed run: session warm-up, and the fitted setups (the pairs the peer must score).
    const scorer = new px.Scorer(state.model, { scorerId: state.scorerId, batchSize: 8 });
    const res = await px.scoreCandidates(scorer, task, defs, { instances });
    const pairs = defs.flatMap((d, k) => px.uitPairs(res.scored[k], d));
    const pairScores = await new px.Scorer(state.model, { scorerId: state.scorerId, batchSize: 8 }).score(pairs);
    const tok = state.model.tokenizer;
    state.pairIds = pairs.map((p, i) => ({
      prefixIds: tok.encode(p.prefix).slice(pairScores[i].truncatedPrefixTokens),
      targetIds: pairScores[i].targetIds,
    }));
    const meanCe = res.candidates.flatMap((c) => c.instanceMeanCe);
    return {
      task: task.id,
      task_instances: task.instances.length,
      candidates: defs.length,
      instances: res.setup.instances.length,
      pairs: pairs.length,
      prefix_tokens: state.pairIds.reduce((s, p) => s + p.prefixIds.length, 0),
      target_tokens: state.pairIds.reduce((s, p) => s + p.targetIds.length, 0),
      truncated_pairs: pairScores.filter((s) => s.truncatedPrefixTokens > 0).length,
      pair_vs_job_max_diff: Math.max(...pairScores.map((s, i) => (s.meanCe === null ? 0 : Math.abs(s.meanCe - meanCe[i])))),
      pair_ids: state.pairIds,
    };
  },

  /** The UIT scoring job (scoreCandidates) with prefix reuse (batch 8) or without (batch 1). */
  async score({ reuse }) {
    const px = state.px;
    const scorer = new px.Scorer(state.model, reuse ? { scorerId: state.scorerId, batchSize: 8 } : { scorerId: state.scorerId, batchSize: 1, reuse: false });
    const r = await timed(() => px.scoreCandidates(scorer, state.task, state.candidates, { instances: state.instances }));
    const s = scorer.stats;
    return {
      wall: r.wall,
      cpu: r.cpu,
      peak_rss_mib: r.peak_rss_mib,
      mean_ce: r.value.candidates.flatMap((c) => c.instanceMeanCe),
      candidate_mean_ce: r.value.candidates.map((c) => c.meanCe),
      stats: { model_calls: s.modelCalls, prefills: s.prefills, batches: s.batches, positions: s.positions, target_tokens: s.targetTokens },
    };
  },

  /** The peer: one transformers.js forward per pair (full logits), log-softmax + gather in JS. */
  async scorePeer({ pairs }) {
    const { Tensor } = state.tf;
    const one = async (p) => {
      const seq = [...p.prefixIds, ...p.targetIds];
      const ids = new BigInt64Array(seq.map(BigInt));
      const mask = new BigInt64Array(seq.length).fill(1n);
      const out = await state.peer({ input_ids: new Tensor('int64', ids, [1, seq.length]), attention_mask: new Tensor('int64', mask, [1, seq.length]) });
      const vocab = out.logits.dims[2];
      const logits = out.logits.data;
      let sum = 0;
      for (let k = 0; k < p.targetIds.length; k++) {
        const base = (p.prefixIds.length + k - 1) * vocab; // the position that predicts target token k
        let max = -Infinity;
        for (let v = 0; v < vocab; v++) if (logits[base + v] > max) max = logits[base + v];
        let z = 0;
        for (let v = 0; v < vocab; v++) z += Math.exp(logits[base + v] - max);
        sum -= logits[base + p.targetIds[k]] - max - Math.log(z);
      }
      out.logits.dispose?.();
      return p.targetIds.length ? sum / p.targetIds.length : null;
    };
    if (!state.peerWarm) {
      await one(pairs.find((p) => p.targetIds.length));
      state.peerWarm = true;
    }
    const r = await timed(async () => {
      const ces = [];
      for (const p of pairs) ces.push(await one(p));
      return ces;
    });
    return { wall: r.wall, cpu: r.cpu, peak_rss_mib: r.peak_rss_mib, mean_ce: r.value };
  },

  /** A finished job rerun through the SQLite cache: a first run into a fresh cache, then the rerun. */
  async cache() {
    const px = state.px;
    const { openCache } = await import('../../dist/cache/index.js');
    const dir = mkdtempSync(join(tmpdir(), 'uit-bench-cache-'));
    try {
      const cache = openCache(join(dir, 'cache.sqlite'));
      const opts = { instances: state.instances };
      const first = await timed(() => px.scoreCandidates(new px.Scorer(state.model, { scorerId: state.scorerId, batchSize: 8, cache }), state.task, state.candidates, opts));
      const rerunScorer = new px.Scorer(state.model, { scorerId: state.scorerId, batchSize: 8, cache });
      const second = await timed(() => px.scoreCandidates(rerunScorer, state.task, state.candidates, opts));
      cache.close();
      return {
        first: { wall: first.wall, cpu: first.cpu },
        rerun: { wall: second.wall, cpu: second.cpu },
        rerun_model_calls: rerunScorer.stats.modelCalls,
        rerun_cache_hits: rerunScorer.stats.cacheHits,
        identical: JSON.stringify(first.value.candidates) === JSON.stringify(second.value.candidates),
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },

  // ------------------------------------------------------------------ the limit
  /** Prefill of the bench prompt on our engine (one forward, last logits only). */
  async prefill() {
    const { prefill } = state.rt;
    const r = await timed(() => prefill(state.model.backend, state.promptIds));
    return { wall: r.wall, cpu: r.cpu, tokens: state.promptIds.length };
  },

  /** MatMul-only graphs with the model's weight shapes. */
  async matmul({ rows, runs }) {
    const c = state.config;
    const d = c.n_embd ?? c.hidden_size;
    return measureMatmul({
      d,
      inner: c.n_inner ?? c.intermediate_size ?? 4 * d,
      layers: c.n_layer ?? c.num_hidden_layers,
      vocab: c.vocab_size,
      rows,
      runs,
      threads: state.threads,
      device: state.device,
      timed,
      median,
    });
  },

  async stats() {
    return { max_rss_mib: process.resourceUsage().maxRSS / 1024 };
  },

  async exit() {
    if (state.model) await state.model.dispose();
    if (state.peer) await state.peer.dispose();
    setImmediate(() => process.exit(0));
    return { max_rss_mib: process.resourceUsage().maxRSS / 1024 };
  },
};

process.on('message', async ({ id, cmd, args }) => {
  try {
    const result = await handlers[cmd](args ?? {});
    process.send({ id, ok: true, result });
  } catch (err) {
    process.send({ id, ok: false, error: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) });
  }
});
