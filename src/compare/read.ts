// Reads one side of a comparison: the Ni-v2 output of uit (a folder of task files, one task
// file, or JSONL of Ni-v2-shaped tasks) into Tasks keyed by id. Only what compare needs is
// read: the definition for the metrics, examples and instances for the scorer.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InputError } from '../errors.js';
import { isSidecar as isWriterSidecar } from '../formats/niv2.js';
import type { Example, Instance, Task } from '../types.js';

export interface CompareSide {
  /** The path as the user gave it. */
  path: string;
  tasks: Map<string, Task>;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Hidden files and the sidecars uit writes next to task files (one list: src/formats/niv2.ts): not tasks. */
function isSidecar(name: string): boolean {
  return name.startsWith('.') || isWriterSidecar(name) || /\.provenance\.json$/.test(name);
}

/** Task files under a folder, recursively: ids like `p3/ag_news/x` are written as nested paths. */
function listTaskFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    if (isSidecar(name)) continue;
    const r = rel ? `${rel}/${name}` : name;
    if (statSync(join(dir, r)).isDirectory()) out.push(...listTaskFiles(dir, r));
    else if (/\.jsonl?$/i.test(name)) out.push(r);
  }
  return out;
}

function definitionOf(obj: Json, file: string, line?: number): string {
  const d = obj.Definition ?? obj.definition;
  if (typeof d === 'string') return d;
  if (Array.isArray(d) && d.length > 0 && d.every((x) => typeof x === 'string')) {
    // Ni-v2 keeps the definition as a list; every released task has one entry, and uit writes
    // one. Several are joined so nothing is silently dropped from the comparison.
    return (d as string[]).join('\n');
  }
  throw new InputError(
    { file, line, field: 'Definition' },
    'expected a non-empty list of strings (Ni-v2 "Definition") or a string "definition"',
  );
}

function examplesOf(v: unknown): Example[] {
  if (!Array.isArray(v)) return [];
  return v.filter(isObject).map((e) => ({
    input: String(e.input ?? ''),
    output: String(e.output ?? ''),
    ...(typeof e.explanation === 'string' ? { explanation: e.explanation } : {}),
  }));
}

function instancesOf(v: unknown): Instance[] {
  if (!Array.isArray(v)) return [];
  return v.filter(isObject).map((x, i) => ({
    id: typeof x.id === 'string' ? x.id : String(i),
    input: String(x.input ?? ''),
    outputs: Array.isArray(x.output) ? x.output.map(String) : x.output === undefined ? [] : [String(x.output)],
  }));
}

function toTask(obj: Json, id: string, file: string, line?: number): Task {
  return {
    id,
    source: { format: 'niv2', file, extra: {} },
    definition: definitionOf(obj, file, line),
    positiveExamples: examplesOf(obj['Positive Examples'] ?? obj.positive_examples),
    negativeExamples: examplesOf(obj['Negative Examples']),
    instances: instancesOf(obj.Instances),
  };
}

function idField(obj: Json): string | undefined {
  for (const k of ['id', 'task', 'name'] as const) {
    const v = obj[k];
    if (typeof v === 'string' && v.length > 0) return v;
  }
  return undefined;
}

function parseJson(text: string, file: string, line?: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError({ file, line }, `invalid JSON: ${(err as Error).message}`, { cause: err });
  }
}

function add(tasks: Map<string, Task>, task: Task, file: string, line?: number): void {
  if (tasks.has(task.id)) {
    throw new InputError({ file, line, field: 'id' }, `duplicate task id "${task.id}"`);
  }
  tasks.set(task.id, task);
}

/** A line without an id gets `<file id>/<line>`, as the formats reader names it. */
function readJsonl(file: string, tasks: Map<string, Task>, fileId: string): void {
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.forEach((text, i) => {
    if (text.trim() === '') return;
    const line = i + 1;
    const obj = parseJson(text, file, line);
    if (!isObject(obj)) throw new InputError({ file, line }, 'expected a JSON object per line');
    const id = idField(obj) ?? `${fileId}/${line}`;
    add(tasks, toTask(obj, id, file, line), file, line);
  });
}

/** A task file's id is its path under the folder (or its name) without .json, as the release names them. */
function readJsonFile(file: string, tasks: Map<string, Task>, id: string): void {
  const doc = parseJson(readFileSync(file, 'utf8'), file);
  if (Array.isArray(doc)) {
    doc.forEach((obj, i) => {
      const field = `[${i}]`;
      if (!isObject(obj)) throw new InputError({ file, field }, 'expected a task object');
      const id = idField(obj);
      if (id === undefined) throw new InputError({ file, field: `${field}.id` }, 'a task in a list needs an "id", "task" or "name"');
      add(tasks, toTask(obj, id, file), file);
    });
    return;
  }
  if (!isObject(doc)) throw new InputError({ file }, 'expected a Ni-v2 task object');
  add(tasks, toTask(doc, id, file), file);
}

export function readCompareSide(path: string): CompareSide {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new InputError({ file: path }, 'no such file or folder', { cause: err });
  }
  const tasks = new Map<string, Task>();
  if (st.isDirectory()) {
    const files = listTaskFiles(path);
    if (files.length === 0) throw new InputError({ file: path }, 'the folder has no .json task files or .jsonl files');
    for (const rel of files) {
      const id = rel.replace(/\.jsonl?$/i, '');
      if (/\.jsonl$/i.test(rel)) readJsonl(join(path, rel), tasks, id);
      else readJsonFile(join(path, rel), tasks, id);
    }
  } else if (/\.jsonl$/i.test(path)) {
    readJsonl(path, tasks, basename(path).replace(/\.jsonl$/i, ''));
  } else {
    readJsonFile(path, tasks, basename(path).replace(/\.json$/i, ''));
  }
  return { path, tasks };
}
