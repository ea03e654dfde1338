// PromptSource: a templates.yaml of `!Template` entries plus dataset rows (JSONL) supplied by
// the user. Each template is one task; its instances are the rows rendered exactly as
// PromptSource's Template.apply() renders them (promptsource/templates.py):
//   - string fields have "|||" protected before rendering and restored after;
//   - answer_choices is itself a template, rendered with the row, split on "|||", each stripped;
//   - with truncation on (PromptSource's default, which P3 used) every `}}` becomes
//     ` | string | truncate(2048) }}`;
//   - the output is split on "|||" and each part stripped: prompt, target.
// Rows that render to anything but a non-empty prompt and target are skipped, as P3 did.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, type Node as YamlNode, type YAMLMap } from 'yaml';
import { InputError, UitError, ExitCode } from '../errors.js';
import { readLines } from '../io/jsonl.js';
import { JsonSyntaxError, parseRow, type RowOptions } from '../io/located-json.js';
import type { Instance, Task } from '../types.js';
import { promptsourceText } from '../transfer/template-text.js';
import { DEFAULT_HEAD, lazyFromStream, reportBadRecord, type FormatModule, type LazyTask, type ReadOptions, type Skipped, type Sniff } from './api.js';
import { compileTemplate, pyStrip, seededRng, TemplateError, type CompiledTemplate, type Rng } from './jinja-py.js';
import { listTaskFiles } from './niv2.js';
import { inputDescription } from './names.js';

export interface PsTemplate {
  id: string;
  name: string;
  jinja: string;
  answer_choices: string | null;
  /** Every field of the !Template mapping, in file order (for lossless keeping). */
  raw: Record<string, unknown>;
  /** 1-based lines of the template entry and of its jinja / answer_choices values. */
  line: number;
  jinjaLine: number;
  choicesLine: number;
}

export interface PsFile {
  file: string;
  dataset: string;
  subset?: string;
  templates: PsTemplate[];
}

const TEXT_VAR_LENGTH = 2048;
const PIPE_PROTECTOR = '3ed2dface8203c4c9dfb1a5dc58e41e0';

// PyYAML writes these tags for promptsource.templates.Template and Template.Metadata.
const customTags = [
  { tag: '!Template', collection: 'map' as const, resolve: (m: unknown) => m },
  { tag: '!TemplateMetadata', collection: 'map' as const, resolve: (m: unknown) => m },
];

/** Loads a templates.yaml, validating it; errors name the file, line and field. */
export function loadTemplatesYaml(file: string, label = file): PsFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError({ file: label }, `cannot read: ${(err as Error).message}`);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { customTags, lineCounter, uniqueKeys: false });
  const lineOf = (n: YamlNode | null | undefined): number | undefined =>
    n?.range ? lineCounter.linePos(n.range[0]).line : undefined;
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new InputError({ file: label, line: e.linePos?.[0].line }, `malformed YAML: ${e.message.split('\n')[0]}`);
  }
  const root = doc.contents;
  if (!isMap(root)) throw new InputError({ file: label, line: 1 }, 'expected a mapping with `dataset` and `templates`');
  const js = doc.toJS() as Record<string, unknown>;
  const dataset = js.dataset;
  if (typeof dataset !== 'string' || !dataset) throw new InputError({ file: label, line: 1, field: 'dataset' }, 'missing field');
  const subset = js.subset;
  const templatesNode = root.get('templates', true) as YamlNode | undefined;
  if (!isMap(templatesNode)) {
    throw new InputError({ file: label, line: lineOf(templatesNode) ?? 1, field: 'templates' }, 'expected a mapping of templates');
  }
  const templates: PsTemplate[] = [];
  for (const pair of (templatesNode as YAMLMap).items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    const node = pair.value as YamlNode | null;
    const entryLine = lineOf(node) ?? lineOf(pair.key as YamlNode) ?? 1;
    const field = (f?: string): string => `templates.${key}${f ? '.' + f : ''}`;
    if (!isMap(node)) throw new InputError({ file: label, line: entryLine, field: field() }, 'expected a !Template mapping');
    const raw = (node as YAMLMap).toJSON() as Record<string, unknown>;
    const jinja = raw.jinja;
    if (typeof jinja !== 'string') {
      throw new InputError({ file: label, line: entryLine, field: field('jinja') }, jinja === undefined ? 'missing field' : 'expected a string');
    }
    const name = raw.name;
    if (typeof name !== 'string' || !name) {
      throw new InputError({ file: label, line: entryLine, field: field('name') }, name === undefined ? 'missing field' : 'expected a string');
    }
    const choices = raw.answer_choices ?? null;
    if (choices !== null && typeof choices !== 'string') {
      throw new InputError({ file: label, line: entryLine, field: field('answer_choices') }, 'expected a string or null');
    }
    const memberLine = (k: string): number => lineOf((node as YAMLMap).get(k, true) as YamlNode) ?? entryLine;
    templates.push({
      id: typeof raw.id === 'string' ? raw.id : key,
      name,
      jinja,
      answer_choices: choices,
      raw,
      line: entryLine,
      jinjaLine: memberLine('jinja'),
      choicesLine: memberLine('answer_choices'),
    });
  }
  return { file: label, dataset, subset: typeof subset === 'string' && subset ? subset : undefined, templates };
}

