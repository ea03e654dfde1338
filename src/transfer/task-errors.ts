// Per-task failures of a pipeline run. Bad input in one task (a file that does not parse, a task
// with nothing to score, a prompt longer than the model) is recorded and the run goes on; the run
// then ends with exit code PARTIAL and an errors file beside the output:
//   OUT.errors.jsonl for OUT a folder, OUT-without-extension.errors.jsonl for a file,
// one JSON object per failed task: {"file", "line"?, "task"?, "reason"}. A run without failures
// removes a stale errors file of an earlier run, so the file always describes the latest run.
import { existsSync, rmSync } from 'node:fs';
import { InputError, isBadInput, type UitError } from '../errors.js';
import { JsonlWriter } from '../io/jsonl.js';

export interface TaskFailure {
  file: string;
  line?: number;
  /** The task id, when the failure happened after the task was read. */
  task?: string;
  reason: string;
}

/** Errors that concern one task's data (skipped and reported), as opposed to the run (fatal). */
export function isTaskError(err: unknown): err is UitError {
  return isBadInput(err);
}

export function failureOf(err: UitError, fallback: { file: string; task?: string }): TaskFailure {
  if (err instanceof InputError) {
    return {
      file: err.location.file,
      ...(err.location.line !== undefined ? { line: err.location.line } : {}),
      ...(fallback.task !== undefined ? { task: fallback.task } : {}),
      reason: err.location.field !== undefined ? `${err.location.field}: ${err.reason}` : err.reason,
    };
  }
  return { file: fallback.file, ...(fallback.task !== undefined ? { task: fallback.task } : {}), reason: err.message };
}

export function errorsPathFor(out: string): string {
  const trimmed = out.replace(/[\\/]+$/, '');
  return /\.(jsonl?|json)$/i.test(trimmed) ? trimmed.replace(/\.(jsonl?|json)$/i, '') + '.errors.jsonl' : `${trimmed}.errors.jsonl`;
}

/** Writes the failures atomically, or removes a stale file when there are none. */
export function writeErrorsFile(path: string, failures: readonly TaskFailure[]): string | null {
  if (failures.length === 0) {
    if (existsSync(path)) rmSync(path, { force: true });
    return null;
  }
  const w = new JsonlWriter(path);
  try {
    for (const f of failures) w.write(f);
    w.commit();
  } catch (err) {
    w.abort();
    throw err;
  }
  return path;
}

export function failureText(f: TaskFailure): string {
  return `${f.file}${f.line !== undefined ? `:${f.line}` : ''}${f.task !== undefined ? ` (${f.task})` : ''}: ${f.reason}`;
}
