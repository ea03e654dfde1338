// The UIT pipeline: read tasks -> transfer prompt -> N candidate definitions -> UIT scoring ->
// selection -> Ni-v2 output, every generation and score through the SQLite cache.
//
// One function serves three commands, so they share every step:
//   convert  = transfer + denoise, writing tasks (folder, .json or .jsonl) and a provenance sidecar;
//   transfer = candidates only, writing the candidates JSONL (candidates-file.ts);
//   denoise  = scoring and selection of candidates read from such a file, writing tasks.
//
// Resuming is the cache's job: outputs are staged and appear only when the run ends, and a rerun
// finds every finished generation and score in the cache (zero model calls when all are there).
// Outputs hold no timestamps or timings and follow the input order, so a killed and resumed run
// writes the same bytes as an uninterrupted one. Leftover temp files of killed runs are removed.
import type { Cache } from '../cache/index.js';
import type { LazyTask, ReadOptions, TargetFormat } from '../formats/api.js';
import { writerByName } from '../formats/registry.js';
import { JsonlWriter } from '../io/jsonl.js';
import { ExitCode, InputError, UitError } from '../errors.js';
import type { Candidate, Scorer } from '../perplexity/index.js';
import { REFERENCE_MIN_INSTANCES, scoreCandidates, uitSetup, unscoredText, type CandidateScore, type TaskScores } from '../perplexity/index.js';
import { createProgress, type Progress } from '../progress.js';
import type { Provenance, Task } from '../types.js';
import { candidatesEntry, unusedEntries, type LoadedCandidates, type TransferInfo } from './candidates-file.js';
import type { CandidateSource } from './candidates.js';
import type { GenerationParams } from '../generator/index.js';
import { readTasks } from './inputs.js';
import { checkInstances, definitionsToWrite, modelProvenance, prepareNiv2, withDefinitions, withPositiveExamples, type ScorerInfo, type SelectionInfo } from './model-output.js';
import type { FileCandidate } from './reference-layout.js';
import { buildTransferPrompt, type PromptStyle, type SeedPair } from './prompt.js';
import { outputName } from './output-name.js';
import { inShard, type Shard } from './shard.js';
import { removeStaleTemps } from '../io/stale.js';
import { errorsPathFor, failureOf, isTaskError, writeErrorsFile, type TaskFailure } from './task-errors.js';

export type PipelineCommand = 'convert' | 'transfer' | 'denoise';

export interface TransferStep {
  source: CandidateSource;
  info: TransferInfo;
  style: PromptStyle;
  seeds: SeedPair[];
  params: GenerationParams;
  numCandidates: number;
  /** Calls that reached the generator: forward passes of a local model, requests of an API. */
  modelCalls: () => number;
}

export interface DenoiseStep {
  scorer: Scorer;
  info: ScorerInfo;
  selection: SelectionInfo;
  /** Positive Examples taken from the first instances of a task that has none (default 2). */
  examples: number;
}

export interface PipelineOptions {
  command: PipelineCommand;
  input: string[];
  from?: string;
  read?: Pick<ReadOptions, 'rows' | 'dataset' | 'truncate' | 'seed' | 'head'>;
  /** Output: a folder, .json or .jsonl (tasks), or .jsonl (candidates, for `transfer`). */
  out: string;
  /** Target format of convert and denoise (Ni-v2 only: the model writes Ni-v2 definitions). */
  to?: TargetFormat;
  cache: Cache;
  /** convert and transfer. */
  transfer?: TransferStep;
  /** convert and denoise. */
  denoise?: DenoiseStep;
  /**
   * denoise: the candidates to score. A task without an entry here is scored on the candidates
   * its input carries (the UIT reference's layout, reference-layout.ts), if any.
   */
  candidates?: LoadedCandidates;
  shard?: Shard;
  /** Stop at the first bad task (exit code BAD_INPUT) and write nothing. */
  strict?: boolean;
  /** Replace an existing output folder (a uit output) as a whole instead of refusing it (`--force`). */
  force?: boolean;
  /** No progress bar (--json, tests). */
  quiet?: boolean;
  /** Told about every written (or filtered) task, e.g. for the demo's display. */
  onTask?: (report: TaskReport) => void;
}

export interface TaskReport {
  id: string;
  /** Output path relative to the output (null when filtered out, or for `transfer`). */
  output: string | null;
  candidates: string[];
  scores: TaskScores | null;
  provenance: Provenance | null;
}

