import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { materialize, type LazyTask, type ReadOptions, type Skipped } from '../../src/formats/api.js';
import { alpaca, alpacaWriter } from '../../src/formats/alpaca.js';
import { crossfit } from '../../src/formats/crossfit.js';
import { flan, flanWriter, formatOptions, renderFlan } from '../../src/formats/flan.js';
import { p3 } from '../../src/formats/p3.js';
import { detectFile, planInput, readInput } from '../../src/formats/registry.js';
import { selfinstruct } from '../../src/formats/selfinstruct.js';
import { sharegpt } from '../../src/formats/sharegpt.js';
import type { FormatModule } from '../../src/formats/api.js';
import { InputError } from '../../src/errors.js';

const DATA = join(__dirname, '../../../shared/data');
const EXAMPLES = join(__dirname, '../../examples');
const FIX = join(__dirname, '../fixtures/formats');
const tmp = mkdtempSync(join(tmpdir(), 'uit-formats-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function readAll(m: FormatModule, path: string, opts: ReadOptions = {}): Promise<LazyTask[]> {
  const out: LazyTask[] = [];
  for await (const t of m.read(path, opts)) out.push(t);
  return out;
}

function file(name: string, text: string): string {
  const p = join(tmp, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, text);
  return p;
}

describe('detection from content', () => {
  const cases: Array<[string, string]> = [
    [join(DATA, 'niv2/tasks/task003_mctaco_question_generation_event_duration.json'), 'niv2'],
    [join(DATA, 'p3_rendered/ag_news_classify.jsonl'), 'p3'],
    [join(DATA, 'flan/flan2021_templates.json'), 'flan'],
    [join(DATA, 'flan/flan2022_templates.json'), 'flan'],
    [join(DATA, 'promptsource/templates/ag_news/templates.yaml'), 'promptsource'],
    [join(DATA, 'selfinstruct/seed_tasks.jsonl'), 'selfinstruct'],
    [join(DATA, 'selfinstruct/user_oriented_instructions.jsonl'), 'selfinstruct'],
    [join(DATA, 'sharegpt/dummy_conversation.json'), 'sharegpt'],
    [join(FIX, 'alpaca.json'), 'alpaca'],
    [join(FIX, 'alpaca.jsonl'), 'alpaca'],
    [join(FIX, 'crossfit_prefixed.tsv'), 'crossfit'],
    [join(FIX, 'crossfit_plain.tsv'), 'crossfit'],
  ];
  for (const [path, expected] of cases) {
    it(`${path.split('/').slice(-2).join('/')} is ${expected}`, () => {
      expect(detectFile(path).name).toBe(expected);
    });
  }

  it('does not depend on the file name', () => {
    const copy = file('renamed.data', readFileSync(join(DATA, 'p3_rendered/ag_news_classify.jsonl'), 'utf8'));
    expect(detectFile(copy).name).toBe('p3');
  });

  it('gives a clear error listing the formats for unknown content', () => {
    const f = file('unknown.txt', 'just some prose\nwithout structure\n');
    expect(() => detectFile(f)).toThrow(InputError);
    expect(() => detectFile(f)).toThrow(/cannot tell the format from the content; pass --from with one of:\n  niv2 .*\n  p3 /s);
  });

  it('plans folders: Ni-v2 folder as a whole, P3 folder file by file, templates folders by convention', () => {
    expect(planInput(join(DATA, 'niv2/tasks')).map((p) => p.format.name)).toEqual(['niv2']);
    const p3Parts = planInput(join(DATA, 'p3_rendered'));
    expect(p3Parts.length).toBe(readdirSync(join(DATA, 'p3_rendered')).length);
    expect(new Set(p3Parts.map((p) => p.format.name))).toEqual(new Set(['p3']));
    expect(planInput(join(EXAMPLES, 'promptsource')).map((p) => p.format.name)).toEqual(['promptsource']);
    expect(planInput(join(EXAMPLES, 'flan')).map((p) => p.format.name)).toEqual(['flan']);
  });
});

describe('P3 rendered JSONL', () => {
  it('reads every shared file: one task per file, EOT stripped, template recovered', async () => {
    const files = readdirSync(join(DATA, 'p3_rendered')).sort();
    for (const f of files) {
      const [t] = await readAll(p3, join(DATA, 'p3_rendered', f));
      const task = await materialize(t);
      expect(task.id).toBe(`p3/${f.replace(/\.jsonl$/, '')}`);
      const lines = readFileSync(join(DATA, 'p3_rendered', f), 'utf8').trim().split('\n').length;
      expect(task.instances.length).toBe(lines);
      for (const inst of task.instances) for (const o of inst.outputs) expect(o.endsWith('<|endoftext|>')).toBe(false);
      expect(task.definition.length, f).toBeGreaterThan(0);
    }
  });

  it('recovers the instruction text of ag_news_classify', async () => {
    const [t] = await readAll(p3, join(DATA, 'p3_rendered/ag_news_classify.jsonl'));
    expect(t.task.definition).toBe('{input} \nWhat label best describes this news article?');
    expect(t.task.instances[0].outputs).toEqual(['Business']);
  });

  it('reads the {inputs, targets} layout', async () => {
    const f = file('p3_inputs.jsonl', '{"inputs": "Q: a? A:", "targets": "x"}\n{"inputs": "Q: b? A:", "targets": ["y", "z"]}\n');
    const [t] = await readAll(p3, f);
    expect(t.task.instances.map((i) => i.outputs)).toEqual([['x'], ['y', 'z']]);
    expect(t.task.definition).toBe('Q: {question} A:');
  });
});

describe('FLAN templates + rows', () => {
  it("renders {options_} as FLAN's format_options does and keeps typos like {hypothesis}n", () => {
    expect(formatOptions(['yes', 'no'])).toBe('OPTIONS:\n- yes\n- no');
    const row = { premise: 'P.', hypothesis: 'H', options: ['yes', 'no'], answer: 'yes' };
    expect(renderFlan('{premise}\n\nHypothesis: {hypothesis}n\n{options_}', row)).toBe('P.\n\nHypothesis: Hn\nOPTIONS:\n- yes\n- no');
    expect(renderFlan('{answer}', row)).toBe('yes');
    expect(renderFlan('Literal {not a field} and {{', row)).toBe('Literal {not a field} and {{');
  });

  it('reads the shared FLAN file with --rows/--dataset: one task per template', async () => {
    const rows = join(EXAMPLES, 'flan/rows/rte.jsonl');
    const tasks = await readAll(flan, join(DATA, 'flan/flan2021_templates.json'), { rows, dataset: 'rte' });
    expect(tasks.map((t) => t.task.id)).toEqual(Array.from({ length: 10 }, (_, i) => `flan/rte/${i}`));
    const t5 = await materialize(tasks[5]);
    expect(t5.definition).toBe('Read the following paragraph and determine if the hypothesis is true:\n\n{premise}\n\nHypothesis: {hypothesis}n\n{options}');
    expect(t5.instances[0].input).toBe(
      'Read the following paragraph and determine if the hypothesis is true:\n\nThe museum, which opened in 1998, attracts more than a million visitors every year.\n\nHypothesis: The museum opened in the 1990s.n\nOPTIONS:\n- yes\n- no',
    );
    expect(t5.instances[0].outputs).toEqual(['yes']);
  });

  it('reads every dataset of both shared files as template-only tasks', async () => {
    for (const name of ['flan2021_templates.json', 'flan2022_templates.json']) {
      const doc = JSON.parse(readFileSync(join(DATA, 'flan', name), 'utf8')) as Record<string, unknown[]>;
      const tasks = await readAll(flan, join(DATA, 'flan', name));
      expect(tasks.length).toBe(Object.values(doc).reduce((n, l) => n + l.length, 0));
    }
  });

  it('names the rows file, line and field when a row lacks a placeholder field', async () => {
    const rows = file('flan/rte.jsonl', '{"premise": "a", "hypothesis": "b", "options": ["yes", "no"], "answer": "yes"}\n{"premise": "a", "options": ["yes"], "answer": "no"}\n');
    const err = await (async () => {
      for (const t of await readAll(flan, join(DATA, 'flan/flan2021_templates.json'), { rows, dataset: 'rte', head: 1 })) await materialize(t);
    })().catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toBe(`${rows}:2: hypothesis: missing field (the template uses {hypothesis}), template 0 of rte`);
  });

  it('round-trips a FLAN folder through the FLAN writer unchanged', async () => {
    const out = join(tmp, 'flan-out');
    const w = flanWriter.open({ out });
    for (const t of await readAll(flan, join(EXAMPLES, 'flan'))) await w.write(t);
    w.commit();
    expect(readFileSync(join(out, 'templates.json'), 'utf8')).toBe(readFileSync(join(EXAMPLES, 'flan/templates.json'), 'utf8'));
    const rowsIn = readFileSync(join(EXAMPLES, 'flan/rows/rte.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const rowsOut = readFileSync(join(out, 'rows/rte.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rowsOut).toEqual(rowsIn);
  });
});

describe('CrossFit TSV', () => {
  it('reads a file with [task] prefixes: tasks by prefix, several answers, field layout as instruction', async () => {
    const tasks = await readAll(crossfit, join(FIX, 'crossfit_prefixed.tsv'));
    expect(tasks.map((t) => t.task.id)).toEqual(['crossfit/anli', 'crossfit/squad']);
    expect(tasks[0].task.definition).toBe('[anli] premise: {premise} [SEP] hypothesis: {hypothesis}');
    expect(tasks[0].task.instances[0].input.startsWith('premise: ')).toBe(true);
    expect(tasks[1].task.instances[0].outputs).toEqual(['1998', 'in 1998']);
  });

  it('reads a file without prefixes as one task named after the file', async () => {
    const [t] = await readAll(crossfit, join(FIX, 'crossfit_plain.tsv'));
    expect(t.task.id).toBe('crossfit/crossfit_plain');
    expect(t.task.definition).toBe('[crossfit_plain] {input}');
    expect(t.task.instances.length).toBe(3);
  });

  it('names the line of a row without an output column', async () => {
    const f = file('bad.tsv', 'a\tb\nno tab here\n');
    await expect(readAll(crossfit, f)).rejects.toThrow(`${f}:2: output: expected input<TAB>output`);
  });
});

describe('Alpaca, self-instruct, ShareGPT', () => {
  it('Alpaca JSON array and JSONL give the same tasks; consecutive records with one instruction are one task', async () => {
    const a = await readAll(alpaca, join(FIX, 'alpaca.json'));
    const b = await readAll(alpaca, join(FIX, 'alpaca.jsonl'));
    const strip = (t: LazyTask) => ({ ...t.task, id: t.task.id.replace(/alpaca\/alpaca\//, ''), source: undefined });
    expect(a.map(strip)).toEqual(b.map(strip));
    expect(a.map((t) => t.task.definition)).toEqual(['Give the opposite of the word.', 'Translate to French.', 'Give the opposite of the word.']);
    expect(a[0].task.instances.map((i) => i.input)).toEqual(['hot', 'tall']);
    expect(a[1].task.instances[0].extra).toEqual({ category: 'translation' });
  });

  it('Alpaca errors name the line of the record and the field', async () => {
    const f = file('alpaca_bad.json', '[\n  {"instruction": "a", "output": "b"},\n  {\n    "instruction": "c"\n  }\n]\n');
    await expect(readAll(alpaca, f)).rejects.toThrow(`${f}:3: [1].output: missing field`);
    const g = file('alpaca_bad.jsonl', '{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": 3}\n');
    await expect(readAll(alpaca, g)).rejects.toThrow(`${g}:2: output: expected a string, found a number`);
  });

  it('Alpaca writer round-trips records, unknown fields included', async () => {
    const out = join(tmp, 'alpaca-out.json');
    const w = alpacaWriter.open({ out });
    for (const t of await readAll(alpaca, join(FIX, 'alpaca.json'))) await w.write(t);
    w.commit();
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(JSON.parse(readFileSync(join(FIX, 'alpaca.json'), 'utf8')));
  });

  it('reads all 175 self-instruct seed tasks and the 252 user-oriented ones', async () => {
    const seed = await readAll(selfinstruct, join(DATA, 'selfinstruct/seed_tasks.jsonl'));
    expect(seed.length).toBe(175);
    expect(seed[0].task.id).toBe('selfinstruct/seed_task_0');
    expect(seed[0].task.source.extra).toMatchObject({ name: 'breakfast_suggestion', is_classification: false });
    const user = await readAll(selfinstruct, join(DATA, 'selfinstruct/user_oriented_instructions.jsonl'));
    expect(user.length).toBe(252);
  });

  it('ShareGPT: single-turn conversations are tasks, multi-turn ones are skipped with a reason', async () => {
    const skipped: Skipped[] = [];
    const tasks = await readAll(sharegpt, join(DATA, 'sharegpt/dummy_conversation.json'), { onSkip: (s) => skipped.push(s) });
    expect(tasks.length).toBe(167);
    expect(skipped.length).toBe(333);
    expect(skipped[0]).toMatchObject({ id: 'identity_0', line: 2, reason: 'multi-turn conversation (4 messages): only single-turn conversations convert' });
    expect(tasks[0].task).toMatchObject({ id: 'sharegpt/dummy_conversation/identity_1', definition: 'Who are you?' });
    expect(tasks[0].task.instances[0].input).toBe('');
  });
});

describe('readInput', () => {
  it('reads a whole P3 folder', async () => {
    let n = 0;
    for await (const t of readInput(join(DATA, 'p3_rendered'))) {
      expect(t.task.source.format).toBe('p3');
      n++;
    }
    expect(n).toBe(readdirSync(join(DATA, 'p3_rendered')).length);
  });
});
