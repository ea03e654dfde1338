// Atomic output files: a temp file beside the target, flushed to disk, then renamed into place.
// The files are real; the fsync/rename order is observed by wrapping node:fs's own functions
// (calls pass straight through), since a skipped fsync leaves no trace in the file's bytes.
import fs, { existsSync, fstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AtomicWriter, writeFileAtomic } from '../../src/io/atomic.js';

const tmp = mkdtempSync(join(tmpdir(), 'uit-atomic-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs `fn` while recording fsync and rename calls by the inode they touch. */
function recordingFs(fn: () => void): string[] {
  const calls: string[] = [];
  const { fsyncSync, renameSync } = fs;
  fs.fsyncSync = (fd) => {
    calls.push(`fsync ${fstatSync(fd).ino}`);
    fsyncSync(fd);
  };
  fs.renameSync = (from, to) => {
    calls.push(`rename ${statSync(from).ino}`);
    renameSync(from, to);
  };
  syncBuiltinESMExports(); // the named imports of node:fs in src/ now see the wrappers
  try {
    fn();
  } finally {
    fs.fsyncSync = fsyncSync;
    fs.renameSync = renameSync;
    syncBuiltinESMExports();
  }
  return calls;
}

const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

describe('writeFileAtomic', () => {
  it('creates missing folders, writes the bytes, and replaces an existing file', () => {
    const target = join(tmp, 'a/b/out.json');
    writeFileAtomic(target, '{"x": "é"}\n');
    expect(readFileSync(target, 'utf8')).toBe('{"x": "é"}\n');
    writeFileAtomic(target, Uint8Array.from([1, 2, 3]));
    expect([...readFileSync(target)]).toEqual([1, 2, 3]);
    expect(leftovers(join(tmp, 'a/b'))).toEqual([]);
  });

  it('flushes the temp file to disk before renaming it into place', () => {
    const target = join(tmp, 'synced.txt');
    const calls = recordingFs(() => writeFileAtomic(target, 'durable'));
    const ino = statSync(target).ino;
    expect(calls).toEqual([`fsync ${ino}`, `rename ${ino}`]);
    expect(readFileSync(target, 'utf8')).toBe('durable');
  });

  it('leaves the old file and no temp file when writing fails', () => {
    const target = join(tmp, 'kept.txt');
    writeFileSync(target, 'old');
    // a value writeSync refuses: the failure comes after the temp file was opened
    expect(() => writeFileAtomic(target, 42 as unknown as string)).toThrow();
    expect(readFileSync(target, 'utf8')).toBe('old');
    expect(leftovers(tmp)).toEqual([]);
  });
});

describe('AtomicWriter', () => {
  it('writes in pieces to a hidden temp file beside the target; commit renames it', () => {
    const target = join(tmp, 'pieces.txt');
    const w = new AtomicWriter(target);
    expect(w.tempPath.startsWith(join(tmp, '.pieces.txt.'))).toBe(true);
    expect(w.tempPath.endsWith('.tmp')).toBe(true);
    w.write('one, ');
    w.write(new TextEncoder().encode('two'));
    expect(existsSync(target)).toBe(false);
    expect(existsSync(w.tempPath)).toBe(true);
    w.commit();
    expect(readFileSync(target, 'utf8')).toBe('one, two');
    expect(existsSync(w.tempPath)).toBe(false);
    expect(() => w.write('late')).toThrow(/is closed/);
    expect(() => w.commit()).toThrow(/is closed/);
  });

  it('abort removes the temp file and keeps the target as it was; a second abort is harmless', () => {
    const target = join(tmp, 'aborted.txt');
    writeFileSync(target, 'before');
    const w = new AtomicWriter(target);
    w.write('half');
    w.abort();
    expect(readFileSync(target, 'utf8')).toBe('before');
    expect(existsSync(w.tempPath)).toBe(false);
    w.abort();
    expect(() => w.write('x')).toThrow(/is closed/);
  });

  it('two writers for one target get different temp files', () => {
    const target = join(tmp, 'two.txt');
    const a = new AtomicWriter(target);
    const b = new AtomicWriter(target);
    expect(a.tempPath).not.toBe(b.tempPath);
    // the name the cleanup of killed runs recognises (src/transfer/stale.ts): .<name>.<pid>.<stamp>.tmp
    for (const w of [a, b]) expect(w.tempPath.slice(tmp.length + 1)).toMatch(new RegExp(`^\\.two\\.txt\\.${process.pid}\\.[0-9a-z]+\\.tmp$`));
    a.abort();
    b.abort();
  });
});
