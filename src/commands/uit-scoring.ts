// What `uit score-instructions` and `uit compare --scorer` share, so the two always score alike:
// one declaration of the UIT scoring options (--instances, --seed, and any later one), one mapping
// of them to the perplexity API, and one scoring session (scorer, cache, progress bar).
import type { Command } from 'commander';
import { int } from '../cli-values.js';
import { DEFAULT_INSTANCES, DEFAULT_SCORING, type ScoringMode } from '../perplexity/defaults.js';
import { scoringOption } from '../transfer/pipeline-options.js';
// The scorer and the progress bar load when a command runs.
import type { DefinitionScoringHooks, ScoreCandidatesOptions, TaskScores } from '../perplexity/index.js';
import type { Progress } from '../progress.js';
import type { Task } from '../types.js';
import { openScorer, type OpenedScorer, type ScorerCliOptions } from './score.js';

export interface UitScoringCliOptions {
  instances: number;
  seed: number;
  scoring: ScoringMode;
}

export const UIT_SCORING_DEFAULTS: UitScoringCliOptions = { instances: DEFAULT_INSTANCES, seed: 0, scoring: DEFAULT_SCORING };

/** The UIT scoring options: how a definition's score is computed from its task. */
export function addUitScoringOptions(cmd: Command): Command {
  return cmd
    .option('--instances <m>', 'instances scored per definition (M)', int('--instances', 1), UIT_SCORING_DEFAULTS.instances)
    .option('--seed <n>', 'seed of the instance shuffle (the same seed picks the same instances)', int('--seed', 0), UIT_SCORING_DEFAULTS.seed)
    .addOption(scoringOption());
}

/** The command line's UIT scoring options as scoreCandidates options. */
export function uitScoringOptions(opts: UitScoringCliOptions): ScoreCandidatesOptions {
  return { instances: opts.instances, seed: opts.seed, scoring: opts.scoring ?? DEFAULT_SCORING };
}

/**
 * An open scorer with the command's scoring options and a progress bar over (definition, scored
 * instance) pairs; its hooks drive the bar (pass it to definitionScorer, or call them around
 * scoreCandidates). close() stops the bar, records the run in the cache and frees the model.
 */
export interface UitScoringSession extends OpenedScorer, Required<DefinitionScoringHooks> {
  options: ScoreCandidatesOptions;
}

export async function openUitScoring(command: string, opts: ScorerCliOptions & UitScoringCliOptions): Promise<UitScoringSession> {
  const [{ uitSetup }, { createProgress }] = await Promise.all([import('../perplexity/index.js'), import('../progress.js')]);
  const options = uitScoringOptions(opts);
  let progress: Progress | undefined;
  let task = '';
  let ticked = 0;
  const opened = await openScorer(
    command,
    opts,
    (n) => {
      ticked += n;
      progress?.tick(n, { task });
    },
    { scoring: options.scoring ?? DEFAULT_SCORING },
  );
  return {
    ...opened,
    options,
    onStart(tasks, definitionsPerTask) {
      progress?.stop();
      const total = tasks.reduce((n, t, i) => n + definitionsPerTask[i].length * uitSetup(t, options).instances.length, 0);
      progress = createProgress({ label: 'score', total, quiet: opts.json, payload: { task: '' }, extraFormat: '{task}' });
    },
    beforeTask(t: Task) {
      task = t.id;
      ticked = 0;
    },
    afterTask(_t: Task, scores: TaskScores) {
      // empty outputs and repeated definitions never reach a batch: count them here
      progress?.tick(scores.candidates.length * scores.setup.instances.length - ticked);
    },
    async close(status) {
      progress?.stop();
      await opened.close(status);
    },
  };
}
