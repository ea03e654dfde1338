// Ctrl-C, or SIGTERM from a scheduler preempting a job: every uit command stops at once and
// cleanly. What was committed stays (the cache's batches); what was being written is removed (the
// temp files and staging folders of io/live-temps.ts), so nothing half-written is left beside an
// output; the process says so in one line and exits 130 (SIGINT) or 143 (SIGTERM).
// A command with a stop of its own (a run to record as interrupted) adds a hook; a command that
// handles the signals itself (`uit serve` finishes its running batch) installs its own listener,
// and this one then leaves the signal to it.
import { removeLiveTemps } from './io/live-temps.js';

/** Called on a stop before the process exits; may return a sentence for the user. */
export type StopHook = (signal: NodeJS.Signals) => string | undefined;

const hooks = new Set<StopHook>();

/** Adds a hook for the current command; returns its removal. */
export function addStopHook(hook: StopHook): () => void {
  hooks.add(hook);
  return () => hooks.delete(hook);
}

function onSignal(signal: NodeJS.Signals): void {
  // another listener (uit serve's graceful stop) owns this signal
  if (process.listenerCount(signal) > 1) return;
  const notes: string[] = [];
  for (const hook of hooks) {
    try {
      const note = hook(signal);
      if (note) notes.push(note);
    } catch {
      // stopping matters more than a hook's failure
    }
  }
  const removed = removeLiveTemps();
  if (removed.length > 0) notes.push(`removed ${removed.length} unfinished output file${removed.length === 1 ? '' : 's'} (nothing was written to the output)`);
  process.stderr.write(`\nuit: ${signal}: stopped${notes.length ? `; ${notes.join('; ')}` : ''}\n`);
  process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
}

/** The CLI's default stop (src/cli.ts installs it once). */
export function installStopHandlers(): void {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
