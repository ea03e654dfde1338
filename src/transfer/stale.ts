// A run killed with SIGKILL cannot clean up: it leaves its staging folder (inside an output
// folder) or its temp files (beside an output file). The next run into the same output removes
// those of processes that no longer exist, so a resumed run leaves exactly what an uninterrupted
// one would. Only uit's own temp names are touched, and never those of a live process.
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `.uit-staging-<pid>-<t>` (StagedDir) and `.<name>.<pid>.<t>.tmp` (AtomicWriter) entries of dead processes. */
function staleEntries(dir: string, names: ReadonlySet<string> | null): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const staging = /^\.uit-staging-(\d+)-[0-9a-z]+$/.exec(entry);
    const temp = /^\.(.+)\.(\d+)\.[0-9a-z]+\.tmp$/.exec(entry);
    if (staging && !alive(Number(staging[1]))) out.push(join(dir, entry));
    else if (temp && (names === null || names.has(temp[1])) && !alive(Number(temp[2]))) out.push(join(dir, entry));
  }
  return out;
}

/** Removes leftovers of killed runs for the outputs `targets` (files or folders); returns what it removed. */
export function removeStaleTemps(targets: readonly string[]): string[] {
  const removed: string[] = [];
  const byDir = new Map<string, Set<string>>();
  for (const t of targets) {
    const d = dirname(t);
    if (!byDir.has(d)) byDir.set(d, new Set());
    byDir.get(d)!.add(basename(t));
    // inside an output folder: its staging folder and its sidecars' temp files
    if (existsSync(t) && statSync(t).isDirectory()) removed.push(...staleEntries(t, null));
  }
  for (const [d, names] of byDir) removed.push(...staleEntries(d, names));
  for (const p of removed) rmSync(p, { recursive: true, force: true });
  return removed;
}
