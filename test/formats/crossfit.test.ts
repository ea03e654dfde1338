// CrossFit TSV: prefixes decided per file, a task's lines grouped wherever they are, answers in
// tab-separated columns.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { materialize, type LazyTask } from '../../src/formats/api.js';
import { crossfit } from '../../src/formats/crossfit.js';
import { convert } from '../../src/transfer/convert.js';

const tmp = mkdtempSync(join(tmpdir(), 'uit-crossfit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function tsv(name: string, lines: string[]): string {
  const f = join(tmp, name);
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

async function read(f: string, head?: number): Promise<LazyTask[]> {
  const out: LazyTask[] = [];
  for await (const t of crossfit.read(f, head === undefined ? {} : { head })) out.push(t);
  return out;
}

describe('CrossFit prefixes are decided per file', () => {
  it('a plain file whose input starts with [CLS] (or " [CLS] ") is one task, the brackets part of the input', async () => {
    const f = tsv('plain.tsv', ['question: a?\tyes', '[CLS] question: b?\tno', ' [CLS] question: c?\tno']);
    const tasks = await read(f);
    expect(tasks.map((t) => t.task.id)).toEqual(['crossfit/plain']);
    expect(tasks[0].task.instances.map((i) => i.input)).toEqual(['question: a?', '[CLS] question: b?', ' [CLS] question: c?']);
    expect(tasks[0].task.source.extra.prefixed).toBe(false);
  });

  it('the prefix is " [task] " with its space: "[anli] ..." on every line is no prefix', async () => {
    const f = tsv('nospace.tsv', ['[anli] premise: a [SEP] hypothesis: b\tentailment', '[anli] premise: c [SEP] hypothesis: d\tneutral']);
    const [t] = await read(f);
    expect(t.task.id).toBe('crossfit/nospace');
    expect(t.task.instances[0].input).toBe('[anli] premise: a [SEP] hypothesis: b');
  });
});

describe("a task is all the lines with its name, wherever they are", () => {
  const lines = [
    ' [anli] premise: a [SEP] hypothesis: b\tentailment',
    ' [squad] question: q? [SEP] context: c\tx\tthe x',
    ' [anli] premise: c [SEP] hypothesis: d\tneutral',
  ];

  it('anli, squad, anli: two tasks, anli with lines 1 and 3', async () => {
    for (const head of [undefined, 1]) {
      const tasks = await Promise.all((await read(tsv('mixed.tsv', lines), head)).map(materialize));
      expect(tasks.map((t) => t.id)).toEqual(['crossfit/anli', 'crossfit/squad']);
      expect(tasks[0].instances.map((i) => [i.id, i.input, i.outputs])).toEqual([
        ['anli-1', 'premise: a [SEP] hypothesis: b', ['entailment']],
        ['anli-3', 'premise: c [SEP] hypothesis: d', ['neutral']],
      ]);
      // several answers are several tab-separated columns, as CrossFit writes them
      expect(tasks[1].instances[0].outputs).toEqual(['x', 'the x']);
    }
  });

  it('converts to a Ni-v2 folder, one file per task', async () => {
    const out = join(tmp, 'mixed-out');
    const s = await convert({ input: tsv('mixed2.tsv', lines), to: 'niv2', out, quiet: true, examples: 0 });
    expect(s.tasks).toBe(2);
    const anli = JSON.parse(readFileSync(join(out, 'crossfit/anli.json'), 'utf8'));
    expect(anli.Instances.map((i: { output: string[] }) => i.output)).toEqual([['entailment'], ['neutral']]);
  });
});
