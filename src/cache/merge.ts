// `uit cache merge A B ... --cache T`: all or nothing. Every source is checked before anything is
// written; the rows of all of them go into T in one transaction, so a source that turns out to be
// damaged halfway leaves T as it was; and a T that did not exist is built in a temp file and
// renamed into place only when every source merged, so a failed merge leaves no file behind.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { trackTemp, untrackTemp } from '../io/live-temps.js';
import { removeStaleTemps } from '../io/stale.js';
import { openCache, type MergeResult, type MergeTable } from './cache.js';

export interface MergeAllOptions {
  busyTimeoutMs?: number;
  /** Told after each source merged (inside the transaction: nothing is committed yet). */
  onMerged?: (result: MergeResult) => void;
}

export interface MergeAllResult {
  cache: string;
  /** Whether the cache file was created by this merge. */
  created: boolean;
  merged: MergeResult[];
  added: Record<MergeTable, number>;
}

export function mergeCaches(targetArg: string, sources: readonly string[], opts: MergeAllOptions = {}): MergeAllResult {
  const target = resolve(targetArg);
  // every source must open as a uit cache of a schema this uit reads, before the target is touched
  for (const s of sources) openCache(s, { readonly: true, busyTimeoutMs: opts.busyTimeoutMs }).close();
  removeStaleTemps([target]); // what a killed merge into the same file left
  const created = !existsSync(target);
  const path = created ? join(dirname(target), `.${basename(target)}.${process.pid}.${Date.now().toString(36)}.tmp`) : target;
  const temps = created ? ['', '-wal', '-shm'].map((x) => path + x) : [];
  temps.forEach(trackTemp);
  const removeTemps = () => {
    for (const t of temps) {
      rmSync(t, { force: true });
      untrackTemp(t);
    }
  };
  let c;
  try {
    c = openCache(path, { busyTimeoutMs: opts.busyTimeoutMs });
  } catch (err) {
    removeTemps();
    throw err;
  }
  const merged: MergeResult[] = [];
  try {
    c.startRun('cache merge', { from: [...sources] });
    try {
      c.transaction(() => {
        for (const s of sources) {
          const r = c.mergeFrom(s);
          merged.push(r);
          opts.onMerged?.(r);
        }
      });
    } catch (err) {
      try {
        c.finishRun('failed');
      } catch {
        // the merge's own failure is what the user needs to see
      }
      throw err;
    }
    const added: Record<MergeTable, number> = { models: 0, texts: 0, runs: 0, generations: 0, scores: 0 };
    for (const r of merged) for (const k of Object.keys(added) as MergeTable[]) added[k] += r.added[k];
    c.finishRun('ok', { added });
    c.close();
    if (created) {
      renameSync(path, target);
      removeTemps();
    }
    return { cache: target, created, merged, added };
  } catch (err) {
    c.close();
    if (created) removeTemps();
    throw err;
  }
}
