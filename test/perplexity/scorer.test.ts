// The scorer's numbers against an independent full-forward computation, and the properties that
// make them trustworthy: reuse = no reuse, fast graph = slow graph, batch size does not matter,
// empty targets are null, overflow follows its policy, and the cache returns the same numbers
// without running the model.
import { cpSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openCache, scoreKey, type Cache, type JsonObject } from '../../src/cache/index.js';
import { ExitCode, InputError, ModelError } from '../../src/errors.js';
import { Scorer, type BatchProgress, type PairScore, type ScorePair } from '../../src/perplexity/index.js';
import { loadModel, type Model } from '../../src/runtime/index.js';
import { FIXTURE, Reference, fixtureWithContext, maxAbsDiff, tempDir } from './helpers.js';

const SCORER_ID = 'test:tiny-gptj';
let fast: Model;
let slow: Model;
let ref: Reference;
const tmp = tempDir();

beforeAll(async () => {
  fast = await loadModel(FIXTURE, { threads: 1 });
  slow = await loadModel(FIXTURE, { threads: 1, fastGraphs: false });
  ref = await Reference.open(FIXTURE);
});
afterAll(async () => {
  await fast.dispose();
  await slow.dispose();
  await ref.release();
  tmp.cleanup();
});

const DEF_A = 'Definition: Answer the question about the story with one word.\n\nInput: ';
const DEF_B = 'Definition: Rewrite the sentence so that it is polite. Keep its meaning.\n\nInput: ';
/** Two groups of shared prefixes, a loner, a duplicate pair and an empty target. */
const PAIRS: ScorePair[] = [
  { prefix: `${DEF_A}Who ran away?\nOutput: `, target: 'the big triangle' },
  { prefix: `${DEF_B}Give me that.\nOutput: `, target: 'Could you please give me that?' },
  { prefix: `${DEF_A}Where did it go?\nOutput: `, target: 'home' },
  { prefix: 'Completely unrelated text: ', target: 'ok' },
  { prefix: `${DEF_A}Who ran away?\nOutput: `, target: 'the big triangle' },
  { prefix: `${DEF_B}Move.\nOutput: `, target: 'Would you mind moving, please?' },
  { prefix: `${DEF_A}Why?\nOutput: `, target: '' },
  { prefix: `${DEF_A}When did the small circle, which had been hiding, finally come out?\nOutput: `, target: 'at noon' },
  { prefix: `${DEF_B}Stop it.\nOutput: `, target: 'Please stop.' },
];

async function expectMatchesReference(m: Model, pairs: readonly ScorePair[], scores: readonly PairScore[]): Promise<void> {
  for (const [i, p] of pairs.entries()) {
    const s = scores[i];
    const prefixIds = m.tokenizer.encode(p.prefix);
    const targetIds = m.tokenizer.encode(p.target);
    expect(s.targetIds, `pair ${i}`).toEqual(targetIds);
    if (targetIds.length === 0) continue;
    const want = (await ref.logprobs([...prefixIds, ...targetIds])).slice(prefixIds.length - 1);
    expect(maxAbsDiff(s.logprobs!, want), `pair ${i}`).toBeLessThan(1e-4);
    const sum = -want.reduce((a, b) => a + b, 0);
    expect(Math.abs(s.sumCe - sum), `pair ${i}`).toBeLessThan(1e-4 * targetIds.length);
    expect(Math.abs(s.meanCe! - sum / targetIds.length), `pair ${i}`).toBeLessThan(1e-4);
    expect(s.tokens).toBe(targetIds.length);
  }
}

