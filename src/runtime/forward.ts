// Forward passes on top of an engine-owned KV cache: one step helper used by generation, and the
// prefix-reuse pieces the scorer builds on (prefill a shared prefix once, then score many
// continuations on top of copies of its KV cache).
import type { Backend, ForwardWant } from './backend.js';
import { logSoftmaxAt } from './backend.js';
import type { KvStore } from './kv-cache.js';

export interface StepResult {
  vocabSize: number;
  /** [rows, vocab] when `want` is `last` (without `temperature`). */
  last?: Float32Array;
  /** [rows, vocab] with `temperature`: the sampling distribution (see ForwardOutput.probs). */
  probs?: Float32Array;
  /** [rows, seq-1] when `want` is `logprobs`. */
  logprobs?: Float32Array;
  /** [rows, seq, vocab] when `want` is `logits`. */
  logits?: Float32Array;
  /** [rows, n] with `argmaxTail` n (see ForwardOutput.argmax). */
  argmax?: Int32Array;
  /** [rows] with `sampleUniform`: each row's drawn token (see ForwardOutput.sampled). */
  sampled?: Int32Array;
}

/**
 * Runs `ids` ([cache.rows, seq], row-major) on top of `cache`. `newValid` ([rows, seq]) marks real
 * tokens (0 for padding; default all real). With `writeKv` the new positions are added to the cache.
 */
export async function step(
  backend: Backend,
  cache: KvStore,
  ids: ArrayLike<number>,
  seq: number,
  want: ForwardWant,
  opts: { newValid?: Uint8Array; writeKv?: boolean; logprobsTail?: number; argmaxTail?: number; temperature?: number; sampleUniform?: Float64Array } = {},
): Promise<StepResult> {
  const rows = cache.rows;
  if (ids.length !== rows * seq) throw new RangeError(`step: ${ids.length} ids for ${rows} rows x ${seq}`);
  const inputIds = new BigInt64Array(rows * seq);
  for (let i = 0; i < ids.length; i++) inputIds[i] = BigInt(ids[i]);
  const writeKv = opts.writeKv ?? true;
  await cache.sync();
  const out = await backend.forward(
    {
      rows,
      seq,
      inputIds,
      attentionMask: cache.attentionMask(seq, opts.newValid),
      positionIds: cache.positionIds(seq, opts.newValid),
      pastLength: cache.capacity,
      pastKeys: cache.pastKeys(),
      pastValues: cache.pastValues(),
      shared: cache.sharedInput(),
      logprobsTail: opts.logprobsTail,
      argmaxTail: opts.argmaxTail,
      temperature: opts.temperature,
      sampleUniform: opts.sampleUniform,
    },
    want,
    writeKv,
  );
  if (writeKv) {
    if (!out.kv) throw new Error('backend returned no KV entries');
    cache.write(out.kv, seq, opts.newValid);
  }
  return { vocabSize: out.vocabSize, last: out.last, probs: out.probs, logprobs: out.logprobs, logits: out.logits, argmax: out.argmax, sampled: out.sampled };
}

/**
 * A prefilled token sequence: its one-row KV cache and the next-token logits after it. Dispose its
 * cache (`prefix.kv.dispose()`) when done: on a GPU device that frees device memory now.
 */
export interface Prefix {
  ids: readonly number[];
  kv: KvStore;
  /** Next-token logits after the last id, [vocab]. */
  lastLogits: Float32Array;
}

/**
 * Runs `ids` once and keeps its KV cache; with `base`, runs only `ids` on top of `base` (whose cache
 * is copied, not changed), so a prefix can be built in stages and shared.
 */
export async function prefill(backend: Backend, ids: readonly number[], base?: Prefix): Promise<Prefix> {
  if (ids.length === 0) {
    if (base) return base;
    throw new RangeError('prefill: no tokens');
  }
  // No free slots, now or after the step: passing empty (masked) slots as past would cost attention
  // work, here and wherever the prefix is used.
  const kv = base ? await base.kv.gather([0], base.kv.used + ids.length) : backend.createKv(1, 0);
  try {
    const out = await step(backend, kv, ids, ids.length, 'last');
    return { ids: [...(base?.ids ?? []), ...ids], kv, lastLogits: out.last! };
  } catch (err) {
    kv.dispose();
    throw err;
  }
}

export interface ScoreOptions {
  /** Continuations run together (rows of one forward). Default 8. */
  batchSize?: number;
  /**
   * Explicit batches (indices into the continuations), run in this order instead of `batchSize`
   * chunks; a caller that knows the lengths can pick boundaries that pad less. Continuations in no
   * batch are not run: their result is an empty array.
   */
  batches?: readonly (readonly number[])[];
  /**
   * Called after each batch with the continuations it finished (indices into the input) and
   * their log-probs, so a caller can store results batch by batch (a killed run keeps them).
   */
  onBatch?: (indices: readonly number[], logprobs: readonly Float32Array[]) => void;
  /**
   * Per continuation, how many of its last tokens' log-probs are needed (a scored target after the
   * rest of its prefix); the others come back as NaN. The fast graph then runs its LM head on those
   * positions only. Default: every token.
   */
  tails?: readonly number[];
}