// ---------------------------------------------------------------------------------------------

export interface RenderOptions {
  truncate: boolean;
  seed: number;
  /** Replaces the seeded generator (tests pin `choice` to the first item with () => 0). */
  rng?: Rng;
}

/** A template compiled for rendering rows. */
export class PsRenderer {
  private readonly main: CompiledTemplate;
  private readonly choices: CompiledTemplate | null;

  constructor(
    readonly template: PsTemplate,
    readonly file: string,
    readonly opts: RenderOptions,
  ) {
    const t = template;
    const jinja = opts.truncate ? t.jinja.split('}}').join(` | string | truncate(${TEXT_VAR_LENGTH}) }}`) : t.jinja;
    this.main = this.compile(jinja, t.jinjaLine, 'jinja');
    this.choices = t.answer_choices === null ? null : this.compile(t.answer_choices, t.choicesLine, 'answer_choices');
  }

  private compile(src: string, line: number, field: string): CompiledTemplate {
    try {
      return compileTemplate(src);
    } catch (err) {
      throw new InputError(
        { file: this.file, line, field: `templates.${this.template.id}.${field}` },
        `template '${this.template.name}': ${(err as Error).message}`,
      );
    }
  }

  /** The answer choices for a row (null when the template has none). */
  answerChoices(row: Record<string, unknown>, rowKey: string | number): string[] | null {
    if (!this.choices) return null;
    const rendered = this.choices.render(protect(row), this.opts.rng ?? seededRng(this.opts.seed, this.template.id, 'choices', rowKey));
    return rendered.split('|||').map((c) => unprotect(pyStrip(c)));
  }

  /** Template.apply(): the stripped parts of the rendered row (normally [prompt, target]). */
  apply(row: Record<string, unknown>, rowKey: string | number): { parts: string[]; choices: string[] | null } {
    if ('answer_choices' in row) throw new TemplateError("the row contains the restricted key 'answer_choices'");
    const choices = this.answerChoices(row, rowKey);
    const ctx = { ...protect(row), answer_choices: choices };
    const rendered = this.main.render(ctx, this.opts.rng ?? seededRng(this.opts.seed, this.template.id, rowKey));
    return { parts: rendered.split('|||').map((p) => pyStrip(unprotect(p))), choices };
  }
}

function protect(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    const value = typeof v === 'string' ? v.split('|||').join(PIPE_PROTECTOR) : v;
    out[k] = value;
    // P3's seqio pipeline renamed hyphenated fields (removeHyphen) so templates can name them
    if (k.includes('-') && !(k.replace(/-/g, '_') in row)) out[k.replace(/-/g, '_')] = value;
  }
  return out;
}

function unprotect(s: string): string {
  return s.split(PIPE_PROTECTOR).join('|||');
}

/** Streams the rows of a JSONL file as objects, with their line numbers. */
export async function* readRows(file: string, opts: RowOptions = {}): AsyncGenerator<{ row: Record<string, unknown>; line: number }> {
  for await (const { text, line } of readLines(file)) {
    if (text.trim() === '') continue;
    let row: unknown;
    try {
      row = parseRow(text, opts);
    } catch (err) {
      if (err instanceof JsonSyntaxError) throw new InputError({ file, line }, `malformed JSON at column ${err.column}: ${err.reason}`);
      throw err;
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      throw new InputError({ file, line }, 'expected a JSON object (a dataset row)');
    }
    yield { row: row as Record<string, unknown>, line };
  }
}

export function promptsourceTaskId(f: PsFile, t: PsTemplate): string {
  return `promptsource/${f.dataset}${f.subset ? '/' + f.subset : ''}/${t.name}`;
}

