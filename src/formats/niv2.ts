// Super-NaturalInstructions (Ni-v2) task files: read and written losslessly.
//
// A released task file is a JSON object (Python json.dump, indent 4, ensure_ascii=False) with
// `Definition` (list of strings), `Positive Examples` / `Negative Examples` ({input, output,
// explanation}), `Instances` ({id, input, output: [..]}) and metadata keys. The reader keeps
// every key it does not model in `source.extra`, with the modeled keys as position markers,
// and the writer puts everything back in the same order with the same bytes.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join, relative } from 'node:path';
import { InputError, UitError, ExitCode } from '../errors.js';
import { JsonlWriter, readJsonlItems } from '../io/jsonl.js';
import { JsonSyntaxError, parseJsonLazily, type LineLocator } from '../io/located-json.js';
import { AtomicWriter } from '../io/atomic.js';
import { StagedDir } from '../io/staged-dir.js';
import { dumps } from '../io/pyjson.js';
import type { Example, Instance, Task } from '../types.js';
import {
  idToRelPath,
  lazyFromTask,
  reportBadRecord,
  type FormatModule,
  type FormatWriter,
  type LazyTask,
  type OpenOptions,
  type ReadOptions,
  type Sniff,
  type TaskWriter,
} from './api.js';
import { Checker, type FieldPath } from './check.js';
import { inputDescription, targetDescription } from './names.js';

export const DEFINITION = 'Definition';
export const POSITIVE = 'Positive Examples';
export const NEGATIVE = 'Negative Examples';
export const INSTANCES = 'Instances';
const MODELED = new Set([DEFINITION, POSITIVE, NEGATIVE, INSTANCES]);

/** The key order of released task files, used for tasks that come from other formats. */
export const NIV2_KEY_ORDER = [
  'Contributors',
  'Source',
  'URL',
  'Categories',
  'Reasoning',
  DEFINITION,
  'Input_language',
  'Output_language',
  'Instruction_language',
  'Domains',
  POSITIVE,
  NEGATIVE,
  INSTANCES,
  'Instance License',
];

/**
 * How a task file was laid out (indentation, ASCII escaping, final newline), so it is written
 * back the same way. Kept under a symbol in `source.extra`: invisible to Object.entries and
 * JSON, carried along by `{ ...extra }`.
 */
export interface JsonTextStyle {
  /** The indentation unit; undefined for a one-line document. */
  indent?: string;
  /** Separators of a one-line document. */
  separators?: [string, string];
  ensureAscii: boolean;
  trailingNewline: boolean;
}

export const NIV2_STYLE: unique symbol = Symbol('uit.niv2.style');

/** The released layout: json.dump(indent=4, ensure_ascii=False) and a newline. */
export const RELEASED_STYLE: JsonTextStyle = { indent: '    ', ensureAscii: false, trailingNewline: true };