export interface PipelineSummary {
  command: PipelineCommand;
  input: string[];
  out: string;
  to: TargetFormat | null;
  provenance: string | null;
  /** The errors file, when some task failed. */
  errors: string | null;
  shard: string | null;
  tasks: {
    /** Written (convert, denoise) or given candidates (transfer). */
    ok: number;
    failed: number;
    /** Every candidate above --threshold: the task is left out (its provenance says why). */
    filtered: number;
    /** Tasks read but owned by another shard. */
    otherShards: number;
    /**
     * Written tasks whose scoring prompts had long inputs shortened to fit the scorer's context,
     * the Definition kept whole (provenance: shortenedInstances).
     */
    shortenedScoring: number;
    /**
     * Written tasks where some scoring prompt did not fit even with its inputs shortened and was
     * cut on the left (its Definition first): their scores say less (provenance: truncatedInstances).
     */
    truncatedScoring: number;
  };
  candidates: { generated: number; cached: number };
  scores: { computed: number; cached: number };
  /** Forward passes (local models) or API requests; 0 on a rerun of a finished job. */
  modelCalls: { generation: number; scoring: number; total: number };
  /** New tokens generated in this run. */
  tokens: number;
  /** Candidate lines of a denoise input that matched no task read. */
  unusedCandidates?: number;
  failures: TaskFailure[];
  seconds: number;
}

type Outcome = { kind: 'ok'; report: TaskReport } | { kind: 'filtered'; report: TaskReport };

interface Sinks {
  writer?: ReturnType<ReturnType<typeof writerByName>['open']>;
  candidates?: JsonlWriter;
}

export async function runPipeline(opts: PipelineOptions): Promise<PipelineSummary> {
  const t0 = performance.now();
  check(opts);
  const to = opts.command === 'transfer' ? null : (opts.to ?? 'niv2');
  const failures: TaskFailure[] = [];
  const summary: PipelineSummary = {
    command: opts.command,
    input: opts.input,
    out: opts.out,
    to,
    provenance: null,
    errors: null,
    shard: opts.shard ? `${opts.shard.index}/${opts.shard.count}` : null,
    tasks: { ok: 0, failed: 0, filtered: 0, otherShards: 0, shortenedScoring: 0, truncatedScoring: 0 },
    candidates: { generated: 0, cached: 0 },
    scores: { computed: 0, cached: 0 },
    modelCalls: { generation: 0, scoring: 0, total: 0 },
    tokens: 0,
    failures,
    seconds: 0,
  };
  const errorsPath = errorsPathFor(opts.out);
  const readOpts: ReadOptions = { ...(opts.read ?? {}) };

  const total = opts.quiet || !process.stderr.isTTY ? 0 : await countTasks(opts, readOpts);
  const bar = createProgress({
    label: opts.command,
    total,
    quiet: opts.quiet,
    extraFormat: '{cands} candidates | {tps} tok/s | cache hits {hits}',
    payload: { cands: 0, tps: 0, hits: 0 },
  });

  // Outputs: staged until the end; leftovers of killed runs removed first.
  const sinks: Sinks = {};
  const used = new Set<string>();
  try {
    if (to === null) {
      removeStaleTemps([errorsPath]);
      sinks.candidates = new JsonlWriter(opts.out);
    } else {
      removeStaleTemps([errorsPath]);
      const writer = writerByName(to).open({ out: opts.out, replace: opts.force });
      sinks.writer = writer;
      summary.provenance = writer.provenancePath ?? null;
    }

    for await (const item of readTasks(opts.input, opts.from, readOpts)) {
      if (item.kind === 'error') {
        if (!inShard(item.part, opts.shard)) continue;
        if (opts.strict) throw item.error;
        failures.push(failureOf(item.error, { file: item.part }));
        summary.tasks.failed++;
        bar.tick(1, progressPayload(opts, t0));
        continue;
      }
      const lt = item.task;
      if (!inShard(lt.task.id, opts.shard)) {
        summary.tasks.otherShards++;
        continue;
      }
      try {
        // two tasks with one id would write one file (or one candidates line) twice
        if (used.has(lt.task.id)) throw new InputError({ file: lt.task.source.file }, `a task with the id ${JSON.stringify(lt.task.id)} was already read`);
        used.add(lt.task.id);
        const outcome = await processTask(opts, lt, sinks, to, item.candidates);
        if (outcome.kind === 'ok') summary.tasks.ok++;
        else summary.tasks.filtered++;
        if (outcome.report.scores?.candidates.some((c) => c.shortenedInstances > 0)) summary.tasks.shortenedScoring++;
        if (outcome.report.scores?.candidates.some((c) => c.truncatedInstances > 0)) summary.tasks.truncatedScoring++;
        opts.onTask?.(outcome.report);
      } catch (err) {
        if (!isTaskError(err)) throw err;
        if (opts.strict) throw err;
        failures.push(failureOf(err, { file: lt.task.source.file, task: lt.task.id }));
        summary.tasks.failed++;
      }
      bar.tick(1, progressPayload(opts, t0));
    }

    sinks.writer?.commit();
    sinks.candidates?.commit();
  } catch (err) {
    sinks.candidates?.abort();
    sinks.writer?.abort();
    throw err;
  } finally {
    bar.stop();
  }

  summary.errors = writeErrorsFile(errorsPath, failures);
  if (opts.candidates) {
    summary.unusedCandidates = unusedEntries(opts.candidates, used).filter((id) => inShard(id, opts.shard)).length;
  }
  fillCounts(summary, opts);
  summary.seconds = Math.round((performance.now() - t0) / 10) / 100;
  return summary;
}

