import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lazyFromTask, materialize, type LazyTask } from '../../src/formats/api.js';
import { flan } from '../../src/formats/flan.js';
import { niv2 } from '../../src/formats/niv2.js';
import { promptsource } from '../../src/formats/promptsource.js';
import { alpaca } from '../../src/formats/alpaca.js';
import { crossfit } from '../../src/formats/crossfit.js';
import { describeTemplate, heuristicTransfer } from '../../src/transfer/heuristic.js';
import { transferMethod } from '../../src/transfer/method.js';
import type { Task } from '../../src/types.js';

const DATA = join(__dirname, '../../../shared/data');
const EXAMPLES = join(__dirname, '../../examples');
const FIX = join(__dirname, '../fixtures/formats');

async function first(it: AsyncIterable<LazyTask>, id?: string): Promise<LazyTask> {
  for await (const t of it) if (!id || t.task.id === id) return t;
  throw new Error('no task');
}

describe('heuristic Definitions', () => {
  it('PromptSource: names the fields, keeps the question, lists fixed answer choices', async () => {
    const t = await first(promptsource.read(join(EXAMPLES, 'promptsource/ag_news'), {}), 'promptsource/ag_news/classify_question_first');
    const { task, provenance } = await heuristicTransfer(t, { target: 'niv2', examples: 2 });
    expect(task.task.definition).toBe(
      'In this task, you are given a text. What label best describes this news article? Answer with one of: "World politics", "Sports", "Business", "Science and technology".',
    );
    expect(provenance).toMatchObject({ method: 'heuristic', definitionFrom: 'template', sourceInstruction: 'What label best describes this news article?\n{text}' });
  });

  it('FLAN: fields, instruction and the options the rows share', async () => {
    const t = await first(flan.read(join(EXAMPLES, 'flan'), {}), 'flan/rte/3');
    const { task } = await heuristicTransfer(t, { target: 'niv2', examples: 2 });
    expect(task.task.definition).toBe(
      'In this task, you are given a premise and a hypothesis. Does this next sentence follow, given the preceding text? Answer with one of: "yes", "no".',
    );
  });

  it('CrossFit: fields from the layout and the task name', async () => {
    const t = await first(crossfit.read(join(FIX, 'crossfit_prefixed.tsv'), {}));
    const { task } = await heuristicTransfer(t, { target: 'niv2', examples: 2 });
    expect(task.task.definition).toBe('In this task, you are given a premise and a hypothesis. Produce the output of the "anli" task.');
  });

  it('varying options and output-only templates', () => {
    expect(describeTemplate({ prompt: '{question}\n{options}', target: '{answer}', fields: ['question', 'options'] }, 'varies')).toBe(
      'In this task, you are given a question. Answer with one of the given options.',
    );
    expect(describeTemplate({ prompt: '{dialogue}', target: '{summary}', fields: ['dialogue'] }, null)).toBe(
      'In this task, you are given a dialogue. Write the summary.',
    );
  });

  it('task-level instructions stay as they are (Alpaca instruction -> Definition)', async () => {
    const t = await first(alpaca.read(join(FIX, 'alpaca.json'), {}));
    const { task, provenance } = await heuristicTransfer(t, { target: 'niv2', examples: 2 });
    expect(task.task.definition).toBe('Give the opposite of the word.');
    expect(provenance.definitionFrom).toBe('instruction');
  });
});

describe('Positive Examples from instances (Ni-v2 target)', () => {
  const task = (n: number): Task => ({
    id: 'x',
    source: { format: 'alpaca', file: 'f', extra: {} },
    definition: 'Do it.',
    positiveExamples: [],
    negativeExamples: [],
    instances: Array.from({ length: n }, (_, i) => ({ id: `i${i}`, input: `in${i}`, outputs: [`out${i}`] })),
  });

  it('moves the first two instances, leaving the rest', async () => {
    const { task: t, provenance } = await heuristicTransfer(lazyFromTask(task(5)), { target: 'niv2', examples: 2 });
    const m = await materialize(t);
    expect(m.positiveExamples).toEqual([
      { input: 'in0', output: 'out0' },
      { input: 'in1', output: 'out1' },
    ]);
    expect(m.instances.map((i) => i.id)).toEqual(['i2', 'i3', 'i4']);
    expect(provenance.positiveExamplesFromInstances).toBe(2);
  });

  it('always leaves one instance, and takes none for other targets', async () => {
    expect((await materialize((await heuristicTransfer(lazyFromTask(task(2)), { target: 'niv2', examples: 2 })).task)).instances.length).toBe(1);
    expect((await materialize((await heuristicTransfer(lazyFromTask(task(1)), { target: 'niv2', examples: 2 })).task)).positiveExamples).toEqual([]);
    expect((await materialize((await heuristicTransfer(lazyFromTask(task(5)), { target: 'alpaca', examples: 2 })).task)).instances.length).toBe(5);
  });

  it('drops the moved instances from a streamed task too', async () => {
    const big = task(10);
    const streamed: LazyTask = {
      task: { ...big, instances: big.instances.slice(0, 3) },
      complete: false,
      instances: async function* () {
        yield* big.instances;
      },
    };
    const { task: t } = await heuristicTransfer(streamed, { target: 'niv2', examples: 2 });
    const ids: string[] = [];
    for await (const i of t.instances()) ids.push(i.id);
    expect(ids).toEqual(big.instances.slice(2).map((i) => i.id));
  });
});

describe('identity', () => {
  it('leaves a Ni-v2 task for a Ni-v2 target untouched', async () => {
    const t = await first(niv2.read(join(DATA, 'niv2/tasks/task003_mctaco_question_generation_event_duration.json'), {}));
    const { task, provenance } = await transferMethod('heuristic')(t, { target: 'niv2', examples: 2 });
    expect(task).toBe(t);
    expect(provenance).toEqual({
      source: { file: join(DATA, 'niv2/tasks/task003_mctaco_question_generation_event_duration.json'), format: 'niv2', id: 'task003_mctaco_question_generation_event_duration' },
      method: 'identity',
      target: 'niv2',
    });
  });
});
