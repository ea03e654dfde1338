// FLAN templates: {dataset: [{input, output}, ...]} with Python-format placeholders, plus
// dataset rows (JSONL). Rendering follows FLAN's preprocessors (flan/v2/preprocessors.py) exactly:
//   - format_from_feature_dictionary: the pattern is split on `({\w*})`; each `{name}` is the
//     row's own `name` field, a non-string printed as tf.strings.as_string prints it; everything
//     else, typos included, is literal;
//   - format_options: `{options_}` is "OPTIONS:\n- " + "\n- ".join(row["options"]);
//   - format_dialog: `{dialog_}` is "DIALOG:\n" + "\n- ".join(row["dialog"]) + "\n- ".
//   As in FLAN, where the row has `options` / `dialog`, the block is built from it and a row's
//   own `options_` / `dialog_` is overwritten; without them, the row's own block is used.
// Each (dataset, template) pair is one task, `flan/<dataset>/<i>`.
//
// Folder convention (read and written): DIR/templates.json and DIR/rows/<dataset>.jsonl.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ExitCode, InputError, UitError } from '../errors.js';
import { IntegralFloat } from '../io/located-json.js';
import { dumps } from '../io/pyjson.js';
import { StagedDir } from '../io/staged-dir.js';
import type { Instance, Task } from '../types.js';
import { flanText } from '../transfer/template-text.js';
import {
  DEFAULT_HEAD,
  lazyFromStream,
  reportBadRecord,
  type FormatModule,
  type FormatWriter,
  type LazyTask,
  type OpenOptions,
  type ReadOptions,
  type Sniff,
  type TaskWriter,
} from './api.js';
import { Checker } from './check.js';
import { outputLayout, parseJsonFile, provenanceSink } from './niv2.js';
import { readRows } from './promptsource.js';
import { inputDescription, targetDescription } from './names.js';

export interface FlanTemplate {
  input: string;
  output: string;
}

// Python's \w is Unicode-aware
const PLACEHOLDER_SPLIT = /(\{[\p{L}\p{N}_]*\})/u;

/** FLAN's `{options_}` block (format_options). */
export function formatOptions(options: string[]): string {
  return 'OPTIONS:\n- ' + options.join('\n- ');
}

/** FLAN's `{dialog_}` block (format_dialog): the turns, then an open turn for the next one. */
export function formatDialog(turns: string[]): string {
  return 'DIALOG:\n' + turns.join('\n- ') + '\n- ';
}

/** Blocks FLAN's preprocessors build from a list field of the row. */
const BUILT: Record<string, { from: string; build: (items: string[]) => string }> = {
  options_: { from: 'options', build: formatOptions },
  dialog_: { from: 'dialog', build: formatDialog },
};

export class FlanFieldError extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(reason);
  }
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/**
 * C's printf("%f") of a double, which tf.strings.as_string uses for floats: the exact binary
 * value rounded half-to-even to six decimals (toFixed rounds ties up and switches to exponent
 * form at 1e21).
 */
export function printfF(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  let m = Math.abs(x);
  let k = 0n;
  while (!Number.isInteger(m)) {
    m *= 2; // exact: a double below 2^53 doubles without rounding
    k++;
  }
  const den = 1n << k;
  const num = BigInt(m) * 1_000_000n;
  let q = num / den;
  const r2 = (num % den) * 2n;
  if (r2 > den || (r2 === den && q % 2n === 1n)) q++;
  const digits = q.toString().padStart(7, '0');
  return `${sign}${digits.slice(0, -6)}.${digits.slice(-6)}`;
}

/**
 * A row value as FLAN prints it: strings as they are, the rest as tf.strings.as_string does
 * (an integer with every digit, a float as printf "%f", a boolean as true/false). A JSON number
 * is an integer when written without fraction or exponent (the row parser keeps `4.0` a float
 * and integers beyond 2^53 exact).
 */
function valueText(v: unknown, field: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : printfF(v);
  if (v instanceof IntegralFloat) return printfF(v.value);
  throw new FlanFieldError(field, `expected a string, number or boolean, found ${kindOf(v)}`);
}