function check(opts: PipelineOptions): void {
  const needs = (cond: unknown, what: string) => {
    if (!cond) throw new TypeError(`runPipeline(${opts.command}): ${what}`);
  };
  needs(opts.command !== 'denoise' ? opts.transfer : true, 'needs a transfer step');
  needs(opts.command !== 'transfer' ? opts.denoise : true, 'needs a denoise step');
  if (opts.command !== 'transfer' && (opts.to ?? 'niv2') !== 'niv2') {
    throw new UitError('the model method writes Ni-v2 definitions: use --to niv2', ExitCode.USAGE);
  }
}

async function countTasks(opts: PipelineOptions, readOpts: ReadOptions): Promise<number> {
  let n = 0;
  for await (const item of readTasks(opts.input, opts.from, readOpts)) {
    if (inShard(item.kind === 'task' ? item.task.task.id : item.part, opts.shard)) n++;
  }
  return n;
}

function progressPayload(opts: PipelineOptions, t0: number): Record<string, number> {
  const s = opts.transfer?.source.stats;
  const seconds = (performance.now() - t0) / 1000;
  const hits = opts.cache.counters.generations.hits + opts.cache.counters.scores.hits;
  return {
    cands: s ? s.generated + s.cached : 0,
    tps: s && seconds > 0 ? Math.round(s.tokens / seconds) : 0,
    hits,
  };
}

function fillCounts(summary: PipelineSummary, opts: PipelineOptions): void {
  const t = opts.transfer;
  if (t) {
    summary.candidates = { generated: t.source.stats.generated, cached: t.source.stats.cached };
    summary.tokens = t.source.stats.tokens;
    summary.modelCalls.generation = t.modelCalls();
  }
  const sc = opts.denoise?.scorer.stats;
  if (sc) {
    summary.scores = { computed: sc.computed, cached: sc.cacheHits };
    summary.modelCalls.scoring = sc.modelCalls;
  }
  summary.modelCalls.total = summary.modelCalls.generation + summary.modelCalls.scoring;
}

/** The task's source instruction: what the reader gives as its instruction (Ni-v2: Definition[0]). */
function sourceInstruction(lt: LazyTask): string {
  const s = lt.task.definition.trim();
  if (s === '') throw new InputError({ file: lt.task.source.file }, 'the task has no instruction (definition) to transfer');
  return s;
}

/** A candidate and, for one read from a file of the reference's layout, that file. */
type Cand = Candidate & { file?: string };

async function candidatesFor(
  opts: PipelineOptions,
  lt: LazyTask,
  carried: FileCandidate[] | undefined,
): Promise<{ cands: Cand[]; transfer: TransferInfo | null }> {
  const t = opts.transfer;
  if (t) {
    const prompt = buildTransferPrompt(sourceInstruction(lt), t.style, t.seeds);
    const samples = await t.source.samples(prompt, t.numCandidates, t.params);
    return { cands: samples.map((s) => ({ definition: s.text.trim() })), transfer: t.info };
  }
  const c = opts.candidates;
  const entry = c ? candidatesEntry(c, lt.task.id) : undefined;
  if (entry) return { cands: entry.record.candidates.map((x) => ({ ...x, definition: x.definition.trim() })), transfer: entry.record.transfer ?? null };
  // a candidate file's Definition is scored as the file has it (the reference's own end in a space)
  if (carried) return { cands: carried, transfer: null };
  throw new InputError(
    { file: c?.file ?? lt.task.source.file },
    c
      ? `no candidates for task ${JSON.stringify(lt.task.id)}`
      : `no candidates for task ${JSON.stringify(lt.task.id)}: pass --candidates FILE, or give the candidate files in the UIT reference's layout (<k>of<N>sample_<task>.json)`,
  );
}

