// UIT candidate scoring: the exact prompt, the seeded choice of instances, borrowed examples,
// empty gold outputs, the token-weighted aggregate, and selection.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openCache } from '../../src/cache/index.js';
import {
  REFERENCE_MIN_INSTANCES,
  Scorer,
  aggregate,
  instanceRng,
  referenceChunks,
  type PairScore,
  type ScorePair,
  rankAndSelect,
  scoreCandidates,
  shuffled,
  uitPairs,
  uitSetup,
} from '../../src/perplexity/index.js';
import { loadModel, type Model } from '../../src/runtime/index.js';
import type { Task } from '../../src/types.js';
import { FIXTURE, NIV2_TASKS, tempDir } from './helpers.js';

const tmpDirForUit = tempDir('uit-perplexity-uit-');

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
  tmpDirForUit.cleanup();
});

describe('uitSetup', () => {
  it('picks the same instances for the same seed and task, different ones for another seed', () => {
    const ids = (seed: number, m = 32) => uitSetup(TASK, { seed, instances: m }).instances.map((x) => x.id);
    // the shuffle's order (pinned below) applied to the task's instances, not a second call of the same code
    const pos = (seed: number) => shuffled(TASK.instances.map((_, i) => i), instanceRng(seed, TASK.id));
    expect(pos(0)).toEqual([11, 4, 0, 2, 1, 19, 6, 18, 8, 9, 15, 13, 3, 17, 5, 10, 7, 12, 14, 16]);
    expect(ids(0)).toEqual(pos(0).map((i) => TASK.instances[i].id));
    expect(ids(7)).toEqual(pos(7).map((i) => TASK.instances[i].id));
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
    // The literals come from an independent Python implementation of the recipe in shuffle.ts
    // (hashlib.sha256, xoshiro128** with 32-bit masks, j = floor(u * (i + 1))).
    expect(shuffled([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], instanceRng(0, 'task'))).toEqual([6, 8, 0, 3, 9, 5, 1, 2, 7, 4]);
    const rng = instanceRng(42, 'task1147_country_currency');
    expect([rng.nextUint32(), rng.nextUint32(), rng.nextUint32()]).toEqual([1100948695, 890213107, 2661800146]);
    // the seed and the task id both reach the digest, separated (no "1" + "2x" = "12" + "x")
    expect(instanceRng(1, '2x').nextUint32()).not.toBe(instanceRng(12, 'x').nextUint32());
    expect(() => instanceRng(1.5, 't')).toThrow(RangeError);
    expect(() => instanceRng(2 ** 53, 't')).toThrow(/safe integer/);
    // a one-item and an empty list come back as copies
    const one = [5];
    expect(shuffled(one, instanceRng(0, 't'))).toEqual([5]);
    expect(shuffled(one, instanceRng(0, 't'))).not.toBe(one);
    expect(shuffled([], instanceRng(0, 't'))).toEqual([]);
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
    expect(() => rankAndSelect(ces, { topK: 0 })).toThrow('topK must be an integer >= 1, got 0');
    expect(() => rankAndSelect(ces, { topK: 1.5 })).toThrow(RangeError);
    expect(() => rankAndSelect(ces, { threshold: -1 })).toThrow(RangeError);
    expect(() => rankAndSelect(ces, { threshold: 0 })).toThrow('threshold must be a perplexity > 0, got 0');
    // the boundaries themselves are allowed: topK 1, and a threshold equal to a candidate's perplexity keeps it
    expect(rankAndSelect(ces, { topK: 1 }).map((r) => r.kept)).toEqual([false, true, false, false]);
    expect(rankAndSelect([Math.log(4)], { threshold: 4 })[0].kept).toBe(true);
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

describe('the reference scoring mode (the parts the Python comparison in reference-scoring.test.ts does not isolate)', () => {
  it('cuts instances as the reference slices them: [0:8], [8:16], [16:24], [24:n]', () => {
    expect(referenceChunks(40)).toEqual([[0, 8], [8, 16], [16, 24], [24, 40]]);
    expect(referenceChunks(32)).toEqual([[0, 8], [8, 16], [16, 24], [24, 32]]);
    expect(referenceChunks(27)).toEqual([[0, 8], [8, 16], [16, 24], [24, 27]]);
    expect(referenceChunks(20)).toEqual([[0, 8], [8, 16], [16, 20], [20, 20]]);
    expect(REFERENCE_MIN_INSTANCES).toBe(25);
  });

  it('averages the 4 slice CEs unweighted, each token-weighted; an empty slice or a truncated pair gives no score', () => {
    const pair = (sumCe: number, tokens: number, truncated = 0) =>
      ({ sumCe, tokens, meanCe: sumCe / tokens, truncatedPrefixTokens: truncated, targetIds: [], logprobs: null, cached: false }) as PairScore;
    // 25 instances: slices of 8, 8, 8 and 1; the lone last one counts as much as each full one
    const scores = Array.from({ length: 25 }, (_, i) => pair(i + 1, i < 24 ? 2 : 10));
    const empty = scores.map(() => false);
    const ref = aggregate(scores, empty, 'reference');
    const slice = (a: number, b: number) => scores.slice(a, b).reduce((s, x) => s + x.sumCe, 0) / scores.slice(a, b).reduce((s, x) => s + x.tokens, 0);
    expect(ref.chunkMeanCe).toEqual([slice(0, 8), slice(8, 16), slice(16, 24), slice(24, 25)]);
    expect(ref.meanCe).toBe((slice(0, 8) + slice(8, 16) + slice(16, 24) + slice(24, 25)) / 4);
    const uit = aggregate(scores, empty, 'uit');
    expect(uit.meanCe).toBe(scores.reduce((s, x) => s + x.sumCe, 0) / scores.reduce((s, x) => s + x.tokens, 0));
    expect(uit.meanCe).not.toBeCloseTo(ref.meanCe!, 3);
    expect(aggregate(scores.slice(0, 24), empty, 'reference')).toMatchObject({ meanCe: null, unscored: 'too-few-instances' });
    const cut = scores.map((s, i) => (i === 5 ? pair(s.sumCe, s.tokens, 3) : s));
    expect(aggregate(cut, empty, 'reference')).toMatchObject({ meanCe: null, unscored: 'prompt-over-context', truncatedInstances: 1 });
  });

  it('borrows no examples and refuses a task or candidate with fewer than two', async () => {
    const one: Task = { ...TASK, positiveExamples: TASK.positiveExamples.slice(0, 1) };
    expect(uitSetup(one, { scoring: 'reference' }).examples).toHaveLength(1);
    expect(uitSetup(one, { scoring: 'reference' }).examplesFromInstances).toEqual([]);
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    await expect(scoreCandidates(scorer, one, ['a'], { scoring: 'reference' })).rejects.toThrow(/needs two Positive Examples.*the task has 1/);
    const own = { definition: 'b', positiveExamples: TASK.positiveExamples.slice(0, 1) };
    await expect(scoreCandidates(scorer, TASK, ['a', own], { scoring: 'reference' })).rejects.toThrow(/candidate 1 carries 1/);
    expect(scorer.stats.modelCalls).toBe(0);
  });

  it('a candidate with a prompt over the context is unscored without a model call for its pairs', async () => {
    const task: Task = { ...TASK, instances: Array.from({ length: 26 }, (_, i) => ({ ...TASK.instances[i % 20], id: `x${i}` })) };
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj', maxPositions: 400 });
    const long = 'Name the currency. '.repeat(20);
    const res = await scoreCandidates(scorer, task, ['Name the currency.', long], { scoring: 'reference' });
    expect(res.candidates.map((c) => c.unscored)).toEqual([null, 'prompt-over-context']);
    expect(res.candidates[1]).toMatchObject({ meanCe: null, rank: null, kept: false, tokens: 0 });
    expect(scorer.stats.pairs).toBe(26); // the long candidate's 26 pairs never reached the scorer
    expect(res.best).toBe(0);
  });

  it('a task with fewer than 25 instances gets no score and no model call', async () => {
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const res = await scoreCandidates(scorer, TASK, ['a', 'b'], { scoring: 'reference' });
    expect(res.setup.instances).toHaveLength(20);
    expect(res.candidates.map((c) => [c.unscored, c.meanCe, c.rank])).toEqual([
      ['too-few-instances', null, null],
      ['too-few-instances', null, null],
    ]);
    expect(res.best).toBeNull();
    expect(scorer.stats.pairs).toBe(0);
  });
});

describe('candidates with their own Positive Examples', () => {
  it('are scored with their examples (the others with the task\'s), each group fitted on its own', async () => {
    const task: Task = { ...TASK, instances: TASK.instances.slice(0, 5) };
    const mine = [
      { input: 'Japan', output: 'Yen' },
      { input: 'India', output: 'Rupee' },
    ];
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const res = await scoreCandidates(scorer, task, ['Task examples.', { definition: 'Own examples.', positiveExamples: mine }], { seed: 2 });
    expect(res.candidates.map((c) => c.ownExamples)).toEqual([false, true]);
    expect(res.scored[0].examples).toEqual(TASK.positiveExamples.slice(0, 2));
    expect(res.scored[1].examples).toEqual(mine);
    const [pair] = uitPairs(res.scored[1], 'Own examples.');
    expect(pair.prefix).toContain('Positive Examples 1\nInput: Japan\nOutput: Yen\n\nPositive Examples 2\nInput: India\nOutput: Rupee\n\n');
    // the same numbers as scoring it alone on a task whose examples are its own
    const alone = await scoreCandidates(new Scorer(model, { scorerId: 'test:tiny-gptj' }), { ...task, positiveExamples: mine }, ['Own examples.'], { seed: 2 });
    expect(Math.abs(res.candidates[1].meanCe! - alone.candidates[0].meanCe!)).toBeLessThan(1e-6);
  });
});

// ---- pinned edges: uitSetup's fields and errors, borrowing, what scoreCandidates returns ----

/** A small hand-made task: `n` instances x{i} with outputs y{i} (or those given), two examples unless told. */
function smallTask(n: number, opts: { examples?: number; outputs?: (i: number) => string[]; input?: (i: number) => string } = {}): Task {
  return {
    id: 'small',
    source: { format: 'niv2', file: 'small.json', extra: {} },
    definition: 'Copy.',
    positiveExamples: [
      { input: 'e1', output: 'f1' },
      { input: 'e2', output: 'f2' },
    ].slice(0, opts.examples ?? 2),
    negativeExamples: [],
    instances: Array.from({ length: n }, (_, i) => ({ id: `x${i}`, input: opts.input?.(i) ?? `in${i}`, outputs: opts.outputs?.(i) ?? [`y${i}`] })),
  };
}

describe('uitSetup, pinned', () => {
  it('refuses an instance count that is not an integer >= 1, and takes exactly M', () => {
    for (const bad of [0, -1, 1.5, NaN]) {
      expect(() => uitSetup(TASK, { instances: bad })).toThrow(new RangeError(`instances must be an integer >= 1, got ${bad}`));
    }
    const one = uitSetup(TASK, { instances: 1, seed: 4 });
    expect(one).toEqual({
      taskId: TASK.id,
      examples: TASK.positiveExamples.slice(0, 2),
      examplesFromInstances: [],
      instances: [uitSetup(TASK, { seed: 4 }).instances[0]],
    });
    expect(uitSetup(TASK).instances).toHaveLength(20); // default M = 32 > 20
  });

  it('borrows past instances with an empty or no output, and counts them as no gold', () => {
    const pos = shuffled([0, 1, 2, 3, 4], instanceRng(0, 'small'));
    // the last two of the shuffle have no gold output: an empty one, and none at all
    const noGold = new Map([
      [pos[4], [] as string[]],
      [pos[3], ['']],
    ]);
    const task = smallTask(5, { examples: 0, outputs: (i) => noGold.get(i) ?? [`y${i}`] });
    const s = uitSetup(task);
    expect(s.examplesFromInstances).toEqual([`x${pos[2]}`, `x${pos[1]}`]);
    expect(s.examples).toEqual([
      { input: `in${pos[2]}`, output: `y${pos[2]}` },
      { input: `in${pos[1]}`, output: `y${pos[1]}` },
    ]);
    expect(s.instances.map((x) => x.id)).toEqual([pos[0], pos[3], pos[4]].map((i) => `x${i}`));
    // only one gold instance (the others empty or without outputs): nothing is borrowed
    const lone = smallTask(3, { examples: 0, outputs: (i) => (i === 0 ? ['y0'] : i === 1 ? [] : ['']) });
    expect(uitSetup(lone)).toMatchObject({ examples: [], examplesFromInstances: [] });
    expect(uitSetup(lone).instances).toHaveLength(3);
  });
});

describe('scoreCandidates, pinned', () => {
  it('returns every field: the setup, each candidate as scored, ranks, the best', async () => {
    const task = smallTask(3);
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const res = await scoreCandidates(scorer, task, ['Copy the input.', 'Say anything at all, however long it takes.'], { seed: 2 });
    const setup = uitSetup(task, { seed: 2 });
    expect(res.taskId).toBe('small');
    expect(res.scoring).toBe('uit');
    expect(res.setup).toEqual(setup);
    expect(res.scored).toEqual([setup, setup]);
    expect(res.shortenedExamples).toEqual([]);
    for (const [k, c] of res.candidates.entries()) {
      expect(c).toMatchObject({ index: k, ownExamples: false, shortenedInstances: 0, fittedAlone: false, instances: 3, emptyInstances: 0 });
      expect(c.perplexity).toBe(Math.exp(c.meanCe!));
    }
    expect(res.candidates.map((c) => c.definition)).toEqual(['Copy the input.', 'Say anything at all, however long it takes.']);
    const order = res.candidates[0].meanCe! < res.candidates[1].meanCe! ? [1, 2] : [2, 1];
    expect(res.candidates.map((c) => c.rank)).toEqual(order);
    expect(res.candidates.map((c) => c.kept)).toEqual(order.map((r) => r === 1));
    expect(res.best).toBe(order.indexOf(1));
  });

  it('the best is the best-ranked of those kept, wherever it is in the list', async () => {
    const task = smallTask(3);
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const defs = ['zzzz qqqq', 'Copy the input.', 'xj vk', 'Copy.'];
    const all = await scoreCandidates(scorer, task, defs, { topK: 4 });
    expect(all.candidates.every((c) => c.kept)).toBe(true);
    const first = all.candidates.find((c) => c.rank === 1)!;
    expect(all.best).toBe(first.index);
    // the best-ranked one, not the first in the list, for every placement of it
    for (const rot of [1, 2, 3]) {
      const rotated = [...defs.slice(rot), ...defs.slice(0, rot)];
      const r = await scoreCandidates(scorer, task, rotated, { topK: 4 });
      expect(rotated[r.best!]).toBe(first.definition);
    }
    // nothing under the threshold: ranks stay, nothing is kept, no best
    const none = await scoreCandidates(scorer, task, defs, { threshold: Math.exp(Math.min(...all.candidates.map((c) => c.meanCe!))) * 0.999 });
    expect(none.candidates.map((c) => c.rank)).toEqual(all.candidates.map((c) => c.rank));
    expect(none.candidates.some((c) => c.kept)).toBe(false);
    expect(none.best).toBeNull();
  });

  it('an instance with no outputs at all is scored null, as an empty one is', async () => {
    const task = smallTask(3, { outputs: (i) => (i === 1 ? [] : [`y${i}`]) });
    const res = await scoreCandidates(new Scorer(model, { scorerId: 'test:tiny-gptj' }), task, ['Copy.']);
    expect(res.candidates[0]).toMatchObject({ instances: 2, emptyInstances: 1 });
    const nulls = res.setup.instances.map((x, i) => (res.candidates[0].instanceMeanCe[i] === null ? x.id : null)).filter(Boolean);
    expect(nulls).toEqual(['x1']);
  });

  it("a candidate's own examples: the first two, none borrowed, in uit mode even when it has only one", async () => {
    const task = smallTask(4, { examples: 1 }); // the task borrows one instance
    const three = [
      { input: 'o1', output: 'p1' },
      { input: 'o2', output: 'p2' },
      { input: 'o3', output: 'p3' },
    ];
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const res = await scoreCandidates(scorer, task, ['Task.', { definition: 'Three.', positiveExamples: three }, { definition: 'One.', positiveExamples: three.slice(0, 1) }]);
    expect(res.setup.examplesFromInstances).toHaveLength(1);
    expect(res.scored[1]).toEqual({ ...res.setup, examples: three.slice(0, 2), examplesFromInstances: [] });
    expect(res.scored[2]).toEqual({ ...res.setup, examples: three.slice(0, 1), examplesFromInstances: [] });
    expect(res.candidates.map((c) => c.ownExamples)).toEqual([false, true, true]);
    expect(res.candidates.every((c) => c.meanCe !== null)).toBe(true);
  });

  it("reports the task's shortened examples, not those of a candidate's own", async () => {
    const long = 'a long example input that does not fit the small context at all '.repeat(3);
    const task: Task = { ...smallTask(3), positiveExamples: [{ input: long, output: 'f1' }, { input: long, output: 'f2' }] };
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj', maxPositions: 300 });
    const own = { definition: 'Own.', positiveExamples: [{ input: 's1', output: 't1' }, { input: 's2', output: 't2' }] };
    const res = await scoreCandidates(scorer, task, ['Task.', own]);
    expect(res.shortenedExamples).toEqual([0, 1]);
    expect(res.candidates.map((c) => c.shortenedInstances)).toEqual([3, 0]);
    const ownFirst = await scoreCandidates(scorer, task, [own, 'Task.']);
    expect(ownFirst.shortenedExamples).toEqual([0, 1]);
    // a candidate's own long examples, the task's short: the task reports none
    const shortTask = smallTask(3);
    const ownLong = { definition: 'Own.', positiveExamples: task.positiveExamples };
    const r2 = await scoreCandidates(scorer, shortTask, ['Task.', ownLong]);
    expect(r2.shortenedExamples).toEqual([]);
    expect(r2.candidates.map((c) => c.shortenedInstances)).toEqual([0, 3]);
  });
});

describe('the reference scoring mode, pinned', () => {
  const ref25 = (opts: Parameters<typeof smallTask>[1] = {}) => ({ ...smallTask(25, opts), id: 'ref25' });

  it('25 instances are enough: the candidate is scored', async () => {
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const res = await scoreCandidates(scorer, ref25(), ['Copy.'], { scoring: 'reference' });
    expect(res.candidates[0].unscored).toBeNull();
    expect(res.candidates[0].meanCe).not.toBeNull();
    expect(scorer.stats.pairs).toBe(25);
  });

  it('never shortens inputs to fit: a prompt over the context is unscored, one exactly at it is scored', async () => {
    const task = ref25({ input: (i) => (i === 7 ? 'a much longer input than all the others' : `in${i}`) });
    const probe = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const pairs = uitPairs(uitSetup(task, { scoring: 'reference' }), 'Copy.', 'x', 'reference');
    const lengths = pairs.map((p) => probe.countTokens(p.prefix) + probe.countTokens(p.target));
    const longest = Math.max(...lengths);
    const second = Math.max(...lengths.filter((l) => l !== longest));
    // one long prompt among 25 short ones: the candidate is over the context
    const overScorer = new Scorer(model, { scorerId: 'test:tiny-gptj', maxPositions: second });
    const over = await scoreCandidates(overScorer, task, ['Copy.'], { scoring: 'reference' });
    expect(over.candidates[0].unscored).toBe('prompt-over-context');
    expect(overScorer.stats.pairs).toBe(0); // found before the scorer: no pair of it reached the model
    expect(over.scored[0]).toBe(over.setup); // nothing was cut
    expect(over.candidates[0].shortenedInstances).toBe(0);
    const exact = await scoreCandidates(new Scorer(model, { scorerId: 'test:tiny-gptj', maxPositions: longest }), task, ['Copy.'], { scoring: 'reference' });
    expect(exact.candidates[0].unscored).toBeNull();
    expect(exact.candidates[0].truncatedInstances).toBe(0);
  });

  it('a long gold output counts against the context too (prefix and target together)', async () => {
    const gold = 'g'.repeat(60);
    const task = ref25({ outputs: (i) => [i === 3 ? gold : `y${i}`] });
    const probe = new Scorer(model, { scorerId: 'test:tiny-gptj' });
    const pairs = uitPairs(uitSetup(task, { scoring: 'reference' }), 'Copy.', 'x', 'reference');
    const p3 = pairs.find((p) => p.target === gold)!;
    const max = probe.countTokens(p3.prefix) + 59; // the prefix fits, and so does the target alone
    const scorer = new Scorer(model, { scorerId: 'test:tiny-gptj', maxPositions: max });
    const res = await scoreCandidates(scorer, task, ['Copy.'], { scoring: 'reference' });
    expect(res.candidates[0].unscored).toBe('prompt-over-context');
    expect(scorer.stats.pairs).toBe(0);
  });

  it("a finished job is answered without tokenizing, even where a prompt's byte bound is the context exactly", async () => {
    const task = ref25({ input: (i) => (i === 4 ? 'the longest input of them all' : `in${i}`) });
    const pairs = uitPairs(uitSetup(task, { scoring: 'reference' }), 'Copy.', 'x', 'reference');
    // byte-level BPE: at most one token per byte, plus one (token-bound.ts)
    const bound = (p: ScorePair) => Buffer.byteLength(p.prefix) + 1 + Buffer.byteLength(p.target) + 1;
    const max = Math.max(...pairs.map(bound));
    const cache = openCache(join(tmpDirForUit.dir, 'reference-rerun.sqlite'));
    try {
      const first = await scoreCandidates(new Scorer(model, { scorerId: 'test:tiny-gptj', cache, maxPositions: max }), task, ['Copy.'], { scoring: 'reference' });
      expect(first.candidates[0].unscored).toBeNull();
      const encode = vi.spyOn(model.tokenizer, 'encode'); // calls through: counts, does not replace
      try {
        const rerun = new Scorer(model, { scorerId: 'test:tiny-gptj', cache, maxPositions: max });
        const again = await scoreCandidates(rerun, task, ['Copy.'], { scoring: 'reference' });
        expect(encode).not.toHaveBeenCalled();
        expect(rerun.stats).toMatchObject({ cacheHits: 25, modelCalls: 0 });
        expect(again.candidates[0].meanCe).toBe(first.candidates[0].meanCe);
      } finally {
        encode.mockRestore();
      }
    } finally {
      cache.close();
    }
  });

  it('with no context length known, no prompt is over it', async () => {
    const dir = join(tmpDirForUit.dir, 'no-context');
    cpSync(FIXTURE, dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    delete cfg.n_positions;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const m = await loadModel(dir, { threads: 1 });
    try {
      const scorer = new Scorer(m, { scorerId: 'test:tiny-gptj' });
      expect(scorer.contextLength).toBeUndefined();
      const res = await scoreCandidates(scorer, ref25(), ['Copy.'], { scoring: 'reference' });
      expect(res.candidates[0].unscored).toBeNull();
    } finally {
      await m.dispose();
    }
  });
});
