// A bad record in the middle of a file is one failed task: every other task of the file is
// converted, and every task read is either written or in OUT.errors.jsonl (issue 21, bug 1).
// One-record tasks (Alpaca records, self-instruct seed tasks) convert with the model method,
// scored on their own record (bug 4). Real parts: the tiny GPT-J fixture, the CLI, real files.
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE, jsonl, needBuilt, run, tempDir } from './helpers.js';

const tmp = tempDir('uit-bad-records-');
const SEED_TASKS = '../shared/data/selfinstruct/seed_tasks.jsonl';
const TINY = ['--num-candidates', '2', '--max-new-tokens', '8', '--instances', '4', '--threads', '1'];

beforeAll(() => needBuilt(['transfer/pipeline', 'transfer/inputs', 'formats/records', 'io/json-array']));
afterAll(() => tmp.cleanup());

const convert = (input: string, out: string, extra: string[] = []) => [
  'convert', input, '--to', 'niv2', '--method', 'model', '--model', FIXTURE, ...TINY, '-o', out, '--cache', join(tmp.dir, 'cache.sqlite'), ...extra,
];

function niv2Line(id: string): string {
  const instances = [1, 2, 3].map((i) => ({ id: `${id}-${i}`, input: `question ${i} about ${id}`, output: [`answer ${i}`] }));
  return JSON.stringify({ id, Definition: [`Answer the question about ${id}.`], 'Positive Examples': [], 'Negative Examples': [], Instances: instances });
}

const alpacaRecord = (i: number) => ({ instruction: `Give a synonym of the word number ${i}.`, input: `happy ${i}`, output: `glad ${i}` });

