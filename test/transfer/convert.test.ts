import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { p3 } from '../../src/formats/p3.js';
import { flan } from '../../src/formats/flan.js';
import { materialize } from '../../src/formats/api.js';
import { convert } from '../../src/transfer/convert.js';
import { ExitCode, InputError, UitError } from '../../src/errors.js';

const DATA = join(__dirname, '../../../shared/data');
const NIV2 = join(DATA, 'niv2/tasks');
const EXAMPLES = join(__dirname, '../../examples');
const tmp = mkdtempSync(join(tmpdir(), 'uit-convert-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const jsonl = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

describe('Ni-v2 to Ni-v2 (nothing to transfer)', () => {
  it('writes every task back byte for byte, provenance only in the sidecar', async () => {
    const out = join(tmp, 'niv2');
    const s = await convert({ input: NIV2, to: 'niv2', out, quiet: true });
    expect(s).toMatchObject({ tasks: 180, methods: { identity: 180 }, from: ['niv2'], provenance: join(out, 'provenance.jsonl') });
    for (const f of readdirSync(NIV2)) expect(readFileSync(join(out, f), 'utf8'), f).toBe(readFileSync(join(NIV2, f), 'utf8'));
    const prov = jsonl(join(out, 'provenance.jsonl'));
    expect(prov.length).toBe(180);
    expect(prov[0]).toEqual({
      id: 'task003_mctaco_question_generation_event_duration',
      // relative to the output, as the model method writes it
      output: 'task003_mctaco_question_generation_event_duration.json',
      source: { file: join(NIV2, 'task003_mctaco_question_generation_event_duration.json'), format: 'niv2', id: 'task003_mctaco_question_generation_event_duration' },
      method: 'identity',
      target: 'niv2',
    });
  });
});

describe('Ni-v2 to Alpaca and FLAN-style', () => {
  const file = join(NIV2, 'task003_mctaco_question_generation_event_duration.json');
  const doc = JSON.parse(readFileSync(file, 'utf8'));

  it('Alpaca: the definition is the instruction of every instance', async () => {
    const out = join(tmp, 'mctaco.jsonl');
    const s = await convert({ input: file, to: 'alpaca', out, quiet: true });
    expect(s.methods).toEqual({ heuristic: 1 });
    const recs = jsonl(out);
    expect(recs.length).toBe(doc.Instances.length);
    expect(recs[0]).toEqual({ instruction: doc.Definition[0], input: doc.Instances[0].input, output: doc.Instances[0].output[0] });
    expect(existsSync(join(tmp, 'mctaco.provenance.jsonl'))).toBe(true);
  });

  it("FLAN: a template in FLAN's natinst_v2 layout; reading it back renders definition + input", async () => {
    const out = join(tmp, 'flan-out');
    await convert({ input: file, to: 'flan', out, quiet: true });
    const templates = JSON.parse(readFileSync(join(out, 'templates.json'), 'utf8'));
    const key = 'task003_mctaco_question_generation_event_duration';
    expect(templates).toEqual({ [key]: [{ input: `${doc.Definition[0]}\n\n{input}`, output: '{output}' }] });
    const tasks = [];
    for await (const t of flan.read(out, {})) tasks.push(await materialize(t));
    expect(tasks.length).toBe(1);
    expect(tasks[0].instances.map((i) => i.input)).toEqual(doc.Instances.map((i: { input: string }) => `${doc.Definition[0]}\n\n${i.input}`));
  });
});

describe('instance-level sources to Ni-v2', () => {
  it('converts the bundled sample into one folder: tasks under their ids, examples from instances', async () => {
    const out = join(tmp, 'sample');
    const s = await convert({ input: ['promptsource', 'flan', 'p3'].map((p) => join(EXAMPLES, p)), to: 'niv2', out, quiet: true });
    expect(s).toMatchObject({ tasks: 19, instances: 90, methods: { heuristic: 19 } });
    const t = JSON.parse(readFileSync(join(out, 'flan/rte/0.json'), 'utf8'));
    expect(t.Definition[0]).toMatch(/^In this task, you are given a premise and a hypothesis\./);
    expect(t['Positive Examples'].length).toBe(2);
    expect(t.Instances.length).toBe(4);
    expect(t.Source).toEqual(['rte']);
  });
});

describe('provenance output', () => {
  it('is relative to the output for every layout (folder, .jsonl, .json, FLAN folder), as the model method writes it', async () => {
    const inputs = ['promptsource', 'p3'].map((p) => join(EXAMPLES, p));
    const folder = join(tmp, 'rel/folder');
    await convert({ input: inputs, to: 'niv2', out: folder, quiet: true });
    const inFolder = jsonl(join(folder, 'provenance.jsonl'));
    expect(inFolder.length).toBeGreaterThan(1);
    for (const p of inFolder) {
      expect(p.output).toBe(`${p.id}.json`);
      expect(existsSync(join(folder, p.output))).toBe(true);
    }
    const lines = join(tmp, 'rel/tasks.jsonl');
    await convert({ input: inputs, to: 'niv2', out: lines, quiet: true });
    expect(jsonl(join(tmp, 'rel/tasks.provenance.jsonl')).map((p) => p.output)).toEqual(inFolder.map((_, i) => `#${i + 1}`));
    const one = join(tmp, 'rel/one.json');
    await convert({ input: join(NIV2, 'task003_mctaco_question_generation_event_duration.json'), to: 'niv2', out: one, quiet: true });
    expect(jsonl(join(tmp, 'rel/one.provenance.jsonl'))[0].output).toBe('.');
    const flanOut = join(tmp, 'rel/flan');
    await convert({ input: join(NIV2, 'task003_mctaco_question_generation_event_duration.json'), to: 'flan', out: flanOut, quiet: true });
    expect(jsonl(join(flanOut, 'provenance.jsonl'))[0].output).toBe('templates.json#task003_mctaco_question_generation_event_duration');
  });
});

describe('failures write nothing', () => {
  it('a bad file after good ones: no output folder, no sidecar, no temp files', async () => {
    const input = join(tmp, 'mixed');
    mkdirSync(input);
    copyFileSync(join(NIV2, 'task003_mctaco_question_generation_event_duration.json'), join(input, 'a.json'));
    writeFileSync(join(input, 'b.json'), '{\n  "Definition": ["x"],\n  "Instances": [\n    {"id": "1", "input": "y"}\n  ]\n}\n');
    const out = join(tmp, 'never');
    const err = await convert({ input, to: 'niv2', out, quiet: true }).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toBe(`${join(input, 'b.json')}:4: Instances[0].output: missing field`);
    expect(existsSync(out)).toBe(false);
  });

  it('into an existing folder: earlier files untouched, nothing added', async () => {
    const out = join(tmp, 'existing');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'mine');
    const bad = join(tmp, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"\n');
    // an empty folder takes an output, and a bad input there leaves it empty
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    await expect(convert({ input: bad, to: 'niv2', out: empty, quiet: true })).rejects.toThrow(`${bad}:2: malformed JSON`);
    expect(readdirSync(empty)).toEqual([]);
    // a folder that holds files is refused before anything is read, even with --force when uit did not write it
    for (const force of [false, true]) {
      const err = await convert({ input: bad, to: 'niv2', out, quiet: true, force }).catch((e: unknown) => e as UitError);
      expect(err).toBeInstanceOf(UitError);
      expect((err as UitError).exitCode).toBe(ExitCode.USAGE);
      expect((err as UitError).message).toMatch(force ? /--force replaces only a folder uit wrote/ : /already exists and holds 1 entry \(keep\.txt\).*--force/);
    }
    expect(readdirSync(out)).toEqual(['keep.txt']);
  });
});

describe('an output folder that exists (issue 21)', () => {
  const P3 = join(DATA, 'p3_rendered/imdb_Reviewer_Enjoyment_Yes_No.jsonl');
  const P3B = join(DATA, 'p3_rendered/ag_news_classify_question_first.jsonl');

  it('is refused with files in it, and --force replaces a uit output whole: no stale task survives', async () => {
    const out = join(tmp, 'rerun');
    await convert({ input: [P3, P3B], to: 'niv2', out, quiet: true });
    expect(readdirSync(join(out, 'p3')).sort()).toEqual(['ag_news_classify_question_first.json', 'imdb_Reviewer_Enjoyment_Yes_No.json']);
    await expect(convert({ input: P3, to: 'niv2', out, quiet: true })).rejects.toThrow(/already exists and holds 2 entries \(p3, provenance\.jsonl\)/);
    const s = await convert({ input: P3, to: 'niv2', out, quiet: true, force: true });
    expect(s.tasks).toBe(1);
    expect(readdirSync(out).sort()).toEqual(['p3', 'provenance.jsonl']);
    expect(readdirSync(join(out, 'p3'))).toEqual(['imdb_Reviewer_Enjoyment_Yes_No.json']);
    expect(jsonl(join(out, 'provenance.jsonl'))).toHaveLength(1);
    // a failed --force run leaves the old output as it was
    const bad = join(tmp, 'bad-force.jsonl');
    writeFileSync(bad, '{"prompt": "a", "completion": "b"}\n{"prompt": "c"\n');
    await expect(convert({ input: bad, to: 'niv2', out, quiet: true, force: true })).rejects.toThrow(/malformed JSON/);
    expect(readdirSync(join(out, 'p3'))).toEqual(['imdb_Reviewer_Enjoyment_Yes_No.json']);
    expect(readdirSync(out).sort()).toEqual(['p3', 'provenance.jsonl']);
  });

  it('a new folder appears only at the end: nothing at the output while it is written', async () => {
    const out = join(tmp, 'appears');
    let seen: boolean | undefined;
    await convert({ input: [P3, P3B], to: 'niv2', out, quiet: true, onTask: () => void (seen ??= existsSync(out)) });
    expect(seen).toBe(false);
    expect(existsSync(join(out, 'provenance.jsonl'))).toBe(true);
    expect(readdirSync(tmp).filter((f) => f.includes('uit-staging'))).toEqual([]);
  });
});

describe('streaming', () => {
  it('converts a P3 file of 60,000 lines while holding only its head', async () => {
    const big = join(tmp, 'big_task.jsonl');
    const lines: string[] = [];
    for (let i = 0; i < 60000; i++) lines.push(JSON.stringify({ prompt: `Review ${i}: item number ${i} was fine.\nIs it positive?\n`, completion: `${i % 2 ? 'yes' : 'no'}<|endoftext|>` }));
    writeFileSync(big, lines.join('\n') + '\n');
    let head = -1;
    for await (const t of p3.read(big, {})) {
      expect(t.complete).toBe(false);
      head = t.task.instances.length;
    }
    expect(head).toBe(64);
    const out = join(tmp, 'big.jsonl');
    const s = await convert({ input: big, to: 'alpaca', out, quiet: true });
    expect(s.instances).toBe(60000);
    const text = readFileSync(out, 'utf8');
    expect(text.split('\n').length - 1).toBe(60000);
    const last = JSON.parse(text.slice(text.lastIndexOf('\n', text.length - 2) + 1));
    expect(last.input).toBe('Review 59999: item number 59999 was fine.\nIs it positive?');
    expect(last.output).toBe('yes');
    expect(last.instruction).toMatch(/^In this task, you are given .*Is it positive\?$/);
  });
});
