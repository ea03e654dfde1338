// UIT candidate scoring: the exact prompt, the seeded choice of instances, borrowed examples,
// empty gold outputs, the token-weighted aggregate, and selection.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Scorer,
  instanceRng,
  rankAndSelect,
  scoreCandidates,
  shuffled,
  uitPairs,
  uitSetup,
} from '../../src/perplexity/index.js';
import { loadModel, type Model } from '../../src/runtime/index.js';
import type { Task } from '../../src/types.js';
import { FIXTURE, NIV2_TASKS } from './helpers.js';

/** A real Ni-v2 task (20 instances, 2+ positive examples), read here without the formats module. */
function realTask(name: string): Task {
  const file = join(NIV2_TASKS, `${name}.json`);
  const doc = JSON.parse(readFileSync(file, 'utf8')) as {
    Definition: string[];
    'Positive Examples': { input: string; output: string }[];
    Instances: { id: string; input: string; output: string[] }[];
  };
  return {
    id: name,
    source: { format: 'niv2', file, extra: {} },
    definition: doc.Definition[0],
    positiveExamples: doc['Positive Examples'].map((e) => ({ input: e.input, output: e.output })),
    negativeExamples: [],
    instances: doc.Instances.map((x) => ({ id: x.id, input: x.input, outputs: x.output })),
  };
}

const TASK = realTask('task1147_country_currency');

let model: Model;
beforeAll(async () => {
  model = await loadModel(FIXTURE, { threads: 1 });
});
afterAll(async () => {
  await model.dispose();
});

describe('uitSetup', () => {
  it('picks the same instances for the same seed and task, different ones for another seed', () => {
    const ids = (seed: number, m = 32) => uitSetup(TASK, { seed, instances: m }).instances.map((x) => x.id);
    expect(ids(0)).toEqual(ids(0));
    expect(ids(7)).toEqual(ids(7));
    expect(ids(7)).not.toEqual(ids(0));
    expect(ids(0)).toHaveLength(20); // M = 32 > 20 instances: all of them, shuffled
    expect(new Set(ids(0))).toEqual(new Set(TASK.instances.map((x) => x.id)));
    expect(ids(0)).not.toEqual(TASK.instances.map((x) => x.id));
    expect(ids(0, 5)).toEqual(ids(0).slice(0, 5));
    // the task id is part of the seed: a task with the same instances under another id is shuffled differently
    expect(uitSetup({ ...TASK, id: 'other' }).instances.map((x) => x.id)).not.toEqual(ids(0));
  });

  it('pins the shuffle: xoshiro128** seeded from sha256, Fisher-Yates', () => {
    // If this changes, every cached UIT score keyed by its prompts stops matching: change on purpose only.
    expect(shuffled([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], instanceRng(0, 'task'))).toEqual(
      shuffled([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], instanceRng(0, 'task')),
    );
    const first = instanceRng(42, 'task1147_country_currency').nextUint32();
    expect(first).toBe(instanceRng(42, 'task1147_country_currency').nextUint32());
    expect(() => instanceRng(1.5, 't')).toThrow(RangeError);
  });

  it('uses the first two positive examples', () => {
    const s = uitSetup(TASK);
    expect(s.examples).toEqual(TASK.positiveExamples.slice(0, 2));
    expect(s.examplesFromInstances).toEqual([]);
  });

  it('borrows missing examples from the end of the shuffle (non-empty outputs) and does not score them', () => {
    const task: Task = { ...TASK, positiveExamples: TASK.positiveExamples.slice(0, 1) };
    const order = uitSetup(TASK, { seed: 3 }).instances;
    const s = uitSetup(task, { seed: 3 });
    expect(s.examples).toHaveLength(2);
    expect(s.examples[0]).toEqual(TASK.positiveExamples[0]);
    expect(s.examplesFromInstances).toEqual([order[order.length - 1].id]);
    expect(s.examples[1]).toEqual({ input: order[order.length - 1].input, output: order[order.length - 1].outputs[0] });
    expect(s.instances.map((x) => x.id)).toEqual(order.slice(0, -1).map((x) => x.id));

    const none: Task = { ...TASK, positiveExamples: [], instances: TASK.instances.map((x, i) => (i === 19 ? { ...x, outputs: [''] } : x)) };
    const s2 = uitSetup(none, { seed: 3 });
    expect(s2.examplesFromInstances).toHaveLength(2);
    expect(s2.examples.every((e) => e.output !== '')).toBe(true);
    expect(s2.instances).toHaveLength(18);
  });

  it('never borrows the last instance with a gold output: one record is scored on itself, zero-shot', () => {
    const one: Task = { ...TASK, positiveExamples: [], instances: [TASK.instances[0]] };
    const s = uitSetup(one);
    expect(s.examples).toEqual([]);
    expect(s.instances.map((x) => x.id)).toEqual([TASK.instances[0].id]);
    const [pair] = uitPairs(s, 'Do it.');
    expect(pair.prefix).toBe(`Definition: Do it.\n\nNow complete the following example -\nInput: ${TASK.instances[0].input}\nOutput: `);
    // two instances: one example, one scored; an empty output never counts as the one left
    const two: Task = { ...one, instances: TASK.instances.slice(0, 2) };
    expect(uitSetup(two).examples).toHaveLength(1);
    expect(uitSetup(two).instances).toHaveLength(1);
    const withEmpty: Task = { ...one, instances: [TASK.instances[0], { ...TASK.instances[1], outputs: [''] }] };
    expect(uitSetup(withEmpty).examples).toEqual([]);
    expect(uitSetup(withEmpty).instances).toHaveLength(2);
  });

  it('builds the UIT reference prompt character for character, gold = the first output', () => {
    const task: Task = {
      ...TASK,
      positiveExamples: [
        { input: 'in1', output: 'out1', explanation: 'not in the prompt' },
        { input: 'in2', output: 'out2' },
        { input: 'in3', output: 'out3' },
      ],
      instances: [{ id: 'i1', input: 'x', outputs: ['y', 'z'] }],
    };
    const [pair] = uitPairs(uitSetup(task), 'Do it.', task.source.file);
    expect(pair.prefix).toBe(
      'Definition: Do it.\n\nPositive Examples 1\nInput: in1\nOutput: out1\n\nPositive Examples 2\nInput: in2\nOutput: out2\n\n' +
        'Now complete the following example -\nInput: x\nOutput: ',
    );
    expect(pair.target).toBe('y');
    expect(pair.where).toEqual({ file: TASK.source.file, field: 'Instances[id=i1]' });
  });
});

