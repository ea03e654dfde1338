// UIT's perplexity denoising (DESIGN.md, "Perplexity denoising"): a candidate definition is judged
// by how well, with it and two positive examples in the prompt, the scoring LM predicts the gold
// outputs of M instances of the task. Lower mean cross-entropy (perplexity) is better.
//
// Choices (docs/scoring.md says the same):
// - instances: the first M (default 32) of a seeded shuffle of the task's instances (shuffle.ts);
// - gold: an instance's FIRST output, as the UIT reference does; an empty one is scored null and
//   left out of the mean (the reference scores the string "null" instead);
// - examples: the task's first two Positive Examples; a task with fewer (instance-level sources)
//   borrows the missing ones from its instances: the last ones of the shuffle with a non-empty
//   output, which are then not scored, never the last such instance (it is scored instead). A
//   task with no instances to borrow gets fewer blocks: one record alone is scored zero-shot;
// - a candidate's score: the token-weighted mean CE over its scored instances (sum of CE / sum of
//   tokens), and perplexity = exp(mean CE). (The reference averages the means of 4 chunks of 8.)
// - prompts longer than the scorer's context: the long inputs are shortened, never the Definition
//   (fit-prompt.ts); only a prompt that cannot fit that way meets the scorer's overflow policy.
import type { Example, Instance, Task } from '../types.js';
import { DEFAULT_INSTANCES } from './defaults.js';
import { fitUitSetup, unfitted, type FitReport } from './fit-prompt.js';
import { buildScoringPrefix } from './scoring-prompt.js';
import type { PairScore, ScorePair, Scorer } from './scorer.js';
import { rankAndSelect, type Selection } from './select.js';
import { instanceRng, shuffled } from './shuffle.js';

export { DEFAULT_INSTANCES };
export const EXAMPLES_IN_PROMPT = 2;

export interface UitOptions {
  /** M: instances scored per candidate (default 32). */
  instances?: number;
  /** Seed of the instance shuffle (default 0). */
  seed?: number;
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
  // Never the last instance with a gold output: a one-record task (most Alpaca data) is scored on
  // that record, with fewer examples in the prompt, rather than left with nothing to score.
  let gold = pool.filter((x) => (x.outputs[0] ?? '') !== '').length;
  for (let i = pool.length - 1; i >= 0 && examples.length + borrowed.length < EXAMPLES_IN_PROMPT && gold > 1; i--) {
    if ((pool[i].outputs[0] ?? '') !== '') {
      borrowed.push(pool[i]);
      gold--;
    }
  }
  if (borrowed.length > 0) {
    pool = pool.filter((x) => !borrowed.includes(x));
    examples.push(...borrowed.map((x) => ({ input: x.input, output: x.outputs[0] })));
  }
  return {
    taskId: task.id,
    examples,
    examplesFromInstances: borrowed.map((x) => x.id),
    instances: pool.slice(0, m),
  };
}

/** The (prefix, target) pairs of one candidate: one per scored instance, gold = first output. */
export function uitPairs(setup: UitSetup, definition: string, file = setup.taskId): ScorePair[] {
  return setup.instances.map((inst) => ({
    prefix: buildScoringPrefix(definition, setup.examples, inst.input),
    target: inst.outputs[0] ?? '',
    where: { file, field: `Instances[id=${inst.id}]` },
  }));
}

export interface CandidateScore {
  /** Position in the candidate list. */
  index: number;
  definition: string;
  /** Token-weighted mean CE over the scored instances; null when none had a non-empty output. */
  meanCe: number | null;
  /** exp(meanCe). */
  perplexity: number | null;
  sumCe: number;
  /** Gold tokens scored. */
  tokens: number;
  /** Instances with a non-empty gold output (in the mean). */
  instances: number;
  /** Instances whose gold output is empty (scored null, not in the mean). */
  emptyInstances: number;
  /** Instances whose prompt lost tokens on the left to fit the context (the Definition first). */
  truncatedInstances: number;
  /**
   * Instances whose prompt had inputs shortened (an example's or its own) to fit the context with
   * the Definition whole (fit-prompt.ts); the same for every candidate fitted with the task's reserve.
   */
  shortenedInstances: number;
  /** Its inputs were fitted for it alone: its Definition is longer than the reserve (fit-prompt.ts). */
  fittedAlone: boolean;
  /** Per scored instance, in UitSetup order: its mean CE (null for an empty output). */
  instanceMeanCe: (number | null)[];
  /** 1 = best; null when unscored. */
  rank: number | null;
  /** Kept by the selection (lowest perplexity, threshold, top-k). */
  kept: boolean;
}

