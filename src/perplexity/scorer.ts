// Teacher-forced scoring of (prefix, target) pairs: the log-probability of every target token given
// the prefix and the earlier target tokens, with prefix reuse and the cache.
//
// The order of work, per score() call:
//   1. tokenize prefix and target SEPARATELY and concatenate the ids (DESIGN.md), apply the
//      overflow policy, and compute each pair's cache key;
//   2. plan groups of pairs that share a token prefix (plan.ts) and cut each group into batches,
//      over ALL pairs, cached or not, so the batches (and their float rounding) are the same in
//      an interrupted run, its rerun and an uninterrupted run;
//   3. per batch: if every pair is cached, skip it; else prefill the group's shared prefix (once
//      per group), score the batch's continuations on copies of its KV cache, and store the
//      batch's new scores in one cache transaction. Cached numbers win over recomputed ones.
import type { Cache, CachedScore, JsonObject } from '../cache/index.js';
import { scoreKey } from '../cache/index.js';
import { InputError, ModelError, type InputLocation } from '../errors.js';
import { prefill, scoreContinuations, type Model } from '../runtime/index.js';
import { CountingBackend } from './counting-backend.js';
import { planBatches, planGroups } from './plan.js';
import { SegmentTokenizer } from './segment-tokenizer.js';
import { tokenBoundFor } from './token-bound.js';

import { OVERFLOW_POLICIES, type OverflowPolicy } from './defaults.js';

export { OVERFLOW_POLICIES, type OverflowPolicy };

export interface ScorePair {
  prefix: string;
  target: string;
  /** Where the pair came from, named in errors (default: `(pairs):<index+1>`). */
  where?: InputLocation;
}

export interface PairScore {
  /** Target tokens scored; 0 for an empty target. */
  tokens: number;
  /** -sum of the target tokens' log-probabilities (natural log); 0 for an empty target. */
  sumCe: number;
  /** sumCe / tokens; null (never NaN) for an empty target. */
  meanCe: number | null;
  /** Prefix tokens dropped from the left so that prefix + target fit the context. */
  truncatedPrefixTokens: number;
  /** The target's token ids (prefix and target are tokenized separately). */
  targetIds: number[];
  /** log p of each target token; null only for a cached row stored without them. */
  logprobs: Float32Array | null;
  /** The numbers came from the cache (no model call for this pair). */
  cached: boolean;
}

export interface ScorerOptions {
  /** Look every pair up here first and store what is computed (one transaction per batch). */
  cache?: Cache;
  /** Most continuations run together in one forward call. Default 8. */
  batchSize?: number;
  /**
   * Fixed cost of one forward call, in positions of work: batches are cut where padding would cost
   * more than another call (plan.ts, planBatches). Default 16.
   */
  callCost?: number;
  /** Default `truncate-left`. */
  overflow?: OverflowPolicy;
  /** Context length; default the model's n_positions (config.json). Undefined: no limit known. */
  maxPositions?: number;
  /** Share prefilled prefixes (default true); false runs every pair's whole sequence. */
  reuse?: boolean;
  /** Scorer identity for cache keys; default the model's identity (sha256 of its files). */
  scorerId?: string;
  /** Called after every batch, computed or cached. */
  onBatch?: (progress: BatchProgress) => void;
}

export interface BatchProgress {
  /** Pairs this batch settled (cached or computed). */
  pairs: number;
  /** Whether the model ran for it. */
  computed: boolean;
  /** Target tokens of the batch. */
  targetTokens: number;
}

export interface ScorerStats {
  /** Pairs asked for (duplicates and empty targets included). */
  pairs: number;
  /** Pairs with an empty target (null, no model call). */
  empty: number;
  /** Distinct non-empty pairs found in the cache. */
  cacheHits: number;
  /** Distinct non-empty pairs the model computed. */
  computed: number;
  /** forward() calls on the model: prefills plus scoring batches. */
  modelCalls: number;
  prefills: number;
  batches: number;
  /** Positions the model ran (padding included). */
  positions: number;
  /** Target tokens of computed pairs. */
  targetTokens: number;
  /** Wall time inside score() (ms). */
  ms: number;
}

interface Work {
  key: string;
  pair: ScorePair;
  prefixIds: number[];
  targetIds: number[];
  truncated: number;
  params: JsonObject;
  result?: PairScore;
}

