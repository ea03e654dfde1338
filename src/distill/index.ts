// `uit distill-data` as a library: fine-tuning pairs for the offline transfer model from a
// teacher's transfers (docs/distill.md). Reads the teacher (converted outputs, or a cache and the
// source tasks), builds the pairs, writes OUT/train.jsonl, OUT/dev.jsonl and OUT/report.json
// together (staged, so a failed run leaves the previous files as they were).
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openCache, sha256Hex } from '../cache/index.js';
import { ExitCode, UitError } from '../errors.js';
import { DEFAULT_HEAD } from '../formats/api.js';
import { StagedDir, checkOutputFolder } from '../io/staged-dir.js';
import { configNumber } from '../runtime/model-folder.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { readCacheTeacher } from './from-cache.js';
import { readOutputProvenance } from './from-output.js';
import { buildPairs, type DistillPair, type PickOptions, type SplitOptions, type TokenIds } from './pairs.js';
import { Drops, type TeacherTask } from './teacher.js';

export { buildPairs, selectCandidates, type DistillPair, type PickOptions, type SplitOptions, type TokenIds, type BuiltPairs, type Pick } from './pairs.js';
export { readOutputProvenance, provenanceFileOf } from './from-output.js';
export { readCacheTeacher, type CacheTeacherOptions } from './from-cache.js';
export { datasetFamily, familyOf, familyDraw, Families } from './family.js';
export { Drops, DROP_REASONS, type DropReason, type TeacherTask, type TeacherCandidate } from './teacher.js';

/** The file that marks a distill-data output folder (what --force may replace). */
const REPORT = 'report.json';

export interface DistillDataOptions {
  /** Converted outputs (folders or files with their provenance sidecar); with `cache`, the source tasks. */
  inputs: string[];
  /** Read the teacher's generations and scores from this cache instead. */
  cache?: string;
  teachers?: string[];
  scorer?: string;
  from?: string;
  rows?: string;
  dataset?: string;
  /** Output folder. */
  out: string;
  /** Replace an earlier distill-data output folder (one with report.json) at `out`. */
  force?: boolean;
  pick: PickOptions;
  split: SplitOptions;
  /** A model folder whose tokenizer encodes the pairs (the student's). */
  tokenizer?: string;
  /** Longest prompt + target + EOS kept (default: the tokenizer folder's context length). */
  maxTokens?: number;
}

export interface DistillReport {
  source: 'outputs' | 'cache';
  inputs: string[];
  cache: string | null;
  options: Record<string, unknown>;
  tokenizer: { dir: string; sha256: string; eos: number; maxTokens: number } | null;
  teachers: { model: string; name: string; tasks: number }[];
  tasks: { read: number; withPairs: number };
  candidates: number;
  pairs: { train: number; dev: number };
  families: { train: string[]; dev: string[] };
  dropped: ReturnType<Drops['toJson']>;
  out: { train: string; dev: string; report: string };
}

function tokenIds(dir: string, maxTokens?: number): TokenIds {
  const tokenizer = loadTokenizer(dir);
  const eos = tokenizer.eosTokenIds[0];
  if (eos === undefined) throw new UitError(`${dir}: the tokenizer has no EOS token; the targets need one`, ExitCode.MODEL);
  let config: Record<string, unknown> = {};
  try {
    config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    // no config.json: the context length must be given
  }
  const context = maxTokens ?? configNumber(config, 'n_positions', 'max_position_embeddings', 'n_ctx');
  if (context === undefined) throw new UitError(`${dir}: config.json gives no context length; pass --max-tokens`, ExitCode.USAGE);
  return { tokenizer, eos, maxTokens: context, digest: sha256Hex(readFileSync(join(dir, 'tokenizer.json'))) };
}

