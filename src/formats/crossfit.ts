// CrossFit TSV: one instance per line, `input<TAB>output[<TAB>more answers]`, optionally with the
// task name in front of the input as at training time (` [anli] premise: ...`). Inputs are field
// prefixes joined by " [SEP] " (`premise: ... [SEP] hypothesis: ...`). A run of lines with the
// same task name is one task (a file without prefixes is one task named after the file); its
// source instruction is the task name and the field layout, e.g.
// `[anli] premise: {premise} [SEP] hypothesis: {hypothesis}`.
import { basename } from 'node:path';
import { readLines } from '../io/jsonl.js';
import { InputError } from '../errors.js';
import type { Instance, Task } from '../types.js';
import { DEFAULT_HEAD, groupConsecutive, type FormatModule, type Sniff } from './api.js';
import { inputDescription } from './names.js';

const PREFIX = /^ ?\[([^\]\t]+)\] /;

interface Line {
  task: string | null;
  input: string;
  outputs: string[];
  line: number;
}

/** A line without a TAB: a bad record of its own (the lines after it still read). */
interface BadLine {
  bad: InputError;
  line: number;
}

async function* lines(file: string): AsyncGenerator<Line | BadLine> {
  for await (const { text, line } of readLines(file)) {
    if (text.trim() === '') continue;
    const cols = text.split('\t');
    if (cols.length < 2) {
      yield { bad: new InputError({ file, line, field: 'output' }, 'expected input<TAB>output'), line };
      continue;
    }
    const m = PREFIX.exec(cols[0]);
    yield { task: m ? m[1] : null, input: m ? cols[0].slice(m[0].length) : cols[0], outputs: cols.slice(1), line };
  }
}

function good(l: Line | BadLine): Line {
  if ('bad' in l) throw l.bad;
  return l;
}

/** `premise: a [SEP] hypothesis: b` -> `premise: {premise} [SEP] hypothesis: {hypothesis}`. */
export function crossfitLayout(input: string): string {
  const parts = input.split(' [SEP] ').map((p) => {
    const m = /^([A-Za-z][\w ]{0,30}?):\s/.exec(p);
    return m ? `${m[1]}: {${m[1].trim().replace(/\s+/g, '_')}}` : '{input}';
  });
  return parts.join(' [SEP] ');
}

export const crossfit: FormatModule = {
  name: 'crossfit',
  description: inputDescription('crossfit'),
  detect(s: Sniff): boolean {
    if (s.ext === '.tsv') return true;
    const first = s.head.split('\n').find((l) => l.trim() !== '');
    return !!first && first.includes('\t') && !/^\s*[[{]/.test(first);
  },
  read(file, opts) {
    const name = basename(file).replace(/\.(tsv|txt)$/i, '');
    return groupConsecutive(
      () => lines(file),
      (l) => good(l).task ?? '',
      (l): Omit<Task, 'instances'> => {
        const first = good(l);
        const taskName = first.task ?? name;
        return {
          id: `crossfit/${taskName}`,
          source: { format: 'crossfit', file, extra: { dataset: taskName, prefixed: first.task !== null } },
          definition: `[${taskName}] ${crossfitLayout(first.input)}`,
          positiveExamples: [],
          negativeExamples: [],
        };
      },
      (b): Instance => {
        const l = good(b);
        return { id: `${l.task ?? name}-${l.line}`, input: l.input, outputs: l.outputs };
      },
      opts.head ?? DEFAULT_HEAD,
      opts,
    );
  },
};
