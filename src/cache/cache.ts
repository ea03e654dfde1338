// The SQLite cache: every generation and score is looked up here before a model runs, and
// written here, one transaction per batch, right after. Synchronous and explicit, like
// better-sqlite3 itself. See docs/cache.md ("API") for how commands use it.
import { mkdirSync, realpathSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { CacheError } from '../errors.js';
import { canonicalJson, generationKey, scoreKey, type GenerationInput, type JsonObject, type ScoreInput } from './keys.js';
import { APPLICATION_ID, MIGRATIONS, checkMigrations, inspectFile, type Migration } from './schema.js';
import { TEXT_REF_BYTES, TextStore, splitParagraphs, textRef } from './texts.js';
import { checkOwnership, isFresh, preflight, translateSqliteError } from './validate.js';

const require = createRequire(import.meta.url);
const UIT_VERSION = (require('../../package.json') as { version: string }).version;

export interface OpenCacheOptions {
  /** Open for reading only: nothing is created, migrated or written. */
  readonly?: boolean;
  /** How long a write waits for another process's transaction (default 10 000 ms). */
  busyTimeoutMs?: number;
  /** Tests only: a different migration list (e.g. with a v2 step). */
  migrations?: readonly Migration[];
}

export interface ModelRecord {
  /** The runtime's `modelIdentity()` (`sha256:<hex>`) for a local model, `api:<base-url>#<model>` for an API. */
  id: string;
  kind: 'local' | 'api';
  /** What the user called it: a folder path or an API model name. */
  name: string;
  /** Free JSON: architecture, dtype, base URL, ... */
  info?: JsonObject;
}

export interface StoredModel extends Required<ModelRecord> {
  firstSeen: string;
}

export interface GenerationRecord extends GenerationInput {
  text: string;
  tokenCount?: number | null;
  finishReason?: string | null;
  /** Wall time attributed to this row (a batch's time split over its rows is fine). */
  durationMs?: number | null;
  /** Free JSON, e.g. an API's usage and response id. Keep it small: it is stored per row. */
  meta?: JsonObject | null;
}

export interface CachedGeneration {
  key: string;
  text: string;
  tokenCount: number | null;
  finishReason: string | null;
  durationMs: number | null;
  meta: JsonObject | null;
  createdAt: string;
  runId: string | null;
}

export interface ScoreRecord extends ScoreInput {
  /** Target tokens scored; 0 for an empty target. */
  tokenCount: number;
  /** Sum of the target tokens' cross-entropy (natural log). */
  sumCe: number;
  /** sumCe / tokenCount, or null when tokenCount is 0. */
  meanCe: number | null;
  /** Per-token log-probabilities, stored as float32. */
  tokenLogprobs?: Float32Array | readonly number[] | null;
  durationMs?: number | null;
}

export interface CachedScore {
  key: string;
  tokenCount: number;
  sumCe: number;
  meanCe: number | null;
  tokenLogprobs: Float32Array | null;
  durationMs: number | null;
  createdAt: string;
  runId: string | null;
}

/** One request's cached samples (Cache.generationsOf). */
export interface GenerationGroup {
  prompt: string;
  params: JsonObject;
  samples: { sampleIndex: number; text: string; tokenCount: number | null; finishReason: string | null }[];
}

export interface Counter {
  hits: number;
  misses: number;
  /** Rows this process added (a row another process stored first is not counted). */
  writes: number;
}

export interface CacheCounters {
  generations: Counter;
  scores: Counter;
}

export type RunStatus = 'ok' | 'failed' | 'interrupted';

export interface CacheStats {
  path: string;
  schemaVersion: number;
  journalMode: string;
  bytes: { db: number; wal: number; shm: number; total: number };
  rows: { models: number; texts: number; generations: number; scores: number; runs: number };
  /** Characters of prompt text stored once in `texts`. */
  textChars: number;
  generations: { oldest: string | null; newest: string | null; byModel: ModelCount[] };
  scores: { oldest: string | null; newest: string | null; byScorer: ModelCount[] };
  runs: { running: number; last: RunSummary | null };
}

export interface ModelCount {
  id: string;
  /** null when the model was never registered with putModel(). */
  name: string | null;
  kind: string | null;
  rows: number;
}

export interface RunSummary {
  id: string;
  command: string;
  status: string;
  startedAt: string;
  finishedAt: string | null;
}

export const MERGE_TABLES = ['models', 'texts', 'runs', 'generations', 'scores'] as const;
export type MergeTable = (typeof MERGE_TABLES)[number];

export interface MergeResult {
  from: string;
  /** New rows per table: rows whose key was already present are kept as they were. */
  added: Record<MergeTable, number>;
}

export const EXPORT_TABLES = ['generations', 'scores', 'models', 'runs'] as const;
export type ExportTable = (typeof EXPORT_TABLES)[number];

/** One exported row: prompts and prefixes reassembled, JSON columns parsed. */
export type ExportRow = Record<string, string | number | null | JsonObject | number[]>;

interface GenerationRow {
  key: string;
  text: string;
  token_count: number | null;
  finish_reason: string | null;
  meta: string | null;
  created_at: string;
  duration_ms: number | null;
  run_id: string | null;
}

interface ScoreRow {
  key: string;
  token_count: number;
  sum_ce: number;
  mean_ce: number | null;
  token_logprobs: Buffer | null;
  created_at: string;
  duration_ms: number | null;
  run_id: string | null;
}

const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

/** Opens (creating and migrating when writable) the cache file at `path`. */
export function openCache(path: string, options: OpenCacheOptions = {}): Cache {
  const file = resolve(path);
  const readonly = options.readonly ?? false;
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  const migrations = options.migrations ?? MIGRATIONS;
  checkMigrations(migrations);
  const latest = migrations[migrations.length - 1].version;

  const state = preflight(file);
  if (readonly && state === 'missing') throw new CacheError(`${file}: no cache file there`);
  if (!readonly && state === 'missing') {
    try {
      mkdirSync(dirname(file), { recursive: true });
    } catch (err) {
      throw new CacheError(`${file}: cannot create the cache's folder: ${(err as Error).message}`, { cause: err });
    }
  }

  let db: Database.Database;
  try {
    db = new Database(file, { readonly, fileMustExist: readonly });
  } catch (err) {
    throw translateSqliteError(file, 'opening the cache', err, busyTimeoutMs);
  }
  let step = 'reading its header';
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    const id = inspectFile(db);
    checkOwnership(file, id, latest);
    if (readonly) {
      if (isFresh(id)) throw new CacheError(`${file} is empty: not a uit cache yet`);
      if (id.userVersion < latest) {
        throw new CacheError(
          `${file} has cache schema v${id.userVersion}; this uit upgrades it to v${latest} when it opens it for writing ` +
            '(e.g. `uit cache vacuum --cache FILE`)',
        );
      }
      return new Cache(db, file, true, id.userVersion, String(db.pragma('journal_mode', { simple: true })), busyTimeoutMs);
    }
    // Only now, knowing the file is ours or empty, change anything about it.
    step = 'switching it to WAL mode';
    const journalMode = String(retryBusy(() => db.pragma('journal_mode = WAL', { simple: true }), busyTimeoutMs));
    db.pragma('synchronous = NORMAL');
    step = 'creating or upgrading its schema';
    const version = migrate(db, file, migrations);
    return new Cache(db, file, false, version, journalMode, busyTimeoutMs);
  } catch (err) {
    db.close();
    throw translateSqliteError(file, `opening the cache (${step})`, err, busyTimeoutMs);
  }
}

