// FLAN templates: {dataset: [{input, output}, ...]} with Python-format placeholders, plus
// dataset rows (JSONL). Rendering follows FLAN's preprocessors exactly:
//   - format_from_feature_dictionary: the pattern is split on `({\w*})`; each `{name}` is the
//     row's `name` field (numbers as strings); everything else, typos included, is literal;
//   - format_options: `{options_}` is "OPTIONS:\n- " + "\n- ".join(row["options"]).
// Each (dataset, template) pair is one task, `flan/<dataset>/<i>`.
//
// Folder convention (read and written): DIR/templates.json and DIR/rows/<dataset>.jsonl.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ExitCode, InputError, UitError } from '../errors.js';
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

/** FLAN's `{options_}` block. */
export function formatOptions(options: string[]): string {
  return 'OPTIONS:\n- ' + options.join('\n- ');
}

export class FlanFieldError extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(reason);
  }
}

function asText(v: unknown, field: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'object' && v !== null && 'value' in v && typeof (v as { value: unknown }).value === 'number') {
    return String((v as { value: number }).value); // an IntegralFloat from the row parser
  }
  throw new FlanFieldError(field, `expected a string or number, found ${Array.isArray(v) ? 'a list' : typeof v}`);
}

/** format_from_feature_dictionary(pattern, row), with options_ derived from row.options. */
export function renderFlan(pattern: string, row: Record<string, unknown>): string {
  if (!pattern) return '';
  let out = '';
  for (const part of pattern.split(PLACEHOLDER_SPLIT)) {
    if (part === '') continue;
    // FLAN's own test, which also catches a literal part that happens to be wrapped in braces
    if (part[0] === '{' && part[part.length - 1] === '}') {
      const key = part.slice(1, -1);
      if (key === 'options_' && !('options_' in row)) {
        const options = row.options;
        if (!Array.isArray(options)) throw new FlanFieldError('options', 'missing field (the template uses {options_})');
        out += formatOptions(options.map((o, i) => asText(o, `options[${i}]`)));
        continue;
      }
      if (!(key in row)) throw new FlanFieldError(key, `missing field (the template uses {${key}})`);
      out += asText(row[key], key);
    } else out += part;
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

async function* flanInstances(rows: string, tpl: FlanTemplate, key: string, index: number): AsyncGenerator<Instance> {
  for await (const { row, line } of readRows(rows)) {
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
    yield { id: `${key}-${line}`, input, outputs: [output], extra: { row } };
  }
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
// rows; any other task gets FLAN's natinst_v2 layout: its definition, a blank line, {input}.

function keyOf(task: Task): string {
  return task.id.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/**
 * A dataset key that is also a safe file name for rows/<key>.jsonl: one path component, not
 * hidden, no `..`. Any other key is written under its file-safe form (and a collision of two keys
 * on one name is an error), so an output name never leaves rows/ or lands on a sidecar.
 */
export function rowsKey(key: string): string {
  const safe = key.replace(/[^A-Za-z0-9._=+-]+/g, '_').replace(/^\./, '_');
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
          list.push(extra.template as FlanTemplate);
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
        // FLAN treats any {word} as a placeholder; a definition containing one goes in the rows
        const literal = !PLACEHOLDER_SPLIT.test(task.definition);
        templates.set(key, [{ input: literal ? `${task.definition}\n\n{input}` : '{definition}\n\n{input}', output: '{output}' }]);
        const f = dir.openFile(`rows/${key}.jsonl`);
        for await (const inst of t.instances()) {
          const row: Record<string, unknown> = literal ? {} : { definition: task.definition };
          row.input = inst.input;
          row.output = inst.outputs[0] ?? '';
          if (inst.outputs.length > 1) row.outputs = inst.outputs;
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
