// Connects `uit compare --scorer DIR` to the perplexity scorer (src/perplexity/). Compare only
// depends on the DefinitionScorer function type, so the report is testable with any scorer.
import { UitError, ExitCode } from '../errors.js';
import type { DefinitionScorer } from './report.js';

export interface ScorerOptions {
  /** Instances scored per task (the UIT default is 32). */
  maxInstances: number;
  seed: number;
  quiet: boolean;
}

export async function loadDefinitionScorer(dir: string, _opts: ScorerOptions): Promise<DefinitionScorer> {
  throw new UitError(
    `--scorer ${dir}: perplexity scoring is not available in this build yet (src/perplexity has no scorer API); run compare without --scorer`,
    ExitCode.USAGE,
  );
}