describe('a bad record fails one task, and the tasks after it still convert', () => {
  it('Ni-v2 JSONL: t1, a bad t2, t3, t4 -> three tasks written, t2 in the errors file', () => {
    const file = join(tmp.dir, 'mixed.jsonl');
    const bad = JSON.stringify({ id: 't2', Definition: ['x'], Instances: [{ id: 'x', input: 'a', output: 42 }] });
    writeFileSync(file, [niv2Line('t1'), bad, niv2Line('t3'), niv2Line('t4')].join('\n') + '\n');
    const out = join(tmp.dir, 'niv2-out');
    const s = run(convert(file, out), 6);
    expect(s.tasks).toMatchObject({ ok: 3, failed: 1 });
    expect(readdirSync(out).sort()).toEqual(['provenance.jsonl', 't1.json', 't3.json', 't4.json']);
    const errors = jsonl<{ file: string; line: number; reason: string }>(`${out}.errors.jsonl`);
    expect(errors).toEqual([{ file, line: 2, reason: 'Instances[0].output: expected a list, found a number' }]);
  });

  it('Alpaca JSONL and a JSON array with a bad record 4 of 5: four one-record tasks written', () => {
    const records: unknown[] = [1, 2, 3].map(alpacaRecord);
    records.push({ instruction: 'bad', output: 42 }, alpacaRecord(5));
    const lines = join(tmp.dir, 'alpaca5.jsonl');
    writeFileSync(lines, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const array = join(tmp.dir, 'alpaca5.json');
    writeFileSync(array, JSON.stringify(records, null, 2) + '\n');
    for (const [file, line, field] of [[lines, 4, 'output'], [array, 19, '[3].output']] as const) {
      const out = join(tmp.dir, `out-${file.endsWith('.json') ? 'array' : 'lines'}`);
      const s = run(convert(file, out), 6);
      expect(s.tasks).toMatchObject({ ok: 4, failed: 1 });
      expect(s.failures).toEqual([{ file, line, reason: `${field}: expected a string, found a number` }]);
      expect(readdirSync(join(out, 'alpaca', 'alpaca5')).sort()).toEqual(['0.json', '1.json', '2.json', '4.json']);
      // a one-record task keeps its record as the instance and is scored on it
      const prov = jsonl<{ scorer: { scoredInstances: number }; positiveExamplesFromInstances?: number }>(join(out, 'provenance.jsonl'));
      expect(prov.map((p) => p.scorer.scoredInstances)).toEqual([1, 1, 1, 1]);
      expect(prov.every((p) => p.positiveExamplesFromInstances === undefined)).toBe(true);
    }
  });

  it('a malformed JSONL line and a malformed array element are one failure each', () => {
    const lines = join(tmp.dir, 'syntax.jsonl');
    writeFileSync(lines, [JSON.stringify(alpacaRecord(1)), '{"instruction": "a", "output": ', JSON.stringify(alpacaRecord(3))].join('\n') + '\n');
    const s = run(convert(lines, join(tmp.dir, 'syntax-out')), 6);
    expect(s.tasks).toMatchObject({ ok: 2, failed: 1 });
    expect(s.failures[0]).toMatchObject({ file: lines, line: 2 });
    expect(s.failures[0].reason).toMatch(/^malformed JSON at column \d+/);

    const array = join(tmp.dir, 'syntax.json');
    writeFileSync(array, `[\n${JSON.stringify(alpacaRecord(1))},\n{"instruction": "a", "output": 1 2},\n${JSON.stringify(alpacaRecord(3))}\n]\n`);
    const a = run(convert(array, join(tmp.dir, 'syntax-array-out')), 6);
    expect(a.tasks).toMatchObject({ ok: 2, failed: 1 });
    expect(a.failures[0]).toMatchObject({ file: array, line: 3 });
  });

  it('an array whose brackets break ends the file, and the failure says how far it read', () => {
    const array = join(tmp.dir, 'broken.json');
    writeFileSync(array, `[\n${JSON.stringify(alpacaRecord(1))},\n${JSON.stringify(alpacaRecord(2))},\n{"instruction": "unterminated\n`);
    const s = run(convert(array, join(tmp.dir, 'broken-out')), 6);
    expect(s.tasks).toMatchObject({ ok: 2, failed: 1 });
    expect(s.failures[0].file).toBe(array);
    expect(s.failures[0].reason).toMatch(/unterminated string; reading stopped here, after 2 tasks of this file: the rest of it was not read/);
  });

  it('CrossFit: a line without a TAB fails its own task; the file\'s other task converts', () => {
    const file = join(tmp.dir, 'two.tsv');
    const line = (task: string, i: number) => ` [${task}] question: what is ${i} plus ${i}?\t${2 * i}`;
    writeFileSync(file, [line('add', 1), line('sub', 1), ' [add] question: no answer here', line('sub', 2), line('add', 2), line('sub', 3)].join('\n') + '\n');
    const out = join(tmp.dir, 'crossfit-out');
    const s = run(convert(file, out), 6);
    expect(s.tasks).toMatchObject({ ok: 1, failed: 1 });
    expect(s.failures).toEqual([{ file, line: 3, reason: 'output: expected input<TAB>output' }]);
    expect(readdirSync(join(out, 'crossfit'))).toEqual(['sub.json']);
  });

  it('FLAN: a template whose rows lack its field fails alone; the next template converts', () => {
    const dir = join(tmp.dir, 'flan');
    const templates = join(tmp.dir, 'flan-templates.json');
    writeFileSync(templates, JSON.stringify({ qa: [{ input: 'Q: {missing}', output: '{a}' }, { input: 'Q: {q}', output: '{a}' }] }));
    const rows = join(tmp.dir, 'qa.jsonl');
    writeFileSync(rows, [1, 2, 3].map((i) => JSON.stringify({ q: `question ${i}`, a: `answer ${i}` })).join('\n') + '\n');
    const s = run(convert(templates, dir, ['--rows', rows]), 6);
    expect(s.tasks).toMatchObject({ ok: 1, failed: 1 });
    expect(s.failures[0]).toMatchObject({ file: rows, line: 1 });
    expect(s.failures[0].reason).toMatch(/missing: missing field/);
  });
});

describe('one-record tasks with --method model', () => {
  it('converts the shipped self-instruct seed tasks, with and without --examples 0', () => {
    for (const examples of ['2', '0']) {
      const out = join(tmp.dir, `seed-${examples}`);
      const s = run(['convert', SEED_TASKS, '--to', 'niv2', '--method', 'model', '--model', FIXTURE, ...TINY, '--examples', examples,
        '-o', out, '--cache', join(tmp.dir, 'cache.sqlite'), '--shard', '0/25']);
      expect(s.tasks.failed).toBe(0);
      expect(s.tasks.ok).toBeGreaterThan(0);
      const prov = jsonl<{ scorer: { scoredInstances: number } }>(join(out, 'provenance.jsonl'));
      expect(prov.every((p) => p.scorer.scoredInstances >= 1)).toBe(true);
    }
  });
});
