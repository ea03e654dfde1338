// `uit cache salvage`: every row of a damaged cache that can still be read, into a new cache.
//
// SQLite reads a table through its b-tree and stops at the first damaged page, so a few bad pages
// hide every row behind them. Salvage reads the file's pages itself (sqlite-file.ts): every b-tree
// page whose header and cell pointers are sound gives its cells, and every other page is searched
// for cells by their shape (a page whose start was overwritten keeps the cells at its end). A row is
// kept only when it checks out: the cache's rows are content-addressed, so a text piece must hash
// to its key and a generation or score must have the key its own fields give (its prompt
// reassembled from recovered pieces); models and runs must match the schema's types and values.
// The new cache is written to a temp file and renamed into place when complete.
//
// What was lost is counted: cells of sound pages that failed their check, rows whose prompt text
// was in a damaged page, and the damaged pages themselves, with an estimate of the rows they held.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CacheError, ExitCode, UitError } from '../errors.js';
import { trackTemp, untrackTemp } from '../io/live-temps.js';
import { removeStaleTemps } from '../io/stale.js';
import { MERGE_COLUMNS, openCache, type Cache, type MergeTable } from './cache.js';
import { canonicalJson, generationKey, scoreKey, type JsonObject } from './keys.js';
import { APPLICATION_ID, SCHEMA_VERSION } from './schema.js';
import { TEXT_REF_BYTES, textRef } from './texts.js';
import {
  PAGE_INDEX_INTERIOR,
  PAGE_INDEX_LEAF,
  PageSource,
  carveCells,
  decodeRecord,
  readBtreePage,
  type Cell,
  type SqlValue,
} from './sqlite-file.js';

export const SALVAGE_TABLES = ['models', 'texts', 'runs', 'generations', 'scores'] as const satisfies readonly MergeTable[];
export type SalvageTable = (typeof SALVAGE_TABLES)[number];

export interface SalvageReport {
  from: string;
  to: string;
  pages: {
    total: number;
    /** B-tree pages read through their header and cell pointers. */
    sound: number;
    /** Pages that are neither sound b-tree pages, nor overflow pages of a recovered row, nor empty. */
    damaged: number;
  };
  /** Rows written to the new cache, per table. */
  recovered: Record<SalvageTable, number>;
  /** Of those, rows found in damaged pages by their shape. */
  carved: number;
  lost: {
    /** Cells of sound pages whose row failed its check (a damaged cell, or an overflow chain that was). */
    failedCheck: number;
    /** Generations and scores whose prompt or prefix text was in a damaged page (they cannot be verified). */
    textMissing: number;
    /** Rows the damaged pages are estimated to have held beyond those found in them: an estimate, not a count. */
    estimatedInDamagedPages: number;
  };
}

type Row = SqlValue[];

const HEX64 = /^[0-9a-f]{64}$/;
const RUN_ID = /^[0-9a-f]{16}$/;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

const isText = (v: SqlValue): v is string => typeof v === 'string';
const isInt = (v: SqlValue): v is number => typeof v === 'number' && Number.isInteger(v);
const isNum = (v: SqlValue): v is number => typeof v === 'number' && Number.isFinite(v);
const isBlob = (v: SqlValue): v is Buffer => Buffer.isBuffer(v);
const isJson = (v: SqlValue): boolean => {
  if (!isText(v)) return false;
  try {
    JSON.parse(v);
    return true;
  } catch {
    return false;
  }
};
const opt = (v: SqlValue, check: (x: SqlValue) => boolean) => v === null || check(v);

/** Which table a record of a uit cache (schema v1) belongs to, by its shape; null for none. */
function tableOf(r: Row): SalvageTable | 'info' | null {
  if (r.length === 2) return isBlob(r[0]) ? 'texts' : isText(r[0]) ? 'info' : null;
  if (r.length === 5) return 'models';
  if (r.length === 10) return 'runs';
  if (r.length === 12) return isInt(r[4]) ? 'generations' : isText(r[4]) ? 'scores' : null;
  return null;
}

