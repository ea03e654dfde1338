import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lazyFromTask, materialize, type LazyTask } from '../../src/formats/api.js';
import { flan } from '../../src/formats/flan.js';
import { niv2 } from '../../src/formats/niv2.js';
import { promptsource } from '../../src/formats/promptsource.js';
import { alpaca } from '../../src/formats/alpaca.js';
import { crossfit } from '../../src/formats/crossfit.js';
import { describeTemplate, heuristicDefinition, heuristicTransfer } from '../../src/transfer/heuristic.js';
import { alignPrompts } from '../../src/transfer/template-text.js';
import { transferMethod } from '../../src/transfer/method.js';
import type { Task } from '../../src/types.js';

const DATA = join(__dirname, '../../../shared/data');
const EXAMPLES = join(__dirname, '../../examples');
const FIX = join(__dirname, '../fixtures/formats');

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const p = join(dir, name);
      return statSync(p).isDirectory() ? yamlFiles(p) : name === 'templates.yaml' ? [p] : [];
    });
}

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

describe('heuristic Definitions a reader accepts (issue 22)', () => {
  const CASES = join(__dirname, '../fixtures/heuristic');
  async function definitions(): Promise<Array<{ name: string; promptsource: string; p3: string }>> {
    const out = [];
    for await (const t of promptsource.read(join(CASES, 'templates.yaml'), { rows: join(CASES, 'rows.jsonl') })) {
      const task = await materialize(t);
      // the same rows as a P3 file holds them: rendered prompts, the template recovered by alignment
      const p3: Task = { ...task, id: 'p3/x', source: { format: 'p3', file: 'x.jsonl', extra: {} }, definition: alignPrompts(task.instances.map((i) => i.input)) };
      out.push({ name: t.task.id.split('/').pop()!, promptsource: heuristicDefinition(task).definition, p3: heuristicDefinition(p3).definition });
    }
    return out;
  }

  it('state listed options once, name fields, read fields inside words, complete completion prompts, and say what to write', async () => {
    expect(await definitions()).toEqual([
      {
        name: 'suggest_app',
        promptsource: 'In this task, you are given a review. Given this app review, would you suggest this app to others? Never, No, Perhaps, Yes, or Surely?',
        p3: 'In this task, you are given a review. Given this app review, would you suggest this app to others? Never, No, Perhaps, Yes, or Surely?',
      },
      {
        name: 'write_review',
        promptsource: 'In this task, you are given a star and a package name. Write a [star]-star review (1 is worst, 5 is best) for the app the package name.',
        // a value every row shares (the app) cannot be told from template text by alignment
        p3: 'In this task, you are given an input. Write a [input] review (1 is worst, 5 is best) for the app com.example.radio.',
      },
      {
        name: 'rewrite',
        promptsource: 'In this task, you are given a sentence1. Rewrite the sentence. Write the sentence2.',
        p3: 'In this task, you are given a sentence. Rewrite the sentence.',
      },
      {
        name: 'so_i_would_rate',
        promptsource: 'In this task, you are given a text. Complete the text "So I would rate it ..." with one of: "1 star", "2 stars", "3 stars", "4 stars", "5 stars".',
        p3: 'In this task, you are given an input. Complete the text "So I would rate it ...".',
      },
      {
        name: 'format_rating',
        promptsource: 'In this task, you are given a text. Write the rating, one of: "1 star", "2 stars", "3 stars", "4 stars", "5 stars".',
        p3: 'In this task, you are given a review. Write the rating.',
      },
    ]);
  });

  it('takes fixed answer choices from the template, rows or none, and "the given options" only where the prompt shows them', () => {
    const task = (jinja: string, answer_choices: string | null): Task => ({
      id: 'promptsource/d/t',
      source: { format: 'promptsource', file: 'f', extra: { template: { jinja, answer_choices } } },
      definition: '',
      positiveExamples: [],
      negativeExamples: [],
      instances: [],
    });
    expect(heuristicDefinition(task('Is it good? {{text}} ||| {{answer_choices[label]}}', 'No ||| Yes')).definition).toBe(
      'In this task, you are given a text. Is it good? Answer with one of: "No", "Yes".',
    );
    expect(heuristicDefinition(task('{{question}}\n- {{answer_choices | join("\n- ")}} ||| {{answer_choices[label]}}', '{{choices | join("|||")}}')).definition).toBe(
      'In this task, you are given a question. Answer with one of the given options.',
    );
    // options made from fields the prompt never shows: nothing to pick from
    expect(heuristicDefinition(task('Q: {{question}}\n\nA: ||| {{answer_choices[3]}}', '{{d1}} ||| {{d2}} ||| {{d3}} ||| {{correct}}')).definition).toBe(
      'In this task, you are given a question. Write the answer.',
    );
  });

  it('no shared PromptSource template gets options listed twice, two articles in a row, or an empty slot', async () => {
    let n = 0;
    for (const file of yamlFiles(join(DATA, 'promptsource/templates'))) {
      for await (const t of promptsource.read(file, {})) {
        const d = heuristicDefinition(t.task).definition;
        expect(d, t.task.id).not.toMatch(/\bthe options,? (or |and )?the options\b/);
        expect(d, t.task.id).not.toMatch(/\b(a|an|the) (a|an|the)\b/i);
        expect(d, t.task.id).not.toMatch(/""|\(\s*\)|\{[^{}]*\}/);
        expect(d.replace(/^In this task, you are given [^.]*\.\s*/, ''), t.task.id).not.toBe('');
        n++;
      }
    }
    expect(n).toBe(1812);
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
