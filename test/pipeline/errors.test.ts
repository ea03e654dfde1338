// Bad input in the middle of a collection: the task is reported in OUT.errors.jsonl (file, line,
// task, reason), the rest converts, and the exit code is PARTIAL (6); --strict stops at the first
// bad task with BAD_INPUT (3) and writes nothing. Uses a Ni-v2 folder with a broken file between
// two real task files, and real P3 data whose gold outputs are all empty (nothing to score on).
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE, GEN, NIV2_FILES, P3_EMPTY_GOLD, P3_FILES, SCORE, SMALL, jsonl, needBuilt, run, tempDir, tree, uit } from './helpers.js';

const tmp = tempDir('uit-pipeline-errors-');
const folder = join(tmp.dir, 'tasks');
const broken = join(folder, 'b_broken.json');

beforeAll(() => {
  needBuilt(['commands/convert', 'commands/denoise', 'transfer/pipeline']);
  mkdirSync(folder);
  copyFileSync(NIV2_FILES[0], join(folder, 'a_task1413.json'));
  // a task file cut short in the middle of its Definition
  writeFileSync(broken, readFileSync(NIV2_FILES[1], 'utf8').slice(0, 400));
  copyFileSync(NIV2_FILES[1], join(folder, 'c_task1411.json'));
});
afterAll(() => tmp.cleanup());

const convert = (inputs: string[], out: string, extra: string[] = []) => [
  'convert', ...inputs, '--to', 'niv2', '--method', 'model', '--model', FIXTURE, ...SMALL, '-o', out, '--cache', join(tmp.dir, 'cache.sqlite'), ...extra,
];