/** The checks that need nothing but the row itself (texts are checked by their hash). */
const ROW_CHECKS: Record<SalvageTable, (r: Row) => boolean> = {
  texts: (r) => isBlob(r[0]) && r[0].length === TEXT_REF_BYTES && isText(r[1]) && textRef(r[1]).equals(r[0]),
  models: (r) => isText(r[0]) && r[0] !== '' && (r[1] === 'local' || r[1] === 'api') && isText(r[2]) && isJson(r[3]) && isText(r[4]) && TIME.test(r[4]),
  runs: (r) =>
    isText(r[0]) && /^[0-9a-f]{16}$/.test(r[0]) && isText(r[1]) && isJson(r[2]) && isText(r[3]) && isText(r[4]) && isInt(r[5]) &&
    isText(r[6]) && TIME.test(r[6]) && opt(r[7], (v) => isText(v) && TIME.test(v)) &&
    (r[8] === 'running' || r[8] === 'ok' || r[8] === 'failed' || r[8] === 'interrupted') && opt(r[9], isJson),
  generations: (r) =>
    isText(r[0]) && HEX64.test(r[0]) && isText(r[1]) && isBlob(r[2]) && r[2].length % TEXT_REF_BYTES === 0 && isJson(r[3]) && isInt(r[4]) &&
    r[4] >= 0 && isText(r[5]) && opt(r[6], (v) => isInt(v) && v >= 0) && opt(r[7], isText) && opt(r[8], isJson) && isText(r[9]) &&
    TIME.test(r[9]) && opt(r[10], (v) => isNum(v) && v >= 0) && opt(r[11], (v) => isText(v) && RUN_ID.test(v)),
  scores: (r) =>
    isText(r[0]) && HEX64.test(r[0]) && isText(r[1]) && isBlob(r[2]) && r[2].length % TEXT_REF_BYTES === 0 && isText(r[3]) && isJson(r[4]) &&
    isInt(r[5]) && r[5] >= 0 && isNum(r[6]) && opt(r[7], isNum) && opt(r[8], (v) => isBlob(v) && v.length === 4 * (r[5] as number)) &&
    isText(r[9]) && TIME.test(r[9]) && opt(r[10], (v) => isNum(v) && v >= 0) && opt(r[11], (v) => isText(v) && RUN_ID.test(v)) && scoreAddsUp(r),
};

/**
 * A score's numbers agree with each other, as the scorer writes them: mean = sum / tokens (null
 * for none), and the sum is minus the sum of the stored per-token log-probs (float32). A key covers
 * what was scored, not the result: this is what checks the result.
 */
function scoreAddsUp(r: Row): boolean {
  const tokens = r[5] as number;
  const sum = r[6] as number;
  const mean = r[7];
  if (tokens === 0) {
    if (mean !== null || sum !== 0) return false;
  } else if (!isNum(mean) || Math.abs(mean - sum / tokens) > 1e-9 * Math.max(1, Math.abs(mean))) return false;
  if (r[8] === null) return true;
  const lp = r[8] as Buffer;
  let total = 0;
  for (let i = 0; i < lp.length; i += 4) {
    const v = lp.readFloatLE(i);
    if (!Number.isFinite(v) || v > 0) return false;
    total -= v;
  }
  return Math.abs(total - sum) <= 1e-5 * Math.max(1, Math.abs(sum));
}

const COLUMNS = new Set([2, 5, 10, 12]);

/** A run's later state wins over an earlier copy of the same row (a stale page of an update). */
function laterRun(a: Row, b: Row): Row {
  const rank = (r: Row) => (r[8] === 'running' ? 0 : 1) + (r[7] === null ? 0 : 1);
  return rank(b) > rank(a) ? b : a;
}

/**
 * Reads every row that can be recovered from `from` (a damaged uit cache) and writes them to a new
 * cache at `to`, which must not exist. Throws a CacheError when `from` is not a uit cache at all.
 */
export function salvageCache(fromArg: string, toArg: string): SalvageReport {
  const from = resolve(fromArg);
  const to = resolve(toArg);
  if (existsSync(to)) throw new UitError(`--cache ${toArg}: the file exists; salvage writes a new cache (merge it into another with \`uit cache merge\`)`, ExitCode.USAGE);
  if (from === to) throw new UitError('salvage reads one cache and writes another: give --cache a new file', ExitCode.USAGE);
  let src: PageSource;
  try {
    src = new PageSource(from);
  } catch (err) {
    throw new CacheError(`${from}: cannot read it as a SQLite file: ${(err as Error).message}`, { cause: err });
  }
  try {
    const h = src.header;
    if (h.applicationId !== APPLICATION_ID) {
      throw new CacheError(`${from} is not a uit cache (its header's application_id is 0x${(h.applicationId >>> 0).toString(16)}); nothing to salvage`);
    }
    if (h.userVersion > SCHEMA_VERSION) {
      throw new CacheError(`${from} has cache schema v${h.userVersion}; this uit salvages up to v${SCHEMA_VERSION}: upgrade uit`);
    }
    if (h.textEncoding !== 1) throw new CacheError(`${from}: text encoding ${h.textEncoding} (a uit cache is UTF-8)`);
    return salvageInto(src, from, to);
  } finally {
    src.close();
  }
}