export async function distillData(opts: DistillDataOptions): Promise<DistillReport> {
  // Refuse a folder in the way before any reading, as the converters do.
  checkOutputFolder(opts.out, { replace: opts.force, marker: REPORT });
  const drops = new Drops();
  const ids = opts.tokenizer ? tokenIds(opts.tokenizer, opts.maxTokens) : undefined;
  let tasks: TeacherTask[] = [];
  if (opts.cache) {
    const cache = openCache(opts.cache, { readonly: true });
    try {
      tasks = await readCacheTeacher(
        cache,
        opts.inputs,
        { teachers: opts.teachers, scorer: opts.scorer, from: opts.from, read: { rows: opts.rows, dataset: opts.dataset, head: Math.max(DEFAULT_HEAD, 1024) } },
        drops,
      );
    } finally {
      cache.close();
    }
  } else {
    for (const input of opts.inputs) tasks.push(...(await readOutputProvenance(input, drops)));
  }
  const built = buildPairs(tasks, opts.pick, opts.split, drops, ids);

  const teachers = new Map<string, { model: string; name: string; tasks: number }>();
  for (const t of tasks) {
    const e = teachers.get(t.teacher.model) ?? { ...t.teacher, tasks: 0 };
    e.tasks++;
    teachers.set(t.teacher.model, e);
  }
  const famList = (split: 'train' | 'dev') => [...built.families].filter(([, f]) => f.split === split).map(([k]) => k).sort();
  const withPairs = new Set([...built.train, ...built.dev].map((p) => p.task));
  const dropsFromTasks = (drops.byReason.get('teacher-filtered')?.count ?? 0) + (drops.byReason.get('not-a-transfer')?.count ?? 0) +
    (drops.byReason.get('no-source-instruction')?.count ?? 0) + (drops.byReason.get('no-teacher-generations')?.count ?? 0);
  const out = resolve(opts.out);
  const report: DistillReport = {
    source: opts.cache ? 'cache' : 'outputs',
    inputs: opts.inputs,
    cache: opts.cache ?? null,
    options: {
      pick: opts.pick.pick,
      threshold: opts.pick.threshold ?? null,
      topK: opts.pick.topK ?? null,
      devShare: opts.split.devPattern ? null : opts.split.devShare,
      devPattern: opts.split.devPattern?.source ?? null,
      familyPattern: opts.split.familyPattern?.source ?? null,
      seed: opts.split.seed,
    },
    tokenizer: ids && opts.tokenizer ? { dir: opts.tokenizer, sha256: ids.digest, eos: ids.eos, maxTokens: ids.maxTokens } : null,
    teachers: [...teachers.values()],
    tasks: { read: tasks.length + dropsFromTasks, withPairs: withPairs.size },
    candidates: tasks.reduce((n, t) => n + t.candidates.length, 0),
    pairs: { train: built.train.length, dev: built.dev.length },
    families: { train: famList('train'), dev: famList('dev') },
    dropped: drops.toJson(),
    out: { train: join(out, 'train.jsonl'), dev: join(out, 'dev.jsonl'), report: join(out, REPORT) },
  };

  const staged = new StagedDir(out, { replace: opts.force, marker: REPORT });
  try {
    for (const [name, pairs] of [['train.jsonl', built.train], ['dev.jsonl', built.dev]] as [string, DistillPair[]][]) {
      const f = staged.openFile(name);
      for (const p of pairs) f.write(JSON.stringify(p) + '\n');
    }
    staged.openFile(REPORT).write(JSON.stringify(report, null, 2) + '\n');
    staged.commit();
  } catch (err) {
    staged.abort();
    throw err;
  }
  return report;
}

/** The one-line summary printed on stderr. */
export function summaryLine(r: DistillReport): string {
  const dropped = Object.entries(r.dropped)
    .map(([reason, d]) => `${d.count} ${reason}`)
    .join(', ');
  return (
    `distill-data: ${r.tasks.read} tasks, ${r.candidates} candidates -> ${r.pairs.train} train pairs (${r.families.train.length} families), ` +
    `${r.pairs.dev} dev pairs (${r.families.dev.length} families)` +
    (dropped ? ` | dropped: ${dropped}` : '') +
    ` -> ${r.out.train.replace(/train\.jsonl$/, '')}`
  );
}
