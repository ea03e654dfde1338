// Files that are not uit caches are refused with a CacheError naming the file, and left untouched.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openCache } from '../../src/cache/index.js';
import { CacheError, ExitCode } from '../../src/errors.js';
import { tempDir } from './helpers.js';

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

/** Opening must fail with a CacheError (exit code 5) whose message names the file and matches `why`. */
function expectRefused(file: string, why: RegExp, readonly = false): CacheError {
  let caught: unknown;
  try {
    openCache(file, { readonly }).close();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CacheError);
  const e = caught as CacheError;
  expect(e.exitCode).toBe(ExitCode.CACHE);
  expect(e.message).toContain(file);
  expect(e.message).toMatch(why);
  return e;
}

function expectUntouched(file: string, before: Buffer): void {
  expect(readFileSync(file).equals(before)).toBe(true);
  expect(existsSync(`${file}-wal`)).toBe(false);
  expect(existsSync(`${file}-shm`)).toBe(false);
}

describe('not SQLite at all', () => {
  it('a text file', () => {
    const file = join(tmp.dir, 'notes.txt');
    writeFileSync(file, 'These are my notes, not a database.\n'.repeat(10));
    const before = readFileSync(file);
    expectRefused(file, /is not a SQLite database \(it starts with "These are my not"\)/);
    expectUntouched(file, before);
  });

  it('random bytes', () => {
    const file = join(tmp.dir, 'random.bin');
    const bytes = Buffer.alloc(8192);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    bytes[0] = 0x89; // not printable: shown as hex
    writeFileSync(file, bytes);
    expectRefused(file, /is not a SQLite database \(it starts with bytes 89 /);
    expectUntouched(file, bytes);
  });

  it('a SQLite header cut short', () => {
    const file = join(tmp.dir, 'short.sqlite');
    writeFileSync(file, Buffer.from('SQLite format 3\0 and then nothing', 'latin1'));
    expectRefused(file, /not a SQLite database/);
  });

  it('a directory, and a missing file when read-only', () => {
    const dir = join(tmp.dir, 'adir');
    mkdirSync(dir);
    expectRefused(dir, /is a directory/);
    const missing = join(tmp.dir, 'missing.sqlite');
    expectRefused(missing, /no cache file there/, true);
    expect(existsSync(missing)).toBe(false);
  });

  it('an empty file: refused read-only, made a cache when writable', () => {
    const file = join(tmp.dir, 'empty.sqlite');
    writeFileSync(file, '');
    expectRefused(file, /is empty: not a uit cache yet/, true);
    const c = openCache(file);
    expect(c.schemaVersion).toBe(1);
    c.close();
  });
});

describe('foreign SQLite databases', () => {
  it('with its own tables: refused, never modified (not even switched to WAL)', () => {
    const file = join(tmp.dir, 'app.db');
    const db = new Database(file);
    db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada')");
    db.close();
    const before = readFileSync(file);
    expectRefused(file, /is a SQLite database but not a uit cache \(it holds other tables \(users\)\)/);
    expectRefused(file, /not a uit cache/, true);
    expectUntouched(file, before);
  });

  it('with another application_id, even when empty', () => {
    const file = join(tmp.dir, 'other-app.db');
    const db = new Database(file);
    db.pragma(`application_id = ${0x47504b47}`); // "GPKG": a GeoPackage
    db.close();
    const before = readFileSync(file);
    expectRefused(file, /application_id is 0x47504b47, a uit cache has 0x75697443/);
    expectUntouched(file, before);
  });
});

describe('a damaged uit cache', () => {
  function makeCache(file: string): void {
    const c = openCache(file);
    c.putScores(
      Array.from({ length: 400 }, (_, i) => ({
        scorerId: 's',
        prefix: `Definition: d\n\nInput: ${i} ${'p'.repeat(300)}\nOutput: `,
        target: `t${i}`,
        tokenCount: 1,
        sumCe: 1,
        meanCe: 1,
      })),
    );
    c.close(); // checkpoints the WAL into the main file
  }

  function overwrite(file: string, offset: number, length: number): void {
    const fd = openSync(file, 'r+');
    const junk = Buffer.alloc(length, 0xa5);
    writeSync(fd, junk, 0, length, offset);
    closeSync(fd);
  }

  it('with garbage in its data pages: reads fail with a CacheError naming the file', () => {
    const file = join(tmp.dir, 'damaged.sqlite');
    makeCache(file);
    const size = statSync(file).size;
    expect(size).toBeGreaterThan(40 * 4096);
    for (let page = 4; page * 4096 < size; page += 3) overwrite(file, page * 4096, 4096);
    let caught: unknown;
    try {
      const c = openCache(file, { readonly: true });
      try {
        c.stats();
        [...c.exportRows('scores')];
      } finally {
        c.close();
      }
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CacheError);
    expect((caught as Error).message).toContain(file);
    expect((caught as Error).message).toMatch(/damaged|not a SQLite database/);
  });

  it('with its schema page destroyed: opening fails with a CacheError', () => {
    const file = join(tmp.dir, 'damaged-schema.sqlite');
    makeCache(file);
    overwrite(file, 100, 4096 - 100); // page 1 after the header: the schema table's root
    expectRefused(file, /damaged|not a SQLite database|malformed/);
  });
});
