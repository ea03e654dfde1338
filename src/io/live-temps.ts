// The temp files and staging folders this process has open. A signal (Ctrl-C, SIGTERM from a
// scheduler) ends the process without unwinding its stack, so the CLI's signal handler removes
// them here: a stopped run leaves nothing behind, as an aborted one does. (SIGKILL cannot be
// caught: the next run into the same output removes what a dead process left, see stale.ts.)
import { rmSync } from 'node:fs';

const live = new Set<string>();

export function trackTemp(path: string): void {
  live.add(path);
}

export function untrackTemp(path: string): void {
  live.delete(path);
}

/** Removes every tracked temp file and staging folder; returns the paths removed. */
export function removeLiveTemps(): string[] {
  const removed: string[] = [];
  for (const p of live) {
    try {
      rmSync(p, { recursive: true, force: true });
      removed.push(p);
    } catch {
      // best effort: the process is ending
    }
  }
  live.clear();
  return removed;
}