async function* renderedInstances(
  renderer: PsRenderer,
  rowsFile: string,
  taskId: string,
  onSkip: (s: Skipped) => void,
): AsyncGenerator<Instance> {
  const slug = taskId.split('/').slice(1).join('-').replace(/[^A-Za-z0-9._-]+/g, '_');
  for await (const { row, line } of readRows(rowsFile)) {
    let result: { parts: string[]; choices: string[] | null };
    try {
      result = renderer.apply(row, line);
    } catch (err) {
      if (err instanceof TemplateError) {
        throw new InputError({ file: rowsFile, line, field: `template '${renderer.template.name}'` }, err.message);
      }
      throw err;
    }
    const { parts, choices } = result;
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      onSkip({
        file: rowsFile,
        line,
        id: taskId,
        reason: parts.length !== 2 ? `renders ${parts.length} parts, not prompt ||| target` : 'renders an empty prompt or target',
      });
      continue;
    }
    const inst: Instance = { id: `${slug}-${line}`, input: parts[0], outputs: [parts[1]] };
    if (choices) inst.extra = { answer_choices: choices };
    yield inst;
  }
}

/** The rows file for a templates.yaml: --rows, else rows.jsonl beside it, else none. */
function rowsFor(yamlFile: string, opts: ReadOptions): string | undefined {
  if (opts.rows) return opts.rows;
  const beside = join(dirname(yamlFile), 'rows.jsonl');
  return existsSync(beside) ? beside : undefined;
}

async function* readPromptsource(path: string, opts: ReadOptions): AsyncGenerator<LazyTask> {
  let files: string[];
  try {
    files = statSync(path).isDirectory() ? listTaskFiles(path, ['.yaml', '.yml']).filter((f) => /^templates\.ya?ml$/i.test(basename(f))) : [path];
  } catch {
    throw new InputError({ file: path }, 'cannot read: no such file or folder');
  }
  if (opts.rows && files.length > 1) {
    throw new UitError(`--rows applies to one templates.yaml, but ${path} holds ${files.length}; put a rows.jsonl beside each instead`, ExitCode.USAGE);
  }
  if (opts.rows && !existsSync(opts.rows)) throw new InputError({ file: opts.rows }, 'cannot read: no such file');
  const renderOpts: RenderOptions = { truncate: opts.truncate ?? true, seed: opts.seed ?? 0 };
  for (const file of files) {
    const ps = loadTemplatesYaml(file);
    const rows = rowsFor(file, opts);
    // each template is a task: a broken one is a bad task of its own (onBadRecord), or ends the read
    for (const t of ps.templates) {
      const id = promptsourceTaskId(ps, t);
      let r: PsRenderer;
      let text;
      try {
        r = new PsRenderer(t, file, renderOpts);
        try {
          text = promptsourceText(t.jinja);
        } catch (err) {
          throw new InputError({ file, line: t.jinjaLine, field: `templates.${t.id}.jinja` }, `template '${t.name}': ${(err as Error).message}`);
        }
      } catch (err) {
        reportBadRecord(opts, err);
        continue;
      }
      const meta: Omit<Task, 'instances'> = {
        id,
        source: {
          format: 'promptsource',
          file,
          extra: { dataset: ps.dataset, ...(ps.subset ? { subset: ps.subset } : {}), template: t.raw, ...(rows ? { rows } : {}) },
        },
        definition: text.prompt,
        positiveExamples: [],
        negativeExamples: [],
      };
      if (!rows) {
        yield { task: { ...meta, instances: [] }, complete: true, instances: async function* () {} };
        continue;
      }
      // the head pass and the full pass read the same rows: report each skipped row once
      const reported = new Set<number>();
      const onSkip = (s: Skipped): void => {
        if (reported.has(s.line ?? 0)) return;
        reported.add(s.line ?? 0);
        opts.onSkip?.(s);
      };
      let lazy: LazyTask;
      try {
        lazy = await lazyFromStream(meta, () => renderedInstances(r, rows, id, onSkip), opts.head ?? DEFAULT_HEAD);
      } catch (err) {
        reportBadRecord(opts, err);
        continue;
      }
      yield lazy;
    }
  }
}

export const promptsource: FormatModule = {
  name: 'promptsource',
  description: inputDescription('promptsource'),
  detect(s: Sniff): boolean {
    return /!Template\b/.test(s.head) && /^templates\s*:/m.test(s.head);
  },
  read: (file, opts) => readPromptsource(file, opts),
};