describe('bad tasks in a collection', () => {
  it('reports each bad task in the errors file, converts the rest, and exits PARTIAL', () => {
    const out = join(tmp.dir, 'out');
    const s = run(convert([folder, P3_EMPTY_GOLD], out), 6);
    expect(s.tasks).toMatchObject({ ok: 2, failed: 2 });
    // the task with nothing to score on failed before any candidate was drawn for it
    expect(s.candidates.generated + s.candidates.cached).toBe(6);
    expect(s.errors).toBe(`${out}.errors.jsonl`);
    expect([...tree(out).keys()].sort()).toEqual(['a_task1413.json', 'c_task1411.json', 'provenance.jsonl']);
    const errors = jsonl<{ file: string; line?: number; task?: string; reason: string }>(`${out}.errors.jsonl`);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatchObject({ file: broken, line: expect.any(Number) });
    expect(errors[0].reason).toMatch(/malformed JSON|unterminated|end of/i);
    expect(errors[1]).toMatchObject({ file: P3_EMPTY_GOLD, task: 'p3/trec_trec1' });
    expect(errors[1].reason).toMatch(/no instance with a non-empty output/);
    expect(s.failures).toEqual(errors);

    // without --json: a one-line summary (and where the errors are) on stderr, same exit code
    const plain = uit(convert([folder, P3_EMPTY_GOLD], join(tmp.dir, 'out-plain')));
    expect(plain.code).toBe(6);
    expect(plain.stdout).toBe('');
    expect(plain.stderr).toMatch(/^convert: 2 tasks ok, 2 failed \|.*\n.*out-plain\.errors\.jsonl; first: .*b_broken\.json:\d+/);

    // a later clean run into the same output removes the stale errors file
    const clean = run(convert([folder], out, ['--from', 'niv2', '--force']), 6);
    expect(clean.tasks.failed).toBe(1);
    const ok = run(convert([NIV2_FILES[0]], out, ['--force']));
    expect(ok.errors).toBeNull();
    expect(existsSync(`${out}.errors.jsonl`)).toBe(false);
  });

  it('--strict stops at the first bad task with exit code 3 and writes nothing', () => {
    const out = join(tmp.dir, 'strict');
    const r = uit(convert([folder, P3_EMPTY_GOLD], out, ['--strict']));
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/b_broken\.json:\d+: malformed JSON/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.errors.jsonl`)).toBe(false);
  });

  it('uit denoise reports a task without candidates and a malformed candidates file', () => {
    const cands = join(tmp.dir, 'cands.jsonl');
    writeFileSync(cands, JSON.stringify({ task: 'task1413_dart_object_identification', candidates: ['Identify the object.', { definition: 'Name the object of the triple.' }] }) + '\n');
    const out = join(tmp.dir, 'denoised');
    const s = run(['denoise', ...NIV2_FILES, '--candidates', cands, '--scorer', FIXTURE, ...SCORE, '-o', out, '--cache', join(tmp.dir, 'cache.sqlite')], 6);
    expect(s.tasks).toMatchObject({ ok: 1, failed: 1 });
    expect(s.failures[0]).toMatchObject({ file: cands, task: 'task1411_dart_subject_identification' });
    expect(s.failures[0].reason).toMatch(/no candidates for task/);
    const prov = jsonl<{ method: string; transfer: unknown; candidates: { definition: string }[] }>(join(out, 'provenance.jsonl'));
    expect(prov[0].method).toBe('denoise');
    expect(prov[0].transfer).toBeNull();
    expect(prov[0].candidates.map((c) => c.definition)).toEqual(['Identify the object.', 'Name the object of the triple.']);

    writeFileSync(cands, '{"task": "x", "candidates": []}\n');
    const bad = uit(['denoise', NIV2_FILES[0], '--candidates', cands, '--scorer', FIXTURE, '-o', join(tmp.dir, 'bad'), '--cache', join(tmp.dir, 'cache.sqlite')]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/cands\.jsonl:1: candidates: /);
  });

  it('a streamed task (more instances than are read ahead) with a bad record past the head fails alone, before anything is written', () => {
    const rows = readFileSync(P3_FILES[1], 'utf8').split('\n').filter(Boolean);
    const big = Array.from({ length: 100 }, (_, i) => rows[i % rows.length]);
    const good = join(tmp.dir, 'big_good.jsonl');
    const bad = join(tmp.dir, 'big_bad.jsonl');
    writeFileSync(good, big.join('\n') + '\n');
    writeFileSync(bad, big.map((l, i) => (i === 89 ? l.slice(0, 30) : l)).join('\n') + '\n');
    const out = join(tmp.dir, 'streamed');
    const s = run(convert([bad, good], out), 6);
    expect(s.tasks).toMatchObject({ ok: 1, failed: 1 });
    expect(s.failures[0]).toMatchObject({ file: bad, line: 90, task: 'p3/big_bad' });
    expect([...tree(out).keys()].sort()).toEqual(['p3/big_good.json', 'provenance.jsonl']);
    const doc = JSON.parse(readFileSync(join(out, 'p3/big_good.json'), 'utf8')) as { Instances: unknown[]; 'Positive Examples': unknown[] };
    expect(doc['Positive Examples']).toHaveLength(2);
    expect(doc.Instances).toHaveLength(98);
  });

  it('a source instruction too long for the transfer model fails that task only', () => {
    // the fixture with a 300-position context: the bare pair prompt of a short P3 instruction fits,
    // a Ni-v2 definition of 357 bytes (byte-level tokens) does not
    const small = join(tmp.dir, 'tiny-ctx300');
    cpSync(FIXTURE, small, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(small, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(small, 'config.json'), JSON.stringify({ ...cfg, n_positions: 300 }));
    const out = join(tmp.dir, 'ctx');
    const s = run(['convert', P3_FILES[0], NIV2_FILES[0], '--to', 'niv2', '--method', 'model', '--model', small, '--prompt-style', 'pair',
      '--num-candidates', '2', '--max-new-tokens', '16', ...SCORE, '--threads', '1', '-o', out, '--cache', join(tmp.dir, 'ctx.sqlite')], 6);
    expect(s.tasks).toMatchObject({ ok: 1, failed: 1 });
    expect(s.failures[0]).toMatchObject({ task: 'task1413_dart_object_identification' });
    expect(s.failures[0].reason).toMatch(/prompt has \d+ tokens; the model takes at most 300 positions/);
    expect([...tree(out).keys()].sort()).toEqual(['p3/imdb_Reviewer_Enjoyment_Yes_No.json', 'provenance.jsonl']);
    // its scoring prompts (two examples and an input) did not fit either: the reviews were shortened,
    // the candidates' Definitions kept whole (never cut on the left), and said so
    expect(s.tasks).toMatchObject({ shortenedScoring: 1, truncatedScoring: 0 });
    const [p] = jsonl<{ candidates: { definition: string; shortenedInstances?: number; truncatedInstances?: number }[] }>(join(out, 'provenance.jsonl'));
    expect(p.candidates.every((c) => (c.shortenedInstances ?? 0) > 0 && c.truncatedInstances === undefined)).toBe(true);
  });

  it('empty candidates are never selected; a task with only empty candidates fails', () => {
    const cands = join(tmp.dir, 'empty-cands.jsonl');
    writeFileSync(
      cands,
      [
        { task: 'task1413_dart_object_identification', candidates: ['', 'Identify the object of the triple.', '   ', 'Name it.'] },
        { task: 'task1411_dart_subject_identification', candidates: ['', ' \n '] },
      ].map((l) => JSON.stringify(l)).join('\n') + '\n',
    );
    const out = join(tmp.dir, 'empty');
    const s = run(['denoise', ...NIV2_FILES, '--candidates', cands, '--scorer', FIXTURE, ...SCORE, '-o', out, '--cache', join(tmp.dir, 'cache.sqlite')], 6);
    expect(s.tasks).toMatchObject({ ok: 1, failed: 1 });
    expect(s.failures[0]).toMatchObject({ task: 'task1411_dart_subject_identification' });
    expect(s.failures[0].reason).toMatch(/all 2 candidates are empty/);
    const [p] = jsonl<{ chosen: number; candidates: { definition: string; meanCe: number | null; rank: number | null; kept: boolean }[] }>(join(out, 'provenance.jsonl'));
    expect(p.candidates.map((c) => c.definition)).toEqual(['', 'Identify the object of the triple.', '', 'Name it.']);
    expect(p.candidates.map((c) => c.rank === null)).toEqual([true, false, true, false]);
    expect(p.candidates[0].meanCe).toBeNull();
    expect([1, 3]).toContain(p.chosen);
    expect(p.candidates[p.chosen].kept).toBe(true);
  });

  it('a second task with the same id is reported, not written twice', () => {
    const out = join(tmp.dir, 'dup.jsonl');
    const s = run(['transfer', P3_FILES[0], P3_FILES[0], '--model', FIXTURE, ...GEN, '--threads', '1', '-o', out, '--cache', join(tmp.dir, 'cache.sqlite')], 6);
    expect(s.tasks).toMatchObject({ ok: 1, failed: 1 });
    expect(s.failures[0].reason).toMatch(/a task with the id "p3\/imdb_Reviewer_Enjoyment_Yes_No" was already read/);
    expect(jsonl(out)).toHaveLength(1);
  });
});
