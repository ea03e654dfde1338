// Atomic output files: a temp file beside the target, flushed to disk, then renamed into place.
// The files are real; the fsync/rename order is observed by wrapping node:fs's own functions
// (calls pass straight through), since a skipped fsync leaves no trace in the file's bytes.
import { spawnSync } from 'node:child_process';
import fs, { existsSync, fstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitCode, OutputError } from '../../src/errors.js';
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

/** The writer's open descriptor (private): to check that commit and abort close it. */
const fdOf = (w: AtomicWriter) => (w as unknown as { fd: number | null }).fd;

function expectOutputError(fn: () => unknown, target: string, reason: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(OutputError);
  expect((caught as OutputError).exitCode).toBe(ExitCode.OUTPUT);
  expect((caught as OutputError).message).toMatch(new RegExp(`^${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot write: ${reason.source}`));
}

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

describe('writeFileAtomic on a bad target', () => {
  it('refuses a folder where the file should go, naming it, and leaves no temp file', () => {
    const target = join(tmp, 'a-folder');
    mkdirSync(target);
    expectOutputError(() => writeFileAtomic(target, 'x'), target, /it is a folder \(EISDIR\)$/);
    // at once, before a long run writes anything, not when it commits at the end
    expectOutputError(() => new AtomicWriter(target), target, /it is a folder \(EISDIR\)$/);
    expect(statSync(target).isDirectory()).toBe(true);
    expect(leftovers(tmp)).toEqual([]);
  });

  it('turns a failed rename into an OutputError and removes the temp file', () => {
    const target = join(tmp, 'late-folder');
    const w = new AtomicWriter(target);
    w.write('x');
    mkdirSync(join(target, 'inside'), { recursive: true }); // appears while the writer is open
    expectOutputError(() => w.commit(), target, /(it is a folder|a folder that is not empty)/);
    expect(existsSync(w.tempPath)).toBe(false);
    expect(() => w.write('again')).toThrow(/is closed/);
  });

  it("removes temp files that dead processes left for the same target, not a live process's", () => {
    const target = join(tmp, 'stale.txt');
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const dead = join(tmp, `.stale.txt.${child.stdout}.abc.tmp`);
    const live = join(tmp, `.stale.txt.${process.pid}.abc.tmp`);
    const other = join(tmp, `.other.txt.${child.stdout}.abc.tmp`);
    for (const f of [dead, live, other]) writeFileSync(f, 'left over');
    writeFileAtomic(target, 'new');
    expect([existsSync(dead), existsSync(live), existsSync(other)]).toEqual([false, true, true]);
    for (const f of [live, other]) rmSync(f);
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
    const fd = fdOf(w)!;
    w.commit();
    expect(() => fstatSync(fd)).toThrow(/EBADF/); // closed
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
    const fd = fdOf(w)!;
    w.abort();
    expect(() => fstatSync(fd)).toThrow(/EBADF/); // closed
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
    // the name the cleanup of killed runs recognises (src/io/stale.ts): .<name>.<pid>.<stamp>.tmp
    for (const w of [a, b]) expect(w.tempPath.slice(tmp.length + 1)).toMatch(new RegExp(`^\\.two\\.txt\\.${process.pid}\\.[0-9a-z]+\\.tmp$`));
    a.abort();
    b.abort();
  });
});
