// Scoring constants the command line declares options with, kept apart from the scorer so that
// declaring them (`uit --help`) does not load the model runtime.

/** What to do when prefix + target is longer than the model's context. */
export type OverflowPolicy = 'truncate-left' | 'error';
export const OVERFLOW_POLICIES: readonly OverflowPolicy[] = ['truncate-left', 'error'];

/** M: instances scored per candidate definition. */
export const DEFAULT_INSTANCES = 32;

/**
 * How candidates are scored (docs/scoring.md, "Scoring modes"): `uit`, this tool's recipe, or
 * `reference`, the UIT reference implementation's exactly (the Definition as Python's repr of a
 * list, "null" for an empty gold output, the mean of 4 chunks of 8 instances).
 */
export type ScoringMode = 'uit' | 'reference';
export const SCORING_MODES: readonly ScoringMode[] = ['uit', 'reference'];
export const DEFAULT_SCORING: ScoringMode = 'uit';