/** The text of `{key}`: the row's own field, or a block FLAN builds from one. */
function fieldText(row: Record<string, unknown>, key: string): string {
  const built = Object.hasOwn(BUILT, key) ? BUILT[key] : undefined;
  if (built && Object.hasOwn(row, built.from)) {
    const items = row[built.from];
    if (!Array.isArray(items)) {
      throw new FlanFieldError(built.from, `expected a list to build {${key}} from, found ${kindOf(items)}`);
    }
    return built.build(items.map((x, i) => valueText(x, `${built.from}[${i}]`)));
  }
  // own keys only: `constructor` or `__proto__` is a missing field, not Object.prototype's
  if (!Object.hasOwn(row, key)) {
    if (built) throw new FlanFieldError(built.from, `missing field (the template uses {${key}}, built from the list ${built.from})`);
    throw new FlanFieldError(key, `missing field (the template uses {${key}})`);
  }
  return valueText(row[key], key);
}

/** format_from_feature_dictionary(pattern, row), after FLAN's format_options / format_dialog. */
export function renderFlan(pattern: string, row: Record<string, unknown>): string {
  if (!pattern) return '';
  let out = '';
  for (const part of pattern.split(PLACEHOLDER_SPLIT)) {
    if (part === '') continue;
    // FLAN's own test, which also catches a literal part that happens to be wrapped in braces
    if (part[0] === '{' && part[part.length - 1] === '}') out += fieldText(row, part.slice(1, -1));
    else out += part;
  }
  return out;
}

function loadTemplates(file: string): Map<string, { templates: FlanTemplate[]; line: number }> {
  const { value, locator } = parseJsonFile(file, file);
  const c = new Checker(file, value, locator);
  const o = c.obj(value, []);
  const out = new Map<string, { templates: FlanTemplate[]; line: number }>();
  for (const [key, list] of Object.entries(o)) {
    const templates = c.arr(list, [key]).map((t, i) => {
      const tpl = c.obj(t, [key, i]);
      return {
        input: c.str(c.field(tpl, 'input', [key, i]), [key, i, 'input']),
        output: c.str(c.field(tpl, 'output', [key, i]), [key, i, 'output']),
      };
    });
    out.set(key, { templates, line: c.line([key]) ?? 1 });
  }
  return out;
}

/**
 * An instance's outputs. The natinst layout (below) keeps them in the row as `outputs` when there
 * is not exactly one, `output` holding the first (or "" for none); they are read back when the
 * output template is `{output}` and the row's `outputs` agrees with it.
 */
function rowOutputs(tpl: FlanTemplate, row: Record<string, unknown>, output: string): string[] {
  const list = tpl.output === '{output}' && Object.hasOwn(row, 'outputs') ? row.outputs : undefined;
  if (!Array.isArray(list) || !list.every((o) => typeof o === 'string')) return [output];
  return (list.length === 0 ? output === '' : list[0] === output) ? (list as string[]) : [output];
}

async function* flanInstances(rows: string, tpl: FlanTemplate, key: string, index: number): AsyncGenerator<Instance> {
  for await (const { row, line } of readRows(rows, { exactIntegers: true })) {
    let input: string;
    let output: string;
    try {
      input = renderFlan(tpl.input, row);
      output = renderFlan(tpl.output, row);
    } catch (err) {
      if (err instanceof FlanFieldError) {
        throw new InputError({ file: rows, line, field: err.field }, `${err.message}, template ${index} of ${key}`);
      }
      throw err;
    }
    yield { id: `${key}-${line}`, input, outputs: rowOutputs(tpl, row, output), extra: { row } };
  }
}

/**
 * FLAN has no escape for a brace, so the natinst layout writes a definition's `{` as the field
 * `{lbrace}` (each row holding "{") wherever FLAN would read a placeholder in it.
 */
export const LBRACE = 'lbrace';

/** The natinst layout's input template for a definition, and whether it needed `{lbrace}`. */
export function natinstPattern(definition: string): { pattern: string; escaped: boolean } {
  const plain = `${definition}\n\n{input}`;
  try {
    if (renderFlan(plain, { input: '' }) === `${definition}\n\n`) return { pattern: plain, escaped: false };
  } catch (err) {
    if (!(err instanceof FlanFieldError)) throw err;
  }
  return { pattern: `${definition.replaceAll('{', `{${LBRACE}}`)}\n\n{input}`, escaped: true };
}

