// The prefix planner: which pairs share a prefilled prefix, and how long that prefix is.
import { describe, expect, it } from 'vitest';
import { commonPrefixLength, compareIds, planGroups } from '../../src/perplexity/index.js';
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

  it('compareIds orders token sequences lexicographically, a proper prefix first', () => {
    expect(compareIds([1, 2], [1, 2, 0])).toBeLessThan(0);
    expect(compareIds([1, 3], [1, 2, 9])).toBeGreaterThan(0);
    expect(compareIds([4], [4])).toBe(0);
  });
});
