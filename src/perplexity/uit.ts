// UIT's perplexity denoising (DESIGN.md, "Perplexity denoising"): a candidate definition is judged
// by how well, with it and two positive examples in the prompt, the scoring LM predicts the gold
// outputs of M instances of the task. Lower mean cross-entropy (perplexity) is better.
//
// Choices of the default `uit` scoring mode (docs/scoring.md says the same; the `reference` mode
// follows the UIT reference implementation instead where it differs, see aggregate.ts):
// - instances: the first M (default 32) of a seeded shuffle of the task's instances (shuffle.ts),
//   the same for every candidate (in both modes);
// - gold: an instance's FIRST output, as the UIT reference does; an empty one is scored null and
//   left out of the mean (the reference scores the string "null" instead);
// - examples: the task's first two Positive Examples, or a candidate's own when it carries some
//   (an API transfer rewrites the examples with the Definition). A task with fewer than two
//   (instance-level sources) borrows the missing ones from its instances: the last ones of the
//   shuffle with a non-empty output, which are then not scored, never the last such instance (it
//   is scored instead). A task with no instances to borrow gets fewer blocks: one record alone is
//   scored zero-shot. (The reference mode borrows nothing: the reference needs two.)
// - a candidate's score: the token-weighted mean CE over its scored instances (sum of CE / sum of
//   tokens), and perplexity = exp(mean CE). (The reference averages the means of 4 chunks of 8.)
// - prompts longer than the scorer's context: the long inputs are shortened, never the Definition
//   (fit-prompt.ts); only a prompt that cannot fit that way meets the scorer's overflow policy.
import { InputError } from '../errors.js';
import type { Example, Instance, Task } from '../types.js';
import { REFERENCE_MIN_INSTANCES, aggregate, unscoredAggregate, type Aggregate, type UnscoredReason } from './aggregate.js';
import { DEFAULT_INSTANCES, DEFAULT_SCORING, type ScoringMode } from './defaults.js';
import { fitUitSetup, unfitted, type FitReport } from './fit-prompt.js';
import { buildScoringPrefix, scoringTarget } from './scoring-prompt.js';
import type { ScorePair, Scorer } from './scorer.js';
import { rankAndSelect, type Selection } from './select.js';
import { instanceRng, shuffled } from './shuffle.js';

export { DEFAULT_INSTANCES };
export const EXAMPLES_IN_PROMPT = 2;

export interface UitOptions {
  /** M: instances scored per candidate (default 32). */
  instances?: number;
  /** Seed of the instance shuffle (default 0). */
  seed?: number;
  /** `uit` (default) or `reference` (defaults.ts, ScoringMode). */
  scoring?: ScoringMode;
}

/** A candidate instruction: a Definition, and maybe Positive Examples of its own. */
export interface Candidate {
  definition: string;
  /**
   * Its own Positive Examples (an API transfer rewrites them with the Definition; each of the UIT
   * reference's candidate files has its own): they replace the task's in its scoring prompts, and
   * in the written task when it is picked. Absent or empty: the task's.
   */
  positiveExamples?: Example[];
}

/** A candidate given as its Definition alone, or with its own examples. */
export type CandidateInput = string | Candidate;

export function toCandidate(c: CandidateInput): Candidate {
  return typeof c === 'string' ? { definition: c } : c;
}

export interface UitSetup {
  taskId: string;
  /** The positive examples in the prompt (up to two). */
  examples: Example[];
  /** Ids of instances borrowed as examples (the task had fewer than two). */
  examplesFromInstances: string[];
  /** The scored instances, in shuffle order. */
  instances: Instance[];
}

