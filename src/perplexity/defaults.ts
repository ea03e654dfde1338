// Scoring constants the command line declares options with, kept apart from the scorer so that
// declaring them (`uit --help`) does not load the model runtime.

/** What to do when prefix + target is longer than the model's context. */
export type OverflowPolicy = 'truncate-left' | 'error';
export const OVERFLOW_POLICIES: readonly OverflowPolicy[] = ['truncate-left', 'error'];

/** M: instances scored per candidate definition. */
export const DEFAULT_INSTANCES = 32;
