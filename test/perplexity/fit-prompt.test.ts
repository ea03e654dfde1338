// UIT scoring prompts longer than the scorer's context: the long inputs are shortened (longest
// first, at token level, in the middle: "beginning ... end"), never the Definition. Checked on real IMDB reviews (P3),
// where cutting on the left used to drop every candidate's Definition and tie them all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { materialize } from '../../src/formats/api.js';
import { readInput } from '../../src/formats/registry.js';
import {
  Scorer,
  cutText,
  fitUitSetup,
  scoreCandidates,
  type TaskScores,
  uitPairs,
  uitSetup,
  waterLevel,
} from '../../src/perplexity/index.js';
import { loadModel, type Model } from '../../src/runtime/index.js';
import type { Task } from '../../src/types.js';
import { FIXTURE } from './helpers.js';

const IMDB = '../shared/data/p3_rendered/imdb_Reviewer_Enjoyment_Yes_No.jsonl';
const CANDIDATES = [
  'Read the movie review and answer Yes if the reviewer enjoyed the movie, else No.',
  'Translate the sentence to French.',
  'Given a review, say whether the reviewer liked the film: answer with Yes or No.',
];
/** The fixture's tokenizer is byte-level: a review of 1,300 characters is about 1,300 tokens. */
const CONTEXT = 700;

let model: Model;
let task: Task;
beforeAll(async () => {
  model = await loadModel(FIXTURE, { threads: 1 });
  for await (const lt of readInput(IMDB)) task = await materialize(lt);
  // a P3 file has no Positive Examples: two are borrowed from its instances, so three reviews per prompt
  expect(task.positiveExamples).toHaveLength(0);
});
afterAll(async () => {
  await model.dispose();
});

const count = (s: string) => model.tokenizer.encode(s).length;

describe('waterLevel and cutText', () => {
  it('cuts the longest inputs first, to one level', () => {
    expect(waterLevel([10, 20, 30], 60, 2)).toBe(Infinity);
    expect(waterLevel([10, 20, 30], 50, 2)).toBe(20); // 10 + 20 + 20
    expect(waterLevel([10, 20, 30], 45, 2)).toBe(17); // 10 + 17 + 17 = 44; 18 would be 46
    expect(waterLevel([100, 100, 100], 5, 2)).toBeNull(); // three cut inputs need 6 at least
  });

  it('keeps both ends of a text within the token budget, the marker between, never half a surrogate pair', () => {
    const text = 'It starts well. ' + 'The movie was long and slow, but the ending 🎬 made up for it. '.repeat(10) + 'Did the reviewer enjoy it?';
    let last = 0;
    for (const budget of [7, 17, 40, 100]) {
      const cut = cutText(text, budget, count);
      expect(count(cut)).toBeLessThanOrEqual(budget);
      expect(isCutOf(cut, text)).toBe(true);
      expect(cut).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
      expect(cut.length).toBeGreaterThan(last); // more room keeps more
      last = cut.length;
    }
    expect(cutText(text, 80, count).endsWith('Did the reviewer enjoy it?')).toBe(true);
    expect(cutText(text, 80, count).startsWith('It starts well.')).toBe(true);
    expect(cutText(text, 1, count)).toBe('...');
  });
});

/** `cut` is a beginning of `text`, the marker, and an end of `text`. */
function isCutOf(cut: string, text: string): boolean {
  for (let at = cut.indexOf('...'); at !== -1; at = cut.indexOf('...', at + 1)) {
    const head = cut.slice(0, at).trimEnd();
    const tail = cut.slice(at + 3).trimStart();
    if (text.startsWith(head) && text.endsWith(tail) && head.length + tail.length < text.length) return true;
  }
  return false;
}