describe('Scorer numbers', () => {
  it('equal log-softmax + gather over full-forward logits of model.onnx (fast graph, prefix reuse)', async () => {
    const scorer = new Scorer(fast, { scorerId: SCORER_ID, batchSize: 3 });
    const scores = await scorer.score(PAIRS);
    expect(scores).toHaveLength(PAIRS.length);
    await expectMatchesReference(fast, PAIRS, scores);
    // reuse really happened: two shared prefixes were prefilled
    expect(scorer.stats.prefills).toBe(2);
    expect(scorer.stats.computed).toBe(7); // 9 pairs, one duplicate, one empty
    expect(scorer.stats.empty).toBe(1);
  });

  it('the slow path (full logits of model.onnx) gives the same numbers as the fast graph', async () => {
    expect(slow.info.fastScoring).toBe(false);
    const a = await new Scorer(fast, { scorerId: SCORER_ID, batchSize: 4 }).score(PAIRS);
    const b = await new Scorer(slow, { scorerId: SCORER_ID, batchSize: 4 }).score(PAIRS);
    await expectMatchesReference(slow, PAIRS, b);
    for (const i of PAIRS.keys()) if (a[i].tokens > 0) expect(maxAbsDiff(a[i].logprobs!, b[i].logprobs!)).toBeLessThan(1e-5);
  });

  it('prefix reuse gives the numbers of scoring every sequence whole, one at a time', async () => {
    const reuse = new Scorer(fast, { scorerId: SCORER_ID, batchSize: 8 });
    const whole = new Scorer(fast, { scorerId: SCORER_ID, batchSize: 1, reuse: false });
    const a = await reuse.score(PAIRS);
    const b = await whole.score(PAIRS);
    expect(whole.stats.prefills).toBe(0);
    expect(whole.stats.modelCalls).toBe(7);
    expect(reuse.stats.positions).toBeLessThan(whole.stats.positions);
    for (const i of PAIRS.keys()) {
      expect(a[i].tokens).toBe(b[i].tokens);
      if (a[i].tokens > 0) {
        expect(maxAbsDiff(a[i].logprobs!, b[i].logprobs!)).toBeLessThan(1e-5);
        expect(Math.abs(a[i].meanCe! - b[i].meanCe!)).toBeLessThan(1e-5);
      }
    }
  });

  it('does not depend on the batch size', async () => {
    const results = [];
    for (const batchSize of [1, 2, 5, 16]) results.push(await new Scorer(fast, { scorerId: SCORER_ID, batchSize }).score(PAIRS));
    for (const r of results.slice(1)) {
      for (const i of PAIRS.keys()) if (r[i].tokens > 0) expect(maxAbsDiff(r[i].logprobs!, results[0][i].logprobs!)).toBeLessThan(1e-5);
    }
  });

  it('scores an empty target as null (never NaN) with no model call', async () => {
    const scorer = new Scorer(fast, { scorerId: SCORER_ID });
    const [s] = await scorer.score([{ prefix: 'Input: x\nOutput: ', target: '' }]);
    expect(s).toMatchObject({ tokens: 0, sumCe: 0, meanCe: null, truncatedPrefixTokens: 0 });
    expect(scorer.stats.modelCalls).toBe(0);
  });

  it('an empty prefix is the BOS token standing in (the first target token is predicted from it)', async () => {
    const [s] = await new Scorer(fast, { scorerId: SCORER_ID }).score([{ prefix: '', target: 'hello' }]);
    const bos = fast.tokenizer.bosTokenId!;
    expect(bos).toBe(256);
    const want = await ref.logprobs([bos, ...fast.tokenizer.encode('hello')]);
    expect(maxAbsDiff(s.logprobs!, want)).toBeLessThan(1e-4);
  });

  it('tokenizes prefix and target separately and concatenates the ids', async () => {
    // With a byte tokenizer the split is invisible, so check the ids the scorer used directly.
    const pair = { prefix: 'Output:', target: ' yes' };
    const [s] = await new Scorer(fast, { scorerId: SCORER_ID }).score([pair]);
    expect(s.targetIds).toEqual(fast.tokenizer.encode(' yes'));
    const want = (await ref.logprobs([...fast.tokenizer.encode('Output:'), ...fast.tokenizer.encode(' yes')])).slice(6);
    expect(maxAbsDiff(s.logprobs!, want)).toBeLessThan(1e-4);
  });
});