export function jsonTextStyle(text: string): JsonTextStyle {
  const m = /^\{\r?\n([ \t]+)"/.exec(text);
  const ensureAscii = !/[^\x00-\x7f]/.test(text) && /\\u(00[89a-f]|0[1-9a-f][0-9a-f]|[1-9a-f][0-9a-f]{2})[0-9a-f]/i.test(text);
  const trailingNewline = text.endsWith('\n');
  if (m) return { indent: m[1], ensureAscii, trailingNewline };
  if (/^\{\s*\}/.test(text)) return { ...RELEASED_STYLE, ensureAscii, trailingNewline };
  // one line: Python's default separators unless the file is compact
  const compact = /^\{"[^"\\]*(\\.[^"\\]*)*":[^ ]/.test(text);
  return { separators: compact ? [',', ':'] : [', ', ': '], ensureAscii, trailingNewline };
}

function styleOf(task: Task): JsonTextStyle {
  const style = task.source.format === 'niv2' ? (task.source.extra as Record<symbol, unknown>)[NIV2_STYLE] : undefined;
  return (style as JsonTextStyle | undefined) ?? RELEASED_STYLE;
}

const EXAMPLE_KEYS = ['input', 'output', 'explanation'];
const INSTANCE_KEYS = ['id', 'input', 'output'];

/** A record's layout when it differs from the canonical keys in canonical order. */
function recordExtra(rec: Record<string, unknown>, canonical: string[]): Record<string, unknown> | undefined {
  const keys = Object.keys(rec);
  const standard = keys.length <= canonical.length && keys.every((k, i) => k === canonical[i]);
  if (standard) return undefined;
  const extra: Record<string, unknown> = {};
  for (const k of keys) extra[k] = canonical.includes(k) ? null : rec[k];
  return extra;
}

function readExample(c: Checker, v: unknown, path: FieldPath): Example {
  const o = c.obj(v, path);
  const ex: Example = {
    input: c.str(c.field(o, 'input', path), [...path, 'input']),
    output: c.str(c.field(o, 'output', path), [...path, 'output']),
  };
  const explanation = c.optStr(o.explanation, [...path, 'explanation']);
  if (explanation !== undefined) ex.explanation = explanation;
  const extra = recordExtra(o, EXAMPLE_KEYS);
  if (extra) ex.extra = extra;
  return ex;
}

function readInstance(c: Checker, v: unknown, path: FieldPath): Instance {
  const o = c.obj(v, path);
  const inst: Instance = {
    id: c.str(c.field(o, 'id', path), [...path, 'id']),
    input: c.str(c.field(o, 'input', path), [...path, 'input']),
    outputs: c.strList(c.field(o, 'output', path), [...path, 'output']),
  };
  const extra = recordExtra(o, INSTANCE_KEYS);
  if (extra) inst.extra = extra;
  return inst;
}

/** Turns one parsed Ni-v2 document into a Task (validating it). */
export function niv2DocToTask(c: Checker, doc: unknown, id: string, file: string): Task {
  const o = c.obj(doc, []);
  const defs = c.strList(c.field(o, DEFINITION, []), [DEFINITION]);
  if (defs.length === 0) c.fail([DEFINITION], 'expected at least one definition');
  const list = (key: string): unknown[] => (key in o ? c.arr(o[key], [key]) : []);
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    // Modeled keys stay as position markers; Definition keeps any definitions after the first.
    extra[k] = k === DEFINITION ? defs.slice(1) : MODELED.has(k) ? null : v;
  }
  return {
    id,
    source: { format: 'niv2', file, extra },
    definition: defs[0],
    positiveExamples: list(POSITIVE).map((e, i) => readExample(c, e, [POSITIVE, i])),
    negativeExamples: list(NEGATIVE).map((e, i) => readExample(c, e, [NEGATIVE, i])),
    instances: list(INSTANCES).map((e, i) => readInstance(c, e, [INSTANCES, i])),
  };
}

function parseJsonFile(file: string, label: string): { value: unknown; locator: LineLocator; text: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError({ file: label }, `cannot read: ${(err as Error).message}`);
  }
  try {
    return { ...parseJsonLazily(text), text };
  } catch (err) {
    if (err instanceof JsonSyntaxError) {
      throw new InputError({ file: label, line: err.line }, `malformed JSON at column ${err.column}: ${err.reason}`);
    }
    throw err;
  }
}

export { parseJsonFile };

function isHidden(name: string): boolean {
  return name.startsWith('.');
}

/** The task files of a folder, recursively, in a stable order (sidecars and hidden files left out). */
export function listTaskFiles(dir: string, exts: string[]): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new InputError({ file: d }, `cannot read the folder: ${code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
    }
    for (const name of names) {
      if (isHidden(name)) continue;
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (exts.includes(extname(name).toLowerCase()) && !isSidecar(name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/**
 * Files uit writes beside or inside an output that are not tasks, so that reading an output folder
 * back (`uit convert OUT`, `uit compare`) skips them: provenance sidecars (provenancePathFor), the
 * pipeline's errors file (`OUT.errors.jsonl`, src/transfer/task-errors.ts) and the demo's summary.
 */
export function isSidecar(name: string): boolean {
  return (
    name === 'provenance.jsonl' ||
    name.endsWith('.provenance.jsonl') ||
    name.endsWith('.errors.jsonl') ||
    name === 'uit-summary.json'
  );
}

async function* readNiv2(path: string, opts: ReadOptions): AsyncGenerator<LazyTask> {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw new InputError({ file: path }, 'cannot read: no such file or folder');
  }
  if (isDir) {
    for (const f of listTaskFiles(path, ['.json', '.jsonl'])) {
      const rel = relative(path, f).split('\\').join('/');
      yield* readNiv2File(f, rel.replace(/\.jsonl?$/i, ''), opts);
    }
    return;
  }
  yield* readNiv2File(path, basename(path).replace(/\.jsonl?$/i, ''), opts);
}

async function* readNiv2File(file: string, id: string, opts: ReadOptions): AsyncGenerator<LazyTask> {
  if (extname(file).toLowerCase() === '.jsonl') {
    // One task per line, as our JSONL writer produces: {"id": ..., <task keys>}; a bad line is one bad task.
    for await (const item of readJsonlItems(file)) {
      let task: Task;
      try {
        if ('error' in item) throw item.error;
        const { value, line } = item;
        const c = new Checker(file, value, undefined, line);
        const o = c.obj(value, []);
        const { id: lineId, ...doc } = o;
        const taskId = lineId === undefined ? `${id}/${line}` : c.str(lineId, ['id']);
        task = niv2DocToTask(c, doc, taskId, file);
      } catch (err) {
        reportBadRecord(opts, err);
        continue;
      }
      yield lazyFromTask(task);
    }
    return;
  }
  const { value, locator, text } = parseJsonFile(file, file);
  const task = niv2DocToTask(new Checker(file, value, locator), value, id, file);
  (task.source.extra as Record<symbol, unknown>)[NIV2_STYLE] = jsonTextStyle(text);
  yield lazyFromTask(task);
}

export const niv2: FormatModule = {
  name: 'niv2',
  description: inputDescription('niv2'),
  detect(s: Sniff): boolean {
    if (s.ext === '.jsonl') {
      const first = s.head.split('\n', 1)[0];
      return /"Definition"\s*:\s*\[/.test(first);
    }
    // Definition precedes the examples and instances in released files, so it is in the head.
    return /^\s*\{/.test(s.head) && /"Definition"\s*:\s*\[/.test(s.head);
  },
  read: (file, opts) => readNiv2(file, opts),
};

// ---------------------------------------------------------------------------------------------
// Writing

/** Puts a record's fields back in its source layout; canonical keys missing there go last. */
function writeRecord(
  canonical: Record<string, unknown>,
  extra: Record<string, unknown> | undefined,
  canonicalKeys: string[],
): Record<string, unknown> {
  if (!extra) return canonical;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(extra)) {
    if (!canonicalKeys.includes(k)) out[k] = v;
    else if (k in canonical) out[k] = canonical[k];
  }
  for (const [k, v] of Object.entries(canonical)) if (!(k in out)) out[k] = v;
  return out;
}

export function exampleToRecord(ex: Example): Record<string, unknown> {
  const canonical: Record<string, unknown> = { input: ex.input, output: ex.output };
  if (ex.explanation !== undefined) canonical.explanation = ex.explanation;
  return writeRecord(canonical, ex.extra, EXAMPLE_KEYS);
}

export function instanceToRecord(inst: Instance, fromNiv2: boolean): Record<string, unknown> {
  return writeRecord({ id: inst.id, input: inst.input, output: inst.outputs }, fromNiv2 ? inst.extra : undefined, INSTANCE_KEYS);
}

const STREAM = Symbol('instances');

/** The document's entries in order; the Instances value is streamed by the writer. */
export function niv2Layout(task: Task, datasetName: string): Array<[string, unknown]> {
  const examples = (list: Example[]): unknown[] => list.map(exampleToRecord);
  if (task.source.format === 'niv2') {
    const extra = task.source.extra;
    const entries: Array<[string, unknown]> = [];
    const seen = new Set<string>();
    for (const [k, v] of Object.entries(extra)) {
      seen.add(k);
      if (k === DEFINITION) entries.push([k, [task.definition, ...((v as string[] | undefined) ?? [])]]);
      else if (k === POSITIVE) entries.push([k, examples(task.positiveExamples)]);
      else if (k === NEGATIVE) entries.push([k, examples(task.negativeExamples)]);
      else if (k === INSTANCES) entries.push([k, STREAM]);
      else entries.push([k, v]);
    }
    // Modeled keys the source lacked appear only when there is something to put in them.
    if (!seen.has(POSITIVE) && task.positiveExamples.length) entries.push([POSITIVE, examples(task.positiveExamples)]);
    if (!seen.has(NEGATIVE) && task.negativeExamples.length) entries.push([NEGATIVE, examples(task.negativeExamples)]);
    if (!seen.has(INSTANCES) && task.instances.length) entries.push([INSTANCES, STREAM]);
    return entries;
  }
  const values: Record<string, unknown> = {
    Source: [datasetName],
    [DEFINITION]: [task.definition],
    [POSITIVE]: examples(task.positiveExamples),
    [NEGATIVE]: examples(task.negativeExamples),
    [INSTANCES]: STREAM,
  };
  return NIV2_KEY_ORDER.map((k) => [k, k in values ? values[k] : []]);
}

/** A short dataset name for the `Source` field of tasks that come from other formats. */
export function datasetNameOf(task: Task): string {
  const d = task.source.extra.dataset;
  if (typeof d === 'string' && d) return d;
  const parts = task.id.split('/');
  return parts.length > 1 ? parts[1] : parts[0];
}

/**
 * Serializes a task document, streaming instances through `emit`, in `layout`: a text style
 * (RELEASED_STYLE is the released files' layout), an indent in spaces, or undefined for one line
 * (JSONL). The final newline is the caller's.
 */
export async function emitNiv2(
  t: LazyTask,
  emit: (chunk: string) => void,
  layout: JsonTextStyle | number | undefined,
  leading: Array<[string, unknown]> = [],
): Promise<number> {
  // a number is an indent in spaces, undefined one line (the earlier signature)
  const style: JsonTextStyle =
    typeof layout === 'object' ? layout : layout === undefined ? { separators: [', ', ': '], ensureAscii: false, trailingNewline: true } : { indent: ' '.repeat(layout), ensureAscii: false, trailingNewline: true };
  const entries = [...leading, ...niv2Layout(t.task, datasetNameOf(t.task))];
  const indent = style.indent;
  const opts = { indent, separators: style.separators, ensureAscii: style.ensureAscii };
  const nl = indent === undefined ? '' : '\n';
  const pad = (level: number): string => (indent === undefined ? '' : indent.repeat(level));
  const itemSep = indent === undefined ? (style.separators ?? [', '])[0] : ',';
  const keySep = indent === undefined ? (style.separators ?? [', ', ': '])[1] : ': ';
  const fromNiv2 = t.task.source.format === 'niv2';
  let count = 0;
  emit('{');
  for (let e = 0; e < entries.length; e++) {
    const [k, v] = entries[e];
    emit((e === 0 ? '' : itemSep) + nl + pad(1) + dumps(k, opts) + keySep);
    if (v !== STREAM) {
      emit(dumps(v, opts, 1));
      continue;
    }
    emit('[');
    for await (const inst of t.instances()) {
      emit((count === 0 ? '' : itemSep) + nl + pad(2) + dumps(instanceToRecord(inst, fromNiv2), opts, 2));
      count++;
    }
    emit(count === 0 ? ']' : nl + pad(1) + ']');
  }
  emit(entries.length ? nl + '}' : '}');
  return count;
}

function usage(message: string): UitError {
  return new UitError(message, ExitCode.USAGE);
}

export type OutputLayout = 'dir' | 'json' | 'jsonl' | 'stdout';

export function outputLayout(out: string | undefined): OutputLayout {
  if (out === undefined || out === '-') return 'stdout';
  const ext = extname(out).toLowerCase();
  if (ext === '.jsonl') return 'jsonl';
  if (ext === '.json') return 'json';
  return 'dir';
}

export function provenancePathFor(out: string, layout: OutputLayout): string {
  if (layout === 'dir') return join(out, 'provenance.jsonl');
  return out.replace(/\.jsonl?$/i, '') + '.provenance.jsonl';
}

/**
 * The provenance sidecar of an output: staged inside a folder output (so it appears with the
 * folder), written atomically beside a file output, none for stdout.
 */
export function provenanceSink(layout: OutputLayout, out: string, dir?: StagedDir): JsonlWriter | undefined {
  if (layout === 'stdout') return undefined;
  return new JsonlWriter(dir ? dir.stagedPath(basename(provenancePathFor(out, layout))) : provenancePathFor(out, layout));
}

export const niv2Writer: FormatWriter = {
  name: 'niv2',
  description: targetDescription('niv2'),
  open(opts: OpenOptions): TaskWriter {
    const layout = outputLayout(opts.out);
    const out = opts.out ?? '-';
    if (layout === 'dir') {
      const dir = new StagedDir(out, { replace: opts.replace });
      const prov = provenanceSink(layout, out, dir)!;
      return {
        provenancePath: provenancePathFor(out, layout),
        provenance: prov,
        async write(t) {
          const rel = idToRelPath(t.task.id, '.json');
          if (dir.has(rel)) throw new InputError({ file: t.task.source.file }, `two tasks would be written to ${rel} (task id ${t.task.id})`);
          const f = dir.openFile(rel);
          const style = styleOf(t.task);
          await emitNiv2(t, (s) => f.write(s), style);
          if (style.trailingNewline) f.write('\n');
          f.close();
          return join(out, rel);
        },
        commit: () => {
          prov.commit();
          dir.commit();
        },
        abort: () => {
          prov.abort();
          dir.abort();
        },
      };
    }
    if (layout === 'json') {
      // opened at once, so an unwritable output fails before any work (no task: an empty file)
      const w = new AtomicWriter(out);
      const prov = provenanceSink(layout, out)!;
      let written = false;
      return {
        provenancePath: provenancePathFor(out, layout),
        provenance: prov,
        async write(t) {
          if (written) throw usage(`${out}: a .json output holds one task; this input has more (write to a folder or a .jsonl file)`);
          written = true;
          const style = styleOf(t.task);
          await emitNiv2(t, (s) => w.write(s), style);
          if (style.trailingNewline) w.write('\n');
          return out;
        },
        commit: () => {
          w.commit();
          prov.commit();
        },
        abort: () => {
          w.abort();
          prov.abort();
        },
      };
    }
    // JSONL, to a file or stdout: one task per line, with its id first.
    const aw = layout === 'jsonl' ? new AtomicWriter(out) : null;
    const prov = provenanceSink(layout, out);
    const stdout = opts.stdout ?? process.stdout;
    let line = 0;
    return {
      provenancePath: layout === 'jsonl' ? provenancePathFor(out, layout) : undefined,
      provenance: prov,
      async write(t) {
        let buf = '';
        const emit = aw ? (s: string) => aw.write(s) : (s: string) => void (buf += s);
        // one line per task whatever the source layout (ASCII escaping kept)
        await emitNiv2(t, emit, { separators: [', ', ': '], ensureAscii: styleOf(t.task).ensureAscii, trailingNewline: true }, [['id', t.task.id]]);
        if (aw) aw.write('\n');
        else stdout.write(buf + '\n');
        line++;
        return layout === 'jsonl' ? `${out}#${line}` : `-#${line}`;
      },
      commit: () => {
        aw?.commit();
        prov?.commit();
      },
      abort: () => {
        aw?.abort();
        prov?.abort();
      },
    };
  },
};
