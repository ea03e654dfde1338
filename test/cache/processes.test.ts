// Real processes on a real file: two writers at once lose nothing, and a writer killed with
// SIGKILL leaves every committed batch and no part of the one it was writing.
import { afterAll, beforeAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openCache } from '../../src/cache/index.js';
import { CHILD_WRITER, privateBuild, tempDir, type PrivateBuild } from './helpers.js';

let tmp: ReturnType<typeof tempDir>;
let build: PrivateBuild;
beforeAll(() => {
  build = privateBuild();
});
afterAll(() => build?.remove());
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

function startWriter(
  cache: string,
  id: string,
  batches: number,
  rows: number,
  barrier?: string,
): { child: ChildProcess; commits: number[]; begun: number[]; stderr: () => string } {
  const env = barrier === undefined ? process.env : { ...process.env, UIT_TEST_BARRIER: barrier };
  const child = spawn(process.execPath, [CHILD_WRITER, build.dist, cache, id, String(batches), String(rows)], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const commits: number[] = [];
  const begun: number[] = [];
  let err = '';
  let pending = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      const [what, n] = line.split(' ');
      (what === 'begin' ? begun : commits).push(Number(n));
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  return { child, commits, begun, stderr: () => err };
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.on('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** Rows per target (one target per writer and batch), read back through the API. */
function rowsPerBatch(file: string): Map<string, number> {
  const c = openCache(file, { readonly: true });
  try {
    expect(c.check()).toEqual([]);
    const counts = new Map<string, number>();
    for (const row of c.exportRows('scores')) counts.set(row.target as string, (counts.get(row.target as string) ?? 0) + 1);
    return counts;
  } finally {
    c.close();
  }
}

describe('two processes writing one cache file', () => {
  it('both succeed, even creating the file at the same moment, and every row is there', async () => {
    const file = join(tmp.dir, 'shared', 'cache.sqlite');
    const batches = 40;
    const rows = 25;
    // Both open the (not yet existing) file, then wait for each other before writing.
    const barrier = join(tmp.dir, 'barrier');
    mkdirSync(barrier);
    const a = startWriter(file, 'A', batches, rows, `${barrier}:2`);
    const b = startWriter(file, 'B', batches, rows, `${barrier}:2`);
    // If one dies, stop the other too, so a failure shows as a failure and not as a hang.
    const [ea, eb] = await Promise.all(
      [a, b].map(async (w, i) => {
        const e = await exited(w.child);
        if (e.code !== 0) [a, b][1 - i].child.kill('SIGKILL');
        return e;
      }),
    );
    expect(a.stderr()).toBe('');
    expect(b.stderr()).toBe('');
    expect(ea.code).toBe(0);
    expect(eb.code).toBe(0);
    expect(a.commits).toHaveLength(batches);
    expect(b.commits).toHaveLength(batches);

    const counts = rowsPerBatch(file);
    expect(counts.size).toBe(2 * batches);
    // The writes really interleaved: each writer committed while the other was mid-way.
    const c0 = openCache(file, { readonly: true });
    const span = (w: string) =>
      c0.db.prepare('SELECT min(created_at) AS lo, max(created_at) AS hi FROM scores WHERE target LIKE ?').get(`w${w}/%`) as { lo: string; hi: string };
    const [sa, sb] = [span('A'), span('B')];
    c0.close();
    expect(sa.lo < sb.hi && sb.lo < sa.hi).toBe(true);
    for (const w of ['A', 'B']) for (let i = 0; i < batches; i++) expect(counts.get(`w${w}/b${i}`)).toBe(rows);

    const c = openCache(file, { readonly: true });
    const stats = c.stats();
    c.close();
    expect(stats.rows.scores).toBe(2 * batches * rows);
    expect(stats.rows.runs).toBe(2);
    // The shared paragraphs were written by both processes but stored once.
    expect(stats.rows.texts).toBe(2 + 2 * batches * rows);
  });
});

/**
 * A process that takes a new file's write lock (BEGIN IMMEDIATE, the file still in rollback mode)
 * and holds it for `holdMs`, then writes `done` next to it. Resolves once the lock is held.
 */
async function holdWriteLock(file: string, holdMs: number): Promise<{ child: ChildProcess; done: string }> {
  const done = `${file}.released`;
  const script = `
    import Database from 'better-sqlite3';
    import { writeFileSync } from 'node:fs';
    const [file, ms, done] = process.argv.slice(1);
    const db = new Database(file);
    db.exec('BEGIN IMMEDIATE');
    console.log('locked');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(ms));
    db.exec('COMMIT');
    db.close();
    writeFileSync(done, '');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, file, String(holdMs), done], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the lock holder exited with ${code} before taking the lock`)));
  });
  return { child, done };
}

describe('opening a new cache while another process holds its write lock', () => {
  // SQLite does not call the busy handler for the WAL switch, which reads the file before it needs
  // the write lock: without a retry this failed at once with SQLITE_BUSY (seen when two uit
  // processes started on one new cache).
  it('waits for the lock, then switches the file to WAL', async () => {
    const file = join(tmp.dir, 'new.sqlite');
    const { child, done } = await holdWriteLock(file, 1500);
    const c = openCache(file);
    try {
      expect(existsSync(done)).toBe(true); // it returned after the other process let go
      expect(c.journalMode).toBe('wal');
      c.putScores([{ scorerId: 's', prefix: 'p', target: 't', tokenCount: 1, sumCe: 1, meanCe: 1 }]);
    } finally {
      c.close();
    }
    expect((await exited(child)).code).toBe(0);
  });

  it('gives up after its busy timeout with an error that says so', async () => {
    const file = join(tmp.dir, 'new.sqlite');
    const { child } = await holdWriteLock(file, 1500);
    expect(() => openCache(file, { busyTimeoutMs: 200 })).toThrow(/switching it to WAL mode\): the cache is locked by another process \(waited 0.2 s\)/);
    expect((await exited(child)).code).toBe(0);
  });
});

describe('a writer killed with SIGKILL', () => {
  it('leaves a valid cache with every committed batch and no partial one', async () => {
    const file = join(tmp.dir, 'cache.sqlite');
    const rows = 200; // large batches: the kill most likely lands inside a transaction
    const w = startWriter(file, 'K', 0, rows);
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        // Kill as soon as batch 8 has begun: most likely inside its transaction.
        if (w.begun.length >= 9) {
          clearInterval(timer);
          w.child.kill('SIGKILL');
          resolve();
        } else if (w.child.exitCode !== null) {
          clearInterval(timer);
          reject(new Error(`writer exited early: ${w.stderr()}`));
        }
      }, 0);
    });
    const { signal } = await exited(w.child);
    expect(signal).toBe('SIGKILL');
    const reported = w.commits.length;

    const counts = rowsPerBatch(file);
    // Every batch the writer reported as committed is there, complete.
    for (let b = 0; b < reported; b++) expect(counts.get(`wK/b${b}`)).toBe(rows);
    // Beyond that, at most the one batch that committed before its line reached us; never part of one.
    expect(counts.size).toBeGreaterThanOrEqual(reported);
    expect(counts.size).toBeLessThanOrEqual(reported + 1);
    for (const n of counts.values()) expect(n).toBe(rows);

    // And the file is writable again: the next run resumes on it.
    const c = openCache(file);
    c.putScores([{ scorerId: 's', prefix: 'p', target: 'after-crash', tokenCount: 1, sumCe: 1, meanCe: 1 }]);
    expect(c.stats().runs.running).toBe(1); // the killed run stays marked as running
    c.close();
  });
});
