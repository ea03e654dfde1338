// Reading uit's own outputs back: the files uit writes beside or inside an output that are not
// tasks (provenance sidecars, the pipeline's OUT.errors.jsonl) are skipped by `uit convert` and
// `uit compare`, whatever output layout produced them.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCompareSide } from '../../src/compare/read.js';
import { isSidecar } from '../../src/formats/niv2.js';
import { planInput, readInput } from '../../src/formats/registry.js';
import { convert } from '../../src/transfer/convert.js';
import { errorsPathFor, writeErrorsFile } from '../../src/transfer/task-errors.js';

const NIV2 = '../shared/data/niv2/tasks';
const TASKS = ['task1147_country_currency', 'task1413_dart_object_identification'];
const tmp = mkdtempSync(join(tmpdir(), 'uit-sidecars-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A collection of two earlier runs: a folder output and a JSONL output, each with its sidecars. */
const runs = join(tmp, 'runs');
beforeAll(async () => {
  const input = TASKS.map((t) => join(NIV2, `${t}.json`));
  for (const out of [join(runs, 'folder'), join(runs, 'lines.jsonl')]) {
    await convert({ input, to: 'niv2', out, quiet: true });
    // what a pipeline run with a failed task leaves beside its output
    writeErrorsFile(errorsPathFor(out), [{ file: 'broken.json', task: 'broken', reason: 'no instance with a non-empty output' }]);
  }
  expect(readdirSync(runs).sort()).toEqual(['folder', 'folder.errors.jsonl', 'lines.errors.jsonl', 'lines.jsonl', 'lines.provenance.jsonl']);
  expect(readdirSync(join(runs, 'folder')).sort()).toEqual(['provenance.jsonl', ...TASKS.map((t) => `${t}.json`)]);
});

describe('sidecars', () => {
  it('are known by name', () => {
    for (const name of ['provenance.jsonl', 'out.provenance.jsonl', 'out.errors.jsonl', 'uit-summary.json']) expect(isSidecar(name), name).toBe(true);
    for (const name of ['out.jsonl', 'errors.json', 'task1_errors.jsonl', 'provenance.json']) expect(isSidecar(name), name).toBe(false);
  });

  it('uit convert reads a folder of outputs back as its tasks only', async () => {
    const parts = planInput(runs);
    expect(parts.map((p) => p.format.name)).toEqual(['niv2']);
    const ids: string[] = [];
    for await (const t of readInput(runs)) ids.push(t.task.id);
    // the folder's files under their paths, then the JSONL's tasks by their ids
    expect(ids).toEqual([...TASKS.map((t) => `folder/${t}`), ...TASKS]);
    const s = await convert({ input: runs, to: 'niv2', out: join(tmp, 'again'), quiet: true });
    expect(s.tasks).toBe(4);
  });

  it('uit compare reads an output folder without its sidecars', () => {
    const side = readCompareSide(runs);
    expect([...side.tasks.keys()].sort()).toEqual([...TASKS, ...TASKS.map((t) => `folder/${t}`)].sort());
    expect([...readCompareSide(join(runs, 'folder')).tasks.keys()].sort()).toEqual(TASKS);
  });
});
