// From a teacher's candidates to fine-tuning pairs. The prompt is the transfer prompt's `pair`
// style, built by buildTransferPrompt itself, so the model is trained on exactly the text `uit
// transfer --prompt-style pair` (and `uit convert --method model --prompt-style pair`) gives it;
// the target is " " + the definition (the continuation after "Definition:"), then EOS, where
// generation stops. Which candidates become pairs is the denoiser's call: its pick, all of them,
// those under a perplexity threshold, or the k best of each task.
import { rankAndSelect } from '../perplexity/select.js';
import { buildTransferPrompt } from '../transfer/prompt.js';
import type { UitTokenizer } from '../tokenizer/index.js';
import { Families, familyDraw, familyOf } from './family.js';
import type { Drops, TeacherTask } from './teacher.js';

export type Pick = 'best' | 'all';

export interface PickOptions {
  /** `best`: the denoiser's pick (the lowest perplexity when the source does not record one); `all`: every candidate. */
  pick: Pick;
  /** Keep candidates whose perplexity is at most this. */
  threshold?: number;
  /** Keep the k lowest-perplexity candidates of a task. */
  topK?: number;
}

export interface SplitOptions {
  /** Share of families that go to dev (ignored with devPattern). */
  devShare: number;
  /** Families with a task whose id matches go to dev, all others to train. */
  devPattern?: RegExp;
  /** A family is the first capture group of this pattern on the task id, where it matches. */
  familyPattern?: RegExp;
  seed: number;
}

export interface TokenIds {
  tokenizer: UitTokenizer;
  /** sha256 of tokenizer.json: the fine-tuning script checks it against the base model's. */
  digest: string;
  eos: number;
  maxTokens: number;
}

export interface DistillPair {
  /** "<task>#<candidate index>". */
  id: string;
  task: string;
  family: string;
  split: 'train' | 'dev';
  prompt: string;
  target: string;
  /** With --tokenizer: the prompt's ids, and the target's ids with EOS last, tokenized apart as the runtime tokenizes them. */
  prompt_ids?: number[];
  target_ids?: number[];
  tokenizer?: string;
  teacher: { model: string; name: string };
  score: { scorer: string; meanCe: number; perplexity: number; rank: number } | null;
  source: { file: string; format: string };
  from: string;
}

/** The candidate indexes of a task that become pairs; the others are counted in `drops`. */
export function selectCandidates(t: TeacherTask, opts: PickOptions, drops: Drops): number[] {
  const label = (i: number) => `${t.task}#${i}`;
  const usable: number[] = [];
  t.candidates.forEach((c, i) => {
    if (c.definition.trim() === '') drops.add('empty', label(i));
    else usable.push(i);
  });
  const ranks = rankAndSelect(t.candidates.map((c, i) => (usable.includes(i) ? c.meanCe : null)));
  let picked: number[];
  if (opts.pick === 'best') {
    const best = t.chosen ?? ranks.findIndex((r) => r.rank === 1);
    if (best < 0 || !usable.includes(best)) {
      for (const i of usable) drops.add('unscored', label(i));
      return [];
    }
    for (const i of usable) if (i !== best) drops.add('not-picked', label(i));
    picked = [best];
  } else picked = usable;

  const needsScore = opts.threshold !== undefined || opts.topK !== undefined;
  if (needsScore) {
    picked = picked.filter((i) => {
      if (t.candidates[i].meanCe === null) drops.add('unscored', label(i));
      return t.candidates[i].meanCe !== null;
    });
  }
  if (opts.threshold !== undefined) {
    const maxCe = Math.log(opts.threshold);
    picked = picked.filter((i) => {
      const keep = t.candidates[i].meanCe! <= maxCe;
      if (!keep) drops.add('above-threshold', label(i));
      return keep;
    });
  }
  if (opts.topK !== undefined) {
    const order = [...picked].sort((a, b) => t.candidates[a].meanCe! - t.candidates[b].meanCe! || a - b);
    const kept = new Set(order.slice(0, opts.topK));
    for (const i of order.slice(opts.topK)) drops.add('beyond-top-k', label(i));
    picked = picked.filter((i) => kept.has(i));
  }
  return picked;
}

export interface BuiltPairs {
  train: DistillPair[];
  dev: DistillPair[];
  /** Family key -> the split it went to and its tasks. */
  families: Map<string, { split: 'train' | 'dev'; tasks: string[] }>;
}

/** Pairs of every teacher task: selected, deduplicated, tokenized (with `ids`), split by family. */
export function buildPairs(tasks: TeacherTask[], pick: PickOptions, split: SplitOptions, drops: Drops, ids?: TokenIds): BuiltPairs {
  const pairs: DistillPair[] = [];
  const seen = new Set<string>();
  for (const t of tasks) {
    const ranks = rankAndSelect(t.candidates.map((c) => (c.definition.trim() === '' ? null : c.meanCe)));
    const prompt = buildTransferPrompt(t.sourceInstruction, 'pair');
    for (const i of selectCandidates(t, pick, drops)) {
      const c = t.candidates[i];
      const target = ` ${c.definition.trim()}`;
      const id = `${t.task}#${i}`;
      const dedup = `${prompt}\u0000${target}`;
      if (seen.has(dedup)) {
        drops.add('duplicate', id);
        continue;
      }
      seen.add(dedup);
      const pair: DistillPair = {
        id,
        task: t.task,
        family: familyOf(t, split.familyPattern),
        split: 'train',
        prompt,
        target,
        teacher: t.teacher,
        score:
          c.meanCe === null || t.scorer === null
            ? null
            : { scorer: t.scorer, meanCe: c.meanCe, perplexity: Math.exp(c.meanCe), rank: ranks[i].rank! },
        source: t.source,
        from: t.from,
      };
      if (ids) {
        // Apart, as at inference: the prompt is encoded alone and the model continues it.
        const p = ids.tokenizer.encode(prompt);
        const g = [...ids.tokenizer.encode(target), ids.eos];
        if (p.length + g.length > ids.maxTokens) {
          drops.add('too-long', id);
          continue;
        }
        Object.assign(pair, { prompt_ids: p, target_ids: g, tokenizer: ids.digest });
      }
      pairs.push(pair);
    }
  }

  // Families: a task's dataset, joined with every other task that shares a prompt or a target.
  const fam = new Families();
  const firstWith = new Map<string, string>();
  for (const p of pairs) {
    fam.add(p.family);
    for (const k of [`prompt\u0000${p.prompt}`, `target\u0000${p.target}`]) {
      const other = firstWith.get(k);
      if (other === undefined) firstWith.set(k, p.family);
      else fam.union(other, p.family);
    }
  }
  const members = new Map<string, Set<string>>();
  for (const p of pairs) {
    p.family = fam.find(p.family);
    const s = members.get(p.family) ?? new Set<string>();
    s.add(p.task);
    members.set(p.family, s);
  }
  const families = new Map<string, { split: 'train' | 'dev'; tasks: string[] }>();
  for (const [key, taskSet] of members) {
    const taskList = [...taskSet];
    const dev = split.devPattern ? taskList.some((t) => split.devPattern!.test(t)) : familyDraw(split.seed, key) < split.devShare;
    families.set(key, { split: dev ? 'dev' : 'train', tasks: taskList });
  }
  const out: BuiltPairs = { train: [], dev: [], families };
  for (const p of pairs) {
    p.split = families.get(p.family)!.split;
    out[p.split].push(p);
  }
  return out;
}
