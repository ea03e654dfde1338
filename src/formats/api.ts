// The reader/writer contract shared by every format (documented in docs/formats.md).
//
// A task's instances can be a whole JSONL file (P3, PromptSource rows, FLAN rows), so readers
// hand out a LazyTask: the task with its first instances already read, plus a way to stream all
// of them again from the source. Writers consume LazyTasks and stream instances to disk, so
// converting a file larger than memory never holds more than the head.
import { isBadInput, type UitError } from '../errors.js';
import type { FormatName, Instance, Task } from '../types.js';

export interface LazyTask {
  /** The task; `task.instances` holds the first instances (every instance when `complete`). */
  task: Task;
  /** True when `task.instances` is every instance of the task. */
  complete: boolean;
  /** Streams every instance from the start; may be called more than once. */
  instances(): AsyncIterable<Instance>;
}

/** A record a reader left out on purpose (e.g. a multi-turn ShareGPT conversation). */
export interface Skipped {
  file: string;
  line?: number;
  id?: string;
  reason: string;
}

export interface ReadOptions {
  /** Dataset rows (JSONL) for template formats: PromptSource templates.yaml, FLAN templates. */
  rows?: string;
  /** FLAN: the dataset key to use from a templates file that has many. */
  dataset?: string;
  /** How many instances a streamed task reads ahead into `task.instances` (default 64). */
  head?: number;
  /** PromptSource: cut each `{{ }}` value to 2048 characters as PromptSource's apply() does (default true). */
  truncate?: boolean;
  /** Seed for template helpers that pick at random (PromptSource `choice`, `random`). */
  seed?: number;
  /** Told about every record the reader skips on purpose. */
  onSkip?: (skipped: Skipped) => void;
  /**
   * Told about a task that fails to read when the reader can read on (the next record, line or
   * template is another task): with it, such a failure is reported here and reading goes on;
   * without it, the reader throws. A failure that leaves nothing to read on from (a JSON array
   * whose brackets break, a file that cannot be opened) is always thrown.
   */
  onBadRecord?: (error: UitError) => void;
}

/** Reports a bad task through `opts.onBadRecord` when set and the error is bad input; else throws it. */
export function reportBadRecord(opts: Pick<ReadOptions, 'onBadRecord'>, err: unknown): void {
  if (opts.onBadRecord && isBadInput(err)) opts.onBadRecord(err);
  else throw err;
}

export const DEFAULT_HEAD = 64;

export interface FormatReader {
  /** Reads one input file (or, for formats that define one, a folder) as tasks, in order. */
  read(file: string, opts: ReadOptions): AsyncIterable<LazyTask>;
}

/** What detection looks at: the path and the first bytes of the content. */
export interface Sniff {
  file: string;
  /** Lower-case extension with the dot, e.g. ".jsonl"; "" for none. */
  ext: string;
  /** The first 64 KiB as text. */
  head: string;
  /** Whether `head` is the whole file. */
  whole: boolean;
}

export interface FormatModule extends FormatReader {
  readonly name: FormatName;
  /** One line for `--help` and error messages. */
  readonly description: string;
  /** True when the content looks like this format. Detectors run in registry order. */
  detect(s: Sniff): boolean;
}

// ---------------------------------------------------------------------------------------------
// Writers

export type TargetFormat = 'niv2' | 'flan' | 'alpaca';

export interface TaskWriter {
  /** Writes one task, streaming its instances; returns where it went (file, or file#line). */
  write(t: LazyTask): Promise<string>;
  /** Moves everything into place, the provenance sidecar too. Nothing is visible at the output before this. */
  commit(): void;
  /** Removes everything written so far. */
  abort(): void;
  /** Where the provenance sidecar goes (undefined: stdout output, no sidecar). */
  readonly provenancePath?: string;
  /**
   * The provenance sidecar, one JSON line per task, committed and aborted with the output (staged
   * inside a folder output, so the folder appears whole); present exactly when provenancePath is.
   */
  readonly provenance?: { write(record: unknown): void };
}

export interface OpenOptions {
  /** Output path: a folder, a .json file or a .jsonl file; undefined means stdout. */
  out?: string;
  /** Where stdout output goes (tests pass their own). */
  stdout?: NodeJS.WritableStream;
  /**
   * A folder output that exists and holds files is refused; with `replace`, a uit output folder
   * there (one with provenance.jsonl) is replaced as a whole at commit (`--force`).
   */
  replace?: boolean;
}

export interface FormatWriter {
  readonly name: TargetFormat;
  readonly description: string;
  open(opts: OpenOptions): TaskWriter;
}

// ---------------------------------------------------------------------------------------------
// Helpers for readers and writers

/** A LazyTask whose instances are all in memory. */
export function lazyFromTask(task: Task): LazyTask {
  return {
    task,
    complete: true,
    instances: async function* () {
      yield* task.instances;
    },
  };
}