export class Scorer {
  readonly stats: ScorerStats = {
    pairs: 0,
    empty: 0,
    cacheHits: 0,
    computed: 0,
    modelCalls: 0,
    prefills: 0,
    batches: 0,
    positions: 0,
    targetTokens: 0,
    ms: 0,
  };
  private readonly backend: CountingBackend;
  private readonly batchSize: number;
  private readonly callCost: number;
  private readonly overflow: OverflowPolicy;
  private readonly maxPositions: number | undefined;
  private scorerIdPromise?: Promise<string>;
  /** Memoised tokenization of prompt segments (segment-tokenizer.ts), cleared after each call. */
  private readonly tokens: SegmentTokenizer;
  /** Token-count bound of the tokenizer (null: none known); read on first use. */
  private bound?: ((text: string) => number) | null;
  private registered = false;

  constructor(
    readonly model: Model,
    private readonly opts: ScorerOptions = {},
  ) {
    this.backend = new CountingBackend(model.backend);
    this.tokens = SegmentTokenizer.forFile(model.tokenizer, model.folder.files.tokenizer);
    this.batchSize = Math.max(1, Math.floor(opts.batchSize ?? 8));
    this.callCost = Math.max(0, opts.callCost ?? 16);
    this.overflow = opts.overflow ?? 'truncate-left';
    if (!OVERFLOW_POLICIES.includes(this.overflow)) throw new RangeError(`overflow must be one of ${OVERFLOW_POLICIES.join(', ')}`);
    this.maxPositions = opts.maxPositions ?? model.info.maxPositions;
    if (this.maxPositions !== undefined && !(Number.isInteger(this.maxPositions) && this.maxPositions >= 2)) {
      throw new RangeError(`maxPositions must be an integer >= 2, got ${this.maxPositions}`);
    }
    if (opts.scorerId !== undefined) this.scorerIdPromise = Promise.resolve(opts.scorerId);
  }

  /** The context length pairs must fit (undefined: no limit known). */
  get contextLength(): number | undefined {
    return this.maxPositions;
  }

  get overflowPolicy(): OverflowPolicy {
    return this.overflow;
  }

  /** Tokens of a text as score() tokenizes a prefix or a target (memoised segments until the next score()). */
  countTokens(text: string): number {
    return this.tokens.encode(text).length;
  }

  /** A cheap upper bound on countTokens() (token-bound.ts), or undefined when the tokenizer has none. */
  tokenBound(): ((text: string) => number) | undefined {
    this.bound ??= tokenBoundFor(this.model.folder.files.tokenizer) ?? null;
    return this.bound ?? undefined;
  }

  /** The identity cache keys are made with. */
  scorerId(): Promise<string> {
    this.scorerIdPromise ??= this.model.identity();
    return this.scorerIdPromise;
  }

  /** Scores `pairs`, returning one result per pair in the same order. */
  async score(pairs: readonly ScorePair[]): Promise<PairScore[]> {
    try {
      return await this.scoreAll(pairs);
    } finally {
      this.tokens.clear();
    }
  }

