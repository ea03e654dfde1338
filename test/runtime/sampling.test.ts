import { describe, expect, it } from 'vitest';
import {
  argmax,
  buildProbsWarpers,
  drawFromProbs,
  buildProcessors,
  isGreedy,
  MIN_SAMPLING_TEMPERATURE,
  repetitionPenalty,
  sampleFromProbs,
  sampleMultinomial,
  sampleRng,
  softmax,
  temperature,
  topK,
  topKProbs,
  topP,
  topPProbs,
} from '../../src/runtime/index.js';
import { kthLargest } from '../../src/runtime/generation/processors.js';
import { Rng } from '../../src/runtime/generation/prng.js';

const ctx = (tokens: number[] = []) => ({ tokens });

/** 20,000 draws: a token of probability 0 is never drawn, the others at their rate to 0.05. */
function expectFrequencies(draw: () => number, expected: number[]): void {
  const counts = expected.map(() => 0);
  for (let i = 0; i < 20000; i++) counts[draw()]++;
  expected.forEach((p, t) => {
    if (p === 0) expect(counts[t]).toBe(0);
    else expect(counts[t] / 20000).toBeCloseTo(p, 1);
  });
}

describe('seeded streams', () => {
  it('give the same numbers for the same (seed, sample) and different ones otherwise', () => {
    const draw = (seed: number, sample: number) => {
      const rng = sampleRng(seed, sample);
      return Array.from({ length: 5 }, () => rng.nextFloat());
    };
    // Pinned: cached generations are keyed by (seed, sample index), so the stream must not drift.
    // The literals come from an independent Python implementation of prng.ts (fmix32, the
    // splitmix-style expansion, xoshiro128**, 53-bit floats).
    expect(draw(42, 3).slice(0, 3)).toEqual([0.8845943724077541, 0.23413811527058204, 0.7668332038817883]);
    const big = sampleRng(2 ** 40, 0);
    expect([big.nextUint32(), big.nextUint32()]).toEqual([346669688, 4243942165]);
    const salted = sampleRng(42, 3, 7);
    expect([salted.nextUint32(), salted.nextUint32()]).toEqual([918327778, 3639593468]);
    expect(draw(42, 3)).not.toEqual(draw(42, 4));
    expect(draw(42, 3)).not.toEqual(draw(43, 3));
    // seeds beyond 32 bits are distinct too
    expect(draw(2 ** 40, 0)).not.toEqual(draw(0, 0));
  });

  it('are uniform in [0, 1)', () => {
    const rng = sampleRng(7, 0);
    const bins = new Array(10).fill(0);
    let lo = 1;
    let hi = 0;
    for (let i = 0; i < 20000; i++) {
      const u = rng.nextFloat();
      lo = Math.min(lo, u);
      hi = Math.max(hi, u);
      bins[Math.floor(u * 10)]++;
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    for (const b of bins) expect(Math.abs(b - 2000)).toBeLessThan(200);
  });

  it('are xoshiro128** (its reference output for the state 1, 2, 3, 4)', () => {
    const rng = new Rng([1, 2, 3, 4]);
    expect(Array.from({ length: 6 }, () => rng.nextUint32())).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
    // an all-zero state would give zeros forever
    const zero = new Rng([0, 0, 0, 0]);
    expect([zero.nextUint32(), zero.nextUint32(), zero.nextUint32()].some((x) => x !== 0)).toBe(true);
  });

  it('reject seeds that are not safe integers', () => {
    expect(() => sampleRng(1.5, 0)).toThrow(/seed/);
  });
});

describe('logits processors (transformers semantics)', () => {
  it('repetition penalty divides positive and multiplies negative logits of seen tokens, once each', () => {
    const l = Float32Array.from([2, -2, 1, 4]);
    repetitionPenalty(2)(l, ctx([0, 1, 1, 9]));
    expect(Array.from(l)).toEqual([1, -4, 1, 4]);
  });

  it('temperature scales logits', () => {
    const l = Float32Array.from([2, -1]);
    temperature(0.5)(l, ctx());
    expect(Array.from(l)).toEqual([4, -2]);
    expect(() => temperature(0)).toThrow(/greedy/);
  });

  it('top-k keeps the k largest and ties with the k-th', () => {
    const l = Float32Array.from([1, 5, 3, 3, 0]);
    topK(2)(l, ctx());
    expect(Array.from(l)).toEqual([-Infinity, 5, 3, 3, -Infinity]);
    expect(kthLargest(Float32Array.from([4, 9, 1, 7, 7, 2]), 3)).toBe(7);
    expect(kthLargest(Float32Array.from([4, 9, 1, 7, 7, 2]), 6)).toBe(1);
  });

  it('top-p keeps tokens whose better-ranked mass is below p', () => {
    // probabilities 0.5, 0.3, 0.15, 0.05
    const probs = [0.5, 0.3, 0.15, 0.05];
    const mk = () => Float32Array.from(probs.map(Math.log));
    let l = mk();
    topP(0.5)(l, ctx());
    expect(Array.from(l).map(Number.isFinite)).toEqual([true, false, false, false]);
    l = mk();
    topP(0.51)(l, ctx());
    expect(Array.from(l).map(Number.isFinite)).toEqual([true, true, false, false]);
    l = mk();
    topP(0.9)(l, ctx());
    expect(Array.from(l).map(Number.isFinite)).toEqual([true, true, true, false]);
  });

  it('top-p stops as soon as the kept mass reaches p exactly (transformers keeps no token past p)', () => {
    // Equal logits give probabilities that are exact binary fractions: 1/2 and 1/4.
    let l = Float32Array.from([0, 0]);
    topP(0.5)(l, ctx());
    expect(Array.from(l)).toEqual([0, -Infinity]); // ties: the lower id first
    l = Float32Array.from([0, 0, 0, 0]);
    topP(0.5)(l, ctx());
    expect(Array.from(l)).toEqual([0, 0, -Infinity, -Infinity]);
    const q = Float32Array.from([0.5, 0.25, 0.25]);
    topPProbs(0.5)(q);
    expect(Array.from(q)).toEqual([0.5, 0, 0]);
    const r = Float32Array.from([0.25, 0.5, 0.25]);
    topPProbs(0.75)(r);
    expect(Array.from(r)).toEqual([0.25, 0.5, 0]);
  });

  it('top-p finds the nucleus in a flat 50k vocabulary (below the first probability floor)', () => {
    const v = 50000;
    const l = new Float32Array(v); // uniform: every p = 2e-5
    topP(0.1)(l, ctx());
    const kept = Array.from(l).filter(Number.isFinite).length;
    expect(kept).toBe(5000);
  });

  it('the chain follows transformers order and greedy skips the sampling warpers', () => {
    expect(buildProcessors({ greedy: true, temperature: 0.5, topK: 3 })).toHaveLength(0);
    expect(buildProcessors({ greedy: true, repetitionPenalty: 1.2 })).toHaveLength(1);
    expect(buildProcessors({ temperature: 0.7, topK: 40, topP: 0.9, repetitionPenalty: 1.1 })).toHaveLength(4);
    expect(buildProcessors({ temperature: 0 })).toHaveLength(0);
  });

  it('a temperature under MIN_SAMPLING_TEMPERATURE is greedy, its limit; negative or NaN is refused', () => {
    expect(MIN_SAMPLING_TEMPERATURE).toBe(1e-5);
    for (const t of [0, 1e-300, 1e-40, 9.99e-6]) {
      expect(isGreedy({ temperature: t })).toBe(true);
      expect(buildProcessors({ temperature: t, topK: 3 })).toHaveLength(0);
      expect(buildProbsWarpers({ temperature: t })).toBeUndefined();
    }
    for (const t of [1e-5, 0.7, 2]) expect(isGreedy({ temperature: t })).toBe(false);
    // At the line itself the scaled logits stay finite in float32 and sampling works.
    const l = Float32Array.from([30, 29.9, -30]);
    buildProcessors({ temperature: 1e-5 })[0](l, ctx());
    expect(Array.from(l).every(Number.isFinite)).toBe(true);
    expect(softmax(l)[0]).toBe(1);
    for (const t of [-1e-40, -1, NaN]) {
      expect(isGreedy({ temperature: t })).toBe(false);
      expect(() => buildProcessors({ temperature: t })).toThrow(/temperature must be > 0/);
    }
  });
});

describe('samplers', () => {
  it('argmax takes the first maximum', () => {
    expect(argmax(Float32Array.from([1, 3, 3, 2]))).toBe(1);
  });

  it('multinomial follows the softmax and never picks removed tokens', () => {
    const logits = Float32Array.from([Math.log(0.7), Math.log(0.2), Math.log(0.1), -Infinity]);
    const rng = sampleRng(1, 0);
    expectFrequencies(() => sampleMultinomial(logits, rng), [0.7, 0.2, 0.1, 0]);
  });

  it('softmax gives zero to -Infinity', () => {
    const p = softmax(Float32Array.from([0, -Infinity, 0]));
    expect(Array.from(p)).toEqual([0.5, 0, 0.5]);
  });
});

describe('warpers on probabilities (graphs with probs_last)', () => {
  // Logits of a peaked 2,000-token distribution, with ties, and the same at temperature 0.7.
  const rng = sampleRng(3, 0);
  const logits = Float32Array.from({ length: 2000 }, (_, i) => (i % 97 === 0 ? 2 : 0) + 4 * rng.nextFloat() ** 3);
  const probsOf = (l: Float32Array) => Float32Array.from(softmax(l));
  const kept = (a: Float32Array) => Array.from(a, (x) => x !== 0 && x !== -Infinity);

  for (const params of [{ topK: 40 }, { topP: 0.9 }, { topK: 300, topP: 0.5 }, { topK: 1 }, { topP: 0.02 }]) {
    it(`keep the tokens the logits processors keep: ${JSON.stringify(params)}`, () => {
      const l = Float32Array.from(logits);
      for (const p of buildProcessors(params)) p(l, ctx());
      const pr = probsOf(logits);
      for (const w of buildProbsWarpers(params)!) w(pr);
      expect(kept(pr)).toEqual(kept(l));
      expect(kept(pr).filter(Boolean).length).toBeGreaterThan(0);
    });
  }

  it('top-k and top-p on probabilities match the logit versions on small cases', () => {
    const pr = Float32Array.from([0.1, 0.5, 0.3, 0.3, 0.0]);
    topKProbs(2)(pr);
    expect(Array.from(pr).map((x) => x > 0)).toEqual([false, true, true, true, false]);
    const q = Float32Array.from([0.5, 0.3, 0.15, 0.05]);
    topPProbs(0.51)(q);
    expect(Array.from(q).map((x) => x > 0)).toEqual([true, true, false, false]);
    // After top-k the rest is renormalised: of 0.15 and 0.05, 0.15 alone is 75% of what is left.
    const r = Float32Array.from([0, 0, 0.15, 0.05]);
    topPProbs(0.7)(r);
    expect(Array.from(r).map((x) => x > 0)).toEqual([false, false, true, false]);
    expect(() => topKProbs(0)).toThrow(/top-k/);
    expect(() => topPProbs(1.5)).toThrow(/top-p/);
  });

  it('the chain leaves out the temperature (the graph applies it) and refuses the repetition penalty', () => {
    expect(buildProbsWarpers({ temperature: 0.7 })).toEqual([]);
    expect(buildProbsWarpers({ temperature: 0.7, topK: 40, topP: 0.9 })).toHaveLength(2);
    expect(buildProbsWarpers({ temperature: 0.7, repetitionPenalty: 1.2 })).toBeUndefined();
    expect(buildProbsWarpers({ greedy: true })).toBeUndefined();
    expect(buildProbsWarpers({ temperature: 0 })).toBeUndefined();
    expect(() => buildProbsWarpers({ temperature: -1 })).toThrow(/temperature/);
  });

  it('sampleFromProbs follows the weights, never picks a removed token, and uses one draw', () => {
    const probs = Float32Array.from([0.35, 0.1, 0.05, 0]); // unnormalised: 0.5 in all
    const r = sampleRng(1, 0);
    expectFrequencies(() => sampleFromProbs(probs, r), [0.7, 0.2, 0.1, 0]);
    // The same draw as sampleMultinomial on the matching logits: one number per token.
    const a = sampleRng(9, 2);
    const b = sampleRng(9, 2);
    const logits = Float32Array.from([Math.log(0.7), Math.log(0.2), Math.log(0.1), -Infinity]);
    const fromProbs = Array.from({ length: 200 }, () => sampleFromProbs(Float32Array.from([0.7, 0.2, 0.1, 0]), a));
    const fromLogits = Array.from({ length: 200 }, () => sampleMultinomial(logits, b));
    expect(fromProbs).toEqual(fromLogits);
    expect(sampleFromProbs(new Float32Array(3), sampleRng(1, 0))).toBe(0);
  });

  it('the block-skipping draw picks the token a walk from id 0 picks, across many blocks', () => {
    // The reference: the running sum in index order, as the draw is defined.
    const walk = (w: Float32Array, target: number): number => {
      let last = -1;
      for (let i = 0; i < w.length; i++) {
        if (w[i] === 0) continue;
        last = i;
        target -= w[i];
        if (target < 0) return i;
      }
      return last;
    };
    const gen = sampleRng(4, 0);
    for (const n of [1, 63, 64, 65, 1000, 50400]) {
      for (let trial = 0; trial < 20; trial++) {
        // Powers of two make every sum exact, so the two orders of summation cannot disagree by
        // rounding; a third of the ids are removed (0), and sometimes a whole run of blocks is.
        const w = Float32Array.from({ length: n }, () => (gen.nextFloat() < 0.33 ? 0 : 2 ** -Math.floor(gen.nextFloat() * 8)));
        if (trial % 5 === 0) w.fill(0, 0, Math.floor(n / 2));
        const a = sampleRng(100 + trial, n);
        const b = sampleRng(100 + trial, n);
        const total = w.reduce((x, y) => x + y, 0);
        const got = sampleFromProbs(w, a);
        expect(got).toBe(total > 0 ? walk(w, b.nextFloat() * total) : 0);
        if (total > 0) expect(w[got]).toBeGreaterThan(0);
      }
    }
  });
});

// Exact outputs on small hand-made vectors, each at an edge a plausible slip would move (issue 26).
describe('pinned on hand-made vectors', () => {
  it('repetition penalty: token 0 counts, ids outside the vocabulary are ignored, and 0 or less is refused', () => {
    const l = Float32Array.from([3, -1, 0.5]);
    repetitionPenalty(1.5)(l, ctx([0, -1, 3, 7, 0]));
    expect(Array.from(l)).toEqual([2, -1, 0.5]);
    for (const bad of [0, -1.2, NaN]) expect(() => repetitionPenalty(bad)).toThrow(`repetition penalty must be > 0, got ${bad}`);
  });

  it('kthLargest is the k-th of the sorted values for every k, ties and all', () => {
    const gen = sampleRng(11, 0);
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + (trial % 23);
      // few distinct values, so ties are common
      const v = Float32Array.from({ length: n }, () => Math.floor(gen.nextFloat() * (trial % 3 === 0 ? 3 : 50)));
      const sorted = Array.from(v).sort((a, b) => b - a);
      for (let k = 1; k <= n; k++) expect(kthLargest(v, k), `${Array.from(v)} k=${k}`).toBe(sorted[k - 1]);
    }
  });

  it('top-k with k at or past the vocabulary keeps every token', () => {
    for (const k of [3, 4]) {
      const l = Float32Array.from([1, -2, 0.5]);
      topK(k)(l, ctx());
      expect(Array.from(l)).toEqual([1, -2, 0.5]);
      const q = Float32Array.from([0.5, 0.2, 0.3]);
      topKProbs(k)(q);
      expect(Array.from(q)).toEqual(Array.from(Float32Array.from([0.5, 0.2, 0.3])));
    }
    const q = Float32Array.from([0.25, 0.5, 0.125, 0.125]);
    topKProbs(2)(q);
    expect(Array.from(q)).toEqual([0.25, 0.5, 0, 0]);
  });

  it('top-p 1 is accepted and keeps every token, however unlikely; past 1 or at 0 it is refused', () => {
    const l = Float32Array.from([0, -200, -Infinity]);
    topP(1)(l, ctx());
    expect(Array.from(l)).toEqual([0, -200, -Infinity]);
    const q = Float32Array.from([0.5, 0.5, 1e-30]);
    topPProbs(1)(q);
    expect(Array.from(q)).toEqual(Array.from(Float32Array.from([0.5, 0.5, 1e-30])));
    for (const bad of [0, -0.5, 1.0000001, NaN]) {
      expect(() => topP(bad)).toThrow(`top-p must be in (0, 1], got ${bad}`);
      expect(() => topPProbs(bad)).toThrow(`top-p must be in (0, 1], got ${bad}`);
    }
    expect(() => topK(1.5)).toThrow('top-k must be a positive integer, got 1.5');
    expect(() => topK(0)).toThrow('top-k must be a positive integer, got 0');
  });

  it('top-p leaves a row whose tokens are all removed as it is', () => {
    const l = Float32Array.from([-Infinity, -Infinity]);
    topP(0.5)(l, ctx());
    expect(Array.from(l)).toEqual([-Infinity, -Infinity]);
    const q = new Float32Array(3);
    topPProbs(0.5)(q);
    expect(Array.from(q)).toEqual([0, 0, 0]);
  });

  it('top-p on weights that do not sum to 1 keeps the nucleus of the normalised weights, tail below the first floor included', () => {
    // Two tokens of weight 1 and 1,000 of 2^-10 (under a thousandth of the total each): p = 0.9 of
    // the total (2.9765625) is 2.67890625, reached by the two and 696 tail tokens (ids 2..697).
    for (const scale of [1, 2 ** -2]) {
      const q = Float32Array.from({ length: 1002 }, (_, i) => (i < 2 ? 1 : 2 ** -10) * scale);
      topPProbs(0.9)(q);
      const kept = Array.from(q, (x, i) => (x > 0 ? i : -1)).filter((i) => i >= 0);
      expect(kept).toEqual(Array.from({ length: 698 }, (_, i) => i));
      expect(q[697]).toBe(2 ** -10 * scale); // kept tokens keep their weight
    }
  });

  it('softmax detects an all-removed row and does not overflow on large logits', () => {
    expect(Array.from(softmax(Float32Array.from([1000, 0, -Infinity])))).toEqual([1, 0, 0]);
    expect(Array.from(softmax(Float32Array.from([-Infinity, -Infinity])))).toEqual([0, 0]);
  });

  it('the chain: neutral values add no step, and the steps run in transformers order', () => {
    for (const neutral of [{ repetitionPenalty: 1 }, { temperature: 1 }, { topK: 0 }, { topP: 1 }, {}]) {
      expect(buildProcessors(neutral)).toEqual([]);
      expect(buildProbsWarpers(neutral)).toEqual([]);
    }
    // penalty on the seen ids 0 and 1, then temperature 0.5, then top-k 3 (ties kept), then top-p
    const l = Float32Array.from([4, -1, 1, 1, 0.5]);
    for (const p of buildProcessors({ repetitionPenalty: 2, temperature: 0.5, topK: 3, topP: 0.8 })) p(l, ctx([0, 1]));
    // after the penalty [2, -2, 1, 1, 0.5], temperature [4, -4, 2, 2, 1], top-k keeps 4, 2, 2; of
    // those softmax gives 0.787 to id 0, under 0.8, so id 2 comes in and the mass passes 0.8
    expect(Array.from(l)).toEqual([4, -Infinity, 2, -Infinity, -Infinity]);
    const pr = Float32Array.from([0.05, 0.5, 0.2, 0.2, 0.05]);
    for (const w of buildProbsWarpers({ topK: 3, topP: 0.6 })!) w(pr);
    expect(Array.from(pr)).toEqual(Array.from(Float32Array.from([0, 0.5, 0.2, 0, 0])));
  });
});