export interface TaskScores {
  taskId: string;
  setup: UitSetup;
  /** Per candidate: the setup whose texts it was scored on (`setup` itself unless inputs were shortened to fit). */
  scored: UitSetup[];
  /** Indices of the examples whose input the task's shared fit shortened. */
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
   * (default true; never under the scorer's `error` overflow policy, which leaves prompts as they are).
   */
  fitInputs?: boolean;
  /** Tokens of Definition the shared fit leaves room for (fit-prompt.ts; default min(128, context / 4)). */
  definitionReserve?: number;
}

/** Scores every candidate of a task in one scorer call (so the planner sees all shared prefixes). */
export async function scoreCandidates(
  scorer: Scorer,
  task: Task,
  candidates: readonly string[],
  opts: ScoreCandidatesOptions = {},
): Promise<TaskScores> {
  const setup = uitSetup(task, opts);
  const file = opts.file ?? task.source.file;
  const fit = fitFor(scorer, setup, candidates, opts);
  const pairs = candidates.flatMap((d, k) => uitPairs(fit.setups[k], d, file));
  const scores = await scorer.score(pairs);
  const n = setup.instances.length;
  const partial = candidates.map((definition, index) => ({
    ...aggregate(index, definition, scores.slice(index * n, (index + 1) * n)),
    shortenedInstances: fit.shortened[index].filter(Boolean).length,
    fittedAlone: fit.alone[index],
  }));
  const ranked = rankAndSelect(
    partial.map((c) => c.meanCe),
    { threshold: opts.threshold, topK: opts.topK },
  );
  const result = partial.map((c, i) => ({ ...c, ...ranked[i] }));
  const best = result.filter((c) => c.kept).sort((a, b) => a.rank! - b.rank!)[0];
  return {
    taskId: task.id,
    setup,
    scored: fit.setups,
    shortenedExamples: fit.shortenedExamples,
    candidates: result,
    best: best ? best.index : null,
  };
}

function fitFor(scorer: Scorer, setup: UitSetup, candidates: readonly string[], opts: ScoreCandidatesOptions): FitReport {
  const max = scorer.contextLength;
  if (opts.fitInputs === false || max === undefined || scorer.overflowPolicy === 'error') return unfitted(setup, candidates.length);
  return fitUitSetup(setup, candidates, {
    count: (t) => scorer.countTokens(t),
    maxPositions: max,
    bound: scorer.tokenBound(),
    reserve: opts.definitionReserve,
  });
}

function aggregate(index: number, definition: string, scores: readonly PairScore[]): Omit<CandidateScore, 'rank' | 'kept' | 'shortenedInstances' | 'fittedAlone'> {
  let sumCe = 0;
  let tokens = 0;
  let instances = 0;
  let truncated = 0;
  for (const s of scores) {
    if (s.truncatedPrefixTokens > 0) truncated++;
    if (s.tokens === 0) continue;
    sumCe += s.sumCe;
    tokens += s.tokens;
    instances++;
  }
  const meanCe = tokens > 0 ? sumCe / tokens : null;
  return {
    index,
    definition,
    meanCe,
    perplexity: meanCe === null ? null : Math.exp(meanCe),
    sumCe,
    tokens,
    instances,
    emptyInstances: scores.length - instances,
    truncatedInstances: truncated,
    instanceMeanCe: scores.map((s) => s.meanCe),
  };
}
