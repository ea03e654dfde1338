// Checks that run before SQLite may touch a file, and the translation of SQLite's failures into
// CacheErrors that name the file and say what to do. uit never writes to a file it did not make.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { CacheError } from '../errors.js';
import { APPLICATION_ID, type FileIdentity } from './schema.js';

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

export type FileState = 'missing' | 'empty' | 'sqlite';

/** Looks at the bytes only: a file that is not SQLite is refused before SQLite opens it. */
export function preflight(path: string): FileState {
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new CacheError(`${path} is a directory, not a cache file`);
    size = st.size;
  } catch (err) {
    if (err instanceof CacheError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw new CacheError(`${path}: cannot read the cache file: ${(err as Error).message}`, { cause: err });
  }
  if (size === 0) return 'empty';
  const head = Buffer.alloc(100);
  let n = 0;
  try {
    const fd = openSync(path, 'r');
    try {
      n = readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw new CacheError(`${path}: cannot read the cache file: ${(err as Error).message}`, { cause: err });
  }
  if (n < 100 || !head.subarray(0, 16).equals(SQLITE_MAGIC)) {
    throw new CacheError(
      `${path} is not a SQLite database (it starts with ${describeBytes(head.subarray(0, Math.min(n, 16)))}); ` +
        'uit leaves it untouched: pass another --cache file, or move this one away',
    );
  }
  return 'sqlite';
}

function describeBytes(b: Buffer): string {
  const text = b.toString('utf8');
  // Printable text reads better as text ("{"a": 1}" says "a JSON file"); anything else as hex.
  if (/^[\t\n\r\x20-\x7e]*$/.test(text)) return JSON.stringify(text);
  return `bytes ${b.toString('hex').replace(/(..)/g, '$1 ').trim()}`;
}

export function isFresh(id: FileIdentity): boolean {
  return id.applicationId === 0 && id.userVersion === 0 && id.tables.length === 0;
}

/** Refuses a SQLite file that is some other program's database. */
export function checkOwnership(path: string, id: FileIdentity, latest: number): void {
  if (id.applicationId === APPLICATION_ID) {
    if (id.userVersion > latest) {
      throw new CacheError(
        `${path} was created by a newer uit (cache schema v${id.userVersion}; this uit reads up to v${latest}): ` +
          'upgrade uit, or pass another --cache file',
      );
    }
    return;
  }
  if (isFresh(id)) return;
  const why =
    id.applicationId !== 0
      ? `its application_id is 0x${(id.applicationId >>> 0).toString(16)}, a uit cache has 0x${APPLICATION_ID.toString(16)}`
      : `it holds other tables (${id.tables.slice(0, 6).join(', ')}${id.tables.length > 6 ? ', ...' : ''})`;
  throw new CacheError(`${path} is a SQLite database but not a uit cache (${why}); uit leaves it untouched: pass another --cache file`);
}

/** SQLite failures in cache operations, as CacheErrors with the file's name and a hint. */
export function translateSqliteError(path: string, what: string, err: unknown, busyTimeoutMs: number): unknown {
  if (!(err instanceof Database.SqliteError)) return err;
  const code = err.code;
  let hint: string;
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    hint = `the cache is locked by another process (waited ${busyTimeoutMs / 1000} s)`;
  } else if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    hint = `the cache file is damaged; \`uit cache salvage ${path} --cache NEW.sqlite\` copies every row that can still be read into a new cache (then use that one), or move it away and rerun (a rerun recomputes what was lost)`;
  } else if (code.startsWith('SQLITE_READONLY')) {
    hint = 'the cache file or its folder is read-only';
  } else if (code === 'SQLITE_FULL') {
    hint = 'the disk is full';
  } else if (code.startsWith('SQLITE_CANTOPEN')) {
    hint = 'cannot open the file (does its folder exist and is it writable?)';
  } else if (code.startsWith('SQLITE_IOERR')) {
    hint = 'an I/O error';
  } else {
    hint = 'SQLite error';
  }
  return new CacheError(`${path}: ${what}: ${hint} (${code}: ${err.message})`, { cause: err });
}
