// The reader/writer contract shared by every format (documented in docs/formats.md).
//
// A task's instances can be a whole JSONL file (P3, PromptSource rows, FLAN rows), so readers
// hand out a LazyTask: the task with its first instances already read, plus a way to stream all
// of them again from the source. Writers consume LazyTasks and stream instances to disk, so
// converting a file larger than memory never holds more than the head.
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
  /** Moves everything into place. Nothing is visible at the output before this. */
  commit(): void;
  /** Removes everything written so far. */
  abort(): void;
  /** Where the provenance sidecar goes (undefined: stdout output, no sidecar). */
  readonly provenancePath?: string;
}

export interface OpenOptions {
  /** Output path: a folder, a .json file or a .jsonl file; undefined means stdout. */
  out?: string;
  /** Where stdout output goes (tests pass their own). */
  stdout?: NodeJS.WritableStream;
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

/** The same LazyTask without its first `n` instances (e.g. moved to Positive Examples). */
export function dropFirstInstances(t: LazyTask, n: number, task: Task): LazyTask {
  if (t.complete) return lazyFromTask({ ...task, instances: t.task.instances.slice(n) });
  return {
    task: { ...task, instances: t.task.instances.slice(n) },
    complete: false,
    instances: async function* () {
      let i = 0;
      for await (const inst of t.instances()) if (i++ >= n) yield inst;
    },
  };
}

/** File-name-safe form of a task id; slashes become folders. */
export function idToRelPath(id: string, ext: string): string {
  const parts = id
    .split('/')
    .map((p) => p.replace(/[^A-Za-z0-9._=+-]/g, '_'))
    .map((p) => (p === '' || p === '.' || p === '..' ? '_' : p));
  return parts.join('/') + ext;
}

/**
 * Tasks made of consecutive records that share a key (Alpaca records with the same
 * instruction), streamed: a group's instances are
 * re-read from its first record when written, so a group larger than memory converts.
 * `open` must restart the record stream from the beginning each time.
 */
export async function* groupConsecutive<R>(
  open: () => AsyncIterable<R>,
  key: (r: R) => string,
  meta: (first: R, index: number) => Omit<Task, 'instances'>,
  toInstance: (r: R, index: number) => Instance,
  head = DEFAULT_HEAD,
): AsyncGenerator<LazyTask> {
  let index = -1;
  let current: { key: string; start: number; first: R; head: Instance[]; complete: boolean } | null = null;
  const emit = (g: NonNullable<typeof current>): LazyTask => {
    const task: Task = { ...meta(g.first, g.start), instances: g.head };
    if (g.complete) return lazyFromTask(task);
    const { start, key: k } = g;
    return {
      task,
      complete: false,
      instances: async function* () {
        let i = -1;
        for await (const r of open()) {
          i++;
          if (i < start) continue;
          if (key(r) !== k) break;
          yield toInstance(r, i);
        }
      },
    };
  };
  for await (const r of open()) {
    index++;
    const k = key(r);
    if (current && current.key === k) {
      if (current.head.length < head) current.head.push(toInstance(r, index));
      else current.complete = false;
      continue;
    }
    if (current) yield emit(current);
    current = { key: k, start: index, first: r, head: [toInstance(r, index)], complete: true };
  }
  if (current) yield emit(current);
}
