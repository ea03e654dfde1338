// The tasks of a pipeline run, read so that one bad file does not end the run: a Ni-v2 folder is
// read file by file (a task file that does not parse is one failure, and the next file is read),
// other folders as planInput() splits them (one part per data file, or one part for a
// PromptSource/FLAN folder, whose templates and rows belong together). A reader error inside a
// part ends that part only; the failure names the file and line.
import { basename, extname, relative } from 'node:path';
import { statSync } from 'node:fs';
import type { LazyTask, ReadOptions } from '../formats/api.js';
import { listTaskFiles, niv2 } from '../formats/niv2.js';
import { planInput, type InputPart } from '../formats/registry.js';
import { InputError, UitError } from '../errors.js';
import { isTaskError } from './task-errors.js';

export type InputItem =
  | { kind: 'task'; task: LazyTask; part: string }
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
  for (const input of inputs) {
    let parts: Array<InputPart & { root?: string }>;
    try {
      parts = splitParts(planInput(input, from));
    } catch (err) {
      if (!isTaskError(err)) throw err;
      yield { kind: 'error', part: input, error: err };
      continue;
    }
    for (const part of parts) {
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
}

/** The failure that ended a file after `read` tasks of it: the tasks after it were not read. */
function endsFile(err: UitError, read: number): UitError {
  const note = `; reading stopped here, after ${read} task${read === 1 ? '' : 's'} of this file: the rest of it was not read`;
  if (err instanceof InputError) return new InputError(err.location, err.reason + note, { cause: err });
  return new UitError(err.message + note, err.exitCode, { cause: err });
}
