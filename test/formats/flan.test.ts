// FLAN rendering against a transcription of FLAN's own Python (flan_reference.py), FLAN's
// {dialog_}, how row values print, and the round trips through the FLAN and Alpaca writers.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { materialize, type LazyTask, type ReadOptions } from '../../src/formats/api.js';
import { alpaca } from '../../src/formats/alpaca.js';
import { flan, flanWriter, formatDialog, natinstPattern, printfF, renderFlan } from '../../src/formats/flan.js';
import { niv2 } from '../../src/formats/niv2.js';
import { InputError } from '../../src/errors.js';
import { convert } from '../../src/transfer/convert.js';
import type { Task } from '../../src/types.js';

const DATA = join(__dirname, '../../../shared/data');
const NIV2 = join(DATA, 'niv2/tasks');
const REPO = join(__dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'uit-flan-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function tasksOf(path: string, opts: ReadOptions = {}): Promise<Task[]> {
  const out: Task[] = [];
  for await (const t of flan.read(path, opts)) out.push(await materialize(t));
  return out;
}

/** A FLAN folder: the given templates and one rows file per dataset key. */
function flanFolder(name: string, templates: Record<string, unknown>, rows: Record<string, string[]>): string {
  const dir = join(tmp, name);
  mkdirSync(join(dir, 'rows'), { recursive: true });
  writeFileSync(join(dir, 'templates.json'), JSON.stringify(templates, null, 1));
  for (const [key, lines] of Object.entries(rows)) writeFileSync(join(dir, 'rows', `${key}.jsonl`), lines.join('\n') + '\n');
  return dir;
}

async function renderError(pattern: string, rowText: string): Promise<string> {
  const dir = flanFolder(`err-${Math.random().toString(36).slice(2)}`, { d: [{ input: pattern, output: 'x' }] }, { d: [rowText] });
  const err = await tasksOf(dir).catch((e) => e);
  expect(err).toBeInstanceOf(InputError);
  return (err as Error).message.slice(join(dir, 'rows/d.jsonl').length + ':1: '.length);
}

// ---------------------------------------------------------------------------------------------
// Every template of both shared files, against FLAN's Python

const PYTHONS = ['python3', '/usr/bin/python3'];
const python = PYTHONS.find((p) => spawnSync(p, ['-c', 'import json, re'], { stdio: 'ignore' }).status === 0);
const requireDeps = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';

/** The feature names FLAN looks up in a pattern (its own test: a part wrapped in braces). */
function fieldsOf(pattern: string): string[] {
  return pattern.split(/(\{[\p{L}\p{N}_]*\})/u).filter((p) => p.length > 1 && p[0] === '{' && p[p.length - 1] === '}').map((p) => p.slice(1, -1));
}

// Values that stress the rendering: braces, line breaks of every kind, NUL, long text, unicode.
const TEXTS = [
  'plain text.',
  '{premise} and {{x}} and {} and {a-b}',
  'line one\nline two\r\nline three\u2028four\u2029five\u0085six',
  'nul \u0000 tab \t end',
  'x'.repeat(3000),
  '',
  'héllo wörld 日本語 🙂',
];
// JSON texts of non-string values (kept as text so integers reach Python unparsed)
const NUMBERS = ['12345678901234567890', '-9223372036854775809', '0', '-0', '42', '4.0', '0.5', '1e21', '2.5e-7', '0.0078125', 'true', 'false'];

function rowText(fields: string[], variant: number): string {
  const entries: string[] = [];
  fields.forEach((f, i) => {
    if (f === 'options_' || f === 'dialog_') {
      const list = f === 'options_' ? 'options' : 'dialog';
      const lists = [['yes', 'no'], [], [TEXTS[1], TEXTS[2]], ['only one'], [TEXTS[3], TEXTS[6], 'third']];
      entries.push(`${JSON.stringify(list)}: ${JSON.stringify(lists[variant % lists.length])}`);
      // a stale block of the row's own, which FLAN overwrites
      entries.push(`${JSON.stringify(f)}: "stale ${f}"`);
      return;
    }
    const value = variant === 2 ? NUMBERS[(i + variant) % NUMBERS.length] : JSON.stringify(TEXTS[(i * 3 + variant) % TEXTS.length]);
    entries.push(`${JSON.stringify(f)}: ${value}`);
  });
  return `{${entries.join(', ')}}`;
}

