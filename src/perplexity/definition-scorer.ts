// Perplexities of given definitions of tasks, for comparing instructions rather than picking one
// (`uit compare --scorer`, and `compare.compareOutputs({ scorer })` from the library). Each task is
// one scoreCandidates call, so the prompts, instances, seed and cache keys are those of
// `uit score-instructions` for the same definitions: the two commands share their scores.
import type { Task } from '../types.js';
import type { Scorer } from './scorer.js';
import { scoreCandidates, type ScoreCandidatesOptions, type TaskScores } from './uit.js';

/** Called around the work, e.g. to drive a progress bar (the CLI's scoring session implements it). */
export interface DefinitionScoringHooks {
  /** Before the first task: every task and its definitions. */
  onStart?(tasks: readonly Task[], definitionsPerTask: readonly (readonly string[])[]): void;
  beforeTask?(task: Task): void;
  afterTask?(task: Task, scores: TaskScores): void;
}

/**
 * A function from tasks and their definitions to one perplexity per definition per task (null when
 * the task has no non-empty gold output among its scored instances), in order. It fits
 * `compare.compareOutputs`'s `scorer`. Selection options (threshold, top-k) play no part here.
 */
export function definitionScorer(
  scorer: Scorer,
  opts: ScoreCandidatesOptions = {},
  hooks: DefinitionScoringHooks = {},
): (tasks: Task[], definitionsPerTask: string[][]) => Promise<(number | null)[][]> {
  return async (tasks, definitionsPerTask) => {
    if (definitionsPerTask.length !== tasks.length) {
      throw new RangeError(`definitionScorer: ${tasks.length} tasks but ${definitionsPerTask.length} definition lists`);
    }
    hooks.onStart?.(tasks, definitionsPerTask);
    const out: (number | null)[][] = [];
    for (let i = 0; i < tasks.length; i++) {
      hooks.beforeTask?.(tasks[i]);
      const scores = await scoreCandidates(scorer, tasks[i], definitionsPerTask[i], opts);
      hooks.afterTask?.(tasks[i], scores);
      out.push(scores.candidates.map((c) => c.perplexity));
    }
    return out;
  };
}
