// The file's header says what it is (application_id) and which schema it has (user_version);
// migrations upgrade old files in one transaction and a newer file is refused.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, openCache, scoreKey, type Migration } from '../../src/cache/index.js';
import { KNOWN_TABLES } from '../../src/cache/schema.js';
import { CacheError } from '../../src/errors.js';
import { tempDir } from './helpers.js';

let tmp: ReturnType<typeof tempDir>;
let file: string;
beforeEach(() => {
  tmp = tempDir();
  file = join(tmp.dir, 'cache.sqlite');
});
afterEach(() => tmp.cleanup());

const record = { scorerId: 's', prefix: 'Definition: d\n\nInput: x\nOutput: ', target: 'y', tokenCount: 1, sumCe: 0.5, meanCe: 0.5 };

/** The v2 a future uit might add: one new column. */
const V2: Migration = { version: 2, description: 'scores.device', up: (db) => db.exec('ALTER TABLE scores ADD COLUMN device TEXT') };

function header(path: string) {
  const db = new Database(path, { readonly: true });
  try {
    return {
      applicationId: db.pragma('application_id', { simple: true }),
      userVersion: db.pragma('user_version', { simple: true }),
      journalMode: db.pragma('journal_mode', { simple: true }),
      tables: (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name),
      scoreColumns: (db.pragma('table_info(scores)') as { name: string }[]).map((c) => c.name),
      info: Object.fromEntries((db.prepare('SELECT key, value FROM info').all() as { key: string; value: string }[]).map((r) => [r.key, r.value])),
    };
  } finally {
    db.close();
  }
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CacheError);
    return (err as Error).message;
  }
  throw new Error('expected a CacheError');
}

describe('a new cache', () => {
  it('is stamped with the uit application_id and the schema version, in WAL mode', () => {
    openCache(file).close();
    const h = header(file);
    expect(h.applicationId).toBe(APPLICATION_ID);
    expect(h.userVersion).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
    expect(h.journalMode).toBe('wal');
    expect(h.tables).toEqual([...KNOWN_TABLES].sort());
    expect(h.info.created_by).toMatch(/^uit \d+\.\d+\.\d+/);
  });
});

describe('migrations', () => {
  it('upgrade a v1 file to v2 in place, keeping its rows', () => {
    const v1 = openCache(file);
    v1.putScores([record]);
    v1.close();
    expect(header(file).userVersion).toBe(1);

    const v2 = openCache(file, { migrations: [...MIGRATIONS, V2] });
    expect(v2.schemaVersion).toBe(2);
    expect(v2.getScores([scoreKey(record)]).get(scoreKey(record))).toMatchObject({ sumCe: 0.5, meanCe: 0.5 });
    v2.putScores([{ ...record, target: 'z' }]);
    v2.close();

    const h = header(file);
    expect(h.userVersion).toBe(2);
    expect(h.scoreColumns).toContain('device');
    expect(h.info.migrated_to_v2).toMatch(/by uit/);

    // And this uit, which only knows v1, now refuses the file rather than misreading it.
    expect(refusal(() => openCache(file))).toMatch(/was created by a newer uit \(cache schema v2; this uit reads up to v1\)/);
    expect(refusal(() => openCache(file, { readonly: true }))).toMatch(/newer uit/);
  });

  it('roll back completely when a step fails', () => {
    const v1 = openCache(file);
    v1.putScores([record]);
    v1.close();
    const before = header(file);
    const broken: Migration = {
      version: 2,
      description: 'fails half-way',
      up: (db) => {
        db.exec('CREATE TABLE half_done (x)');
        throw new Error('disk says no');
      },
    };
    expect(() => openCache(file, { migrations: [...MIGRATIONS, broken] })).toThrow('disk says no');
    const after = header(file);
    expect(after.userVersion).toBe(1);
    expect(after.tables).toEqual(before.tables);
    const c = openCache(file);
    expect(c.getScores([scoreKey(record)]).size).toBe(1);
    c.close();
  });

  it('are not run by a read-only open, which says how to upgrade', () => {
    openCache(file).close();
    expect(refusal(() => openCache(file, { readonly: true, migrations: [...MIGRATIONS, V2] }))).toMatch(
      /has cache schema v1; this uit upgrades it to v2 when it opens it for writing/,
    );
    expect(header(file).userVersion).toBe(1);
  });

  it('must be numbered 1, 2, 3, ...', () => {
    expect(() => openCache(file, { migrations: [...MIGRATIONS, { ...V2, version: 3 }] })).toThrow(/expected 2/);
  });
});

describe('a file from a newer uit', () => {
  it('is refused and left as it was', () => {
    openCache(file).close();
    const db = new Database(file);
    db.pragma('user_version = 99');
    db.close();
    const before = readFileSync(file);
    const msg = refusal(() => openCache(file));
    expect(msg).toContain(file);
    expect(msg).toMatch(/created by a newer uit \(cache schema v99; this uit reads up to v1\): upgrade uit/);
    expect(readFileSync(file).equals(before)).toBe(true);
  });
});