/** Picks the examples and the scored instances of a task (the same for every candidate). */
export function uitSetup(task: Task, opts: UitOptions = {}): UitSetup {
  const m = opts.instances ?? DEFAULT_INSTANCES;
  if (!(Number.isInteger(m) && m >= 1)) throw new RangeError(`instances must be an integer >= 1, got ${m}`);
  let pool = shuffled(task.instances, instanceRng(opts.seed ?? 0, task.id));
  const examples = task.positiveExamples.slice(0, EXAMPLES_IN_PROMPT);
  const borrowed: Instance[] = [];
  // the reference indexes Positive Examples [0] and [1] and has no fallback: nothing is borrowed
  const borrow = (opts.scoring ?? DEFAULT_SCORING) === 'uit';
  // Never the last instance with a gold output: a one-record task (most Alpaca data) is scored on
  // that record, with fewer examples in the prompt, rather than left with nothing to score.
  // `gold` counts the gold instances in pool[0..i], so `gold > 1` also stops the loop before i < 0.
  let gold = pool.filter((x) => (x.outputs[0] ?? '') !== '').length;
  for (let i = pool.length - 1; borrow && examples.length + borrowed.length < EXAMPLES_IN_PROMPT && gold > 1; i--) {
    if ((pool[i].outputs[0] ?? '') !== '') {
      borrowed.push(pool[i]);
      gold--;
    }
  }
  pool = pool.filter((x) => !borrowed.includes(x));
  examples.push(...borrowed.map((x) => ({ input: x.input, output: x.outputs[0] })));
  return {
    taskId: task.id,
    examples,
    examplesFromInstances: borrowed.map((x) => x.id),
    instances: pool.slice(0, m),
  };
}

/** The (prefix, target) pairs of one candidate: one per scored instance, gold = first output. */
export function uitPairs(setup: UitSetup, definition: string, file = setup.taskId, scoring: ScoringMode = DEFAULT_SCORING): ScorePair[] {
  return setup.instances.map((inst) => ({
    prefix: buildScoringPrefix(definition, setup.examples, inst.input, scoring),
    target: scoringTarget(inst.outputs, scoring),
    where: { file, field: `Instances[id=${inst.id}]` },
  }));
}

/** A candidate's score (the Aggregate fields: aggregate.ts) with its place in the ranking. */
export interface CandidateScore extends Aggregate {
  /** Position in the candidate list. */
  index: number;
  definition: string;
  /** It was scored with Positive Examples of its own (not the task's). */
  ownExamples: boolean;
  /** exp(meanCe). */
  perplexity: number | null;
  /**
   * Instances whose prompt had inputs shortened (an example's or its own) to fit the context with
   * the Definition whole (fit-prompt.ts); the same for every candidate fitted with the task's reserve.
   */
  shortenedInstances: number;
  /** Its inputs were fitted for it alone: its Definition is longer than the reserve (fit-prompt.ts). */
  fittedAlone: boolean;
  /** 1 = best; null when unscored. */
  rank: number | null;
  /** Kept by the selection (lowest perplexity, threshold, top-k). */
  kept: boolean;
}

export interface TaskScores {
  taskId: string;
  /** The scoring mode the scores were made in. */
  scoring: ScoringMode;
  setup: UitSetup;
  /** Per candidate: the setup whose texts it was scored on (`setup` itself unless inputs were shortened to fit or it has its own examples). */
  scored: UitSetup[];
  /** Indices of the task's examples whose input the task's shared fit shortened. */
  shortenedExamples: number[];
  candidates: CandidateScore[];
  /** Index of the best kept candidate; null when none is kept. */
  best: number | null;
}

export interface ScoreCandidatesOptions extends UitOptions, Selection {
  /** File named in errors (default: the task's source file). */
  file?: string;
  /**
   * Shorten long inputs so that prompts fit the scorer's context with the Definition whole
   * (default true; never under the scorer's `error` overflow policy, which leaves prompts as they
   * are, nor in the reference mode, whose prompts are the reference's).
   */
  fitInputs?: boolean;
  /** Tokens of Definition the shared fit leaves room for (fit-prompt.ts; default min(128, context / 4)). */
  definitionReserve?: number;
}

