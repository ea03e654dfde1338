// `uit convert` as a library function: read -> transfer (a pluggable method) -> write, with a
// provenance line per task in a sidecar. Everything is staged: on any error nothing appears at
// the output (stdout output excepted, which streams by nature).
import type { Writable } from 'node:stream';
import type { LazyTask, ReadOptions, Skipped, TargetFormat } from '../formats/api.js';
import { planInput, writerByName } from '../formats/registry.js';
import { createProgress } from '../progress.js';
import type { FormatName } from '../types.js';
import './heuristic.js';
import { transferMethod } from './method.js';
import { outputName } from './output-name.js';

export interface ConvertOptions extends ReadOptions {
  /** One or more files or folders, read in order into one output. */
  input: string | string[];
  to: TargetFormat;
  from?: string;
  /** Folder, .json or .jsonl; undefined writes JSONL to `stdout`. */
  out?: string;
  /** A registered transfer method (default "heuristic"). */
  method?: string;
  /** Positive Examples taken from the first instances when a Ni-v2 task has none (default 2). */
  examples?: number;
  stdout?: Writable;
  /** No progress bar (--json, tests). */
  quiet?: boolean;
  /** Replace an existing output folder (a uit output) as a whole instead of refusing it (`--force`). */
  force?: boolean;
  /** Called after each task is written; `output` is where the writer put it (a path, or `-#N` on stdout). */
  onTask?: (info: { id: string; output: string; instances: number }) => void;
}

export interface ConvertSummary {
  input: string[];
  from: FormatName[];
  to: TargetFormat;
  out: string | null;
  method: string;
  tasks: number;
  instances: number;
  /** Tasks per provenance method actually applied (identity, heuristic, ...). */
  methods: Record<string, number>;
  provenance: string | null;
  skipped: Skipped[];
}

/** Counts instances as the writer streams them. */
function counting(t: LazyTask, counter: { n: number }): LazyTask {
  return {
    ...t,
    instances: async function* () {
      counter.n = 0;
      for await (const inst of t.instances()) {
        counter.n++;
        yield inst;
      }
    },
  };
}

export async function convert(opts: ConvertOptions): Promise<ConvertSummary> {
  const methodName = opts.method ?? 'heuristic';
  const method = transferMethod(methodName);
  const inputs = Array.isArray(opts.input) ? opts.input : [opts.input];
  const parts = inputs.flatMap((i) => planInput(i, opts.from));
  const skipped: Skipped[] = [];
  const readOpts: ReadOptions = { ...opts, onSkip: (s) => skipped.push(s) };
  const writer = writerByName(opts.to).open({ out: opts.out, stdout: opts.stdout, replace: opts.force });
  const prov = writer.provenance;
  const summary: ConvertSummary = {
    input: inputs,
    from: [...new Set(parts.map((p) => p.format.name))],
    to: opts.to,
    out: opts.out ?? null,
    method: methodName,
    tasks: 0,
    instances: 0,
    methods: {},
    provenance: writer.provenancePath ?? null,
    skipped,
  };
  const bar = createProgress({ label: 'convert', total: parts.length, quiet: opts.quiet, extraFormat: '{tasks} tasks', payload: { tasks: 0 } });
  try {
    for (const part of parts) {
      for await (const lazy of part.format.read(part.path, readOpts)) {
        const { task, provenance } = await method(lazy, { target: opts.to, examples: opts.examples ?? 2 });
        const counter = { n: 0 };
        const output = await writer.write(counting(task, counter));
        // relative to the output, as the model method writes it (output-name.ts)
        prov?.write({ id: task.task.id, output: opts.out === undefined ? output : outputName(opts.out, output), ...provenance });
        summary.tasks++;
        summary.instances += counter.n;
        summary.methods[provenance.method] = (summary.methods[provenance.method] ?? 0) + 1;
        opts.onTask?.({ id: task.task.id, output, instances: counter.n });
      }
      bar.tick(1, { tasks: summary.tasks });
    }
    writer.commit();
  } catch (err) {
    writer.abort();
    throw err;
  } finally {
    bar.stop();
  }
  return summary;
}
