// Train and dev are split by task family, so that no dataset is on both sides: a dev score then
// measures the student on tasks whose data it did not train on. A task's family starts as its
// dataset, read from the id uit's readers give it; tasks whose pairs share a prompt (the same
// source instruction) or a target (the same teacher definition) join one family, since such
// pairs would carry one side's text to the other. A family goes to dev when --dev-pattern matches
// one of its tasks, or else when a seeded hash of its key falls under --dev-share (stable: adding
// data never moves an existing family).
import { sha256Hex } from '../cache/index.js';

/**
 * The dataset of a source task, from its id: Ni-v2 `task1541_agnews_classification` -> `agnews`
 * (the word after the number, as Ni-v2 names tasks); PromptSource `promptsource/glue/mrpc/x` ->
 * `glue/mrpc`; FLAN `flan/trec/3` -> `trec`; P3 `p3/<file>` -> the file name (a P3 file is one
 * template of one dataset, and its name does not say where the dataset ends: pass
 * --family-pattern, or rely on the joins by prompt and target); anything else: its source file.
 */
export function datasetFamily(task: string, format: string, file: string): string {
  const parts = task.split('/');
  if (format === 'niv2') {
    const m = /^task\d+_([^_]+)/.exec(parts[parts.length - 1]);
    return m ? `niv2:${m[1]}` : `niv2:${task}`;
  }
  if (format === 'promptsource' && parts.length >= 3) return `promptsource:${parts.slice(1, -1).join('/')}`;
  if (format === 'flan' && parts.length >= 3) return `flan:${parts[1]}`;
  if (format === 'p3' && parts.length >= 2) return `p3:${parts.slice(1).join('/')}`;
  return `file:${file}`;
}

/** The family key of a task: the first capture group of `pattern` on its id where it matches, else its dataset. */
export function familyOf(task: { task: string; source: { format: string; file: string } }, pattern?: RegExp): string {
  if (pattern) {
    const m = pattern.exec(task.task);
    if (m && m[1] !== undefined) return `pattern:${m[1]}`;
  }
  return datasetFamily(task.task, task.source.format, task.source.file);
}

/** Union-find over string keys; a set's representative is its smallest key, so it does not depend on input order. */
export class Families {
  private readonly parent = new Map<string, string>();

  add(key: string): void {
    if (!this.parent.has(key)) this.parent.set(key, key);
  }

  find(key: string): string {
    this.add(key);
    let root = key;
    while (this.parent.get(root) !== root) root = this.parent.get(root)!;
    for (let k = key; k !== root; ) {
      const next = this.parent.get(k)!;
      this.parent.set(k, root);
      k = next;
    }
    return root;
  }

  union(a: string, b: string): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    if (ra < rb) this.parent.set(rb, ra);
    else this.parent.set(ra, rb);
  }
}

/** A number in [0, 1) fixed by the seed and the family key. */
export function familyDraw(seed: number, family: string): number {
  return parseInt(sha256Hex(`${seed}\u0000${family}`).slice(0, 13), 16) / 2 ** 52;
}