/** Scores every candidate of a task in one scorer call (so the planner sees all shared prefixes). */
export async function scoreCandidates(
  scorer: Scorer,
  task: Task,
  candidates: readonly CandidateInput[],
  opts: ScoreCandidatesOptions = {},
): Promise<TaskScores> {
  const scoring = opts.scoring ?? DEFAULT_SCORING;
  const cands = candidates.map(toCandidate);
  const setup = uitSetup(task, opts);
  const file = opts.file ?? task.source.file;
  const bases = baseSetups(setup, cands, scoring, file);
  const fit = fitFor(scorer, setup, bases, cands, opts);
  const pairs = cands.map((c, k) => uitPairs(fit.setups[k], c.definition, file, scoring));
  const n = setup.instances.length;
  // Where the reference gives no score whatever the model says (too few instances, a prompt over
  // the context), no pair is worth a model call.
  const skip: (UnscoredReason | null)[] =
    scoring !== 'reference'
      ? pairs.map(() => null)
      : n < REFERENCE_MIN_INSTANCES
        ? pairs.map(() => 'too-few-instances')
        : overContext(scorer, pairs).map((over) => (over ? 'prompt-over-context' : null));
  const scores = await scorer.score(pairs.filter((_, k) => skip[k] === null).flat());
  const goldEmpty = setup.instances.map((x) => (x.outputs[0] ?? '') === '');
  let next = 0;
  const partial = cands.map((c, index) => ({
    index,
    definition: c.definition,
    ownExamples: bases[index] !== setup,
    ...(skip[index] !== null ? unscoredAggregate(skip[index], goldEmpty) : aggregate(scores.slice(next, (next += n)), goldEmpty, scoring)),
    shortenedInstances: fit.shortened[index].filter(Boolean).length,
    fittedAlone: fit.alone[index],
  }));
  const ranked = rankAndSelect(
    partial.map((c) => c.meanCe),
    { threshold: opts.threshold, topK: opts.topK },
  );
  const result: CandidateScore[] = partial.map((c, i) => ({ ...c, perplexity: c.meanCe === null ? null : Math.exp(c.meanCe), ...ranked[i] }));
  const best = result.filter((c) => c.kept).sort((a, b) => a.rank! - b.rank!)[0];
  return {
    taskId: task.id,
    scoring,
    setup,
    scored: fit.setups,
    shortenedExamples: fit.shortenedExamples,
    candidates: result,
    best: best ? best.index : null,
  };
}

/**
 * Per candidate: whether one of its pairs is longer than the scorer's context (as the scorer
 * tokenizes: prefix and target apart). The byte bound spares the tokenizer where it certainly fits.
 */
function overContext(scorer: Scorer, pairs: readonly ScorePair[][]): boolean[] {
  const max = scorer.contextLength;
  if (max === undefined) return pairs.map(() => false);
  const bound = scorer.tokenBound();
  const fits = (p: ScorePair) =>
    (bound !== undefined && bound(p.prefix) + bound(p.target) <= max) || scorer.countTokens(p.prefix) + scorer.countTokens(p.target) <= max;
  return pairs.map((ps) => !ps.every(fits));
}

/** Per candidate, the setup before fitting: the task's, or one with the candidate's own examples. */
function baseSetups(setup: UitSetup, cands: readonly Candidate[], scoring: ScoringMode, file: string): UitSetup[] {
  return cands.map((c, k) => {
    const own = c.positiveExamples ?? [];
    const examples = own.length > 0 ? own.slice(0, EXAMPLES_IN_PROMPT) : setup.examples;
    if (scoring === 'reference' && examples.length < EXAMPLES_IN_PROMPT) {
      const whose = own.length > 0 ? `candidate ${k} carries` : 'the task has';
      throw new InputError(
        { file },
        `reference scoring needs two Positive Examples (the reference's prompt shows Positive Examples 1 and 2); ${whose} ${examples.length}: add examples, or use --scoring uit`,
      );
    }
    return own.length > 0 ? { ...setup, examples, examplesFromInstances: [] } : setup;
  });
}

/**
 * Fits each group of candidates that share a setup (the task's, or one candidate's own examples)
 * on its own, so a candidate's prompts depend on the task and on itself only.
 */
function fitFor(scorer: Scorer, setup: UitSetup, bases: readonly UitSetup[], cands: readonly Candidate[], opts: ScoreCandidatesOptions): FitReport {
  const max = scorer.contextLength;
  const report: FitReport = { setups: [], shortened: [], alone: [], shortenedExamples: [] };
  const groups = new Map<UitSetup, number[]>();
  bases.forEach((b, k) => groups.set(b, [...(groups.get(b) ?? []), k]));
  const off = opts.fitInputs === false || max === undefined || scorer.overflowPolicy === 'error' || (opts.scoring ?? DEFAULT_SCORING) === 'reference';
  groups.forEach((members, base) => {
    const defs = members.map((k) => cands[k].definition);
    const fit = off
      ? unfitted(base, defs.length)
      : fitUitSetup(base, defs, { count: (t) => scorer.countTokens(t), maxPositions: max, bound: scorer.tokenBound(), reserve: opts.definitionReserve });
    members.forEach((k, j) => {
      report.setups[k] = fit.setups[j];
      report.shortened[k] = fit.shortened[j];
      report.alone[k] = fit.alone[j];
    });
    // the task-level report names the task's examples (a candidate's own are its own)
    if (base === setup) report.shortenedExamples = fit.shortenedExamples;
  });
  return report;
}
