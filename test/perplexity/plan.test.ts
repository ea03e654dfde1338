// The prefix planner: which pairs share a prefilled prefix, and how long that prefix is.
import { describe, expect, it } from 'vitest';
import { commonPrefixLength, compareIds, planBatches, planGroups } from '../../src/perplexity/index.js';
import { Rng } from '../../src/runtime/index.js';

const seq = (text: string) => [...Buffer.from(text, 'utf8')];

/** Every index exactly once, and each group's shared length within every member's common prefix. */
function expectValidPlan(prefixes: number[][], groups: ReturnType<typeof planGroups>): void {
  const all = groups.flatMap((g) => g.members).sort((a, b) => a - b);
  expect(all).toEqual(prefixes.map((_, i) => i));
  for (const g of groups) {
    if (g.shared === 0) continue;
    expect(g.members.length).toBeGreaterThanOrEqual(2);
    const first = prefixes[g.members[0]];
    for (const m of g.members) expect(commonPrefixLength(first, prefixes[m])).toBeGreaterThanOrEqual(g.shared);
  }
}

describe('planGroups', () => {
  it('finds one group per candidate definition in UIT prompts, sharing up to the instance input', () => {
    const defs = ['Answer the question about the story.', 'Answer with one word only, please.', 'Write the currency of the country.'];
    const inputs = ['France', 'Japan', 'Peru', 'Kenya', 'Chile'];
    const prefixes: number[][] = [];
    for (const d of defs) for (const x of inputs) prefixes.push(seq(`Definition: ${d}\n\nPositive Examples 1\nInput: a\nOutput: b\n\nNow complete the following example -\nInput: ${x}\nOutput: `));
    const groups = planGroups(prefixes);
    expectValidPlan(prefixes, groups);
    expect(groups).toHaveLength(3);
    defs.forEach((d, k) => {
      const g = groups.find((x) => x.members.includes(k * inputs.length))!;
      expect([...g.members].sort((a, b) => a - b)).toEqual(inputs.map((_, i) => k * inputs.length + i));
      const common = seq(`Definition: ${d}\n\nPositive Examples 1\nInput: a\nOutput: b\n\nNow complete the following example -\nInput: `).length;
      expect(g.shared).toBe(common); // the inputs differ in their first byte here
    });
  });

  it('pairs with the same prefix share all of it (the continuation is the target alone)', () => {
    const p = seq('Question: why?\nAnswer: ');
    const groups = planGroups([p, p, p, seq('Something else entirely: ')]);
    expect(groups).toEqual([
      { shared: 0, members: [3] },
      { shared: p.length, members: [0, 1, 2] },
    ]);
  });

  it('short common prefixes are not worth a prefill: those pairs run whole', () => {
    const prefixes = [seq('Def: a'), seq('Def: b'), seq('Def: c')]; // saves 2 x 5 tokens < the default cost 16
    expect(planGroups(prefixes)).toEqual([{ shared: 0, members: [0, 1, 2] }]);
    expect(planGroups(prefixes, { prefillCost: 0 })).toEqual([{ shared: 5, members: [0, 1, 2] }]);
  });

  it('reuse: false puts every pair in the whole-sequence pool', () => {
    const p = seq('The same long prefix, shared by everyone here. ');
    expect(planGroups([p, p, p], { reuse: false })).toEqual([{ shared: 0, members: [0, 1, 2] }]);
    expect(planGroups([])).toEqual([]);
  });

  it('gives a valid, deterministic plan on random token sequences with shared stems', () => {
    const rng = new Rng([1, 2, 3, 4]);
    const stems = Array.from({ length: 6 }, () => Array.from({ length: 10 + (rng.nextUint32() % 60) }, () => rng.nextUint32() % 5));
    const prefixes = Array.from({ length: 300 }, () => {
      const stem = stems[rng.nextUint32() % stems.length];
      return [...stem.slice(0, rng.nextUint32() % (stem.length + 1)), ...Array.from({ length: rng.nextUint32() % 8 }, () => rng.nextUint32() % 5)];
    });
    const a = planGroups(prefixes, { window: 64 });
    expectValidPlan(prefixes, a);
    expect(planGroups(prefixes, { window: 64 })).toEqual(a);
    expect(a.filter((g) => g.shared > 0).length).toBeGreaterThan(0);
  });

  it('sorts the prefixes: groups in sorted order after the pool, members in sorted-prefix order', () => {
    const a = 'Definition: Answer with the capital city of the country.\n\nInput: ';
    const b = 'Definition: Write the currency of the country, in full.\n\nInput: ';
    // interleaved, and within each group the later input sorts first
    const prefixes = [seq(`${b}Peru`), seq(`${a}Peru`), seq(`${b}Chile`), seq(`${a}Chile`), seq('Unrelated: x')];
    expect(planGroups(prefixes)).toEqual([
      { shared: 0, members: [4] },
      { shared: seq(a).length, members: [3, 1] },
      { shared: seq(b).length, members: [2, 0] },
    ]);
    // an empty list is an empty plan in either mode
    expect(planGroups([], { reuse: false })).toEqual([]);
  });

  it('a group must save more than the prefill cost: an exact tie runs whole', () => {
    const prefixes = [seq('Def: a'), seq('Def: b'), seq('Def: c')]; // sharing "Def: " saves 2 x 5 tokens
    expect(planGroups(prefixes, { prefillCost: 10 })).toEqual([{ shared: 0, members: [0, 1, 2] }]);
    expect(planGroups(prefixes, { prefillCost: 9 })).toEqual([{ shared: 5, members: [0, 1, 2] }]);
  });

  it('never makes a group larger than the window', () => {
    const p = seq('The same long prefix, shared by everyone here. ');
    expect(planGroups([p, p, p, p, p])).toEqual([{ shared: p.length, members: [0, 1, 2, 3, 4] }]);
    expect(planGroups([p, p, p, p, p], { window: 2 })).toEqual([
      { shared: 0, members: [4] },
      { shared: p.length, members: [0, 1] },
      { shared: p.length, members: [2, 3] },
    ]);
    expect(planGroups([p, p, p, p, p], { window: 3 })).toEqual([
      { shared: p.length, members: [0, 1, 2] },
      { shared: p.length, members: [3, 4] },
    ]);
  });

  it('compareIds orders token sequences lexicographically, a proper prefix first', () => {
    expect(compareIds([1, 2], [1, 2, 0])).toBeLessThan(0);
    expect(compareIds([1, 3], [1, 2, 9])).toBeGreaterThan(0);
    expect(compareIds([1, 2], [1, 3])).toBeLessThan(0);
    expect(compareIds([4], [4])).toBe(0);
  });

  it('commonPrefixLength counts the leading ids two sequences share', () => {
    expect(commonPrefixLength([1, 2, 3], [1, 2, 4])).toBe(2);
    expect(commonPrefixLength([1, 2], [1, 2, 3])).toBe(2);
    expect(commonPrefixLength([1, 2, 3], [1, 2])).toBe(2);
    expect(commonPrefixLength([5, 6], [5, 6])).toBe(2);
    expect(commonPrefixLength([], [1])).toBe(0);
    expect(commonPrefixLength([7], [8])).toBe(0);
  });
});

