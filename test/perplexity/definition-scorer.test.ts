// definitionScorer (compare --scorer from the library): one perplexity per definition per task, in
// order, equal to scoreCandidates' with the same options; its hooks in order; a mismatch of tasks
// and definition lists is refused before any work.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scorer, definitionScorer, scoreCandidates, type TaskScores } from '../../src/perplexity/index.js';
import { loadModel, type Model } from '../../src/runtime/index.js';
import type { Task } from '../../src/types.js';
import { FIXTURE } from './helpers.js';

let model: Model;
beforeAll(async () => {
  model = await loadModel(FIXTURE, { threads: 1 });
});
afterAll(async () => {
  await model.dispose();
});

function task(id: string, n: number): Task {
  return {
    id,
    source: { format: 'niv2', file: `${id}.json`, extra: {} },
    definition: 'Copy the input.',
    positiveExamples: [
      { input: 'cat', output: 'cat' },
      { input: 'dog', output: 'dog' },
    ],
    negativeExamples: [],
    instances: Array.from({ length: n }, (_, i) => ({ id: `${id}-${i}`, input: `word${i}`, outputs: [`word${i}`] })),
  };
}

describe('definitionScorer', () => {
  it("gives scoreCandidates' perplexities per task and definition, in order, with the options passed on, calling the hooks in order", async () => {
    const tasks = [task('a', 5), task('b', 4)];
    const defs = [
      ['Copy the input.', 'Write a poem.'],
      ['Repeat the word.', 'Copy the input.', 'Count to ten.'],
    ];
    const calls: string[] = [];
    const seen: TaskScores[] = [];
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const score = definitionScorer(
      scorer,
      { instances: 3, seed: 5 },
      {
        onStart: (t, d) => calls.push(`start ${t.map((x) => x.id).join()} ${d.map((x) => x.length).join()}`),
        beforeTask: (t) => calls.push(`before ${t.id}`),
        afterTask: (t, s) => {
          calls.push(`after ${t.id} ${s.taskId}`);
          seen.push(s);
        },
      },
    );
    const out = await score(tasks, defs);
    expect(calls).toEqual(['start a,b 2,3', 'before a', 'after a a', 'before b', 'after b b']);
    expect(out.map((x) => x.length)).toEqual([2, 3]);
    for (const [i, t] of tasks.entries()) {
      const direct = await scoreCandidates(scorer, t, defs[i], { instances: 3, seed: 5 });
      expect(direct.setup.instances).toHaveLength(3);
      expect(out[i]).toEqual(direct.candidates.map((c) => c.perplexity));
      expect(seen[i].candidates.map((c) => c.definition)).toEqual(defs[i]);
      expect(out[i].every((p) => typeof p === 'number' && p > 1)).toBe(true);
    }
  });

  it('refuses a different number of tasks and definition lists before any hook or model call; no tasks is no work', async () => {
    const calls: string[] = [];
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const score = definitionScorer(scorer, {}, { onStart: () => calls.push('start'), beforeTask: () => calls.push('before') });
    await expect(score([task('a', 2), task('b', 2)], [['x']])).rejects.toThrow(new RangeError('definitionScorer: 2 tasks but 1 definition lists'));
    await expect(score([task('a', 2)], [['x'], ['y']])).rejects.toThrow(new RangeError('definitionScorer: 1 tasks but 2 definition lists'));
    expect(calls).toEqual([]);
    expect(await score([], [])).toEqual([]);
    expect(calls).toEqual(['start']);
    expect(scorer.stats.pairs).toBe(0);
  });

  it('works with no hooks and no options (the defaults: 32 instances, seed 0)', async () => {
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const out = await definitionScorer(scorer)([task('c', 3)], [['Copy the input.']]);
    const direct = await scoreCandidates(scorer, task('c', 3), ['Copy the input.']);
    expect(out).toEqual([[direct.candidates[0].perplexity]]);
  });
});