/**
 * log p(token | prefix, earlier tokens of the continuation) for every token of every continuation,
 * in input order. Only the continuations run, on top of the prefix's KV cache: this is the prefix
 * reuse of perplexity scoring. When the fast graph takes shared_key_values (`fast.sharedKv`), the
 * prefix is passed once for all rows; otherwise it is copied into each row of a batch (once per
 * call). The first token's log-prob comes from the prefix's `lastLogits`; without a prefix it is
 * NaN (nothing predicts it). Rows are left-padded (so every row's last token is in the last column
 * and `tails` cut the LM head work), or right-padded for a graph without position_ids.
 */
export async function scoreContinuations(
  backend: Backend,
  prefix: Prefix | undefined,
  continuations: readonly (readonly number[])[],
  opts: ScoreOptions = {},
): Promise<Float32Array[]> {
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  let batches: number[][];
  if (opts.batches) {
    const seen = new Set<number>();
    for (const ci of opts.batches.flat()) {
      if (!Number.isInteger(ci) || ci < 0 || ci >= continuations.length || seen.has(ci)) throw new RangeError(`scoreContinuations: bad or repeated batch index ${ci}`);
      seen.add(ci);
    }
    batches = opts.batches.map((b) => b.filter((ci) => continuations[ci].length > 0)).filter((b) => b.length > 0);
  } else {
    // Longest first, so each batch pads little.
    const order = continuations
      .map((c, i) => i)
      .filter((i) => continuations[i].length > 0)
      .sort((a, b) => continuations[b].length - continuations[a].length || a - b);
    batches = [];
    for (let start = 0; start < order.length; start += batchSize) batches.push(order.slice(start, start + batchSize));
  }
  const results: Float32Array[] = continuations.map((c) => new Float32Array(opts.batches ? 0 : c.length));
  for (const ci of batches.flat()) results[ci] = new Float32Array(continuations[ci].length);
  if (batches.length === 0) return results;
  const rowsMax = Math.max(...batches.map((b) => b.length));
  const passShared = prefix !== undefined && backend.fast.scoring && backend.fast.sharedKv === true && !prefix.kv.shared;
  const shared = !prefix
    ? backend.createKv(rowsMax, 0)
    : passShared
      ? backend.createKv(rowsMax, 0, prefix.kv) // rows own nothing: the prefix is passed once
      : await prefix.kv.gather(new Array<number>(rowsMax).fill(0), prefix.kv.used);
  try {
    await scoreBatches(backend, prefix, continuations, batches, results, shared, opts);
  } finally {
    shared.dispose();
  }
  return results;
}

async function scoreBatches(
  backend: Backend,
  prefix: Prefix | undefined,
  continuations: readonly (readonly number[])[],
  batches: number[][],
  results: Float32Array[],
  shared: KvStore,
  opts: ScoreOptions,
): Promise<void> {
  const base = { used: shared.used, capacity: shared.capacity };
  // Left padding needs position_ids (a graph without them may number positions by slot).
  const left = backend.hasPositionIds;
  const tailOf = (ci: number) => {
    const t = opts.tails?.[ci];
    return t === undefined ? continuations[ci].length : Math.max(0, Math.min(Math.floor(t), continuations[ci].length));
  };

  for (const batch of batches) {
    const seq = Math.max(...batch.map((ci) => continuations[ci].length));
    const rows = batch.length;
    shared.rows = rows; // every row is the same prefix, so the first `rows` rows serve any batch
    const ids = new Int32Array(rows * seq);
    const valid = new Uint8Array(rows * seq);
    const offset = batch.map((ci) => (left ? seq - continuations[ci].length : 0));
    batch.forEach((ci, r) => {
      const c = continuations[ci];
      for (let t = 0; t < c.length; t++) {
        ids[r * seq + offset[r] + t] = c[t];
        valid[r * seq + offset[r] + t] = 1;
      }
    });
    // The graph's log-probs cover the last n columns: enough for every row's needed tail (the first
    // token of a row comes from the prefix, not from the graph).
    const need = left ? Math.max(1, ...batch.map((ci) => Math.min(tailOf(ci), continuations[ci].length - 1))) : seq - 1;
    const n = Math.min(need, seq - 1);
    const out = await step(backend, shared, ids, seq, 'logprobs', { newValid: valid, writeKv: false, logprobsTail: n > 0 ? n : undefined });
    if (shared.used !== base.used || shared.capacity !== base.capacity) throw new Error('scoring changed the shared prefix');
    const lp = out.logprobs!;
    batch.forEach((ci, r) => {
      const c = continuations[ci];
      const res = results[ci];
      res[0] = prefix ? logSoftmaxAt(prefix.lastLogits, 0, prefix.lastLogits.length, c[0]) : NaN;
      for (let t = 1; t < c.length; t++) {
        const j = offset[r] + t - (seq - n); // token at column offset+t is entry column-(seq-n)
        res[t] = j >= 0 ? lp[r * n + j] : NaN;
      }
    });
    opts.onBatch?.(batch, batch.map((ci) => results[ci]));
  }
}
