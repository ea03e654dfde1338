// The tasks of a pipeline run, read so that one bad file does not end the run: a Ni-v2 folder is
// read file by file (a task file that does not parse is one failure, and the next file is read),
// other folders as planInput() splits them (one part per data file, or one part for a
// PromptSource/FLAN folder, whose templates and rows belong together). A reader error inside a
// part ends that part only; the failure names the file and line. Ni-v2 files in the UIT
// reference's layout of candidates (`<k>of<N>sample_<task>.json`, reference-layout.ts) are read
// as one task per task name, across every input, carrying their candidates.
import { basename, extname, relative } from 'node:path';
import { statSync } from 'node:fs';
import type { LazyTask, ReadOptions } from '../formats/api.js';
import { listTaskFiles, niv2 } from '../formats/niv2.js';
import { planInput, type InputPart } from '../formats/registry.js';
import { InputError, UitError } from '../errors.js';
import { groupCandidateFiles, readCandidateGroup, type FileCandidate } from './reference-layout.js';
import { isTaskError } from './task-errors.js';

export type InputItem =
  /** `candidates`: what the input carries (the reference's layout); absent for any other input. */
  | { kind: 'task'; task: LazyTask; part: string; candidates?: FileCandidate[] }
  | { kind: 'error'; part: string; error: UitError };

/** Expands a Ni-v2 folder part into one part per task file; other parts stay as they are. */
function splitParts(parts: InputPart[]): Array<InputPart & { root?: string }> {
  const out: Array<InputPart & { root?: string }> = [];
  for (const p of parts) {
    if (p.format === niv2 && statSync(p.path).isDirectory()) {
      for (const f of listTaskFiles(p.path, ['.json', '.jsonl'])) out.push({ format: niv2, path: f, root: p.path });
    } else out.push(p);
  }
  return out;
}

/**
 * The id a Ni-v2 folder reader gives a task of file `file`: the path relative to the folder,
 * without the extension (a file read alone is named by its base name only).
 */
function folderId(task: LazyTask, file: string, root: string): LazyTask {
  const base = basename(file).replace(/\.jsonl?$/i, '');
  const rel = relative(root, file).split('\\').join('/').replace(/\.jsonl?$/i, '');
  if (rel === base) return task;
  const id = task.task.id;
  let fixed = id;
  if (extname(file).toLowerCase() === '.json' && id === base) fixed = rel;
  else if (id.startsWith(`${base}/`) && /^\d+$/.test(id.slice(base.length + 1))) fixed = `${rel}/${id.slice(base.length + 1)}`;
  return fixed === id ? task : { ...task, task: { ...task.task, id: fixed } };
}

/**
 * Every task of `inputs`, in order, with reader failures as items instead of exceptions: a bad
 * record (a line, an array element, a template) is one failed task and the reader reads on; a
 * failure that ends a file says so, and how many tasks of it were read before.
 */
export async function* readTasks(inputs: readonly string[], from: string | undefined, opts: ReadOptions): AsyncGenerator<InputItem> {
  const bad: UitError[] = [];
  const readOpts: ReadOptions = { ...opts, onBadRecord: (err) => bad.push(err) };
  type Planned = { kind: 'part'; part: InputPart & { root?: string } } | { kind: 'error'; part: string; error: UitError };
  const planned: Planned[] = [];
  for (const input of inputs) {
    try {
      for (const part of splitParts(planInput(input, from))) planned.push({ kind: 'part', part });
    } catch (err) {
      if (!isTaskError(err)) throw err;
      planned.push({ kind: 'error', part: input, error: err });
    }
  }
  const items = groupCandidateFiles(planned, (p) => (p.kind === 'part' && p.part.format === niv2 && !isFolder(p.part.path) ? p.part : null));
  for (const item of items) {
    if (item.kind === 'error') {
      yield item;
      continue;
    }
    if (item.kind === 'candidate-group') {
      try {
        const { task, candidates } = await readCandidateGroup(item);
        yield { kind: 'task', task, part: item.files[0], candidates };
      } catch (err) {
        if (!isTaskError(err)) throw err;
        yield { kind: 'error', part: item.files[0], error: err };
      }
      continue;
    }
    const part = item.part;
    let read = 0;
    try {
      for await (const t of part.format.read(part.path, readOpts)) {
        // the reader reports a bad record before it reads on to the next task
        for (const error of bad.splice(0)) yield { kind: 'error', part: part.path, error };
        read++;
        yield { kind: 'task', task: part.root ? folderId(t, part.path, part.root) : t, part: part.path };
      }
      for (const error of bad.splice(0)) yield { kind: 'error', part: part.path, error };
    } catch (err) {
      for (const error of bad.splice(0)) yield { kind: 'error', part: part.path, error };
      if (!isTaskError(err)) throw err;
      yield { kind: 'error', part: part.path, error: read > 0 ? endsFile(err, read) : err };
    }
  }
}

/** The failure that ended a file after `read` tasks of it: the tasks after it were not read. */
function endsFile(err: UitError, read: number): UitError {
  const note = `; reading stopped here, after ${read} task${read === 1 ? '' : 's'} of this file: the rest of it was not read`;
  if (err instanceof InputError) return new InputError(err.location, err.reason + note, { cause: err });
  return new UitError(err.message + note, err.exitCode, { cause: err });
}

function isFolder(path: string): boolean {
  return statSync(path).isDirectory();
}