  private async scoreAll(pairs: readonly ScorePair[]): Promise<PairScore[]> {
    const t0 = performance.now();
    const scorerId = await this.scorerId();
    const cache = this.opts.cache;
    if (cache && !this.registered) {
      cache.putModel({ id: scorerId, kind: 'local', name: this.model.info.dir, info: { role: 'scorer', model_type: this.model.info.modelType } });
      this.registered = true;
    }
    this.stats.pairs += pairs.length;

    // 0. a finished job: every pair's key is known from its text, and every key is cached
    const looked = new Map<string, CachedScore | null>();
    if (cache) {
      const quick = this.quickKeys(pairs, scorerId);
      if (quick) {
        const unique = [...new Set(quick.filter((k): k is string => k !== null))];
        const found = cache.getScores(unique);
        for (const k of unique) looked.set(k, found.get(k) ?? null);
        if (found.size === unique.length) {
          this.stats.cacheHits += unique.length;
          this.stats.empty += quick.filter((k) => k === null).length;
          this.stats.ms += performance.now() - t0;
          return pairs.map((pair, i) => (quick[i] === null ? emptyScore() : this.cachedScore(found.get(quick[i]!)!, 0, pair.target)));
        }
      }
    }

    // 1. tokens, overflow, keys; distinct work by key
    const results: PairScore[] = [];
    const byKey = new Map<string, Work>();
    const slotOf: (Work | undefined)[] = [];
    pairs.forEach((pair, i) => {
      const targetIds = this.tokens.encode(pair.target);
      if (targetIds.length === 0) {
        results[i] = emptyScore();
        this.stats.empty++;
        return;
      }
      const where = pair.where ?? { file: '(pairs)', line: i + 1 };
      const { prefixIds, truncated } = this.fit(this.prefixIds(pair.prefix, where), targetIds, where);
      const params: JsonObject = truncated > 0 ? { overflow: 'truncate-left', max_positions: this.maxPositions! } : {};
      const key = scoreKey({ scorerId, prefix: pair.prefix, target: pair.target, params });
      let work = byKey.get(key);
      if (!work) {
        work = { key, pair, prefixIds, targetIds, truncated, params };
        byKey.set(key, work);
      }
      slotOf[i] = work;
    });
    const works = [...byKey.values()];

    // 2. cached rows (keys looked up in step 0 are not asked again)
    if (cache) {
      const found = cache.getScores(works.filter((w) => !looked.has(w.key)).map((w) => w.key));
      for (const w of works) {
        const hit = looked.get(w.key) ?? found.get(w.key);
        if (!hit) continue;
        w.result = { ...cachedFields(hit, w.truncated), targetIds: w.targetIds };
        this.stats.cacheHits++;
      }
    }

    // 3. plan over everything, compute what is missing batch by batch
    const calls0 = { ...this.backend.counts };
    for (const group of planGroups(works.map((w) => w.prefixIds), { reuse: this.opts.reuse })) {
      await this.runGroup(scorerId, group.shared, group.members.map((m) => works[m]));
    }
    this.stats.modelCalls += this.backend.counts.calls - calls0.calls;
    this.stats.positions += this.backend.counts.positions - calls0.positions;

    pairs.forEach((_, i) => {
      const w = slotOf[i];
      if (w) results[i] = w.result!;
    });
    this.stats.ms += performance.now() - t0;
    return results;
  }

  /**
   * Every pair's cache key from its text alone (null for an empty target), or undefined when the
   * fit of some pair in the context is not certain without tokenizing (token-bound.ts).
   */
  private quickKeys(pairs: readonly ScorePair[], scorerId: string): (string | null)[] | undefined {
    const max = this.maxPositions;
    const bound = this.tokenBound() ?? null;
    const keys: (string | null)[] = [];
    for (const p of pairs) {
      if (p.target === '') {
        keys.push(null);
        continue;
      }
      if (max !== undefined && (bound === null || bound(p.prefix) + bound(p.target) > max)) return undefined;
      keys.push(scoreKey({ scorerId, prefix: p.prefix, target: p.target, params: {} }));
    }
    return keys;
  }

  /** A cached row as a PairScore; target ids are tokenized only if someone reads them. */
  private cachedScore(hit: CachedScore, truncated: number, target: string): PairScore {
    const tokenizer = this.model.tokenizer;
    let ids: number[] | undefined;
    return Object.defineProperty(cachedFields(hit, truncated), 'targetIds', {
      enumerable: true,
      get: () => (ids ??= tokenizer.encode(target)),
    }) as PairScore;
  }

  /** The prefix's ids; an empty prefix stands as the BOS (else EOS) token, as LM evaluation harnesses do. */
  private prefixIds(prefix: string, where: InputLocation): number[] {
    const ids = this.tokens.encode(prefix);
    if (ids.length > 0) return ids;
    const stand = this.model.tokenizer.bosTokenId ?? this.model.tokenizer.eosTokenIds[0];
    if (stand === undefined) {
      throw new InputError(where, 'empty prefix: nothing predicts the first target token, and the tokenizer has no BOS or EOS token to stand in');
    }
    return [stand];
  }

  /** Applies the overflow policy; at least one prefix token always stays (it predicts the first target token). */
  private fit(prefixIds: number[], targetIds: number[], where: InputLocation): { prefixIds: number[]; truncated: number } {
    const max = this.maxPositions;
    const total = prefixIds.length + targetIds.length;
    if (max === undefined || total <= max) return { prefixIds, truncated: 0 };
    if (targetIds.length > max - 1) {
      throw new InputError(
        where,
        `the target alone has ${targetIds.length} tokens; with one token of context it needs ${targetIds.length + 1} positions and the model has ${max}`,
      );
    }
    if (this.overflow === 'error') {
      throw new InputError(
        where,
        `prefix (${prefixIds.length} tokens) + target (${targetIds.length}) = ${total} tokens, more than the model's ${max} positions ` +
          '(--overflow truncate-left drops prefix tokens from the left instead)',
      );
    }
    const drop = total - max;
    return { prefixIds: prefixIds.slice(drop), truncated: drop };
  }