describe('planBatches', () => {
  it('cuts where padding would cost more than another call, within the row limit', () => {
    // 3 long and 3 short: one batch of 6 pads 3 x 90 positions; two calls cost 2 x 16.
    expect(planBatches([100, 100, 100, 10, 10, 10], 8, 16)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    // with expensive calls, padding is cheaper
    expect(planBatches([100, 100, 100, 10, 10, 10], 8, 1000)).toEqual([[0, 1, 2, 3, 4, 5]]);
    // never more rows than allowed
    const b = planBatches(Array.from({ length: 20 }, () => 50), 8, 16);
    expect(b.every((x) => x.length <= 8)).toBe(true);
    expect(b.flat()).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(b).toHaveLength(3);
  });

  it('minimises padded positions + call cost (checked against brute force)', () => {
    const rng = new Rng([5, 6, 7, 8]);
    for (let trial = 0; trial < 30; trial++) {
      const n = 1 + (rng.nextUint32() % 9);
      const lengths = Array.from({ length: n }, () => 1 + (rng.nextUint32() % 60)).sort((a, b) => b - a);
      const maxRows = 1 + (rng.nextUint32() % 4);
      const cost = (batches: number[][]) => batches.reduce((c, x) => c + x.length * lengths[x[0]] + 16, 0);
      // every split of 0..n-1 into contiguous runs of at most maxRows
      let best = Infinity;
      for (let mask = 0; mask < 1 << (n - 1); mask++) {
        const runs: number[][] = [[0]];
        for (let i = 1; i < n; i++) (mask & (1 << (i - 1)) ? runs.push([i]) : runs[runs.length - 1].push(i));
        if (runs.every((r) => r.length <= maxRows)) best = Math.min(best, cost(runs));
      }
      expect(cost(planBatches(lengths, maxRows, 16))).toBe(best);
    }
  });

  it('on a tie prefers the larger last batch, so equal rows with no call cost run as one', () => {
    expect(planBatches([10, 10], 2, 0)).toEqual([[0, 1]]);
    expect(planBatches([10, 10, 10, 10, 10], 2, 0)).toEqual([[0], [1, 2], [3, 4]]);
    expect(planBatches([], 4)).toEqual([]);
  });

  it('refuses lengths that are not sorted longest first', () => {
    const msg = 'planBatches: lengths must be sorted longest first';
    expect(() => planBatches([1, 2], 4)).toThrow(new RangeError(msg));
    expect(() => planBatches([5, 3, 4], 4)).toThrow(new RangeError(msg));
    expect(planBatches([5, 5, 3], 4, 1000)).toEqual([[0, 1, 2]]);
  });
});