/** The new cache, written in a temp file beside `to` and renamed into place when complete. */
function salvageInto(src: PageSource, from: string, to: string): SalvageReport {
  removeStaleTemps([to]); // what a killed salvage into the same file left
  const temp = join(dirname(to), `.${basename(to)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  const temps = ['', '-wal', '-shm'].map((x) => temp + x);
  temps.forEach(trackTemp);
  const removeTemps = () => {
    for (const t of temps) {
      rmSync(t, { force: true });
      untrackTemp(t);
    }
  };
  let cache: Cache;
  try {
    cache = openCache(temp);
  } catch (err) {
    removeTemps();
    throw err;
  }
  try {
    cache.startRun('cache salvage', { from });
    const report = cache.transaction(() => {
      const found = readRows(src, cache);
      const verified = verifyKeys(cache, found.carvedKeys);
      const recovered = Object.fromEntries(
        SALVAGE_TABLES.map((t) => [t, (cache.db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n]),
      ) as Record<SalvageTable, number>;
      recovered.runs -= 1; // this salvage's own run
      return {
        from,
        to,
        pages: found.pages,
        recovered,
        carved: found.carvedKeys.size,
        lost: {
          failedCheck: found.failedCheck + verified.failedCheck,
          textMissing: verified.textMissing,
          estimatedInDamagedPages: found.estimatedInDamagedPages,
        },
      } satisfies SalvageReport;
    });
    cache.finishRun('ok', { recovered: report.recovered, lost: report.lost } as unknown as JsonObject);
    cache.close();
    renameSync(temp, to);
    removeTemps();
    return report;
  } catch (err) {
    cache.close();
    removeTemps();
    throw err;
  }
}

interface Found {
  /** Keys (`table:key`) of rows found only by carving damaged pages. */
  carvedKeys: Set<string>;
  pages: SalvageReport['pages'];
  failedCheck: number;
  estimatedInDamagedPages: number;
}

function keyOf(table: SalvageTable, r: Row): string {
  return `${table}:${isBlob(r[0]) ? r[0].toString('hex') : String(r[0])}`;
}

/**
 * Every page: sound b-tree pages by their cells, the rest by carving. Rows that pass their own
 * checks go straight into `into` (so memory stays bounded whatever the file's size); runs, whose
 * later state must win over a stale copy, are kept until the end.
 */
function readRows(src: PageSource, into: Cache): Found {
  const insert = Object.fromEntries(
    SALVAGE_TABLES.map((t) => {
      const cols = MERGE_COLUMNS[t];
      return [t, into.db.prepare(`INSERT OR IGNORE INTO ${t} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`)];
    }),
  ) as Record<SalvageTable, ReturnType<Cache['db']['prepare']>>;
  const runs = new Map<string, Row>();
  const carvedKeys = new Set<string>();
  const overflowPages = new Set<number>();
  const unsound: number[] = [];
  let sound = 0;
  let soundLeafCells = 0;
  let soundLeaves = 0;
  let failedCheck = 0;
  const seenFailed = new Set<string>();

  const take = (cell: Cell, carved: boolean): boolean => {
    const r = decodeRecord(cell.payload, 12);
    if (!r) return false;
    const t = tableOf(r);
    if (t === null) return false;
    if (t === 'info') return true; // the new cache has its own
    if (!ROW_CHECKS[t](r)) {
      if (!carved) {
        // one bad row seen twice (a page and its stale copy) is one loss
        const k = `${t}:${cell.payload.subarray(0, 48).toString('hex')}`;
        if (!seenFailed.has(k)) failedCheck++;
        seenFailed.add(k);
      }
      return false;
    }
    for (const p of cell.overflow) overflowPages.add(p);
    const k = keyOf(t, r);
    if (t === 'runs') {
      const had = runs.get(k);
      runs.set(k, had ? laterRun(had, r) : r);
      if (carved && !had) carvedKeys.add(k);
    } else if (insert[t].run(r).changes > 0 && carved) carvedKeys.add(k);
    return true;
  };

  for (let n = 1; n <= src.header.pageCount; n++) {
    const page = src.page(n);
    if (!page) continue;
    const bt = readBtreePage(src, n, page);
    if (bt === null) {
      unsound.push(n);
      continue;
    }
    sound++;
    failedCheck += bt.bad;
    // table b-trees hold only sqlite_schema here (page 1): uit's tables are all WITHOUT ROWID
    if (bt.type !== PAGE_INDEX_LEAF && bt.type !== PAGE_INDEX_INTERIOR) continue;
    if (bt.type === PAGE_INDEX_LEAF) {
      soundLeaves++;
      soundLeafCells += bt.cells.length + bt.bad;
    }
    for (const cell of bt.cells) take(cell, false);
  }
  let damaged = 0;
  let carvedRows = 0;
  for (const n of unsound) {
    if (overflowPages.has(n)) continue;
    const page = src.page(n)!;
    if (page.every((b) => b === 0)) continue; // never written
    for (const cell of carveCells(src, page, COLUMNS, 12)) if (take(cell, true)) carvedRows++;
    // (an overflow page of a row now lost, or a free page, cannot be told from a damaged b-tree page)
    damaged++;
  }
  for (const r of runs.values()) insert.runs.run(r);
  const perPage = soundLeaves > 0 ? soundLeafCells / soundLeaves : 0;
  const estimatedInDamagedPages = Math.max(0, Math.round(damaged * perPage - carvedRows));
  return { carvedKeys, pages: { total: src.header.pageCount, sound, damaged }, failedCheck, estimatedInDamagedPages };
}

/**
 * Checks each generation and score against its key, its prompt reassembled from the recovered
 * text pieces, and deletes those that fail or cannot be checked. Without its prompt a row cannot be
 * checked, and a row whose text references were hit by the damage looks just the same: such rows
 * are dropped, not trusted (in the reproduction 34 of 2,971 of them were damaged while
 * every field still looked valid).
 */
function verifyKeys(cache: Cache, carvedKeys: Set<string>): { failedCheck: number; textMissing: number } {
  const piece = cache.db.prepare('SELECT text FROM texts WHERE hash = ?').pluck();
  const assemble = (refs: Buffer): string | null => {
    let s = '';
    for (let i = 0; i < refs.length; i += TEXT_REF_BYTES) {
      const text = piece.get(refs.subarray(i, i + TEXT_REF_BYTES)) as string | undefined;
      if (text === undefined) return null;
      s += text;
    }
    return s;
  };
  let failedCheck = 0;
  let textMissing = 0;
  for (const table of ['generations', 'scores'] as const) {
    const cols = table === 'generations' ? 'key, model_id, prompt, params, sample_index' : 'key, scorer_id, prefix, params, target';
    const page = cache.db.prepare(`SELECT ${cols} FROM ${table} WHERE key > ? ORDER BY key LIMIT 500`).raw();
    const drop = cache.db.prepare(`DELETE FROM ${table} WHERE key = ?`);
    const bad: string[] = [];
    for (let last = ''; ; ) {
      const rows = page.all(last) as [string, string, Buffer, string, number | string][];
      if (rows.length === 0) break;
      for (const [key, model, refs, paramsText, fifth] of rows) {
        const text = assemble(refs);
        let ok = false;
        if (text === null) textMissing++;
        else {
          const params = JSON.parse(paramsText) as JsonObject;
          const want =
            table === 'generations'
              ? generationKey({ modelId: model, prompt: text, params, sampleIndex: fifth as number })
              : scoreKey({ scorerId: model, prefix: text, target: fifth as string, params });
          // a stored params text is canonical JSON; another spelling is a damaged row
          ok = want === key && canonicalJson(params) === paramsText;
          if (!ok && !carvedKeys.has(`${table}:${key}`)) failedCheck++;
        }
        if (!ok) {
          bad.push(key);
          carvedKeys.delete(`${table}:${key}`);
        }
      }
      last = rows[rows.length - 1][0];
    }
    for (const key of bad) drop.run(key);
  }
  return { failedCheck, textMissing };
}