describe('UIT prompts longer than the context', () => {
  const opts = { instances: 4, seed: 0 };
  /** Each candidate's scored prompts, the Definition line taken off. */
  const evidence = (res: TaskScores, d: string, k: number) =>
    uitPairs(res.scored[k], d).map((p) => {
      expect(p.prefix.startsWith(`Definition: ${d}\n\nPositive Examples 1\nInput: `)).toBe(true);
      return p.prefix.slice(`Definition: ${d}`.length);
    });

  it('shorten the inputs instead of the Definition, so candidates no longer tie', async () => {
    // the old behaviour: cut on the left, every Definition gone, every candidate the same number
    const left = await scoreCandidates(new Scorer(model, { scorerId: 'test', maxPositions: CONTEXT }), task, CANDIDATES, { ...opts, fitInputs: false });
    // (nothing shortened, nothing fitted alone: the inputs are left as they are)
    expect(left.candidates.map((c) => [c.truncatedInstances, c.shortenedInstances, c.fittedAlone])).toEqual(CANDIDATES.map(() => [4, 0, false]));
    expect(new Set(left.candidates.map((c) => c.meanCe)).size).toBe(1);

    const scorer = new Scorer(model, { scorerId: 'test', maxPositions: CONTEXT });
    const res = await scoreCandidates(scorer, task, CANDIDATES, opts);
    expect(new Set(res.candidates.map((c) => c.meanCe)).size).toBe(CANDIDATES.length);
    expect(res.candidates.map((c) => [c.truncatedInstances, c.shortenedInstances, c.fittedAlone])).toEqual(CANDIDATES.map(() => [0, 4, false]));

    CANDIDATES.forEach((d, k) => {
      expect(res.scored[k].instances.map((x) => x.id)).toEqual(res.setup.instances.map((x) => x.id));
      for (const [i, pair] of uitPairs(res.scored[k], d).entries()) {
        // the Definition whole at the start of every scored prefix (evidence() checks), and the whole prompt fits
        expect(count(pair.prefix) + count(pair.target)).toBeLessThanOrEqual(CONTEXT);
        expect(pair.target).toBe(res.setup.instances[i].outputs[0]);
      }
    });
    // the evidence is the same for every candidate: the prompts differ only in the Definition
    const [a, b, c] = CANDIDATES.map((d, k) => evidence(res, d, k));
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    // the examples are cut once for the task, so each candidate's prompts still share one prefix
    expect(scorer.stats.prefills).toBe(CANDIDATES.length);
    // a cut input keeps the beginning and the end of the original, the marker between
    const all = [...res.scored[0].examples.map((e) => e.input), ...res.scored[0].instances.map((x) => x.input)];
    const orig = [...res.setup.examples.map((e) => e.input), ...res.setup.instances.map((x) => x.input)];
    all.forEach((t, i) => {
      if (t !== orig[i]) expect(isCutOf(t, orig[i])).toBe(true);
    });
    expect(all.filter((t, i) => t !== orig[i]).length).toBeGreaterThan(0);

    // deterministic: the same prompts (so the same cache keys) on another run
    const again = await scoreCandidates(new Scorer(model, { scorerId: 'test', maxPositions: CONTEXT }), task, CANDIDATES, opts);
    expect(again.scored).toEqual(res.scored);
    expect(again.candidates.map((c) => c.meanCe)).toEqual(res.candidates.map((c) => c.meanCe));
  });

  it("a candidate's prompts do not depend on the other candidates scored with it", async () => {
    const all = await scoreCandidates(new Scorer(model, { scorerId: 'test', maxPositions: CONTEXT }), task, CANDIDATES, opts);
    const one = await scoreCandidates(new Scorer(model, { scorerId: 'test', maxPositions: CONTEXT }), task, [CANDIDATES[1]], opts);
    expect(one.scored[0]).toEqual(all.scored[1]);
    expect(one.candidates[0].meanCe).toBeCloseTo(all.candidates[1].meanCe!, 5);
  });

  it('cuts nothing when the prompts fit, and leaves prompts alone under the error policy', async () => {
    const setup = uitSetup(task, { instances: 4 });
    const roomy = fitUitSetup(setup, CANDIDATES, { count, maxPositions: 100_000 });
    expect(roomy.setups.every((s) => s === setup)).toBe(true);
    expect(roomy.shortened.flat().every((x) => !x)).toBe(true);
    const strict = new Scorer(model, { scorerId: 'test', maxPositions: CONTEXT, overflow: 'error' });
    await expect(scoreCandidates(strict, task, CANDIDATES, opts)).rejects.toThrow(/more than the model's 700 positions/);
  });

  it('a Definition longer than the reserve is fitted alone; one longer than the context falls back to the overflow policy, reported', async () => {
    const longer = 'Decide whether the reviewer of the movie enjoyed it, from the words of the review. '.repeat(3); // ~250 byte tokens
    const runaway = 'Decide whether the reviewer enjoyed the movie. '.repeat(16); // ~750
    const scorer = new Scorer(model, { scorerId: 'test', maxPositions: CONTEXT });
    const cands = [runaway, CANDIDATES[0], longer];
    const res = await scoreCandidates(scorer, task, cands, { instances: 3 });
    expect(res.candidates.map((c) => [c.fittedAlone, c.truncatedInstances, c.shortenedInstances])).toEqual([
      [true, 3, 3],
      [false, 0, 3],
      [true, 0, 3],
    ]);
    // the longer Definition is whole, on inputs cut further than the others'
    const [, short, long] = cands.map((d, k) => (k === 0 ? [] : evidence(res, d, k)));
    expect(long).not.toEqual(short);
    expect(long.join('').length).toBeLessThan(short.join('').length);
    // the runaway one was cut on the left, but only as much as it had to (its inputs cut to the marker)
    expect(res.scored[0].instances.every((x) => x.input === '...')).toBe(true);
  });
});