/** Reads every instance into `task.instances` (for small tasks and tests). */
export async function materialize(t: LazyTask): Promise<Task> {
  if (t.complete) return t.task;
  const instances: Instance[] = [];
  for await (const inst of t.instances()) instances.push(inst);
  return { ...t.task, instances };
}

/**
 * Builds a LazyTask from a re-startable instance stream: reads up to `head` instances now;
 * if the stream ended within them, the task is complete.
 */
export async function lazyFromStream(
  task: Omit<Task, 'instances'>,
  stream: () => AsyncIterable<Instance>,
  head = DEFAULT_HEAD,
): Promise<LazyTask> {
  const first: Instance[] = [];
  let complete = true;
  for await (const inst of stream()) {
    if (first.length === head) {
      complete = false;
      break;
    }
    first.push(inst);
  }
  const full: Task = { ...task, instances: first };
  return complete ? lazyFromTask(full) : { task: full, complete: false, instances: stream };
}

/**
 * The same LazyTask without the instances at `indices` (positions in the whole stream; e.g. moved
 * to Positive Examples). `task` replaces the task's other fields.
 */
export function dropInstancesAt(t: LazyTask, indices: ReadonlySet<number>, task: Task): LazyTask {
  const kept = t.task.instances.filter((_, i) => !indices.has(i));
  if (t.complete) return lazyFromTask({ ...task, instances: kept });
  return {
    task: { ...task, instances: kept },
    complete: false,
    instances: async function* () {
      let i = 0;
      for await (const inst of t.instances()) if (!indices.has(i++)) yield inst;
    },
  };
}

/** Names uit writes beside tasks in an output folder (src/formats/niv2.ts isSidecar reads them back as such). */
const RESERVED = /^(provenance\.jsonl|uit-summary\.json|.*\.provenance\.jsonl|.*\.errors\.jsonl)$/;

/**
 * File-name-safe form of a task id; slashes become folders. A component is never empty, `.`,
 * `..` or hidden, and the file never takes a sidecar's name, so task files do not collide with
 * the sidecars or leave the output folder (two ids that meet on one name are refused by the writer).
 */
export function idToRelPath(id: string, ext: string): string {
  const parts = id
    .split('/')
    .map((p) => p.replace(/[^A-Za-z0-9._=+-]/g, '_'))
    .map((p) => (p === '' || p === '.' || p === '..' ? '_' : p.replace(/^\./, '_')));
  const last = parts.length - 1;
  if (RESERVED.test(parts[last] + ext)) parts[last] = `_${parts[last]}`;
  return parts.join('/') + ext;
}

/**
 * Tasks made of consecutive records that share a key (Alpaca records with the same
 * instruction), streamed: a group's instances are
 * re-read from its first record when written, so a group larger than memory converts.
 * `open` must restart the record stream from the beginning each time. A record whose key or
 * instance cannot be made (bad input) ends the group before it and is a bad task of its own
 * (`reportBadRecord`): the records after it still group and read.
 */
export async function* groupConsecutive<R>(
  open: () => AsyncIterable<R>,
  key: (r: R) => string,
  meta: (first: R, index: number) => Omit<Task, 'instances'>,
  toInstance: (r: R, index: number) => Instance,
  head = DEFAULT_HEAD,
  opts: Pick<ReadOptions, 'onBadRecord'> = {},
): AsyncGenerator<LazyTask> {
  let index = -1;
  let current: { key: string; start: number; first: R; head: Instance[]; complete: boolean } | null = null;
  const emit = (g: NonNullable<typeof current>, end: number): LazyTask => {
    const task: Task = { ...meta(g.first, g.start), instances: g.head };
    if (g.complete) return lazyFromTask(task);
    const { start } = g;
    return {
      task,
      complete: false,
      instances: async function* () {
        let i = -1;
        for await (const r of open()) {
          i++;
          if (i < start) continue;
          if (i >= end) break;
          yield toInstance(r, i);
        }
      },
    };
  };
  const records = open()[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<R>;
    try {
      next = await records.next();
    } catch (err) {
      // the file ends here (e.g. its brackets break): the group read so far is whole
      if (current) yield emit(current, index + 1);
      throw err;
    }
    if (next.done) break;
    const r = next.value;
    index++;
    let k: string;
    let inst: Instance | undefined;
    try {
      k = key(r);
      const sameGroup = current !== null && current.key === k;
      if (!sameGroup || current!.head.length < head) inst = toInstance(r, index);
    } catch (err) {
      if (current) yield emit(current, index);
      current = null;
      reportBadRecord(opts, err);
      continue;
    }
    if (current && current.key === k) {
      if (inst) current.head.push(inst);
      else current.complete = false;
      continue;
    }
    if (current) yield emit(current, index);
    current = { key: k, start: index, first: r, head: [inst!], complete: true };
  }
  if (current) yield emit(current, index + 1);
}