/**
 * The template as text for the task's instruction: a `{lbrace}` escape read back as `{` when the
 * rows read so far all hold "{" for it (the natinst layout's rows).
 */
function templateText(tpl: FlanTemplate, head: Instance[]): FlanTemplate {
  const mark = `{${LBRACE}}`;
  if (!tpl.input.includes(mark) || head.length === 0) return tpl;
  if (!head.every((i) => (i.extra?.row as Record<string, unknown> | undefined)?.[LBRACE] === '{')) return tpl;
  return { input: tpl.input.replaceAll(mark, '{'), output: tpl.output };
}

async function* readFlan(path: string, opts: ReadOptions): AsyncGenerator<LazyTask> {
  let file = path;
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw new InputError({ file: path }, 'cannot read: no such file or folder');
  }
  if (isDir) file = join(path, 'templates.json');
  const all = loadTemplates(file);
  let keys = [...all.keys()];
  let explicitRows: string | undefined;
  if (opts.rows) {
    if (!existsSync(opts.rows)) throw new InputError({ file: opts.rows }, 'cannot read: no such file');
    explicitRows = opts.rows;
    const key = opts.dataset ?? basename(opts.rows).replace(/\.jsonl?$/i, '');
    if (!all.has(key)) {
      throw new UitError(
        `${file}: no FLAN dataset '${key}'${opts.dataset ? '' : ' (taken from the rows file name)'}; pass --dataset with one of: ${keys.join(', ')}`,
        ExitCode.USAGE,
      );
    }
    keys = [key];
  } else if (opts.dataset) {
    if (!all.has(opts.dataset)) {
      throw new UitError(`${file}: no FLAN dataset '${opts.dataset}'; known: ${keys.join(', ')}`, ExitCode.USAGE);
    }
    keys = [opts.dataset];
  }
  for (const key of keys) {
    // rows/<key>.jsonl beside the templates, the key made file-safe as the writer makes it (never outside rows/)
    const rows = explicitRows ?? ((p) => (existsSync(p) ? p : undefined))(join(dirname(file), 'rows', `${rowsKey(key)}.jsonl`));
    const { templates } = all.get(key)!;
    for (let i = 0; i < templates.length; i++) {
      const tpl = templates[i];
      const meta: Omit<Task, 'instances'> = {
        id: `flan/${key}/${i}`,
        source: { format: 'flan', file, extra: { dataset: key, templateIndex: i, template: tpl, ...(rows ? { rows } : {}) } },
        definition: flanText(tpl.input, tpl.output).prompt,
        positiveExamples: [],
        negativeExamples: [],
      };
      if (!rows) {
        yield { task: { ...meta, instances: [] }, complete: true, instances: async function* () {} };
        continue;
      }
      let lazy: LazyTask;
      try {
        lazy = await lazyFromStream(meta, () => flanInstances(rows, tpl, key, i), opts.head ?? DEFAULT_HEAD);
      } catch (err) {
        reportBadRecord(opts, err); // a bad row in the head fails this template's task, not the next ones
        continue;
      }
      const text = templateText(tpl, lazy.task.instances);
      if (text !== tpl) {
        // the template as text for the transfer; `pattern` is what renders and is written back
        lazy.task.source.extra = { ...lazy.task.source.extra, template: text, pattern: tpl };
        lazy.task.definition = flanText(text.input, text.output).prompt;
      }
      yield lazy;
    }
  }
}

export const flan: FormatModule = {
  name: 'flan',
  description: inputDescription('flan'),
  detect(s: Sniff): boolean {
    return /^\s*\{\s*"[^"]+"\s*:\s*\[\s*\{\s*"(input|output)"\s*:/.test(s.head);
  },
  read: (file, opts) => readFlan(file, opts),
};