describe('samplers, pinned', () => {
  it('argmax of a row with every token removed is 0; a finite logit beats -Infinity', () => {
    expect(argmax(Float32Array.from([-Infinity, -Infinity]))).toBe(0);
    expect(argmax(Float32Array.from([-Infinity, -5]))).toBe(1);
  });

  it('multinomial draws pinned ids from a seeded stream, and one number even when every token is removed', () => {
    const logits = Float32Array.from([Math.log(0.7), Math.log(0.2), Math.log(0.1), -Infinity]);
    const rng = sampleRng(1, 0);
    expect(Array.from({ length: 16 }, () => sampleMultinomial(logits, rng))).toEqual([0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0]);
    const a = sampleRng(5, 0);
    expect(sampleMultinomial(Float32Array.from([-Infinity, -Infinity, -Infinity]), a)).toBe(0);
    const b = sampleRng(5, 0);
    b.nextFloat();
    expect(a.nextFloat()).toBe(b.nextFloat());
  });

  it('a number on a boundary goes to the next token, and removed tokens are skipped', () => {
    const w = Float32Array.from([0.25, 0.25, 0.5]);
    expect([0, 0.2499, 0.25, 0.4999, 0.5, 0.99].map((u) => drawFromProbs(w, u))).toEqual([0, 0, 1, 1, 2, 2]);
    const z = Float32Array.from([0, 0.5, 0, 0.5, 0]);
    expect([0, 0.4999, 0.5, 0.9999].map((u) => drawFromProbs(z, u))).toEqual([1, 1, 3, 3]);
  });

  it('a number that rounding carries past every token lands on the last token of nonzero weight', () => {
    // The sum over blocks (two running sums) is a little under the token-by-token sum here, so at
    // u = 1 - 2^-53 the walk runs out of weights; the last token has weight 0 and must not be drawn.
    const w = Float32Array.from([5.5004149072766925e-17, 4.900604722024582e-7, 4.7312685325096027e-8, 0]);
    expect(drawFromProbs(w, 1 - 2 ** -53)).toBe(2);
  });

  it('a row that is not a distribution (NaN from a broken graph) draws the first token, like an all-zero row, and top-p leaves it as it is', () => {
    const nan = Float32Array.from([0.25, Number.NaN, 0.75]);
    expect([0, 0.5, 0.99].map((u) => drawFromProbs(nan, u))).toEqual([0, 0, 0]);
    expect(drawFromProbs(new Float32Array(3), 0.5)).toBe(0);
    // top-p does not turn the NaN row into a plausible one: it is left for the draw above
    const row = Float32Array.from([Number.NaN, 0.5, 0.5]);
    topPProbs(0.5)(row);
    expect(Array.from(row)).toEqual([Number.NaN, 0.5, 0.5]);
  });
});
