// The library's public face (`import { formats } from 'uit'`): the format layer and convert(),
// whose transfer methods live a floor above it, reach users through one namespace.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formats } from '../src/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'uit-library-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('formats namespace', () => {
  it('converts a real P3 task with a transfer method registered through it', async () => {
    let calls = 0;
    formats.registerTransferMethod('library-test', async (t, ctx) => {
      calls++;
      return formats.heuristicTransfer(t, ctx);
    });
    expect(formats.transferMethodNames()).toContain('library-test');
    const out = join(tmp, 'out.jsonl');
    const summary = await formats.convert({ input: 'examples/p3/imdb_Reviewer_Enjoyment_Yes_No.jsonl', to: 'niv2', out, method: 'library-test' });
    expect(summary.tasks).toBe(1);
    const task = JSON.parse(readFileSync(out, 'utf8').split('\n')[0]);
    expect(task.Definition[0].length).toBeGreaterThan(10);
    expect(task.Instances.length).toBeGreaterThan(0);
    expect(calls).toBe(1);
    expect(summary.method).toBe('library-test');
    expect(summary.methods).toEqual({ heuristic: 1 });
    expect(readFileSync(summary.provenance!, 'utf8')).toContain('"heuristic"');
  });

  it('still carries the readers, the writers and the template texts', () => {
    expect(formats.FORMAT_NAMES).toContain('niv2');
    expect(typeof formats.writerByName('niv2').open).toBe('function');
    expect(formats.alignPrompts(['Title: a b\nIs it good?', 'Title: c\nIs it good?'])).toBe('Title: {title}\nIs it good?');
  });
});