describe('context overflow', () => {
  const long = { prefix: `${'The story goes on and on. '.repeat(3)}Question: who?\nOutput: `, target: 'the triangle' };
  const P = long.prefix.length; // byte tokenizer: one token per ASCII character
  const T = long.target.length;

  it('truncate-left drops prefix tokens from the left, reports them, and scores what remains exactly', async () => {
    const max = 48;
    const scorer = new Scorer(fast, { scorerId: SCORER_ID, maxPositions: max });
    const [s, fits] = await scorer.score([long, { prefix: 'Short: ', target: 'ok' }]);
    expect(s.truncatedPrefixTokens).toBe(P + T - max);
    expect(fits.truncatedPrefixTokens).toBe(0);
    const ids = [...fast.tokenizer.encode(long.prefix), ...fast.tokenizer.encode(long.target)].slice(P + T - max);
    const want = (await ref.logprobs(ids)).slice(max - T - 1);
    expect(maxAbsDiff(s.logprobs!, want)).toBeLessThan(1e-4);
  });

  it("takes n_positions from the model's config.json by default", async () => {
    const dir = fixtureWithContext(tmp.dir, 40);
    const m = await loadModel(dir, { threads: 1 });
    try {
      expect(m.info.maxPositions).toBe(40);
      const [s] = await new Scorer(m, { scorerId: SCORER_ID }).score([long]);
      expect(s.truncatedPrefixTokens).toBe(P + T - 40);
    } finally {
      await m.dispose();
    }
  });

  it('the error policy fails naming the pair, before any model call', async () => {
    const scorer = new Scorer(fast, { scorerId: SCORER_ID, maxPositions: 48, overflow: 'error' });
    const where = { file: 'pairs.jsonl', line: 7 };
    const err = await scorer.score([{ prefix: 'a', target: 'b' }, { ...long, where }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).exitCode).toBe(ExitCode.BAD_INPUT);
    expect((err as Error).message).toMatch(/^pairs\.jsonl:7: prefix \(\d+ tokens\) \+ target \(12\) = \d+ tokens, more than the model's 48 positions/);
    expect(scorer.stats.modelCalls).toBe(0);
  });

  it('a target that alone does not fit is an error under either policy', async () => {
    for (const overflow of ['truncate-left', 'error'] as const) {
      const scorer = new Scorer(fast, { scorerId: SCORER_ID, maxPositions: 12, overflow });
      const err = await scorer.score([long]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toBe("(pairs):1: the target alone has 12 tokens; with one token of context it needs 13 positions and the model has 12");
    }
  });
});

describe('Scorer with the cache', () => {
  it('a second run returns identical numbers from the cache with zero model calls', async () => {
    const file = join(tmp.dir, 'rerun.sqlite');
    const cache = openCache(file);
    try {
      const first = new Scorer(fast, { scorerId: SCORER_ID, cache, batchSize: 2 });
      const a = await first.score(PAIRS);
      expect(first.stats.modelCalls).toBeGreaterThan(0);
      expect(cache.counters.scores.writes).toBe(7);
      const second = new Scorer(fast, { scorerId: SCORER_ID, cache, batchSize: 2 });
      const encode = vi.spyOn(fast.tokenizer, 'encode'); // calls through: counts, does not replace
      const b = await second.score(PAIRS);
      expect(encode).not.toHaveBeenCalled(); // a finished job is answered from the text alone
      encode.mockRestore();
      expect(second.stats).toMatchObject({ modelCalls: 0, computed: 0, cacheHits: 7, prefills: 0, batches: 0 });
      for (const i of PAIRS.keys()) {
        expect(b[i].cached).toBe(b[i].tokens > 0);
        expect(b[i].sumCe).toBe(a[i].sumCe);
        expect(b[i].meanCe).toBe(a[i].meanCe);
        expect(b[i].tokens).toBe(a[i].tokens);
        expect(Array.from(b[i].logprobs!)).toEqual(Array.from(a[i].logprobs!));
        expect(b[i].targetIds).toEqual(a[i].targetIds); // tokenized on demand
        expect(b[i].truncatedPrefixTokens).toBe(0);
      }
      expect(cache.counters.scores).toMatchObject({ hits: 7, misses: 7 });
    } finally {
      cache.close();
    }
  });

  it('a partly cached run computes only batches with a missing pair, and cached numbers win', async () => {
    const cache = openCache(join(tmp.dir, 'partial.sqlite'));
    try {
      const some = PAIRS.filter((_, i) => i % 3 === 1); // pairs 1, 4 (= pair 0) and 7
      const a = await new Scorer(fast, { scorerId: SCORER_ID, cache }).score(some);
      const scorer = new Scorer(fast, { scorerId: SCORER_ID, cache, batchSize: 1 });
      const b = await scorer.score(PAIRS);
      expect(scorer.stats.cacheHits).toBe(3);
      expect(scorer.stats.computed).toBe(4);
      expect(scorer.stats.batches).toBe(4); // batch size 1: one batch per missing pair
      some.forEach((_, k) => expect(b[k * 3 + 1].sumCe).toBe(a[k].sumCe));
      expect(b[0].sumCe).toBe(a[1].sumCe);
      await expectMatchesReference(fast, PAIRS, b);
    } finally {
      cache.close();
    }
  });

  it('a rerun of a truncated job tokenizes to find its keys, and reports the same truncation', async () => {
    const cache = openCache(join(tmp.dir, 'truncated.sqlite'));
    try {
      const pairs = [
        { prefix: `${DEF_A}Who ran away from the small triangle, and why?\nOutput: `, target: 'the big triangle' },
        { prefix: 'Q: ', target: 'ok' },
      ];
      const a = await new Scorer(fast, { scorerId: SCORER_ID, cache, maxPositions: 64 }).score(pairs);
      expect(a[0].truncatedPrefixTokens).toBeGreaterThan(0);
      const rerun = new Scorer(fast, { scorerId: SCORER_ID, cache, maxPositions: 64 });
      const b = await rerun.score(pairs);
      expect(rerun.stats).toMatchObject({ modelCalls: 0, cacheHits: 2 });
      expect(b.map((x) => [x.truncatedPrefixTokens, x.sumCe, x.cached])).toEqual(a.map((x) => [x.truncatedPrefixTokens, x.sumCe, true]));
      // the same pairs with room enough are other numbers, not the truncated ones
      const roomy = new Scorer(fast, { scorerId: SCORER_ID, cache });
      const c = await roomy.score(pairs);
      expect(roomy.stats.cacheHits).toBe(1);
      expect(c[0].truncatedPrefixTokens).toBe(0);
      expect(c[0].sumCe).not.toBe(a[0].sumCe);
    } finally {
      cache.close();
    }
  });

  it('keys depend on the scorer identity and on truncation, not on the batch size', async () => {
    const cache = openCache(join(tmp.dir, 'keys.sqlite'));
    try {
      const pair = { prefix: 'Input: the small triangle hides\nOutput: ', target: 'why?' };
      await new Scorer(fast, { scorerId: SCORER_ID, cache, batchSize: 4 }).score([pair]);
      const sameOther = new Scorer(fast, { scorerId: SCORER_ID, cache, batchSize: 1 });
      await sameOther.score([pair]);
      expect(sameOther.stats.cacheHits).toBe(1);
      const otherModel = new Scorer(fast, { scorerId: 'test:another-model', cache });
      await otherModel.score([pair]);
      expect(otherModel.stats.cacheHits).toBe(0);
      const truncated = new Scorer(fast, { scorerId: SCORER_ID, cache, maxPositions: 20 });
      const [t] = await truncated.score([pair]);
      expect(t.truncatedPrefixTokens).toBeGreaterThan(0);
      expect(truncated.stats.cacheHits).toBe(0);
    } finally {
      cache.close();
    }
  });
});

// ---- pinned edges: options, every field of a score, batching, overflow limits, the cache rows ----

/** A copy of the fixture with its special-token settings edited (config, generation config, tokenizer config). */
function fixtureWithSpecials(into: string, name: string, bos: number | undefined, eos: number | undefined): string {
  const dst = join(into, name);
  cpSync(FIXTURE, dst, { recursive: true });
  for (const f of ['config.json', 'generation_config.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    const file = join(dst, f);
    const doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    delete doc.bos_token;
    delete doc.eos_token;
    delete doc.bos_token_id;
    delete doc.eos_token_id;
    if (f !== 'tokenizer_config.json' && f !== 'special_tokens_map.json') {
      if (bos !== undefined) doc.bos_token_id = bos;
      if (eos !== undefined) doc.eos_token_id = eos;
    }
    writeFileSync(file, JSON.stringify(doc, null, 2));
  }
  return dst;
}

/** Runs `fn` on a new cache file in the temp folder, closed after. */
async function withCache(name: string, fn: (cache: Cache) => Promise<void>): Promise<void> {
  const cache = openCache(join(tmp.dir, name));
  try {
    await fn(cache);
  } finally {
    cache.close();
  }
}

describe('Scorer options', () => {
  it('refuses an unknown overflow policy and a context under 2 positions, naming the value', () => {
    expect(() => new Scorer(fast, { overflow: 'drop' as never })).toThrow(new RangeError('overflow must be one of truncate-left, error'));
    for (const bad of [1, 0, 2.5, -4]) {
      expect(() => new Scorer(fast, { maxPositions: bad })).toThrow(new RangeError(`maxPositions must be an integer >= 2, got ${bad}`));
    }
    const two = new Scorer(fast, { scorerId: SCORER_ID, maxPositions: 2, overflow: 'error' });
    expect([two.contextLength, two.overflowPolicy]).toEqual([2, 'error']);
    const dflt = new Scorer(fast, { scorerId: SCORER_ID });
    expect([dflt.contextLength, dflt.overflowPolicy]).toEqual([2048, 'truncate-left']);
  });

  it('a context of exactly 2 positions scores a one-token target on the last prefix token', async () => {
    const [s] = await new Scorer(fast, { scorerId: SCORER_ID, maxPositions: 2 }).score([{ prefix: 'abc', target: 'd' }]);
    expect(s.truncatedPrefixTokens).toBe(2);
    const want = await ref.logprobs(fast.tokenizer.encode('cd'));
    expect(maxAbsDiff(s.logprobs!, want)).toBeLessThan(1e-4);
  });
});

describe('every field of a score', () => {
  it('a computed pair: its tokens, the sum and mean of -log p in float64, no truncation, not cached', async () => {
    const scorer = new Scorer(fast, { scorerId: SCORER_ID });
    const [s] = await scorer.score([{ prefix: 'Input: hi\nOutput: ', target: 'hello' }]);
    const lps = Array.from(s.logprobs!);
    let sum = 0;
    for (const lp of lps) sum -= lp;
    expect(s).toEqual({
      tokens: 5,
      sumCe: sum,
      meanCe: sum / 5,
      truncatedPrefixTokens: 0,
      targetIds: fast.tokenizer.encode('hello'),
      logprobs: s.logprobs,
      cached: false,
    });
    expect(s.logprobs).toBeInstanceOf(Float32Array);
    expect(lps).toHaveLength(5);
    expect(scorer.stats.targetTokens).toBe(5);
  });

  it('an empty target: every field, in any position; no pairs at all is an empty answer', async () => {
    const scorer = new Scorer(fast, { scorerId: SCORER_ID });
    const res = await scorer.score([
      { prefix: 'a', target: '' },
      { prefix: 'Q: ', target: 'ok' },
      { prefix: 'b', target: '' },
    ]);
    expect(res).toHaveLength(3);
    for (const s of [res[0], res[2]]) {
      expect(s).toEqual({ tokens: 0, sumCe: 0, meanCe: null, truncatedPrefixTokens: 0, targetIds: [], logprobs: new Float32Array(0), cached: false });
    }
    expect(res[1].tokens).toBe(2);
    expect(scorer.stats).toMatchObject({ pairs: 3, empty: 2, computed: 1 });
    expect(await scorer.score([])).toEqual([]);
    expect(scorer.stats.pairs).toBe(3);
  });

  it('an empty prefix is the BOS token, or the EOS token where there is no BOS; neither is an error naming the pair', async () => {
    const pair = { prefix: '', target: 'hi' };
    const otherBos = await loadModel(fixtureWithSpecials(tmp.dir, 'bos65', 65, 256), { threads: 1 });
    const eosOnly = await loadModel(fixtureWithSpecials(tmp.dir, 'eos-only', undefined, 256), { threads: 1 });
    const none = await loadModel(fixtureWithSpecials(tmp.dir, 'no-specials', undefined, undefined), { threads: 1 });
    try {
      expect([otherBos.tokenizer.bosTokenId, eosOnly.tokenizer.bosTokenId, none.tokenizer.eosTokenIds]).toEqual([65, undefined, []]);
      const [a] = await new Scorer(otherBos, { scorerId: SCORER_ID }).score([pair]);
      expect(maxAbsDiff(a.logprobs!, await ref.logprobs([65, ...fast.tokenizer.encode('hi')]))).toBeLessThan(1e-4);
      const [b] = await new Scorer(eosOnly, { scorerId: SCORER_ID }).score([pair]);
      expect(maxAbsDiff(b.logprobs!, await ref.logprobs([256, ...fast.tokenizer.encode('hi')]))).toBeLessThan(1e-4);
      const err = await new Scorer(none, { scorerId: SCORER_ID })
        .score([{ prefix: 'x', target: 'y' }, { ...pair, where: { file: 'p.jsonl', line: 3 } }])
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toBe(
        'p.jsonl:3: empty prefix: nothing predicts the first target token, and the tokenizer has no BOS or EOS token to stand in',
      );
    } finally {
      await Promise.all([otherBos.dispose(), eosOnly.dispose(), none.dispose()]);
    }
  });
});

describe('Scorer batching, pinned', () => {
  // Byte tokenizer: one token per ASCII character. S is shared by the first four prefixes.
  const S = 'A prefix that four pairs share: ';
  const GROUP: ScorePair[] = [
    { prefix: `${S}ab`, target: 'xyz' }, // continuation "ab" + "xyz": 5 tokens, 3 of target
    { prefix: `${S}c`, target: 'wxyz' }, // 5 tokens, 4 of target (same length: plan order breaks the tie)
    { prefix: `${S}defg`, target: 'hi' }, // 6 tokens
    { prefix: `${S}h`, target: 'i' }, // 2 tokens
  ];

  it('cuts each group longest first, ties in plan order, reports every batch, and counts every call and position', async () => {
    const seen: BatchProgress[] = [];
    const scorer = new Scorer(fast, { scorerId: SCORER_ID, batchSize: 1, onBatch: (p) => seen.push(p) });
    const res = await scorer.score(GROUP);
    // one prefill of S, then one batch per continuation: 6 (defg+hi), 5 (ab+xyz), 5 (c+wxyz), 2 (h+i)
    expect(seen).toEqual([
      { pairs: 1, computed: true, targetTokens: 2 },
      { pairs: 1, computed: true, targetTokens: 3 },
      { pairs: 1, computed: true, targetTokens: 4 },
      { pairs: 1, computed: true, targetTokens: 1 },
    ]);
    expect(scorer.stats).toMatchObject({ pairs: 4, computed: 4, prefills: 1, batches: 4, modelCalls: 5, positions: S.length + 6 + 5 + 5 + 2, targetTokens: 10 });
    await expectMatchesReference(fast, GROUP, res);
    // a second call on the same scorer adds to the counters
    await scorer.score([{ prefix: 'Another: ', target: 'one' }, ...GROUP.slice(0, 1)]);
    // both run whole (they share nothing), one batch each: "Another: one" and GROUP[0]
    expect(scorer.stats).toMatchObject({ pairs: 6, computed: 6, prefills: 1, batches: 6, modelCalls: 7, positions: S.length + 18 + 12 + S.length + 5, targetTokens: 16 });
  });

  it('the default batch size (8) and call cost (16) put a short continuation with a long one; a call cost of 0 splits them', async () => {
    const pairs = [
      { prefix: 'P: ', target: 'abcdefg' }, // 10 tokens, no shared prefix
      { prefix: 'Q', target: 'b' }, // 2 tokens
    ];
    // one call: 2 rows x 10 + 16 = 36 < two calls: 10 + 16 + 2 + 16 = 44; with no call cost, 20 > 12
    const one = new Scorer(fast, { scorerId: SCORER_ID });
    await one.score(pairs);
    expect(one.stats).toMatchObject({ prefills: 0, batches: 1, modelCalls: 1, positions: 2 * 10 });
    const split = new Scorer(fast, { scorerId: SCORER_ID, callCost: 0 });
    await split.score(pairs);
    expect(split.stats).toMatchObject({ batches: 2, modelCalls: 2, positions: 10 + 2 });
    const negative = new Scorer(fast, { scorerId: SCORER_ID, callCost: -5 }); // taken as 0
    await negative.score(pairs);
    expect(negative.stats).toMatchObject({ batches: 2, positions: 12 });
    // eight continuations of one length are one call; a ninth starts another; 2.9 rows means 2
    const nine = Array.from({ length: 9 }, (_, i) => ({ prefix: `Q${i}`, target: 'xy' }));
    const eight = new Scorer(fast, { scorerId: SCORER_ID, reuse: false });
    await eight.score(nine);
    expect(eight.stats).toMatchObject({ batches: 2, modelCalls: 2, positions: 9 * 4 });
    const frac = new Scorer(fast, { scorerId: SCORER_ID, reuse: false, batchSize: 2.9 });
    await frac.score(nine);
    expect(frac.stats.batches).toBe(5);
  });

  it('gives the same numbers whatever the batch size, the call cost and the reuse', async () => {
    const pairs = [...GROUP, ...PAIRS];
    const base = await new Scorer(fast, { scorerId: SCORER_ID, batchSize: 1, reuse: false }).score(pairs);
    for (const opts of [{ batchSize: 2 }, { batchSize: 3, callCost: 0 }, { batchSize: 64, callCost: 1000 }]) {
      const r = await new Scorer(fast, { scorerId: SCORER_ID, ...opts }).score(pairs);
      for (const i of pairs.keys()) {
        expect(r[i].tokens, `pair ${i}`).toBe(base[i].tokens);
        if (r[i].tokens > 0) expect(maxAbsDiff(r[i].logprobs!, base[i].logprobs!), `pair ${i}`).toBeLessThan(1e-5);
      }
    }
  });

  it('times itself: ms and the cached rows\' durations fit in the wall time of the call', async () => {
    await withCache('durations.sqlite', async (cache) => {
    const scorer = new Scorer(fast, { scorerId: SCORER_ID, cache, batchSize: 4 });
    const t0 = performance.now();
    await scorer.score(GROUP);
    const wall = performance.now() - t0;
    expect(scorer.stats.ms).toBeGreaterThan(0);
    expect(scorer.stats.ms).toBeLessThanOrEqual(wall);
    const rows = [...cache.exportRows('scores')] as { duration_ms: number }[];
    expect(rows).toHaveLength(4);
    const total = rows.reduce((a, r) => a + r.duration_ms, 0);
    expect(rows.every((r) => r.duration_ms > 0)).toBe(true);
    expect(total).toBeLessThanOrEqual(wall);
    // a fully cached rerun is timed too
    const again = new Scorer(fast, { scorerId: SCORER_ID, cache });
    const t1 = performance.now();
    await again.score(GROUP);
    expect(again.stats.ms).toBeGreaterThan(0);
    expect(again.stats.ms).toBeLessThanOrEqual(performance.now() - t1);
    });
  });
});

describe('Scorer with the cache, pinned', () => {
  it('registers the scorer once: its id, kind, folder and model type', async () => {
    const file = join(tmp.dir, 'register.sqlite');
    const cache = openCache(file);
    try {
      const scorer = new Scorer(fast, { scorerId: SCORER_ID, cache });
      await scorer.score([{ prefix: 'Q: ', target: 'ok' }]);
      expect(cache.models().map(({ firstSeen: _, ...m }) => m)).toEqual([
        { id: SCORER_ID, kind: 'local', name: fast.info.dir, info: { role: 'scorer', model_type: 'gptj' } },
      ]);
      // a fully cached second call on the same scorer writes nothing: it runs while another
      // process holds the write lock
      const other = new Database(file);
      other.exec('BEGIN IMMEDIATE');
      try {
        const locked = openCache(file, { busyTimeoutMs: 0 });
        try {
          const [s] = await new Scorer(fast, { scorerId: SCORER_ID, cache: locked }).score([{ prefix: 'Q: ', target: 'ok' }]).catch((e: unknown) => [e]);
          expect(s).toBeInstanceOf(Error); // a new scorer registers itself: a write
        } finally {
          locked.close();
        }
        const [s] = await scorer.score([{ prefix: 'Q: ', target: 'ok' }]);
        expect(s.cached).toBe(true);
      } finally {
        other.exec('ROLLBACK');
        other.close();
      }
    } finally {
      cache.close();
    }
  });

  it('a finished job with empty targets counts them, and answers every field', async () => {
    await withCache('finished-empty.sqlite', async (cache) => {
    const pairs = [
      { prefix: 'Q: ', target: '' },
      { prefix: 'Q: ', target: 'ok' },
      { prefix: 'R: ', target: '' },
    ];
    const a = await new Scorer(fast, { scorerId: SCORER_ID, cache }).score(pairs);
    const again = new Scorer(fast, { scorerId: SCORER_ID, cache });
    const b = await again.score(pairs);
    expect(again.stats).toMatchObject({ pairs: 3, empty: 2, cacheHits: 1, computed: 0, modelCalls: 0 });
    expect(b[0]).toEqual(a[0]);
    expect(b[2]).toEqual(a[2]);
    expect({ ...b[1] }).toEqual({ ...a[1], logprobs: b[1].logprobs, cached: true });
    expect(Array.from(b[1].logprobs!)).toEqual(Array.from(a[1].logprobs!));
    });
  });

  it('a truncated pair is stored under its truncation (policy and context), not as the whole pair', async () => {
    await withCache('truncated-key.sqlite', async (cache) => {
    const pair = { prefix: 'Input: the small triangle hides\nOutput: ', target: 'why?' };
    const [t] = await new Scorer(fast, { scorerId: SCORER_ID, cache, maxPositions: 20 }).score([pair]);
    expect(t.truncatedPrefixTokens).toBe(pair.prefix.length + 4 - 20);
    const key = (params: JsonObject) => scoreKey({ scorerId: SCORER_ID, ...pair, params });
    const found = cache.getScores([key({ overflow: 'truncate-left', max_positions: 20 }), key({})]);
    expect([...found.keys()]).toEqual([key({ overflow: 'truncate-left', max_positions: 20 })]);
    expect(found.values().next().value!.sumCe).toBe(t.sumCe);
    });
  });

  it('a pair scored whole before is not taken for a truncated one (the quick answer needs a certain fit)', async () => {
    await withCache('whole-then-truncated.sqlite', async (cache) => {
    const pair = { prefix: `${'x'.repeat(30)}: `, target: 'abc' }; // 32 + 3 tokens; bound 33 + 4
    const [whole] = await new Scorer(fast, { scorerId: SCORER_ID, cache }).score([pair]);
    const small = new Scorer(fast, { scorerId: SCORER_ID, cache, maxPositions: 34 });
    const [t] = await small.score([pair]);
    expect([t.truncatedPrefixTokens, t.cached, small.stats.computed]).toEqual([1, false, 1]);
    expect(t.sumCe).not.toBe(whole.sumCe);
    });
  });

  it('a finished job is answered without tokenizing when the bound fits the context exactly', async () => {
    await withCache('bound-edge.sqlite', async (cache) => {
    const pair = { prefix: 'Q: ', target: 'ok' }; // bound (3 + 1) + (2 + 1) = 7
    await new Scorer(fast, { scorerId: SCORER_ID, cache }).score([pair]);
    const encode = vi.spyOn(fast.tokenizer, 'encode'); // calls through: counts, does not replace
    try {
      const [s] = await new Scorer(fast, { scorerId: SCORER_ID, cache, maxPositions: 7 }).score([pair]);
      expect(s.cached).toBe(true);
      expect(encode).not.toHaveBeenCalled();
      const [u] = await new Scorer(fast, { scorerId: SCORER_ID, cache, maxPositions: 6 }).score([pair]);
      expect([u.cached, u.truncatedPrefixTokens]).toEqual([true, 0]); // fits (5 tokens), but only tokenizing knows
      expect(encode).toHaveBeenCalled();
    } finally {
      encode.mockRestore();
    }
    });
  });

  it('a batch with cached and missing pairs is computed whole, the cached numbers win, and fully cached batches are reported', async () => {
    await withCache('mixed-batch.sqlite', async (cache) => {
    const S = 'Shared by every pair of this test: ';
    const pairs = ['one', 'two', 'six', 'ten'].map((t) => ({ prefix: `${S}${t}? `, target: t })); // one group, equal lengths
    const other = { prefix: 'Alone: ', target: 'solo' };
    const [first] = await new Scorer(fast, { scorerId: SCORER_ID, cache, batchSize: 1 }).score([pairs[2]]);
    await new Scorer(fast, { scorerId: SCORER_ID, cache }).score([other]);
    const seen: BatchProgress[] = [];
    const scorer = new Scorer(fast, { scorerId: SCORER_ID, cache, batchSize: 4, onBatch: (p) => seen.push(p) });
    const res = await scorer.score([other, ...pairs]);
    expect(res.map((r) => r.cached)).toEqual([true, false, false, true, false]);
    expect(res[3].sumCe).toBe(first.sumCe);
    expect(scorer.stats).toMatchObject({ cacheHits: 2, computed: 3, prefills: 1, batches: 1, modelCalls: 2, targetTokens: 9 });
    // the pool of pairs with nothing shared (the cached "Alone") first, then the group's one batch
    expect(seen).toEqual([
      { pairs: 1, computed: false, targetTokens: 4 },
      { pairs: 4, computed: true, targetTokens: 12 },
    ]);
    await expectMatchesReference(fast, [other, ...pairs], res);
    expect(cache.counters.scores.writes).toBe(2 + 3);
    // now the group is cached whole: a new pair beside it runs alone, with no prefill for the group
    const next = new Scorer(fast, { scorerId: SCORER_ID, cache, batchSize: 4 });
    const more = await next.score([...pairs, { prefix: 'New: ', target: 'pair' }]);
    expect(more.map((r) => r.cached)).toEqual([true, true, true, true, false]);
    expect(next.stats).toMatchObject({ cacheHits: 4, computed: 1, prefills: 0, batches: 1, modelCalls: 1, positions: 9 });
    });
  });
});

describe('a broken model', () => {
  it('whose numbers are not finite fails as a model error naming the folder and the target, storing nothing', async () => {
    const dir = join(tmp.dir, 'nan-weights');
    cpSync(FIXTURE, dir, { recursive: true });
    const data = join(dir, 'onnx', 'model.onnx_data');
    writeFileSync(data, Buffer.from(new Float32Array(statSync(data).size / 4).fill(NaN).buffer));
    const m = await loadModel(dir, { threads: 1 });
    try {
      await withCache('nan.sqlite', async (cache) => {
        const target = 'a target longer than the forty characters the message shows';
        const err = await new Scorer(m, { scorerId: SCORER_ID, cache }).score([{ prefix: 'Q: ', target }]).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ModelError);
        expect((err as ModelError).exitCode).toBe(ExitCode.MODEL);
        expect((err as Error).message).toBe(
          `${m.info.dir}: scoring produced a non-finite cross-entropy (NaN) for "a target longer than the forty character" (\`uit doctor --model\` checks its numbers)`,
        );
        expect(cache.count('scores')).toBe(0);
      });
    } finally {
      await m.dispose();
    }
  });
});

describe('context overflow, pinned', () => {
  it('a pair that fills the context exactly is whole, under either policy', async () => {
    const pair = { prefix: 'Q: ', target: 'ok' }; // 5 tokens
    for (const overflow of ['truncate-left', 'error'] as const) {
      const [s] = await new Scorer(fast, { scorerId: SCORER_ID, maxPositions: 5, overflow }).score([pair]);
      expect(s.truncatedPrefixTokens).toBe(0);
    }
  });

  it('a target one token shorter than the context keeps one prefix token; the error policy names both lengths', async () => {
    const pair = { prefix: 'Q: ', target: 'okay' }; // 3 + 4
    const [s] = await new Scorer(fast, { scorerId: SCORER_ID, maxPositions: 5 }).score([pair]);
    expect(s.truncatedPrefixTokens).toBe(2);
    expect(maxAbsDiff(s.logprobs!, await ref.logprobs(fast.tokenizer.encode(' okay')))).toBeLessThan(1e-4);
    const err = await new Scorer(fast, { scorerId: SCORER_ID, maxPositions: 6, overflow: 'error' }).score([pair]).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      "(pairs):1: prefix (3 tokens) + target (4) = 7 tokens, more than the model's 6 positions (--overflow truncate-left drops prefix tokens from the left instead)",
    );
  });
});
