// A run killed with SIGKILL cannot clean up: it leaves its staging folder (beside a new output
// folder, inside an existing one, with the old entries of a --force replace) or its temp files
// (beside an output file). The next run into the same output removes those of processes that no
// longer exist, so a resumed run leaves exactly what an uninterrupted one would. Only uit's own
// temp names are touched, and never those of a live process.
import { readdirSync, rmSync, statSync } from 'node:fs';
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

/** `.<name>.uit-staging-<pid>-<t>` (StagedDir), beside a folder output that did not exist. */
const SIBLING = /^\.(.+)\.uit-staging-(\d+)-[0-9a-z]+$/;
/** `.uit-staging-<pid>-<t>` and `.uit-old-<pid>-<t>` inside an existing output folder. */
const INSIDE = /^\.uit-(?:staging|old)-(\d+)-[0-9a-z]+$/;
/** `.<name>.<pid>.<t>.tmp` (AtomicWriter; a cache built in a temp file has its -wal and -shm too). */
const TEMP = /^\.(.+)\.(\d+)\.[0-9a-z]+\.tmp(?:-wal|-shm|-journal)?$/;

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Leftovers of dead processes in `dir` for the outputs named `names` (null: any name). */
function staleEntries(dir: string, names: ReadonlySet<string> | null): string[] {
  const remove: string[] = [];
  if (!isDir(dir)) return remove;
  for (const entry of readdirSync(dir)) {
    const sib = SIBLING.exec(entry);
    const inside = INSIDE.exec(entry);
    const temp = TEMP.exec(entry);
    if (sib && (names === null || names.has(sib[1])) && !alive(Number(sib[2]))) remove.push(join(dir, entry));
    else if (inside && names === null && !alive(Number(inside[1]))) remove.push(join(dir, entry));
    else if (temp && (names === null || names.has(temp[1])) && !alive(Number(temp[2]))) remove.push(join(dir, entry));
  }
  return remove;
}

/** Removes leftovers of killed runs for the outputs `targets` (files or folders); returns what it removed. */
export function removeStaleTemps(targets: readonly string[]): string[] {
  const removed: string[] = [];
  const byDir = new Map<string, Set<string>>();
  for (const t of targets) {
    const d = dirname(t);
    if (!byDir.has(d)) byDir.set(d, new Set());
    byDir.get(d)!.add(basename(t));
  }
  for (const [d, names] of byDir) {
    const remove = staleEntries(d, names);
    for (const p of remove) rmSync(p, { recursive: true, force: true });
    removed.push(...remove);
  }
  for (const t of targets) {
    // inside an output folder: its staging folder and the old entries of a replace, temp files
    if (!isDir(t)) continue;
    const remove = staleEntries(t, null);
    for (const p of remove) rmSync(p, { recursive: true, force: true });
    removed.push(...remove);
  }
  return removed;
}
