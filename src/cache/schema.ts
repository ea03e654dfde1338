// The cache's schema and its migrations. The file says what it is in its header: PRAGMA
// application_id marks it as a uit cache, PRAGMA user_version is the schema version.
import type Database from 'better-sqlite3';

/** "uitC" in ASCII: tells a uit cache from any other SQLite file. */
export const APPLICATION_ID = 0x75697443;

export interface Migration {
  /** The user_version the file has after this step; versions run 1, 2, 3, ... */
  version: number;
  description: string;
  /** Runs inside the migration's transaction; throwing rolls the whole upgrade back. */
  up(db: Database.Database): void;
}

const V1 = `
CREATE TABLE info (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- Models that produced generations or scores: a local model's id is the runtime's modelIdentity()
-- ("sha256:<hex>" of its ONNX file(s) and tokenizer.json), an API model's "api:<base-url>#<model>".
CREATE TABLE models (
  id         TEXT PRIMARY KEY,
  kind       TEXT NOT NULL CHECK (kind IN ('local', 'api')),
  name       TEXT NOT NULL,
  info       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(info)),
  first_seen TEXT NOT NULL
) WITHOUT ROWID;

-- Paragraphs of long prompts, stored once (src/cache/texts.ts).
CREATE TABLE texts (
  hash BLOB PRIMARY KEY CHECK (length(hash) = 16),
  text TEXT NOT NULL
) WITHOUT ROWID;

-- One row per uit command that wrote to the cache: a log in the spirit of \`llm logs\`.
CREATE TABLE runs (
  id          TEXT PRIMARY KEY,
  command     TEXT NOT NULL,
  args        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(args)),
  uit_version TEXT NOT NULL,
  host        TEXT NOT NULL,
  pid         INTEGER NOT NULL,
  started_at  TEXT NOT NULL,
  finished_at TEXT,
  status      TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
  counts      TEXT CHECK (counts IS NULL OR json_valid(counts))
) WITHOUT ROWID;

CREATE TABLE generations (
  key           TEXT PRIMARY KEY,   -- generationKey(): sha256 hex
  model_id      TEXT NOT NULL,
  prompt        BLOB NOT NULL,      -- references into texts (16 bytes each), in order
  params        TEXT NOT NULL CHECK (json_valid(params)),
  sample_index  INTEGER NOT NULL,
  text          TEXT NOT NULL,
  token_count   INTEGER,
  finish_reason TEXT,
  meta          TEXT CHECK (meta IS NULL OR json_valid(meta)),
  created_at    TEXT NOT NULL,
  duration_ms   REAL,
  run_id        TEXT
) WITHOUT ROWID;

CREATE TABLE scores (
  key            TEXT PRIMARY KEY,  -- scoreKey(): sha256 hex
  scorer_id      TEXT NOT NULL,
  prefix         BLOB NOT NULL,     -- references into texts (16 bytes each), in order
  target         TEXT NOT NULL,
  params         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(params)),
  token_count    INTEGER NOT NULL,
  sum_ce         REAL NOT NULL,
  mean_ce        REAL,              -- NULL for an empty target
  token_logprobs BLOB,              -- float32 little-endian, one per target token
  created_at     TEXT NOT NULL,
  duration_ms    REAL,
  run_id         TEXT
) WITHOUT ROWID;
`;

/**
 * Every schema change is one more entry, never an edit of an old one. A v2 would look like
 *
 *   { version: 2, description: 'scores.device', up: (db) => db.exec('ALTER TABLE scores ADD COLUMN device TEXT') },
 *
 * and openCache() then upgrades v1 files in place, in one transaction, the first time a writable
 * uit opens them (test/cache/schema.test.ts runs exactly this path).
 */
export const MIGRATIONS: readonly Migration[] = [{ version: 1, description: 'initial schema', up: (db) => db.exec(V1) }];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** The tables a uit cache may hold, in any version this uit knows. */
export const KNOWN_TABLES = ['info', 'models', 'texts', 'runs', 'generations', 'scores'] as const;

export interface FileIdentity {
  applicationId: number;
  userVersion: number;
  /** User tables and views (not sqlite_* internals). */
  tables: string[];
}

/** The header and table list, read from one snapshot (another process may be creating the file). */
export function inspectFile(db: Database.Database): FileIdentity {
  const read = (): FileIdentity => {
    const applicationId = db.pragma('application_id', { simple: true }) as number;
    const userVersion = db.pragma('user_version', { simple: true }) as number;
    const tables = (
      db.prepare("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as {
        name: string;
      }[]
    ).map((r) => r.name);
    return { applicationId, userVersion, tables };
  };
  return db.inTransaction ? read() : db.transaction(read).deferred();
}

export function checkMigrations(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration list: entry ${i} has version ${m.version}, expected ${i + 1}`);
  });
}