describe('rankAndSelect', () => {
  it('keeps the lowest by default, ties to the earlier candidate, unscored never', () => {
    expect(rankAndSelect([2, 1, null, 1])).toEqual([
      { rank: 3, kept: false },
      { rank: 1, kept: true },
      { rank: null, kept: false },
      { rank: 2, kept: false },
    ]);
    expect(rankAndSelect([null, null])).toEqual([
      { rank: null, kept: false },
      { rank: null, kept: false },
    ]);
  });

  it('threshold drops candidates above a perplexity; top-k keeps the k best under it', () => {
    const ces = [Math.log(10), Math.log(3), Math.log(30), Math.log(5)];
    expect(rankAndSelect(ces, { threshold: 10 }).map((r) => r.kept)).toEqual([true, true, false, true]);
    expect(rankAndSelect(ces, { topK: 2 }).map((r) => r.kept)).toEqual([false, true, false, true]);
    expect(rankAndSelect(ces, { threshold: 8, topK: 5 }).map((r) => r.kept)).toEqual([false, true, false, true]);
    expect(rankAndSelect(ces, { threshold: 2 }).map((r) => r.kept)).toEqual([false, false, false, false]);
    expect(() => rankAndSelect(ces, { topK: 0 })).toThrow(RangeError);
    expect(() => rankAndSelect(ces, { threshold: -1 })).toThrow(RangeError);
  });
});

describe('scoreCandidates', () => {
  it("a candidate's score is the token-weighted mean CE of its instances' gold outputs, empty ones null and left out", async () => {
    const task: Task = {
      ...TASK,
      instances: TASK.instances.slice(0, 6).map((x, i) => (i === 2 ? { ...x, outputs: ['', 'ignored second output'] } : x)),
    };
    const candidates = [TASK.definition, 'Write the currency of the country.', 'Translate the sentence into French.'];
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj', batchSize: 4 });
    const res = await scoreCandidates(scorer, task, candidates, { seed: 1 });
    expect(res.setup.instances).toHaveLength(6);
    // one prefill per candidate: the definition + examples are shared across its instances
    expect(scorer.stats.prefills).toBe(3);

    const direct = new Scorer(model, { scorerId: 'test:tiny-gptj', reuse: false, batchSize: 1 });
    for (const c of res.candidates) {
      const pairs = uitPairs(res.setup, c.definition);
      const s = await direct.score(pairs);
      const nonEmpty = s.filter((x) => x.tokens > 0);
      const sum = nonEmpty.reduce((a, x) => a + x.sumCe, 0);
      const tokens = nonEmpty.reduce((a, x) => a + x.tokens, 0);
      expect(c.instances).toBe(5);
      expect(c.emptyInstances).toBe(1);
      expect(c.tokens).toBe(tokens);
      expect(Math.abs(c.meanCe! - sum / tokens)).toBeLessThan(1e-5);
      expect(c.perplexity).toBeCloseTo(Math.exp(c.meanCe!), 10);
      expect(c.instanceMeanCe.filter((x) => x === null)).toHaveLength(1);
    }
    const ranks = res.candidates.map((c) => c.rank).sort();
    expect(ranks).toEqual([1, 2, 3]);
    const best = res.candidates.find((c) => c.rank === 1)!;
    expect(res.best).toBe(best.index);
    expect(res.candidates.filter((c) => c.kept)).toEqual([best]);
  });

  it('a task whose gold outputs are all empty scores every candidate null and picks none', async () => {
    const task: Task = { ...TASK, instances: TASK.instances.slice(0, 3).map((x) => ({ ...x, outputs: [''] })) };
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const res = await scoreCandidates(scorer, task, ['a', 'b']);
    expect(res.candidates.map((c) => [c.meanCe, c.perplexity, c.rank, c.kept])).toEqual([
      [null, null, null, false],
      [null, null, null, false],
    ]);
    expect(res.best).toBeNull();
    expect(scorer.stats.modelCalls).toBe(0);
  });

  it('passes threshold and top-k to the selection', async () => {
    const task: Task = { ...TASK, instances: TASK.instances.slice(0, 3) };
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const all = await scoreCandidates(scorer, task, ['a', 'bb', 'ccc'], { topK: 3 });
    expect(all.candidates.every((c) => c.kept)).toBe(true);
    const none = await scoreCandidates(scorer, task, ['a', 'bb', 'ccc'], { threshold: 1.0001 });
    expect(none.candidates.some((c) => c.kept)).toBe(false);
    expect(none.best).toBeNull();
    expect(scorer.stats.cacheHits).toBe(0); // no cache given
  });
});
