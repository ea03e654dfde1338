// The scorer's numbers against an independent full-forward computation, and the properties that
// make them trustworthy: reuse = no reuse, fast graph = slow graph, batch size does not matter,
// empty targets are null, overflow follows its policy, and the cache returns the same numbers
// without running the model.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openCache } from '../../src/cache/index.js';
import { ExitCode, InputError } from '../../src/errors.js';
import { Scorer, type PairScore, type ScorePair } from '../../src/perplexity/index.js';
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