  private async runGroup(scorerId: string, shared: number, members: Work[]): Promise<void> {
    const conts = members.map((w) => [...w.prefixIds.slice(shared), ...w.targetIds]);
    // Longest first (ties in plan order: the sort is stable) so a batch pads little; fixed whatever is cached.
    const order = members.map((_, i) => i).sort((a, b) => conts[b].length - conts[a].length);
    const batches = planBatches(
      order.map((i) => conts[i].length),
      this.batchSize,
      this.callCost,
    ).map((b) => b.map((k) => order[k]));
    const targetTokens = (batch: readonly number[]) => batch.reduce((n, i) => n + members[i].targetIds.length, 0);
    const todo = batches.filter((b) => !b.every((i) => members[i].result !== undefined));
    for (const b of batches) if (!todo.includes(b)) this.opts.onBatch?.({ pairs: b.length, computed: false, targetTokens: targetTokens(b) });
    if (todo.length === 0) return;

    const prefix = shared > 0 ? await prefill(this.backend, members[0].prefixIds.slice(0, shared)) : undefined;
    if (prefix) this.stats.prefills++;
    // One call for the group: the prefix's KV cache is copied into the batch rows once, not per
    // batch; the engine runs exactly the planned batches that are not cached, in order, and names
    // each batch's members (forward.ts, ScoreOptions.batches).
    let t0 = performance.now();
    // The prefix's cache is freed when the group is done (on a GPU device, now rather than at GC).
    try {
      await scoreContinuations(
        this.backend,
        prefix,
        conts,
        {
          batches: todo,
          // Only the targets' log-probs are used: the fast graph runs its LM head on those alone.
          tails: members.map((w) => w.targetIds.length),
          onBatch: (batch, lps) => {
            const ms = (performance.now() - t0) / batch.length;
            this.stats.batches++;
            const fresh: Work[] = [];
            batch.forEach((i, r) => {
              const w = members[i];
              if (w.result) return; // the cache's number wins
              const logprobs = lps[r].slice(w.prefixIds.length - shared);
              let sum = 0;
              for (const lp of logprobs) sum -= lp;
              if (!Number.isFinite(sum)) {
                // broken weights or an overflowing export: the model's fault, not the data's
                throw new ModelError(
                  `${this.model.info.dir}: scoring produced a non-finite cross-entropy (${sum}) for ${JSON.stringify(w.pair.target.slice(0, 40))} ` +
                    '(`uit doctor --model` checks its numbers)',
                );
              }
              w.result = {
                tokens: logprobs.length,
                sumCe: sum,
                meanCe: sum / logprobs.length,
                truncatedPrefixTokens: w.truncated,
                targetIds: w.targetIds,
                logprobs,
                cached: false,
              };
              fresh.push(w);
              this.stats.computed++;
              this.stats.targetTokens += logprobs.length;
            });
            this.opts.cache?.putScores(
              fresh.map((w) => ({
                scorerId,
                prefix: w.pair.prefix,
                target: w.pair.target,
                params: w.params,
                tokenCount: w.result!.tokens,
                sumCe: w.result!.sumCe,
                meanCe: w.result!.meanCe,
                tokenLogprobs: w.result!.logprobs,
                durationMs: ms,
              })),
            );
            this.opts.onBatch?.({ pairs: batch.length, computed: true, targetTokens: targetTokens(batch) });
            t0 = performance.now();
          },
        },
      );
    } finally {
      prefix?.kv.dispose();
    }
  }
}

function emptyScore(): PairScore {
  return { tokens: 0, sumCe: 0, meanCe: null, truncatedPrefixTokens: 0, targetIds: [], logprobs: new Float32Array(0), cached: false };
}

function cachedFields(hit: CachedScore, truncated: number): Omit<PairScore, 'targetIds'> {
  return { tokens: hit.tokenCount, sumCe: hit.sumCe, meanCe: hit.meanCe, truncatedPrefixTokens: truncated, logprobs: hit.tokenLogprobs, cached: true };
}