async function processTask(opts: PipelineOptions, lt: LazyTask, sinks: Sinks, to: TargetFormat | null, carried?: FileCandidate[]): Promise<Outcome> {
  // A task that cannot be scored fails before its candidates cost anything.
  const d = opts.denoise;
  const prep = d ? prepareNiv2(lt, d.examples) : null;
  if (d && prep) {
    const { scoring } = d.selection;
    const setup = uitSetup(prep.task.task, { instances: d.selection.instances, seed: d.selection.instanceSeed, scoring });
    if (scoring === 'uit' && setup.instances.every((i) => (i.outputs[0] ?? '') === '')) throw unscorable(lt, 'no-gold-output', setup.instances.length);
    if (scoring === 'reference' && setup.instances.length < REFERENCE_MIN_INSTANCES) throw unscorable(lt, 'too-few-instances', setup.instances.length);
  }
  const { cands, transfer } = await candidatesFor(opts, lt, carried);
  const texts = cands.map((c) => c.definition);
  if (to === null || !d || !prep) {
    const task = lt.task;
    sinks.candidates!.write({
      task: task.id,
      source: { file: task.source.file, format: task.source.format, instruction: task.definition },
      candidates: texts,
      transfer,
    });
    return { kind: 'ok', report: { id: task.id, output: null, candidates: texts, scores: null, provenance: null } };
  }

  const scores = await scoreNonEmpty(d, prep.task.task, cands, lt.task.source.file);
  const reason = scores.candidates.find((c) => c.unscored !== null)?.unscored;
  if (reason && scores.candidates.every((c) => c.meanCe === null)) throw unscorable(lt, reason, scores.setup.instances.length);
  // The pick's own Positive Examples, when it has some, are the written task's (no borrowing then).
  const own = scores.best === null ? undefined : cands[scores.best].positiveExamples;
  const { task: base, borrowed } = own?.length ? { task: withPositiveExamples(lt, own), borrowed: 0 } : prep;
  const provenance = modelProvenance({
    source: lt.task,
    target: to,
    transfer,
    scorer: d.info,
    selection: d.selection,
    scores,
    borrowed,
    files: cands.map((c) => c.file),
  });
  const definitions = definitionsToWrite(scores, d.selection.keepCandidates);
  if (scores.best === null) {
    sinks.writer!.provenance?.write({ id: lt.task.id, output: null, ...provenance, filtered: 'every candidate is above the threshold' });
    return { kind: 'filtered', report: { id: lt.task.id, output: null, candidates: texts, scores, provenance } };
  }
  const out = withDefinitions(base, definitions);
  await checkInstances(out);
  const where = await sinks.writer!.write(out);
  const output = outputName(opts.out, where);
  sinks.writer!.provenance?.write({ id: lt.task.id, output, ...provenance });
  return { kind: 'ok', report: { id: lt.task.id, output, candidates: texts, scores, provenance } };
}

function unscorable(lt: LazyTask, reason: NonNullable<CandidateScore['unscored']>, instances: number): InputError {
  return new InputError({ file: lt.task.source.file }, unscoredText(reason, instances));
}

/**
 * Scores the non-empty candidates; an empty one (the model ended at once) stays in the list,
 * unscored and never selected, since an empty Definition is no instruction at all.
 */
async function scoreNonEmpty(d: DenoiseStep, task: Task, cands: Candidate[], file: string): Promise<TaskScores> {
  const idx = cands.flatMap((c, i) => (c.definition === '' ? [] : [i]));
  if (idx.length === 0) {
    throw new InputError({ file }, `all ${cands.length} candidates are empty (the transfer model ended each at once): nothing to select`);
  }
  const scored = await scoreCandidates(d.scorer, task, idx.map((i) => cands[i]), {
    instances: d.selection.instances,
    seed: d.selection.instanceSeed,
    scoring: d.selection.scoring,
    threshold: d.selection.threshold,
    topK: d.selection.topK,
    file,
  });
  if (idx.length === cands.length) return scored;
  const candidates: CandidateScore[] = cands.map((c, index) => ({
    index,
    definition: c.definition,
    ownExamples: (c.positiveExamples?.length ?? 0) > 0,
    meanCe: null,
    perplexity: null,
    unscored: null,
    sumCe: 0,
    tokens: 0,
    instances: 0,
    emptyInstances: 0,
    truncatedInstances: 0,
    shortenedInstances: 0,
    fittedAlone: false,
    instanceMeanCe: [],
    chunkMeanCe: null,
    rank: null,
    kept: false,
  }));
  scored.candidates.forEach((c, j) => (candidates[idx[j]] = { ...c, index: idx[j] }));
  return { ...scored, candidates, best: scored.best === null ? null : idx[scored.best] };
}