const SLEEP = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs `fn`, retrying while SQLite says SQLITE_BUSY, for up to `timeoutMs`. SQLite skips the busy
 * handler when a statement that has read the file then needs the write lock (waiting there could
 * deadlock), and switching a new file to WAL is such a statement: a second process opening a new
 * cache while the first was creating it failed at once, not after the busy timeout. Sleeping
 * synchronously keeps openCache synchronous, like the rest of better-sqlite3's API.
 */
function retryBusy<T>(fn: () => T, timeoutMs: number): T {
  const end = Date.now() + timeoutMs;
  for (let wait = 5; ; wait = Math.min(2 * wait, 100)) {
    try {
      return fn();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code !== 'string' || !code.startsWith('SQLITE_BUSY') || Date.now() + wait > end) throw err;
      Atomics.wait(SLEEP, 0, 0, wait);
    }
  }
}

/** Brings the file to the latest schema in one transaction; returns the resulting version. */
function migrate(db: Database.Database, file: string, migrations: readonly Migration[]): number {
  const latest = migrations[migrations.length - 1].version;
  // Cheap check first: an up-to-date file needs no write lock.
  const seen = inspectFile(db);
  if (seen.applicationId === APPLICATION_ID && seen.userVersion === latest) return latest;
  db.exec('BEGIN IMMEDIATE');
  try {
    // Look again under the write lock: another process may have created or upgraded it meanwhile.
    const id = inspectFile(db);
    checkOwnership(file, id, latest);
    const fresh = isFresh(id);
    if (fresh) db.pragma(`application_id = ${APPLICATION_ID}`);
    for (const m of migrations.slice(id.userVersion)) {
      m.up(db);
      db.pragma(`user_version = ${m.version}`);
    }
    const now = new Date().toISOString();
    const setInfo = db.prepare('INSERT OR REPLACE INTO info (key, value) VALUES (?, ?)');
    if (fresh) {
      setInfo.run('created_at', now);
      setInfo.run('created_by', `uit ${UIT_VERSION}`);
    } else if (id.userVersion < latest) {
      setInfo.run(`migrated_to_v${latest}`, `${now} by uit ${UIT_VERSION}`);
    }
    db.exec('COMMIT');
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
  return latest;
}

export class Cache {
  /** Hits, misses and writes of this process, for "cache hits" in progress bars and summaries. */
  readonly counters: CacheCounters = {
    generations: { hits: 0, misses: 0, writes: 0 },
    scores: { hits: 0, misses: 0, writes: 0 },
  };
  /** The run that rows written now are attributed to (startRun() sets it). */
  runId: string | null = null;

  private readonly texts: TextStore;
  private readonly st: {
    getGeneration: Database.Statement<[string], GenerationRow>;
    putGeneration: Database.Statement;
    getScore: Database.Statement<[string], ScoreRow>;
    putScore: Database.Statement;
    putModel: Database.Statement;
  };

  /** Use openCache(). */
  constructor(
    /** The better-sqlite3 connection, for queries this API does not cover. */
    readonly db: Database.Database,
    readonly path: string,
    readonly readonly: boolean,
    readonly schemaVersion: number,
    /** `wal` normally; another value when the file system cannot do WAL (then one writer at a time). */
    readonly journalMode: string,
    private readonly busyTimeoutMs: number,
  ) {
    this.texts = new TextStore(db);
    this.st = {
      getGeneration: db.prepare(
        'SELECT key, text, token_count, finish_reason, meta, created_at, duration_ms, run_id FROM generations WHERE key = ?',
      ),
      putGeneration: db.prepare(
        `INSERT OR IGNORE INTO generations
           (key, model_id, prompt, params, sample_index, text, token_count, finish_reason, meta, created_at, duration_ms, run_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      getScore: db.prepare(
        'SELECT key, token_count, sum_ce, mean_ce, token_logprobs, created_at, duration_ms, run_id FROM scores WHERE key = ?',
      ),
      putScore: db.prepare(
        `INSERT OR IGNORE INTO scores
           (key, scorer_id, prefix, target, params, token_count, sum_ce, mean_ce, token_logprobs, created_at, duration_ms, run_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      putModel: db.prepare('INSERT OR IGNORE INTO models (id, kind, name, info, first_seen) VALUES (?, ?, ?, ?, ?)'),
    };
  }

  // ---- generations and scores -------------------------------------------------------------

  /** The cached generations among `keys` (from generationKey()); absent keys are misses. */
  getGenerations(keys: Iterable<string>): Map<string, CachedGeneration> {
    const found = new Map<string, CachedGeneration>();
    const unique = new Set(keys);
    this.read('reading generations', () => {
      for (const key of unique) {
        const row = this.st.getGeneration.get(key);
        if (row !== undefined) found.set(key, toCachedGeneration(row));
      }
    });
    this.counters.generations.hits += found.size;
    this.counters.generations.misses += unique.size - found.size;
    return found;
  }

  /** Stores a batch in one transaction and returns the records' keys, in order. */
  putGenerations(records: readonly GenerationRecord[]): string[] {
    const rows = records.map((r, i) => {
      checkGeneration(r, i);
      return { key: generationKey(r), r };
    });
    const now = new Date().toISOString();
    let written = 0;
    this.write('writing generations', () => {
      for (const { key, r } of rows) {
        written += this.st.putGeneration.run(
          key,
          r.modelId,
          this.texts.put(r.prompt),
          canonicalJson(r.params),
          r.sampleIndex,
          r.text,
          r.tokenCount ?? null,
          r.finishReason ?? null,
          r.meta == null ? null : canonicalJson(r.meta),
          now,
          r.durationMs ?? null,
          this.runId,
        ).changes;
      }
    });
    this.counters.generations.writes += written;
    return rows.map((x) => x.key);
  }

  /** The cached scores among `keys` (from scoreKey()); absent keys are misses. */
  getScores(keys: Iterable<string>): Map<string, CachedScore> {
    const found = new Map<string, CachedScore>();
    const unique = new Set(keys);
    this.read('reading scores', () => {
      for (const key of unique) {
        const row = this.st.getScore.get(key);
        if (row !== undefined) found.set(key, toCachedScore(row));
      }
    });
    this.counters.scores.hits += found.size;
    this.counters.scores.misses += unique.size - found.size;
    return found;
  }

  /** Stores a batch in one transaction and returns the records' keys, in order. */
  putScores(records: readonly ScoreRecord[]): string[] {
    const rows = records.map((r, i) => {
      checkScore(r, i);
      return { key: scoreKey(r), r };
    });
    const now = new Date().toISOString();
    let written = 0;
    this.write('writing scores', () => {
      for (const { key, r } of rows) {
        written += this.st.putScore.run(
          key,
          r.scorerId,
          this.texts.put(r.prefix),
          r.target,
          canonicalJson(r.params ?? {}),
          r.tokenCount,
          r.sumCe,
          r.meanCe,
          r.tokenLogprobs == null ? null : float32Blob(r.tokenLogprobs),
          now,
          r.durationMs ?? null,
          this.runId,
        ).changes;
      }
    });
    this.counters.scores.writes += written;
    return rows.map((x) => x.key);
  }

  // ---- reading back by content (distillation reads a teacher's work this way) -------------

  /**
   * Every generation of one model, grouped by request (prompt and parameters), prompts
   * reassembled, samples in index order. Groups come in no particular order.
   */
  generationsOf(modelId: string): GenerationGroup[] {
    return this.read('reading generations', () => {
      const rows = this.db
        .prepare(
          'SELECT prompt, params, sample_index, text, token_count, finish_reason FROM generations WHERE model_id = ? ORDER BY prompt, params, sample_index',
        )
        .all(modelId) as { prompt: Buffer; params: string; sample_index: number; text: string; token_count: number | null; finish_reason: string | null }[];
      const groups: GenerationGroup[] = [];
      let last: { prompt: Buffer; params: string } | undefined;
      for (const r of rows) {
        if (!last || !last.prompt.equals(r.prompt) || last.params !== r.params) {
          groups.push({ prompt: this.texts.get(r.prompt), params: JSON.parse(r.params) as JsonObject, samples: [] });
          last = r;
        }
        groups[groups.length - 1].samples.push({ sampleIndex: r.sample_index, text: r.text, tokenCount: r.token_count, finishReason: r.finish_reason });
      }
      return groups;
    });
  }

  /**
   * The scores by `scorerId` whose prefix begins with each of `starts`, which must be whole
   * paragraphs (end in a blank line). Prefixes are stored as paragraph references, so one pass
   * over the scorer's rows compares references instead of reassembling any prefix.
   */
  scoresWithPrefixStarts(scorerId: string, starts: readonly string[]): Map<string, { target: string; tokenCount: number; sumCe: number }[]> {
    const out = new Map<string, { target: string; tokenCount: number; sumCe: number }[]>();
    const byFirst = new Map<string, { start: string; refs: Buffer }[]>();
    for (const start of new Set(starts)) {
      if (!/\n\n$/.test(start)) throw new TypeError('scoresWithPrefixStarts: each start must end with a blank line (whole paragraphs)');
      const refs = Buffer.concat(splitParagraphs(start).map((p) => textRef(p)));
      const first = refs.subarray(0, TEXT_REF_BYTES).toString('hex');
      byFirst.set(first, [...(byFirst.get(first) ?? []), { start, refs }]);
      out.set(start, []);
    }
    this.read('reading scores', () => {
      const rows = this.db
        .prepare('SELECT prefix, target, token_count, sum_ce FROM scores WHERE scorer_id = ?')
        .iterate(scorerId) as IterableIterator<{ prefix: Buffer; target: string; token_count: number; sum_ce: number }>;
      for (const r of rows) {
        for (const w of byFirst.get(r.prefix.subarray(0, TEXT_REF_BYTES).toString('hex')) ?? []) {
          if (r.prefix.length >= w.refs.length && r.prefix.subarray(0, w.refs.length).equals(w.refs)) {
            out.get(w.start)!.push({ target: r.target, tokenCount: r.token_count, sumCe: r.sum_ce });
          }
        }
      }
    });
    return out;
  }

  /** Runs `fn` in one write transaction (e.g. a batch's generations and scores together). */
  transaction<T>(fn: () => T): T {
    return this.write('writing', fn);
  }

  // ---- models and runs --------------------------------------------------------------------

  /** Registers a model; the first registration of an id wins (its name and info are kept). */
  putModel(model: ModelRecord): void {
    if (model.kind !== 'local' && model.kind !== 'api') throw new TypeError(`putModel: kind must be local or api, got ${String(model.kind)}`);
    this.write('registering a model', () => {
      this.st.putModel.run(model.id, model.kind, model.name, canonicalJson(model.info ?? {}), new Date().toISOString());
    });
  }

  models(): StoredModel[] {
    const rows = this.read('reading models', () =>
      this.db.prepare('SELECT id, kind, name, info, first_seen FROM models ORDER BY first_seen, id').all(),
    ) as { id: string; kind: 'local' | 'api'; name: string; info: string; first_seen: string }[];
    return rows.map((r) => ({ id: r.id, kind: r.kind, name: r.name, info: JSON.parse(r.info) as JsonObject, firstSeen: r.first_seen }));
  }

  /** Logs the start of a command; rows written until finishRun() carry its id. */
  startRun(command: string, args: JsonObject = {}): string {
    const id = randomBytes(8).toString('hex');
    this.write('recording the run', () => {
      this.db
        .prepare('INSERT INTO runs (id, command, args, uit_version, host, pid, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(id, command, canonicalJson(args), UIT_VERSION, hostname(), process.pid, new Date().toISOString());
    });
    this.runId = id;
    return id;
  }

  /** Closes the current run with its status and counts (default: this process's counters). */
  finishRun(status: RunStatus = 'ok', counts?: JsonObject): void {
    if (this.runId === null) return;
    const id = this.runId;
    const c = counts ?? (JSON.parse(JSON.stringify(this.counters)) as JsonObject);
    this.write('recording the run', () => {
      this.db
        .prepare('UPDATE runs SET finished_at = ?, status = ?, counts = ? WHERE id = ?')
        .run(new Date().toISOString(), status, canonicalJson(c), id);
    });
    this.runId = null;
  }

  // ---- maintenance --------------------------------------------------------------------------

  stats(): CacheStats {
    return this.read('reading statistics', () => {
      const count = (table: string) => (this.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
      const range = (table: string) =>
        this.db.prepare(`SELECT min(created_at) AS oldest, max(created_at) AS newest FROM ${table}`).get() as {
          oldest: string | null;
          newest: string | null;
        };
      const perModel = (table: string, column: string) =>
        this.db
          .prepare(
            `SELECT t.${column} AS id, m.name AS name, m.kind AS kind, count(*) AS rows
               FROM ${table} t LEFT JOIN models m ON m.id = t.${column}
              GROUP BY t.${column} ORDER BY rows DESC, id`,
          )
          .all() as ModelCount[];
      const last = this.db
        .prepare('SELECT id, command, status, started_at, finished_at FROM runs ORDER BY started_at DESC, id LIMIT 1')
        .get() as { id: string; command: string; status: string; started_at: string; finished_at: string | null } | undefined;
      const bytes = this.fileSizes();
      return {
        path: this.path,
        schemaVersion: this.schemaVersion,
        journalMode: this.journalMode,
        bytes,
        rows: {
          models: count('models'),
          texts: count('texts'),
          generations: count('generations'),
          scores: count('scores'),
          runs: count('runs'),
        },
        textChars: (this.db.prepare('SELECT coalesce(sum(length(text)), 0) AS n FROM texts').get() as { n: number }).n,
        generations: { ...range('generations'), byModel: perModel('generations', 'model_id') },
        scores: { ...range('scores'), byScorer: perModel('scores', 'scorer_id') },
        runs: {
          running: (this.db.prepare("SELECT count(*) AS n FROM runs WHERE status = 'running'").get() as { n: number }).n,
          last:
            last === undefined
              ? null
              : { id: last.id, command: last.command, status: last.status, startedAt: last.started_at, finishedAt: last.finished_at },
        },
      };
    });
  }

  /** Rows of `table` in key order, read in pages so a huge table streams in bounded memory. */
  *exportRows(table: ExportTable, pageSize = 500): Generator<ExportRow> {
    const spec = EXPORT_SPECS[table];
    const cols = EXPORT_COLUMNS[table];
    const rows = pagedRows(this.db, table, cols, cols[0], pageSize);
    for (;;) {
      // Read and convert one row at a time between yields: pagedRows never keeps a statement
      // open across a yield, so the text lookups (and the consumer) can use the connection.
      const next = this.guard(`exporting ${table}`, () => rows.next());
      if (next.done) return;
      yield this.guard(`exporting ${table}`, () => spec(Object.fromEntries(cols.map((c, i) => [c, next.value[i]])), this.texts));
    }
  }

  count(table: ExportTable): number {
    return this.read('counting', () => (this.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n);
  }

  /**
   * Adds every row of another uit cache that this one lacks (by key), in one transaction: a
   * shard's cache merges whole or not at all. Rows present in both are kept as they are here.
   * The other file is opened read-only and read from one consistent snapshot. Other processes
   * writing this cache wait for the merge (up to their busy timeout).
   */
  mergeFrom(otherPath: string): MergeResult {
    if (this.readonly) throw new CacheError(`${this.path}: opened read-only, cannot merge into it`);
    const other = resolve(otherPath);
    const src = openCache(other, { readonly: true, busyTimeoutMs: this.busyTimeoutMs });
    try {
      if (src.schemaVersion !== this.schemaVersion) {
        throw new CacheError(
          `${other} has cache schema v${src.schemaVersion} and ${this.path} v${this.schemaVersion}: ` +
            'open the older one for writing once to upgrade it (e.g. `uit cache vacuum --cache FILE`), then merge',
        );
      }
      if (realpathSync(other) === realpathSync(this.path)) throw new CacheError(`${other} is the cache itself: nothing to merge`);
      const added = { models: 0, texts: 0, runs: 0, generations: 0, scores: 0 } as Record<MergeTable, number>;
      // (ATTACH would be shorter, but better-sqlite3 cannot attach a file read-only: no URI filenames.)
      // A failure reading the other file names that file (it is the damaged one), not this cache.
      const reading = "reading it to merge";
      src.read(reading, () =>
        this.write(`merging ${other}`, () => {
          for (const table of MERGE_TABLES) {
            const cols = MERGE_COLUMNS[table];
            const insert = this.db.prepare(
              `INSERT OR IGNORE INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
            );
            const rows = pagedRows(src.db, table, cols, cols[0], 1000);
            for (;;) {
              const next = src.guard(reading, () => rows.next());
              if (next.done) break;
              added[table] += insert.run(next.value).changes;
            }
          }
        }),
      );
      return { from: other, added };
    } finally {
      src.close();
    }
  }

  /** Rewrites the file compactly and truncates the WAL; returns the sizes before and after. */
  vacuum(): { before: number; after: number } {
    if (this.readonly) throw new CacheError(`${this.path}: opened read-only, cannot vacuum`);
    const before = this.fileSizes().total;
    this.guard('vacuuming', () => {
      this.db.exec('VACUUM');
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    });
    return { before, after: this.fileSizes().total };
  }

  /** Runs SQLite's integrity check; returns the problems found (empty when the file is sound). */
  check(): string[] {
    const rows = this.read('checking integrity', () => this.db.pragma('integrity_check') as { integrity_check: string }[]);
    const problems = rows.map((r) => r.integrity_check).filter((s) => s !== 'ok');
    return problems;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  // ---- internals ----------------------------------------------------------------------------

  private fileSizes(): { db: number; wal: number; shm: number; total: number } {
    const size = (p: string) => {
      try {
        return statSync(p).size;
      } catch {
        return 0;
      }
    };
    const db = size(this.path);
    const wal = size(`${this.path}-wal`);
    const shm = size(`${this.path}-shm`);
    return { db, wal, shm, total: db + wal + shm };
  }

  /** Runs `fn`, turning a SQLite failure into a CacheError that names this file. */
  guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw translateSqliteError(this.path, what, err, this.busyTimeoutMs);
    }
  }

  /** A consistent snapshot for a group of reads. */
  private read<T>(what: string, fn: () => T): T {
    return this.guard(what, () => (this.db.inTransaction ? fn() : this.db.transaction(fn).deferred()));
  }

  /**
   * BEGIN IMMEDIATE takes the write lock up front: with a deferred transaction, a reader that
   * later writes can fail at once with SQLITE_BUSY when another process committed in between,
   * without waiting for the busy timeout.
   */
  private write<T>(what: string, fn: () => T): T {
    if (this.readonly) throw new CacheError(`${this.path}: opened read-only, cannot do ${what}`);
    try {
      return this.guard(what, () => this.db.transaction(fn).immediate());
    } catch (err) {
      // Paragraphs inserted in the rolled-back transaction are gone: forget that we saw them.
      this.texts.reset();
      throw err;
    }
  }
}

// ---- row conversion ---------------------------------------------------------------------------

function toCachedGeneration(row: GenerationRow): CachedGeneration {
  return {
    key: row.key,
    text: row.text,
    tokenCount: row.token_count,
    finishReason: row.finish_reason,
    durationMs: row.duration_ms,
    meta: row.meta === null ? null : (JSON.parse(row.meta) as JsonObject),
    createdAt: row.created_at,
    runId: row.run_id,
  };
}

function toCachedScore(row: ScoreRow): CachedScore {
  return {
    key: row.key,
    tokenCount: row.token_count,
    sumCe: row.sum_ce,
    meanCe: row.mean_ce,
    tokenLogprobs: row.token_logprobs === null ? null : readFloat32(row.token_logprobs),
    durationMs: row.duration_ms,
    createdAt: row.created_at,
    runId: row.run_id,
  };
}

function float32Blob(values: Float32Array | readonly number[]): Buffer {
  const buf = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) buf.writeFloatLE(values[i], i * 4);
  return buf;
}

function readFloat32(blob: Buffer): Float32Array {
  const out = new Float32Array(blob.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = blob.readFloatLE(i * 4);
  return out;
}

function checkGeneration(r: GenerationRecord, i: number): void {
  const bad = (why: string) => new TypeError(`putGenerations: record ${i}: ${why}`);
  if (typeof r.modelId !== 'string' || r.modelId === '') throw bad('modelId must be a non-empty string');
  if (typeof r.prompt !== 'string') throw bad('prompt must be a string');
  if (typeof r.text !== 'string') throw bad('text must be a string');
  if (r.tokenCount != null && !(Number.isInteger(r.tokenCount) && r.tokenCount >= 0)) throw bad(`tokenCount ${r.tokenCount} is not a count`);
  if (r.durationMs != null && !(Number.isFinite(r.durationMs) && r.durationMs >= 0)) throw bad(`durationMs ${r.durationMs} is not a duration`);
}

function checkScore(r: ScoreRecord, i: number): void {
  const bad = (why: string) => new TypeError(`putScores: record ${i}: ${why}`);
  if (typeof r.scorerId !== 'string' || r.scorerId === '') throw bad('scorerId must be a non-empty string');
  if (typeof r.prefix !== 'string' || typeof r.target !== 'string') throw bad('prefix and target must be strings');
  if (!(Number.isInteger(r.tokenCount) && r.tokenCount >= 0)) throw bad(`tokenCount ${r.tokenCount} is not a count`);
  if (!Number.isFinite(r.sumCe)) throw bad(`sumCe ${r.sumCe} is not a finite number`);
  if (r.tokenCount === 0 ? r.meanCe !== null : !Number.isFinite(r.meanCe)) {
    throw bad(`meanCe must be null exactly when tokenCount is 0 (tokenCount ${r.tokenCount}, meanCe ${r.meanCe})`);
  }
  if (r.tokenLogprobs != null && r.tokenLogprobs.length !== r.tokenCount) {
    throw bad(`${r.tokenLogprobs.length} token log-probs for ${r.tokenCount} tokens`);
  }
  if (r.durationMs != null && !(Number.isFinite(r.durationMs) && r.durationMs >= 0)) throw bad(`durationMs ${r.durationMs} is not a duration`);
}

/** The columns merge and salvage copy, per table, in the schema's order. */
export const MERGE_COLUMNS: Record<MergeTable, readonly string[]> = {
  models: ['id', 'kind', 'name', 'info', 'first_seen'],
  texts: ['hash', 'text'],
  runs: ['id', 'command', 'args', 'uit_version', 'host', 'pid', 'started_at', 'finished_at', 'status', 'counts'],
  generations: [
    'key', 'model_id', 'prompt', 'params', 'sample_index', 'text', 'token_count', 'finish_reason', 'meta', 'created_at', 'duration_ms', 'run_id',
  ],
  scores: [
    'key', 'scorer_id', 'prefix', 'target', 'params', 'token_count', 'sum_ce', 'mean_ce', 'token_logprobs', 'created_at', 'duration_ms', 'run_id',
  ],
};

/** Converts a raw row (prompts as text references, JSON as text) into an exported row. */
type ExportSpec = (row: Record<string, unknown>, texts: TextStore) => ExportRow;

/**
 * All rows of `table` as arrays of `cols`, ordered by the unique column `key`, fetched `pageSize`
 * at a time with a keyset query, so no statement stays open between pages.
 */
function* pagedRows(db: Database.Database, table: string, cols: readonly string[], key: string, pageSize: number): Generator<unknown[]> {
  const list = cols.join(', ');
  const first = db.prepare(`SELECT ${list} FROM ${table} ORDER BY ${key} LIMIT ?`).raw();
  const next = db.prepare(`SELECT ${list} FROM ${table} WHERE ${key} > ? ORDER BY ${key} LIMIT ?`).raw();
  const k = cols.indexOf(key);
  let page = first.all(pageSize) as unknown[][];
  for (;;) {
    for (const row of page) yield row;
    if (page.length < pageSize) return;
    page = next.all(page[page.length - 1][k], pageSize) as unknown[][];
  }
}

/** The columns of each exported table, in output order. */
export const EXPORT_COLUMNS: Record<ExportTable, readonly string[]> = {
  generations: MERGE_COLUMNS.generations,
  scores: MERGE_COLUMNS.scores,
  models: MERGE_COLUMNS.models,
  runs: MERGE_COLUMNS.runs,
};

const json = (v: unknown) => (v === null ? null : (JSON.parse(v as string) as JsonObject));

const EXPORT_SPECS: Record<ExportTable, ExportSpec> = {
  generations: (r, texts) => ({
    key: r.key as string,
    model_id: r.model_id as string,
    prompt: texts.get(r.prompt as Buffer),
    params: json(r.params),
    sample_index: r.sample_index as number,
    text: r.text as string,
    token_count: r.token_count as number | null,
    finish_reason: r.finish_reason as string | null,
    meta: json(r.meta),
    created_at: r.created_at as string,
    duration_ms: r.duration_ms as number | null,
    run_id: r.run_id as string | null,
  }),
  scores: (r, texts) => ({
    key: r.key as string,
    scorer_id: r.scorer_id as string,
    prefix: texts.get(r.prefix as Buffer),
    target: r.target as string,
    params: json(r.params),
    token_count: r.token_count as number,
    sum_ce: r.sum_ce as number,
    mean_ce: r.mean_ce as number | null,
    token_logprobs: r.token_logprobs === null ? null : Array.from(readFloat32(r.token_logprobs as Buffer)),
    created_at: r.created_at as string,
    duration_ms: r.duration_ms as number | null,
    run_id: r.run_id as string | null,
  }),
  models: (r) => ({
    id: r.id as string,
    kind: r.kind as string,
    name: r.name as string,
    info: json(r.info),
    first_seen: r.first_seen as string,
  }),
  runs: (r) => ({
    id: r.id as string,
    command: r.command as string,
    args: json(r.args),
    uit_version: r.uit_version as string,
    host: r.host as string,
    pid: r.pid as number,
    started_at: r.started_at as string,
    finished_at: r.finished_at as string | null,
    status: r.status as string,
    counts: json(r.counts),
  }),
};