// ---------------------------------------------------------------------------------------------
// Writing: DIR/templates.json ({key: [template]}, indented like the FLAN template files) and
// DIR/rows/<key>.jsonl. A FLAN task whose definition is unchanged keeps its own template and
// rows; any other task gets FLAN's natinst_v2 layout: its definition, a blank line, {input},
// with rows {input, output} (+ `outputs` unless there is exactly one, + `lbrace` if escaped).
// What this layout cannot hold (examples, metadata, ids) is listed in docs/convert.md.

function keyOf(task: Task): string {
  return task.id.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/**
 * A dataset key that is also a safe file name for rows/<key>.jsonl: one path component (no `/`
 * or `\`, no control character), not hidden, not empty. FLAN's own keys (`bigbench:...`) are such
 * names already; any other key is written under its file-safe form (and a collision of two keys on
 * one name is an error), so an output name never leaves rows/ or lands on a sidecar.
 */
export function rowsKey(key: string): string {
  const safe = key.replace(/[/\\\u0000-\u001f\u007f]+/g, '_').replace(/^\./, '_');
  return safe === '' ? '_' : safe;
}

export const flanWriter: FormatWriter = {
  name: 'flan',
  description: targetDescription('flan'),
  open(opts: OpenOptions): TaskWriter {
    if (outputLayout(opts.out) !== 'dir') {
      throw new UitError(`--to flan writes a folder (templates.json and rows/); give -o a folder name, not ${opts.out ?? 'stdout'}`, ExitCode.USAGE);
    }
    const out = opts.out!;
    const dir = new StagedDir(out, { replace: opts.replace });
    const prov = provenanceSink('dir', out, dir)!;
    const templates = new Map<string, FlanTemplate[]>();
    // who owns each written key: an untouched FLAN dataset (all its templates) or one other task
    const owners = new Map<string, string>();
    const claim = (key: string, owner: string, task: Task): void => {
      const had = owners.get(key);
      if (had !== undefined && had !== owner) {
        throw new InputError({ file: task.source.file }, `two tasks map to the FLAN key ${key} (${had.slice(had.indexOf(':') + 1)} and ${owner.slice(owner.indexOf(':') + 1)})`);
      }
      owners.set(key, owner);
    };
    return {
      provenancePath: join(out, 'provenance.jsonl'),
      provenance: prov,
      async write(t) {
        const task = t.task;
        const extra = task.source.extra;
        const own = task.source.format === 'flan' && typeof extra.dataset === 'string' && extra.template;
        if (own && task.definition === flanText((extra.template as FlanTemplate).input, (extra.template as FlanTemplate).output).prompt) {
          // an untouched FLAN task: its dataset key (file-safe), template and rows as they were
          const key = rowsKey(extra.dataset as string);
          claim(key, `dataset:${extra.dataset as string}`, task);
          const list = templates.get(key) ?? [];
          list.push((extra.pattern ?? extra.template) as FlanTemplate);
          templates.set(key, list);
          const rel = `rows/${key}.jsonl`;
          if (!dir.has(rel) && extra.rows) {
            const f = dir.openFile(rel);
            for await (const inst of t.instances()) f.write(dumps(inst.extra?.row ?? {}) + '\n');
            f.close();
          }
          return join(out, 'templates.json') + `#${key}`;
        }
        const key = rowsKey(keyOf(task));
        claim(key, `task:${task.id}`, task);
        const { pattern, escaped } = natinstPattern(task.definition);
        templates.set(key, [{ input: pattern, output: '{output}' }]);
        const f = dir.openFile(`rows/${key}.jsonl`);
        for await (const inst of t.instances()) {
          const row: Record<string, unknown> = { input: inst.input, output: inst.outputs[0] ?? '' };
          // every output, and none as none (`output` alone would read back as [""])
          if (inst.outputs.length !== 1) row.outputs = inst.outputs;
          if (escaped) row[LBRACE] = '{';
          f.write(dumps(row) + '\n');
        }
        f.close();
        return join(out, 'templates.json') + `#${key}`;
      },
      commit() {
        dir.writeFile('templates.json', dumps(Object.fromEntries(templates), { indent: 1 }) + '\n');
        prov.commit();
        dir.commit();
      },
      abort: () => {
        prov.abort();
        dir.abort();
      },
    };
  },
};