describe.skipIf(!python && !requireDeps)("FLAN rendering equals a transcription of FLAN's Python (flan_reference.py)", () => {
  if (!python) {
    it('has a Python', () => {
      throw new Error(`UIT_REQUIRE_SYSTEM_DEPS=1 but none of ${PYTHONS.join(', ')} runs`);
    });
    return;
  }
  for (const name of ['flan2021_templates.json', 'flan2022_templates.json']) {
    it(`${name}: every template of every dataset, 5 rows each`, async () => {
      const all = JSON.parse(readFileSync(join(DATA, 'flan', name), 'utf8')) as Record<string, Array<{ input: string; output: string }>>;
      const dir = join(tmp, `all-${name}`);
      mkdirSync(join(dir, 'rows'), { recursive: true });
      copyFileSync(join(DATA, 'flan', name), join(dir, 'templates.json'));
      const rowsOf: Record<string, string[]> = {};
      for (const [key, templates] of Object.entries(all)) {
        const fields = [...new Set(templates.flatMap((t) => [...fieldsOf(t.input), ...fieldsOf(t.output)]))];
        rowsOf[key] = [0, 1, 2, 3, 4].map((v) => rowText(fields, v));
        writeFileSync(join(dir, 'rows', `${key}.jsonl`), rowsOf[key].join('\n') + '\n');
      }
      const tasks = await tasksOf(dir);
      const cases = tasks.flatMap((t) => {
        const { dataset, templateIndex } = t.source.extra as { dataset: string; templateIndex: number };
        const tpl = all[dataset][templateIndex];
        return rowsOf[dataset].map((row) => ({ input: tpl.input, output: tpl.output, row }));
      });
      const r = spawnSync(python, [join(__dirname, 'flan_reference.py')], { input: JSON.stringify(cases), encoding: 'utf8', maxBuffer: 1 << 28 });
      expect(r.status, r.stderr).toBe(0);
      const ref = JSON.parse(r.stdout) as Array<{ input?: string; output?: string; error?: string }>;
      const ours = tasks.flatMap((t) => t.instances.map((i) => ({ input: i.input, output: i.outputs[0] })));
      expect(ref.filter((x) => x.error)).toEqual([]);
      expect(ours.length).toBe(ref.length);
      let differ = 0;
      for (let i = 0; i < ref.length; i++) if (ours[i].input !== ref[i].input || ours[i].output !== ref[i].output) differ++;
      expect(differ).toBe(0);
      expect(ref.length).toBe(Object.values(all).reduce((n, l) => n + l.length, 0) * 5);
      if (name === 'flan2022_templates.json') {
        const dialog = tasks.filter((t) => /\{dialog_\}/.test(t.source.extra.template ? JSON.stringify(t.source.extra.template) : ''));
        expect(dialog.length).toBe(20);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe("FLAN's {dialog_}", () => {
  it('is format_dialog: the turns joined by "\\n- " after "DIALOG:\\n", then an open turn', () => {
    expect(formatDialog(['Hi!', "What's up?", 'Not much.'])).toBe("DIALOG:\nHi!\n- What's up?\n- Not much.\n- ");
    expect(formatDialog([])).toBe('DIALOG:\n\n- ');
  });

  it('both shared dialog datasets convert, each template rendered as FLAN renders it', () => {
    const rows = join(tmp, 'dialog.jsonl');
    writeFileSync(rows, '{"dialog": ["Who sang Tik Tok?", "Kesha.", "When was it released?"], "answer": "In 2009.", "answers": ["In 2009."]}\n');
    const results: Record<string, { input: string; output: string[] }> = {};
    for (const key of ['predict_next_turn_dialog', 'predict_next_turn_dialog_input_inversion']) {
      const out = join(tmp, `dialog-${key}.jsonl`);
      const r = spawnSync(process.execPath, [join(REPO, 'bin/uit.js'), 'convert', join(DATA, 'flan/flan2022_templates.json'), '--rows', rows, '--dataset', key, '--to', 'niv2', '--examples', '0', '-o', out], { encoding: 'utf8' });
      expect(r.stdout, r.stderr).toBe(`converted 10 tasks (10 instances) from flan to niv2 -> ${out} [heuristic 10]\nprovenance: ${out.replace(/\.jsonl$/, '')}.provenance.jsonl\n`);
      expect(r.status).toBe(0);
      const tasks = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(tasks.length).toBe(10);
      results[key] = tasks[2].Instances[0];
      results[`${key}/1`] = tasks[1].Instances[0];
    }
    const block = 'DIALOG:\nWho sang Tik Tok?\n- Kesha.\n- When was it released?\n- ';
    expect(results.predict_next_turn_dialog).toMatchObject({ input: `Read the dialog and predict the next turn. ${block}\n`, output: ['In 2009.'] });
    expect(results['predict_next_turn_dialog_input_inversion/1']).toMatchObject({ input: 'In 2009.\nThe preceding conversation:', output: [block] });
  });

  it("overwrites a row's own dialog_ and options_ when it has dialog and options, as FLAN's preprocessors do", () => {
    const row = { dialog: ['a', 'b'], dialog_: 'stale', options: ['x', 'y'], options_: 'stale too' };
    expect(renderFlan('{dialog_}|{options_}', row)).toBe('DIALOG:\na\n- b\n- |OPTIONS:\n- x\n- y');
    // without the list, the row's own block is what there is
    expect(renderFlan('{dialog_}|{options_}', { dialog_: 'own', options_: 'own too' })).toBe('own|own too');
  });

  it('names what is wrong when the list is missing or is not a list', async () => {
    expect(await renderError('{dialog_}', '{"answer": "a"}')).toBe('dialog: missing field (the template uses {dialog_}, built from the list dialog), template 0 of d');
    expect(await renderError('{options_}', '{"options": "yes"}')).toBe('options: expected a list to build {options_} from, found a string, template 0 of d');
    expect(await renderError('{dialog_}', '{"dialog": {"a": 1}}')).toBe('dialog: expected a list to build {dialog_} from, found an object, template 0 of d');
    expect(await renderError('{dialog_}', '{"dialog": ["a", null]}')).toBe('dialog[1]: expected a string, number or boolean, found null, template 0 of d');
  });
});

describe('values in FLAN rows', () => {
  it('print as tf.strings.as_string: integers with every digit, floats as printf %f, true/false', async () => {
    const dir = flanFolder(
      'values',
      { v: [{ input: '{big}|{neg}|{zero}|{i}|{f}|{g}|{h}|{e}|{t}|{n}|{inf}', output: '{big}' }] },
      { v: ['{"big": 12345678901234567890, "neg": -9223372036854775809, "zero": -0, "i": 42, "f": 4.0, "g": 0.5, "h": 0.0078125, "e": 1e21, "t": true, "n": NaN, "inf": -Infinity}'] },
    );
    const [t] = await tasksOf(dir);
    expect(t.instances[0].input).toBe('12345678901234567890|-9223372036854775809|0|42|4.000000|0.500000|0.007812|1000000000000000000000.000000|true|nan|-inf');
    expect(t.instances[0].outputs).toEqual(['12345678901234567890']);
  });

  it("printfF is C's %f: the exact binary value, ties to even, no exponent form", () => {
    expect([0.0078125, 0.0234375, -1e-9, 0.1, 1e-7].map(printfF)).toEqual(['0.007812', '0.023438', '-0.000000', '0.100000', '0.000000']);
    // the double nearest 1e300 has 301 digits, every one printed
    expect(printfF(1e300)).toBe(`${BigInt(1e300)}.000000`);
  });

  it('a row written back keeps its numbers as they were (4.0 stays 4.0, big integers keep their digits)', async () => {
    const line = '{"a": 4.0, "b": 12345678901234567890, "c": 0.5, "d": -0.0, "e": 1e+16}';
    const dir = flanFolder('values-back', { v: [{ input: '{a}', output: '{b}' }] }, { v: [line] });
    const out = join(tmp, 'values-back-out');
    const w = flanWriter.open({ out });
    for await (const t of flan.read(dir, {})) await w.write(t);
    w.commit();
    expect(readFileSync(join(out, 'rows/v.jsonl'), 'utf8')).toBe(line + '\n');
  });

  it('null, lists and objects are errors that name the field', async () => {
    expect(await renderError('{a}', '{"a": null}')).toBe('a: expected a string, number or boolean, found null, template 0 of d');
    expect(await renderError('{a}', '{"a": [1]}')).toBe('a: expected a string, number or boolean, found a list, template 0 of d');
  });

  it("looks fields up as the row's own keys: {constructor}, {toString}, {__proto__} are missing fields", async () => {
    for (const f of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      expect(await renderError(`{${f}}`, '{"a": "x"}')).toBe(`${f}: missing field (the template uses {${f}}), template 0 of d`);
    }
    // a row that has them has them
    expect(renderFlan('{constructor}{__proto__}', JSON.parse('{"constructor": "c", "__proto__": "p"}'))).toBe('cp');
  });
});

// ---------------------------------------------------------------------------------------------
// Round trips

const TASK048 = join(NIV2, 'task048_multirc_question_generation.json');

async function niv2Task(path: string): Promise<Task> {
  const out: Task[] = [];
  for await (const t of niv2.read(path, {})) out.push(await materialize(t));
  return out[0];
}

describe('Ni-v2 -> FLAN -> Ni-v2 keeps every output', () => {
  it('task048 (several outputs per instance): every instance comes back with all of its outputs', async () => {
    const src = await niv2Task(TASK048);
    expect(src.instances.every((i) => i.outputs.length > 1)).toBe(true);
    const f = join(tmp, 'rt048-flan');
    await convert({ input: TASK048, to: 'flan', out: f, quiet: true });
    const back = join(tmp, 'rt048.json');
    await convert({ input: f, to: 'niv2', out: back, quiet: true, examples: 0 });
    const doc = JSON.parse(readFileSync(back, 'utf8'));
    expect(doc.Instances.map((i: { output: string[] }) => i.output)).toEqual(src.instances.map((i) => i.outputs));
    // the instance's input comes back as FLAN renders it: the definition, a blank line, the input
    expect(doc.Instances[0].input).toBe(`${src.definition}\n\n${src.instances[0].input}`);
  });

  it('with the default --examples 2 every output comes back too: only one-output instances become examples', async () => {
    const src = await niv2Task(TASK048);
    const back = join(tmp, 'rt048-default.json');
    await convert({ input: join(tmp, 'rt048-flan'), to: 'niv2', out: back, quiet: true });
    const doc = JSON.parse(readFileSync(back, 'utf8'));
    expect(doc.Instances.map((i: { output: string[] }) => i.output)).toEqual(src.instances.map((i) => i.outputs));
    expect(doc['Positive Examples']).toEqual([]);
  });

  it('an instance with no output comes back with none, not [""]', async () => {
    const file = join(tmp, 'empty-output.json');
    writeFileSync(file, JSON.stringify({ Definition: ['Say it.'], Instances: [{ id: 'a', input: 'x', output: [] }, { id: 'b', input: 'y', output: ['one'] }, { id: 'c', input: 'z', output: ['', 'two'] }] }));
    for (const to of ['flan', 'alpaca'] as const) {
      const mid = join(tmp, to === 'flan' ? 'empty-flan' : 'empty.jsonl');
      await convert({ input: file, to, out: mid, quiet: true });
      const back = join(tmp, `empty-back-${to}.json`);
      await convert({ input: mid, to: 'niv2', out: back, quiet: true, examples: 0 });
      const doc = JSON.parse(readFileSync(back, 'utf8'));
      expect(doc.Instances.map((i: { output: string[] }) => i.output), to).toEqual([[], ['one'], ['', 'two']]);
    }
  });

  it("a FLAN row's outputs are read only when the output template is {output} and they agree with it", async () => {
    const dir = flanFolder(
      'outputs-rule',
      { a: [{ input: '{input}', output: '{output}' }, { input: '{input}', output: '{output}!' }] },
      { a: ['{"input": "i", "output": "x", "outputs": ["x", "y"]}', '{"input": "i", "output": "x", "outputs": ["z", "y"]}', '{"input": "i", "output": "x", "outputs": "x"}'] },
    );
    const [plain, other] = await tasksOf(dir);
    expect(plain.instances.map((i) => i.outputs)).toEqual([['x', 'y'], ['x'], ['x']]);
    expect(other.instances.map((i) => i.outputs)).toEqual([['x!'], ['x!'], ['x!']]);
  });
});

describe('Ni-v2 -> Alpaca -> Ni-v2 keeps every output', () => {
  it('task048: the definition, every input and every output come back', async () => {
    const src = await niv2Task(TASK048);
    const a = join(tmp, 'rt048.jsonl');
    await convert({ input: TASK048, to: 'alpaca', out: a, quiet: true });
    const recs = readFileSync(a, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(recs[0]).toEqual({ instruction: src.definition, input: src.instances[0].input, output: src.instances[0].outputs[0], outputs: src.instances[0].outputs });
    const back = join(tmp, 'rt048-alpaca.json');
    await convert({ input: a, to: 'niv2', out: back, quiet: true, examples: 0 });
    const doc = JSON.parse(readFileSync(back, 'utf8'));
    expect(doc.Definition).toEqual([src.definition]);
    expect(doc.Instances.map((i: { input: string; output: string[] }) => [i.input, i.output])).toEqual(src.instances.map((i) => [i.input, i.outputs]));
  });

  it("an Alpaca record's outputs are read when they agree with output, and kept as a field otherwise", async () => {
    const file = join(tmp, 'outputs.jsonl');
    writeFileSync(file, ['{"instruction": "d", "input": "a", "output": "x", "outputs": ["x", "y"]}', '{"instruction": "d", "input": "b", "output": "x", "outputs": ["z"]}'].join('\n') + '\n');
    const tasks: LazyTask[] = [];
    for await (const t of alpaca.read(file, {})) tasks.push(t);
    const insts = (await materialize(tasks[0])).instances;
    expect(insts.map((i) => [i.outputs, i.extra])).toEqual([
      [['x', 'y'], undefined],
      [['x'], { outputs: ['z'] }],
    ]);
  });
});

describe('a Definition containing {word} keeps its text through FLAN', () => {
  // task495's Definition (../shared/data/niv2/definitions.jsonl) names its placeholder {word}
  const def = (JSON.parse(readFileSync(join(DATA, 'niv2/definitions.jsonl'), 'utf8').split('\n').find((l) => l.includes('"task495_')) ?? '{}') as { definition: string }).definition;

  it('is written with {lbrace} for each brace, and FLAN renders it back to the Definition', () => {
    expect(def).toContain('{word}');
    const { pattern, escaped } = natinstPattern(def);
    expect(escaped).toBe(true);
    expect(pattern).toContain('format {lbrace}word}.');
    expect(renderFlan(pattern, { lbrace: '{', input: 'IN' })).toBe(`${def}\n\nIN`);
    for (const d of ['{}', '{-}{x}', '{{x}}', 'a {input} b', 'ends with {x}', '{a-b}']) expect(renderFlan(natinstPattern(d).pattern, { lbrace: '{', input: '' })).toBe(`${d}\n\n`);
    expect(natinstPattern('{"json": 1} and {not a field}')).toEqual({ pattern: '{"json": 1} and {not a field}\n\n{input}', escaped: false });
  });

  it('reads back with the Definition as the source instruction, and writes back unchanged', async () => {
    const file = join(tmp, 'task495.json');
    writeFileSync(file, JSON.stringify({ Definition: [def], Instances: [{ id: '1', input: 'News: A {cat} sat.', output: ['Funny'] }, { id: '2', input: 'News: B', output: ['Not Funny'] }] }));
    const f = join(tmp, 'task495-flan');
    await convert({ input: file, to: 'flan', out: f, quiet: true });
    const [t] = await tasksOf(f);
    expect(t.definition).toBe(`${def}\n\n{input}`);
    expect(t.instances.map((i) => i.input)).toEqual([`${def}\n\nNews: A {cat} sat.`, `${def}\n\nNews: B`]);
    const again = join(tmp, 'task495-flan-again');
    await convert({ input: f, to: 'flan', out: again, quiet: true });
    expect(readFileSync(join(again, 'templates.json'), 'utf8')).toBe(readFileSync(join(f, 'templates.json'), 'utf8'));
    expect(readFileSync(join(again, 'rows/task495.jsonl'), 'utf8')).toBe(readFileSync(join(f, 'rows/task495.jsonl'), 'utf8'));
    // the heuristic Definition is made from the Definition's text, not a generic sentence
    const back = join(tmp, 'task495-back.json');
    await convert({ input: f, to: 'niv2', out: back, quiet: true, examples: 0 });
    expect(JSON.parse(readFileSync(back, 'utf8')).Definition[0]).toContain('Create new headlines by replacing the word in the original sentence with edit word.');
  });
});
