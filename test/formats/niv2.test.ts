import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lazyFromTask, materialize, type LazyTask } from '../../src/formats/api.js';
import type { Task } from '../../src/types.js';
import { niv2, niv2Writer } from '../../src/formats/niv2.js';
import { parseLocatedJson } from '../../src/io/located-json.js';
import { InputError } from '../../src/errors.js';
import { spawnSync } from 'node:child_process';

const DATA = join(__dirname, '../../../shared/data/niv2/tasks');
const tmp = mkdtempSync(join(tmpdir(), 'uit-niv2-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function readAll(path: string): Promise<LazyTask[]> {
  const out: LazyTask[] = [];
  for await (const t of niv2.read(path, {})) out.push(t);
  return out;
}

async function writeAll(tasks: LazyTask[], out: string): Promise<void> {
  const w = niv2Writer.open({ out });
  for (const t of tasks) await w.write(t);
  w.commit();
}

describe('Ni-v2 round trip on every shared task file', () => {
  const files = readdirSync(DATA).filter((f) => f.endsWith('.json')).sort();

  it('has the 180 released files', () => {
    expect(files.length).toBe(180);
  });

  it('reads the folder and writes every file back byte for byte (key order, NaN, unicode)', async () => {
    const tasks = await readAll(DATA);
    expect(tasks.map((t) => t.task.id)).toEqual(files.map((f) => f.replace(/\.json$/, '')));
    const out = join(tmp, 'folder');
    await writeAll(tasks, out);
    for (const f of files) {
      const original = readFileSync(join(DATA, f), 'utf8');
      const written = readFileSync(join(out, f), 'utf8');
      expect(written, f).toBe(original);
    }
  });

  it('keeps every task deep-equal, key order included, through JSONL', async () => {
    const tasks = await readAll(DATA);
    const jsonl = join(tmp, 'all.jsonl');
    await writeAll(tasks, jsonl);
    const back = await readAll(jsonl);
    expect(back.length).toBe(files.length);
    const out = join(tmp, 'from-jsonl');
    await writeAll(back, out);
    for (const f of files) {
      const a = parseLocatedJson(readFileSync(join(DATA, f), 'utf8')).value;
      const b = parseLocatedJson(readFileSync(join(out, f), 'utf8')).value;
      expect(b, f).toEqual(a);
      expect(JSON.stringify(Object.keys(b as object))).toBe(JSON.stringify(Object.keys(a as object)));
    }
  });
});

describe('tasks from other formats', () => {
  it('are written with the released files\' keys, in their order, and their layout', async () => {
    const task: Task = {
      id: 'alpaca/demo',
      source: { format: 'alpaca', file: 'demo.json', extra: { dataset: 'demo' } },
      definition: 'Answer the question.',
      positiveExamples: [{ input: 'a?', output: 'b' }],
      negativeExamples: [],
      instances: [{ id: 'demo-1', input: 'c?', outputs: ['d'] }],
    };
    const out = join(tmp, 'from-alpaca');
    await writeAll([lazyFromTask(task)], out);
    const written = readFileSync(join(out, 'alpaca/demo.json'), 'utf8');
    // every released file: the same key list, json.dump(indent=4) (JSON.stringify's 4-space layout) and a newline
    const released = readFileSync(join(DATA, 'task003_mctaco_question_generation_event_duration.json'), 'utf8');
    expect(released).toBe(JSON.stringify(JSON.parse(released), null, 4) + '\n');
    expect(Object.keys(JSON.parse(written) as object)).toEqual(Object.keys(JSON.parse(released) as object));
    expect(written).toBe(JSON.stringify(JSON.parse(written), null, 4) + '\n');
    expect(written.split('\n', 3)).toEqual(['{', '    "Contributors": [],', '    "Source": [']);
  });
});

const PY = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import json'], { stdio: 'ignore' }).status === 0);

describe.skipIf(!PY && process.env.UIT_REQUIRE_SYSTEM_DEPS !== '1')('Ni-v2 files in other layouts keep their bytes', () => {
  const src = join(DATA, 'task003_mctaco_question_generation_event_duration.json');
  const layouts: Array<[string, string]> = [
    ['indent=2, ensure_ascii=True, no final newline', 'json.dump(d, o, indent=2, ensure_ascii=True)'],
    ['tab indent, ensure_ascii=False', 'json.dump(d, o, indent="\\t", ensure_ascii=False); o.write("\\n")'],
    ['one line, default separators', 'json.dump(d, o, ensure_ascii=False); o.write("\\n")'],
    ['one line, compact, ASCII', 'json.dump(d, o, separators=(",", ":"))'],
  ];
  for (const [name, code] of layouts) {
    it(name, async () => {
      if (!PY) throw new Error('UIT_REQUIRE_SYSTEM_DEPS=1 but no python3');
      const file = join(tmp, `layout-${layouts.findIndex(([n]) => n === name)}.json`);
      // non-BMP and accented text, so the ASCII layouts carry surrogate-pair escapes
      const script = `import json,sys\nd=json.load(open(sys.argv[1]))\nd["Definition"].append("caf\\u00e9 \\U0001F600")\no=open(sys.argv[2],"w",encoding="utf-8")\n${code}\no.close()`;
      const r = spawnSync(PY, ['-c', script, src, file], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const out = join(tmp, `layout-out-${layouts.findIndex(([n]) => n === name)}.json`);
      await writeAll(await readAll(file), out);
      expect(readFileSync(out, 'utf8')).toBe(readFileSync(file, 'utf8'));
    });
  }
});

describe('Ni-v2 reader', () => {
  it('maps the canonical fields', async () => {
    const [t] = await readAll(join(DATA, 'task003_mctaco_question_generation_event_duration.json'));
    const task = await materialize(t);
    expect(task.source.format).toBe('niv2');
    expect(task.definition).toMatch(/^In this task, we ask you to write a question/);
    expect(task.positiveExamples[0].input).toMatch(/^Sentence: Jack played basketball/);
    expect(task.instances.length).toBe(20);
    expect(task.instances[0].outputs.length).toBeGreaterThan(0);
  });

  it('keeps unknown record keys and a non-standard key order', async () => {
    const doc = {
      Definition: ['Say hi.', 'Second definition.'],
      Extra: { nested: [1, 2.5, null] },
      'Positive Examples': [{ output: 'hi', input: 'x', note: 'n' }],
      Instances: [{ input: 'y', id: 'i1', output: ['hi'], weight: 2 }],
    };
    const file = join(tmp, 'custom.json');
    writeFileSync(file, JSON.stringify(doc, null, 4) + '\n');
    const tasks = await readAll(file);
    expect(tasks[0].task.definition).toBe('Say hi.');
    const out = join(tmp, 'custom-out.json');
    await writeAll(tasks, out);
    const back = JSON.parse(readFileSync(out, 'utf8'));
    expect(back).toEqual(doc);
    expect(Object.keys(back['Positive Examples'][0])).toEqual(['output', 'input', 'note']);
    expect(Object.keys(back.Instances[0])).toEqual(['input', 'id', 'output', 'weight']);
    expect(readFileSync(out, 'utf8')).toBe(JSON.stringify(doc, null, 4) + '\n');
  });

  it('names file, line and field for a missing field in the middle of a file', async () => {
    const doc = JSON.parse(readFileSync(join(DATA, 'task003_mctaco_question_generation_event_duration.json'), 'utf8'));
    delete doc.Instances[5].output;
    const text = JSON.stringify(doc, null, 4);
    const file = join(tmp, 'broken.json');
    writeFileSync(file, text);
    // the line where Instances[5] starts
    const lines = text.split('\n');
    const idLine = lines.findIndex((l) => l.includes(JSON.stringify(doc.Instances[5].id))) + 1;
    const err = await readAll(file).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toBe(`${file}:${idLine - 1}: Instances[5].output: missing field`);
  });

  it('maps a JSON syntax error to its line', async () => {
    const file = join(tmp, 'syntax.json');
    writeFileSync(file, '{\n    "Definition": ["a"],\n    "Instances": [\n        {"id": "x" "input": "y"}\n    ]\n}\n');
    const err = await readAll(file).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(/syntax\.json:4: malformed JSON at column 20: expected ',' or '}' in object/);
  });

  it('rejects a wrong type with the field path', async () => {
    const file = join(tmp, 'type.json');
    writeFileSync(file, '{\n  "Definition": ["a"],\n  "Instances": [\n    {"id": "x", "input": "y", "output": "z"}\n  ]\n}\n');
    const err = await readAll(file).catch((e) => e);
    expect(err.message).toBe(`${file}:4: Instances[0].output: expected a list, found a string`);
  });

  it('writes nothing when a task cannot be written', async () => {
    const out = join(tmp, 'one.json');
    const tasks = await readAll(DATA);
    const w = niv2Writer.open({ out });
    await w.write(tasks[0]);
    await expect(w.write(tasks[1])).rejects.toThrow(/holds one task/);
    w.abort();
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.startsWith('.one.json'))).toEqual([]);
  });
});
