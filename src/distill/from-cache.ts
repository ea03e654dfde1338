// The teacher's work as the cache holds it: the generations of an API (or any) generator and the
// scores of its candidates, matched to the source tasks they were made for. The cache keeps texts,
// not task ids, so the source tasks are read again (the inputs `uit transfer` or `uit convert` was
// given): a task's candidates are the samples of every transfer prompt, of either style, whose
// last block holds the task's source instruction, and a candidate's score is pooled from the
// scores whose prefix starts with "Definition: {candidate}\n\n" and whose target is one of the
// task's gold outputs (the UIT scoring prompt, docs/scoring.md): the numbers the denoiser ranked.
import { cachedRequests } from '../generator/index.js';
import type { Cache, StoredModel } from '../cache/index.js';
import { ExitCode, UitError } from '../errors.js';
import type { ReadOptions } from '../formats/api.js';
import type { ScoringMode } from '../perplexity/defaults.js';
import { definitionParagraph } from '../perplexity/scoring-prompt.js';
import { readTasks } from '../transfer/inputs.js';
import { transferPromptSource } from '../transfer/prompt.js';
import { Drops, type TeacherTask } from './teacher.js';

export interface CacheTeacherOptions {
  /** Teacher model ids or names (default: every API model with generations). */
  teachers?: string[];
  /** Scorer id or name (default: the one scorer in the cache, none when there is none). */
  scorer?: string;
  from?: string;
  read: ReadOptions;
}

function findModel(models: StoredModel[], want: string, what: string, cacheFile: string): StoredModel {
  const m = models.find((x) => x.id === want) ?? models.filter((x) => x.name === want)[0];
  if (!m) {
    const known = models.map((x) => `${x.id} (${x.kind}, ${x.name})`).join('; ') || 'none';
    throw new UitError(`${what} ${JSON.stringify(want)} is not in ${cacheFile}; its models: ${known}`, ExitCode.USAGE);
  }
  return m;
}

/** Picks the teachers and the scorer, as the options say or from what the cache holds. */
function chooseModels(cache: Cache, opts: CacheTeacherOptions): { teachers: StoredModel[]; scorer: string | null } {
  const models = cache.models();
  const stats = cache.stats();
  let teachers: StoredModel[];
  if (opts.teachers && opts.teachers.length > 0) teachers = opts.teachers.map((t) => findModel(models, t, '--teacher', cache.path));
  else {
    const generating = new Set(stats.generations.byModel.map((m) => m.id));
    teachers = models.filter((m) => m.kind === 'api' && generating.has(m.id));
    if (teachers.length === 0) {
      throw new UitError(
        `${cache.path} holds no generations of an API model; name the teacher with --teacher ID (uit cache stats lists the models)`,
        ExitCode.USAGE,
      );
    }
  }
  let scorer: string | null = null;
  if (opts.scorer !== undefined) scorer = findModel(models, opts.scorer, '--scorer', cache.path).id;
  else {
    const scorers = stats.scores.byScorer.map((s) => s.id);
    if (scorers.length > 1) {
      throw new UitError(`${cache.path} holds scores of ${scorers.length} scorers (${scorers.join(', ')}): pick one with --scorer ID`, ExitCode.USAGE);
    }
    scorer = scorers[0] ?? null;
  }
  return { teachers, scorer };
}

interface Transfer {
  teacher: StoredModel;
  texts: string[];
}

/** The teacher tasks of `inputs`, from the generations and scores in `cache`. */
export async function readCacheTeacher(cache: Cache, inputs: string[], opts: CacheTeacherOptions, drops: Drops): Promise<TeacherTask[]> {
  const { teachers, scorer } = chooseModels(cache, opts);
  // Source instruction (trimmed, as the transfer prompt holds it) -> the teachers' samples for it.
  const bySource = new Map<string, Transfer[]>();
  for (const teacher of teachers) {
    for (const req of cachedRequests(cache, teacher.id)) {
      const source = transferPromptSource(req.prompt);
      if (source === undefined) continue; // another kind of generation (uit generate, a chat)
      const key = source.trim();
      const texts = req.samples.flatMap((s) => (s ? [s.text.trim()] : []));
      bySource.set(key, [...(bySource.get(key) ?? []), { teacher, texts }]);
    }
  }
  // The tasks and their candidates first, then every candidate's scores in one pass over the cache.
  const found: { task: TeacherTask; golds: Set<string> }[] = [];
  for await (const item of readTasks(inputs, opts.from, opts.read)) {
    if (item.kind === 'error') throw item.error;
    const task = item.task.task;
    const source = task.definition.trim();
    if (source === '') {
      drops.add('no-source-instruction', task.id);
      continue;
    }
    const transfers = bySource.get(source);
    if (!transfers) {
      drops.add('no-teacher-generations', task.id);
      continue;
    }
    const golds = new Set<string>();
    for (const i of task.instances) for (const o of i.outputs) golds.add(o);
    for (const e of task.positiveExamples) golds.add(e.output);
    // One candidate per distinct text, in the order the teacher's requests and samples give them.
    const texts = [...new Set(transfers.flatMap((t) => t.texts))];
    const names = [...new Set(transfers.map((t) => t.teacher))];
    found.push({
      golds,
      task: {
        task: task.id,
        source: { file: task.source.file, format: task.source.format },
        sourceInstruction: source,
        teacher: { model: names.map((t) => t.id).join(' + '), name: names.map((t) => t.name).join(' + ') },
        scorer,
        candidates: texts.map((definition) => ({ definition, meanCe: null })),
        chosen: null,
        from: `cache ${cache.path}`,
      },
    });
  }
  if (scorer) {
    // A candidate's score: the scores of the `uit` scoring prompt, else those of the `reference`
    // one (docs/scoring.md), on the task's own gold outputs.
    const paragraphs = (mode: ScoringMode) => found.flatMap((f) => f.task.candidates.filter((c) => c.definition !== '').map((c) => definitionParagraph(c.definition, mode)));
    const scored = { uit: cache.scoresWithPrefixStarts(scorer, paragraphs('uit')), reference: cache.scoresWithPrefixStarts(scorer, paragraphs('reference')) };
    for (const f of found) {
      for (const c of f.task.candidates) {
        if (c.definition === '') continue;
        for (const mode of ['uit', 'reference'] as const) {
          c.meanCe = pooledMeanCe(scored[mode].get(definitionParagraph(c.definition, mode)) ?? [], f.golds);
          if (c.meanCe !== null) break;
        }
      }
    }
  }
  return found.map((f) => f.task);
}

/** Token-weighted mean CE of scores on the task's gold outputs, or null when there are none. */
function pooledMeanCe(scores: { target: string; tokenCount: number; sumCe: number }[], golds: Set<string>): number | null {
  let sum = 0;
  let tokens = 0;
  for (const s of scores) {
    if (s.tokenCount === 0 || !golds.has(s.target)) continue;
    sum += s.sumCe;
    tokens += s.tokenCount;
  }
  return tokens > 0 ? sum / tokens : null;
}
