// CrossFit TSV (INK-USC/CrossFit): one instance per line, `input<TAB>answer[<TAB>answer...]`.
// CrossFit writes a task's several correct answers as more tab-separated columns
// (`"\t".join(answers)` in its tasks/*.py) and reads them back with `line.strip().split("\t")`;
// inputs are field prefixes joined by " [SEP] " (`premise: ... [SEP] hypothesis: ...`).
// At training time CrossFit puts the task name in front of the input, ` [anli] premise: ...`
// (with the leading space); a file of such lines holds several tasks.
//
// Whether a file uses prefixes is decided for the whole file: only when every line has one, so an
// input of a plain file that happens to start with ` [CLS] ` stays an input. A task is all the
// lines with its name, wherever they are in the file. Its source instruction is the task name
// and the field layout, e.g. `[anli] premise: {premise} [SEP] hypothesis: {hypothesis}`; a file
// without prefixes is one task named after the file.
import { basename } from 'node:path';
import { readLines } from '../io/jsonl.js';
import { InputError } from '../errors.js';
import type { Instance, Task } from '../types.js';
import { DEFAULT_HEAD, lazyFromTask, reportBadRecord, type FormatModule, type LazyTask, type ReadOptions, type Sniff } from './api.js';
import { inputDescription } from './names.js';

/** CrossFit's ` [task] ` in front of an input: " [{}] {}".format(task_name, input). */
const PREFIX = /^ \[([^\]\t]+)\] /;

interface Line {
  input: string;
  outputs: string[];
  line: number;
  /** A line without a TAB: it fails the task it belongs to (the other tasks of the file still read). */
  bad?: InputError;
}

async function* lines(file: string): AsyncGenerator<Line> {
  for await (const { text, line } of readLines(file)) {
    if (text.trim() === '') continue;
    const cols = text.split('\t');
    if (cols.length < 2) {
      yield { input: text, outputs: [], line, bad: new InputError({ file, line, field: 'output' }, 'expected input<TAB>output') };
      continue;
    }
    yield { input: cols[0], outputs: cols.slice(1), line };
  }
}

/** True when every line of the file starts with a ` [task] ` prefix (and there is a line). */
async function usesPrefixes(file: string): Promise<boolean> {
  let any = false;
  for await (const l of lines(file)) {
    if (!PREFIX.test(l.input)) return false;
    any = true;
  }
  return any;
}

/** `premise: a [SEP] hypothesis: b` -> `premise: {premise} [SEP] hypothesis: {hypothesis}`. */
export function crossfitLayout(input: string): string {
  const parts = input.split(' [SEP] ').map((p) => {
    const m = /^([A-Za-z][\w ]{0,30}?):\s/.exec(p);
    return m ? `${m[1]}: {${m[1].trim().replace(/\s+/g, '_')}}` : '{input}';
  });
  return parts.join(' [SEP] ');
}

async function* readCrossfit(file: string, head: number, opts: Pick<ReadOptions, 'onBadRecord'>): AsyncGenerator<LazyTask> {
  const name = basename(file).replace(/\.(tsv|txt)$/i, '');
  const prefixed = await usesPrefixes(file);
  const split = (l: Line): { task: string; inst: Instance } => {
    const m = prefixed ? PREFIX.exec(l.input) : null;
    const task = m ? m[1] : name;
    return { task, inst: { id: `${task}-${l.line}`, input: m ? l.input.slice(m[0].length) : l.input, outputs: l.outputs } };
  };
  // the tasks in the order of their first line, each with its first `head` instances
  const groups = new Map<string, { head: Instance[]; complete: boolean; bad?: InputError }>();
  for await (const l of lines(file)) {
    const { task, inst } = split(l);
    let g = groups.get(task);
    if (!g) groups.set(task, (g = { head: [], complete: true }));
    if (l.bad) g.bad ??= l.bad;
    else if (g.head.length < head) g.head.push(inst);
    else g.complete = false;
  }
  for (const [taskName, g] of groups) {
    if (g.bad) {
      reportBadRecord(opts, g.bad); // the task with a broken line fails; the others are read
      continue;
    }
    const meta: Omit<Task, 'instances'> = {
      id: `crossfit/${taskName}`,
      source: { format: 'crossfit', file, extra: { dataset: taskName, prefixed } },
      definition: `[${taskName}] ${crossfitLayout(g.head[0].input)}`,
      positiveExamples: [],
      negativeExamples: [],
    };
    const task: Task = { ...meta, instances: g.head };
    if (g.complete) {
      yield lazyFromTask(task);
      continue;
    }
    // a task larger than the head streams its lines from the file again when written
    yield {
      task,
      complete: false,
      instances: async function* () {
        for await (const l of lines(file)) {
          const { task: t, inst } = split(l);
          if (t === taskName && !l.bad) yield inst;
        }
      },
    };
  }
}

export const crossfit: FormatModule = {
  name: 'crossfit',
  description: inputDescription('crossfit'),
  detect(s: Sniff): boolean {
    if (s.ext === '.tsv') return true;
    const first = s.head.split('\n').find((l) => l.trim() !== '');
    return !!first && first.includes('\t') && !/^\s*[[{]/.test(first);
  },
  read: (file, opts) => readCrossfit(file, opts.head ?? DEFAULT_HEAD, opts),
};
