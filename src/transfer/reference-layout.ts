// The UIT reference's layout of candidates (its data/ppl_annotation/tasks): one Ni-v2 task file per
// candidate, named `<k>of<N>sample_<task>.json`, each with its own Definition and its own Positive
// Examples (an API transfer rewrites both) over the same Instances. main_ppl_annotation.py groups
// the files by the name after "32sample_" (".json" included) and ranks each group's files as the
// candidates of one task. Read here the same way: the files of one task (in one folder) become
// ONE task, read from the file with the lowest k, that carries every file's Definition and
// Positive Examples as its candidates, in k order (docs/pipeline.md, "The reference's layout").
import { statSync } from 'node:fs';
import { basename, dirname, extname, relative } from 'node:path';
import { listTaskFiles, niv2 } from '../formats/niv2.js';
import type { LazyTask } from '../formats/api.js';
import { InputError } from '../errors.js';
import type { Candidate } from '../perplexity/index.js';

const NAME = /^(\d+)of(\d+)sample_(.+)$/;

export interface ReferenceName {
  /** The candidate's number (k of N). */
  k: number;
  n: number;
  /** The reference's task name: what follows `sample_`, ".json" included. */
  task: string;
}

/** The parts of a candidate file's name, or null when the name is not in the reference's layout. */
export function referenceName(file: string): ReferenceName | null {
  const base = basename(file);
  if (extname(base).toLowerCase() !== '.json') return null;
  const m = NAME.exec(base);
  return m ? { k: Number(m[1]), n: Number(m[2]), task: m[3] } : null;
}

/** Whether `path` is a candidate file of the reference's layout, or a folder holding one. */
export function holdsCandidateFiles(path: string): boolean {
  try {
    if (!statSync(path).isDirectory()) return referenceName(path) !== null;
  } catch {
    return false; // reading it reports the problem
  }
  return listTaskFiles(path, ['.json']).some((f) => referenceName(f) !== null);
}

/** A candidate read from a file of the reference's layout. */
export interface FileCandidate extends Candidate {
  /** The file it came from (named in the provenance, as the reference's results name it). */
  file: string;
}

/** The candidate files of one task. */
export interface CandidateGroup {
  kind: 'candidate-group';
  /** The task id: the reference's task name without ".json", under its folder's path when read from a folder. */
  id: string;
  /** In k order. */
  files: string[];
}

/**
 * Replaces the Ni-v2 files of the reference's layout among `items` with one group per task (the
 * files of one task name in one folder), placed where its first file was; everything else stays.
 * `asFile` gives an item's Ni-v2 file (and the folder it was found in), or null for any other item.
 */
export function groupCandidateFiles<T>(items: readonly T[], asFile: (item: T) => { path: string; root?: string } | null): Array<T | CandidateGroup> {
  const out: Array<T | CandidateGroup> = [];
  const groups = new Map<string, { group: CandidateGroup; ks: Map<string, number> }>();
  for (const item of items) {
    const part = asFile(item);
    const name = part ? referenceName(part.path) : null;
    if (!part || !name) {
      out.push(item);
      continue;
    }
    const dir = dirname(part.path);
    const key = `${dir}\0${name.task}`;
    let g = groups.get(key);
    if (!g) {
      const rel = part.root ? relative(part.root, dir).split('\\').join('/') : '';
      const id = name.task.replace(/\.json$/i, '');
      g = { group: { kind: 'candidate-group', id: rel && rel !== '.' ? `${rel}/${id}` : id, files: [] }, ks: new Map() };
      groups.set(key, g);
      out.push(g.group);
    }
    if (g.ks.has(part.path)) continue; // a file named twice (a folder and a file in it) is one candidate
    g.group.files.push(part.path);
    g.ks.set(part.path, name.k);
  }
  for (const { group, ks } of groups.values()) group.files.sort((a, b) => ks.get(a)! - ks.get(b)! || (a < b ? -1 : a > b ? 1 : 0));
  return out;
}

/**
 * Reads a task's candidate files: the task (everything but its candidates) from the first file,
 * one candidate per file. Each file must hold one Definition, and the same Instances as the first.
 */
export async function readCandidateGroup(group: CandidateGroup): Promise<{ task: LazyTask; candidates: FileCandidate[] }> {
  let first: LazyTask | undefined;
  let firstInstances = '';
  const candidates: FileCandidate[] = [];
  for (const file of group.files) {
    let lt: LazyTask | undefined;
    for await (const t of niv2.read(file, {})) lt = t;
    const t = lt!.task;
    const more = t.source.extra.Definition;
    const count = 1 + (Array.isArray(more) ? more.length : 0);
    if (count !== 1) {
      throw new InputError({ file, field: 'Definition' }, `a candidate file of the reference's layout holds one Definition (its candidate); this one holds ${count}`);
    }
    const instances = JSON.stringify(t.instances.map((x) => [x.id, x.input, x.outputs]));
    if (first === undefined) {
      first = { ...lt!, task: { ...t, id: group.id } };
      firstInstances = instances;
    } else if (instances !== firstInstances) {
      throw new InputError(
        { file, field: 'Instances' },
        `differ from those of ${first.task.source.file}: the candidate files of one task (${group.id}) are scored on the same instances`,
      );
    }
    candidates.push({ definition: t.definition, ...(t.positiveExamples.length > 0 ? { positiveExamples: t.positiveExamples } : {}), file });
  }
  return { task: first!, candidates };
}
