// `uit cache ...` as a user runs it: a compiled CLI in a child process, real cache files.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openCache, scoreKey, type GenerationRecord, type ScoreRecord } from '../../src/cache/index.js';
import { ExitCode } from '../../src/errors.js';
import { privateBuild, tempDir, type PrivateBuild } from './helpers.js';

let build: PrivateBuild;
let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  build = privateBuild();
});
afterAll(() => build?.remove());
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

function uit(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [build.uit, ...args], {
    encoding: 'utf8',
    env: { ...process.env, UIT_CACHE: join(tmp.dir, 'default.sqlite'), ...env },
    maxBuffer: 64 << 20,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SCORER = `sha256:${'ab'.repeat(32)}`;
const score = (shard: number, i: number): ScoreRecord => ({
  scorerId: SCORER,
  prefix: `Definition: Say "hi", then, a comma.\n\nPositive Examples 1\nInput: a\nOutput: b\n\nNow complete the following example -\nInput: ${shard}/${i}\nOutput: `,
  target: i % 5 === 0 ? '' : `line one\nline "two", ${i}`,
  tokenCount: i % 5 === 0 ? 0 : 4,
  sumCe: i % 5 === 0 ? 0 : 2 + i,
  meanCe: i % 5 === 0 ? null : (2 + i) / 4,
  tokenLogprobs: i % 5 === 0 ? null : [-0.5, -0.25, -1, -(0.25 + i)],
});
const generation = (i: number): GenerationRecord => ({
  modelId: 'model-x',
  prompt: 'Rewrite each instruction.\n\nInstruction: a\nDefinition: b\n\nInstruction: c\nDefinition:',
  params: { temperature: 0.7, seed: 1 },
  sampleIndex: i,
  text: ` candidate ${i}`,
  tokenCount: 2,
  finishReason: 'stop',
});

/** A cache like one shard of a job would leave: a registered scorer, a run, scores. */
function makeShard(file: string, shard: number, n: number): void {
  const c = openCache(file);
  c.putModel({ id: SCORER, kind: 'local', name: 'models/uit-tiny' });
  c.startRun('score', { shard });
  c.putScores(Array.from({ length: n }, (_, i) => score(shard, i)));
  if (shard === 0) c.putGenerations([0, 1, 2].map(generation));
  c.finishRun('ok');
  c.close();
}

/** RFC 4180, enough for the test: quoted fields with "" escapes, commas and newlines. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') row.push(field), (field = '');
    else if (ch === '\r' && text[i + 1] === '\n') row.push(field), rows.push(row), (row = []), (field = ''), i++;
    else field += ch;
  }
  return rows;
}

describe('help', () => {
  it('every subcommand has examples', () => {
    for (const sub of [[], ['stats'], ['export'], ['merge'], ['vacuum']]) {
      const r = uit(['cache', ...sub, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Examples?:\n {2}\$ uit cache/);
    }
  });
});

describe('uit cache stats', () => {
  it('reports rows per table and per model, as text and JSON', () => {
    const file = join(tmp.dir, 'c.sqlite');
    makeShard(file, 0, 20);
    const j = uit(['cache', 'stats', '--cache', file, '--json']);
    expect(j.stderr).toBe('');
    const stats = JSON.parse(j.stdout);
    expect(stats.rows).toMatchObject({ scores: 20, generations: 3, models: 1, runs: 1 });
    expect(stats.scores.byScorer).toEqual([{ id: SCORER, name: 'models/uit-tiny', kind: 'local', rows: 20 }]);
    expect(stats.generations.byModel).toEqual([{ id: 'model-x', name: null, kind: null, rows: 3 }]);
    expect(stats.bytes.total).toBeGreaterThan(0);

    const t = uit(['cache', 'stats', '--cache', file, '--check']);
    expect(t.code).toBe(0);
    expect(t.stdout).toContain(`cache       ${file} (schema v1, journal wal)`);
    expect(t.stdout).toMatch(/rows +generations 3, scores 20, models 1, runs 1/);
    expect(t.stdout).toContain('       20  models/uit-tiny (local, sha256:abababababab…)\n');
    expect(t.stdout).toMatch(/ +3 +model-x \(not registered\)/);
    expect(t.stdout).toContain('integrity   ok');
  });

  it('uses $UIT_CACHE by default', () => {
    makeShard(join(tmp.dir, 'default.sqlite'), 0, 7);
    expect(JSON.parse(uit(['cache', 'stats', '--json']).stdout).rows.scores).toBe(7);
  });

  it('exits 5 with the file named for a file that is not a cache, and leaves it alone', () => {
    const file = join(tmp.dir, 'notes.txt');
    writeFileSync(file, 'hello, this is text\n'.repeat(20));
    const r = uit(['cache', 'stats', '--cache', file]);
    expect(r.code).toBe(ExitCode.CACHE);
    expect(r.stderr).toBe(`uit: ${file} is not a SQLite database (it starts with "hello, this is t"); uit leaves it untouched: pass another --cache file, or move this one away\n`);
    expect(readFileSync(file, 'utf8')).toBe('hello, this is text\n'.repeat(20));
    const missing = uit(['cache', 'stats', '--cache', join(tmp.dir, 'nope.sqlite')]);
    expect(missing.code).toBe(ExitCode.CACHE);
    expect(missing.stderr).toContain('nope.sqlite: no cache file there');
  });
});

describe('uit cache export', () => {
  it('writes JSON Lines with prompts reassembled and JSON columns parsed', () => {
    const file = join(tmp.dir, 'c.sqlite');
    makeShard(file, 0, 30);
    const r = uit(['cache', 'export', '--cache', file, '--table', 'scores']);
    expect(r.code).toBe(0);
    const rows = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(rows).toHaveLength(30);
    const byKey = new Map(rows.map((x) => [x.key, x]));
    for (let i = 0; i < 30; i++) {
      const s = score(0, i);
      const row = byKey.get(scoreKey(s));
      expect(row).toMatchObject({ prefix: s.prefix, target: s.target, token_count: s.tokenCount, sum_ce: s.sumCe, mean_ce: s.meanCe, params: {} });
      expect(row.token_logprobs).toEqual(s.tokenLogprobs);
    }
    const gens = uit(['cache', 'export', '--cache', file]).stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(gens.map((g) => g.text).sort()).toEqual([' candidate 0', ' candidate 1', ' candidate 2']);
    expect(gens[0].prompt).toBe(generation(0).prompt);
    expect(gens[0].params).toEqual({ seed: 1, temperature: 0.7 });
  });

  it('writes CSV to a file atomically, quoting commas, quotes and newlines', () => {
    const file = join(tmp.dir, 'c.sqlite');
    makeShard(file, 0, 12);
    const out = join(tmp.dir, 'out', 'scores.csv');
    const r = uit(['cache', 'export', '--cache', file, '--table', 'scores', '--format', 'csv', '-o', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const rows = parseCsv(readFileSync(out, 'utf8'));
    expect(rows[0]).toEqual(['key', 'scorer_id', 'prefix', 'target', 'params', 'token_count', 'sum_ce', 'mean_ce', 'token_logprobs', 'created_at', 'duration_ms', 'run_id']);
    expect(rows).toHaveLength(13);
    const byKey = new Map(rows.slice(1).map((x) => [x[0], x]));
    const s = score(0, 3);
    expect(byKey.get(scoreKey(s))!.slice(2, 9)).toEqual([s.prefix, s.target, '{}', '4', '5', '1.25', '[-0.5,-0.25,-1,-3.25]']);
    const empty = score(0, 5);
    expect(byKey.get(scoreKey(empty))!.slice(3, 9)).toEqual(['', '{}', '0', '0', '', '']);
    expect(readdirSync(join(tmp.dir, 'out'))).toEqual(['scores.csv']);
  });

  it('on a read error half-way keeps the previous output file and leaves no temp file', () => {
    const file = join(tmp.dir, 'damaged.sqlite');
    makeShard(file, 0, 600);
    // Damage only the texts table: counting and paging the scores still work, reassembling
    // prefixes fails part-way through the export.
    const db = new Database(file, { readonly: true });
    const pages = (db.prepare("SELECT pageno FROM dbstat WHERE name = 'texts' AND pagetype = 'leaf' ORDER BY pageno").all() as { pageno: number }[]).map((r) => r.pageno);
    db.close();
    expect(pages.length).toBeGreaterThan(4);
    const fd = openSync(file, 'r+');
    for (const page of pages.slice(pages.length / 2)) writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, (page - 1) * 4096);
    closeSync(fd);
    const out = join(tmp.dir, 'scores.jsonl');
    writeFileSync(out, 'previous export\n');
    const r = uit(['cache', 'export', '--cache', file, '--table', 'scores', '-o', out]);
    expect(r.code).toBe(ExitCode.CACHE);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toMatch(/exporting scores: the cache file is damaged/);
    expect(readFileSync(out, 'utf8')).toBe('previous export\n');
    expect(readdirSync(tmp.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    // Damage in the scores table itself fails before the first row: same promise.
    const fd2 = openSync(file, 'r+');
    const size = statSync(file).size;
    for (let page = 6; page * 4096 < size; page += 2) writeSync(fd2, Buffer.alloc(4096, 0x5a), 0, 4096, page * 4096);
    closeSync(fd2);
    const r2 = uit(['cache', 'export', '--cache', file, '--table', 'scores', '-o', out]);
    expect(r2.code).toBe(ExitCode.CACHE);
    expect(readFileSync(out, 'utf8')).toBe('previous export\n');
    expect(readdirSync(tmp.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('stops quietly when the reader of stdout goes away', () => {
    const file = join(tmp.dir, 'c.sqlite');
    makeShard(file, 0, 3000);
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${build.uit}" cache export --cache "${file}" --table scores | head -n 2 >/dev/null; echo "status \${PIPESTATUS[0]}"`], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('status 0\n');
  });

  it('refuses an unknown table as a usage error', () => {
    const r = uit(['cache', 'export', '--table', 'nope']);
    expect(r.code).toBe(ExitCode.USAGE);
    expect(r.stderr).toMatch(/Allowed choices are generations, scores, models, runs/);
  });
});

describe('uit cache merge', () => {
  it('merges shard caches, reports new rows, and a second merge adds nothing', () => {
    const shards = [0, 1, 2].map((k) => join(tmp.dir, `shard-${k}.sqlite`));
    shards.forEach((f, k) => makeShard(f, k, 10));
    const target = join(tmp.dir, 'merged.sqlite');
    const r = uit(['cache', 'merge', ...shards, '--cache', target, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.merged.map((m: { added: { scores: number } }) => m.added.scores)).toEqual([10, 10, 10]);
    expect(out.added).toMatchObject({ scores: 30, generations: 3, models: 1, runs: 3 });

    const again = uit(['cache', 'merge', ...shards, '--cache', target]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`merged ${shards[0]}: +0 generations, +0 scores, +0 models, +0 runs, +0 text pieces\n`);
    expect(again.stdout).toContain(`${target}: +0 generations, +0 scores, +0 models, +0 runs, +0 text pieces added from 3 file(s)\n`);

    const c = openCache(target, { readonly: true });
    const stats = c.stats();
    const runs = [...c.exportRows('runs')];
    c.close();
    expect(stats.rows.scores).toBe(30);
    // Three shard runs plus the two merges, each logged with what it added.
    expect(runs.filter((x) => x.command === 'cache merge').map((x) => (x.counts as { added: { scores: number } }).added.scores).sort()).toEqual([0, 30]);
  });

  it('is all or nothing: a file that is not a cache stops it before the new cache is created', () => {
    const good = join(tmp.dir, 'good.sqlite');
    makeShard(good, 0, 4);
    const bad = join(tmp.dir, 'bad.sqlite');
    writeFileSync(bad, 'not a database at all, just some text');
    const target = join(tmp.dir, 'merged.sqlite');
    const r = uit(['cache', 'merge', good, bad, '--cache', target]);
    expect(r.code).toBe(ExitCode.CACHE);
    expect(r.stderr).toContain(`${bad} is not a SQLite database`);
    // (a read-only open of a WAL cache leaves its -wal and -shm files, as SQLite does)
    expect(readdirSync(tmp.dir).filter((f) => !/-(wal|shm)$/.test(f)).sort()).toEqual(['bad.sqlite', 'good.sqlite']);
  });

  it('a source damaged half-way: named first, no new target left, an existing target unchanged', () => {
    const good = join(tmp.dir, 'good.sqlite');
    makeShard(good, 1, 40);
    const damaged = join(tmp.dir, 'damaged.sqlite');
    makeShard(damaged, 0, 600);
    damage(damaged);
    const target = join(tmp.dir, 'merged.sqlite');
    const r = uit(['cache', 'merge', good, damaged, '--cache', target]);
    expect(r.code).toBe(ExitCode.CACHE);
    expect(r.stderr).toMatch(new RegExp(`^uit: ${damaged}: reading it to merge: the cache file is damaged; \`uit cache salvage ${damaged} --cache NEW\.sqlite\``));
    expect(readdirSync(tmp.dir).filter((f) => !/-(wal|shm)$/.test(f)).sort()).toEqual(['damaged.sqlite', 'good.sqlite']);

    // into an existing cache: the good file's rows are not half-merged either
    const existing = join(tmp.dir, 'existing.sqlite');
    makeShard(existing, 2, 5);
    const before = readFileSync(existing);
    const r2 = uit(['cache', 'merge', good, damaged, '--cache', existing]);
    expect(r2.code).toBe(ExitCode.CACHE);
    const c = openCache(existing, { readonly: true });
    expect(c.stats().rows.scores).toBe(5);
    expect(c.stats().runs.last).toMatchObject({ command: 'cache merge', status: 'failed' });
    c.close();
    expect(before.length).toBeGreaterThan(0);
  });
});

/**
 * The damage: 2000 random bytes (a seeded generator) at a random place in every 8 KiB of
 * the file past the first 8 KiB (the header and the schema stay readable).
 */
function damage(file: string): void {
  const fd = openSync(file, 'r+');
  const size = statSync(file).size;
  let seed = 21;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let off = 8192; off < size; off += 8192) {
    const bytes = Buffer.alloc(2000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rnd() * 256);
    writeSync(fd, bytes, 0, bytes.length, off + Math.floor(rnd() * (8192 - 2000)));
  }
  closeSync(fd);
}

describe('uit cache salvage', () => {
  /** Every row of `table` SQLite can still read from `file`, looking each key of `good` up by itself. */
  function readableBySqlite(file: string, good: string, table: 'generations' | 'scores' | 'texts', key: string): Map<string, unknown[]> {
    const g = new Database(good, { readonly: true });
    const keys = (g.prepare(`SELECT ${key} FROM ${table}`).raw().all() as unknown[][]).map((r) => r[0]);
    g.close();
    const d = new Database(file, { readonly: true });
    const one = d.prepare(`SELECT * FROM ${table} WHERE ${key} = ?`).raw();
    const out = new Map<string, unknown[]>();
    for (const k of keys) {
      try {
        const row = one.get(k) as unknown[] | undefined;
        if (row) out.set(Buffer.isBuffer(k) ? k.toString('hex') : String(k), row);
      } catch {
        // a damaged page on the way to this key
      }
    }
    d.close();
    return out;
  }

  it('recovers every row SQLite can still read and check (and more), each one true to the original, and counts the loss', () => {
    // scores whose prefixes share no paragraph, so that each depends on its own text piece only
    // (a paragraph shared by every row, lost, would take every row with it: see the report below)
    const good = join(tmp.dir, 'good.sqlite');
    const c = openCache(good);
    c.putModel({ id: SCORER, kind: 'local', name: 'models/uit-tiny' });
    c.startRun('score', {});
    c.putScores(Array.from({ length: 3000 }, (_, i) => ({ ...score(0, i), prefix: `Definition ${i}: say "hi" ${'x'.repeat(i % 97)}. Input: ${i} Output: ` })));
    c.putGenerations([0, 1, 2].map(generation));
    c.finishRun('ok');
    c.close();
    const damaged = join(tmp.dir, 'damaged.sqlite');
    writeFileSync(damaged, readFileSync(good));
    damage(damaged);
    const out = join(tmp.dir, 'salvaged.sqlite');
    const r = uit(['cache', 'salvage', damaged, '--cache', out, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.from).toBe(damaged);
    expect(report.pages.damaged + report.lost.failedCheck).toBeGreaterThan(0);

    const s = new Database(out, { readonly: true });
    const g = new Database(good, { readonly: true });
    const all = (db: Database.Database, table: string) =>
      new Map((db.prepare(`SELECT * FROM ${table}`).raw().all() as unknown[][]).map((row) => [Buffer.isBuffer(row[0]) ? row[0].toString('hex') : String(row[0]), row]));
    const salvagedTexts = all(s, 'texts');
    // a row can be checked when every piece of its prompt was recovered
    const checkable = (row: unknown[]) => {
      const refs = row[2] as Buffer;
      for (let i = 0; i < refs.length; i += 16) if (!salvagedTexts.has(refs.subarray(i, i + 16).toString('hex'))) return false;
      return true;
    };
    let readableScores = 0;
    for (const [table, key] of [['scores', 'key'], ['generations', 'key'], ['texts', 'hash']] as const) {
      const salvaged = all(s, table);
      const original = all(g, table);
      // nothing invented: each salvaged row is the original row, byte for byte
      for (const [k, row] of salvaged) expect(row, `${table} ${k}`).toEqual(original.get(k));
      // nothing SQLite can read (and the key can check) is missing
      const readable = readableBySqlite(damaged, good, table, key);
      for (const [k, row] of readable) {
        if (table !== 'texts' && !checkable(row)) continue;
        expect(salvaged.has(k), `${table} ${k} is readable by SQLite`).toBe(true);
      }
      expect(report.recovered[table]).toBe(salvaged.size);
      if (table === 'scores') readableScores = readable.size;
      if (table === 'texts') expect(salvaged.size).toBeGreaterThan(readable.size);
    }
    // SQLite reads some scores, salvage more; what is counted as certainly lost is really missing
    expect(readableScores).toBeLessThan(3000);
    expect(report.recovered.scores).toBeGreaterThan(readableScores);
    expect(report.lost.textMissing + report.lost.failedCheck).toBeLessThanOrEqual(3000 - report.recovered.scores + 3 - report.recovered.generations + report.lost.failedCheck);
    expect(report.lost.textMissing).toBeLessThanOrEqual(3000 - report.recovered.scores + 3 - report.recovered.generations);
    s.close();
    g.close();

    // the salvaged cache is a sound cache: it passes the integrity check and exports whole
    expect(uit(['cache', 'stats', '--cache', out, '--check']).code).toBe(0);
    expect(uit(['cache', 'export', '--cache', out, '--table', 'scores']).code).toBe(0);

    // in words, too; and a salvage into an existing file is refused; the damaged file is never changed
    const before = readFileSync(damaged);
    const words = uit(['cache', 'salvage', damaged, '--cache', join(tmp.dir, 'again.sqlite')]);
    expect(words.stdout).toMatch(/^salvaged .*\nrecovered +\d+ rows: generations \d+, scores \d+.*\npages +\d+: \d+ sound, \d+ damaged\nlost +\d+ rows that failed their check, \d+ generations\/scores whose prompt text was in a damaged page, and about \d+ more/);
    const refused = uit(['cache', 'salvage', damaged, '--cache', out]);
    expect(refused.code).toBe(ExitCode.USAGE);
    expect(readFileSync(damaged).equals(before)).toBe(true);
  });

  it('an intact cache salvages whole, its write-ahead log included', () => {
    const file = join(tmp.dir, 'wal.sqlite');
    makeShard(file, 0, 30);
    // rows still in the WAL: a writer that has not checkpointed, copied while it is open
    const c = openCache(file);
    c.db.pragma('wal_autocheckpoint = 0');
    c.putScores(Array.from({ length: 7 }, (_, i) => score(9, i)));
    const copy = join(tmp.dir, 'copy.sqlite');
    writeFileSync(copy, readFileSync(file));
    writeFileSync(`${copy}-wal`, readFileSync(`${file}-wal`));
    c.close();
    const out = join(tmp.dir, 'whole.sqlite');
    const r = uit(['cache', 'salvage', copy, '--cache', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.recovered).toMatchObject({ scores: 37, generations: 3, models: 1, runs: 1 });
    expect(report.lost).toEqual({ failedCheck: 0, textMissing: 0, estimatedInDamagedPages: 0 });
    expect(report.pages.damaged).toBe(0);
  });
});

describe('uit cache vacuum', () => {
  it('compacts and keeps every row', () => {
    const file = join(tmp.dir, 'c.sqlite');
    makeShard(file, 0, 50);
    const r = uit(['cache', 'vacuum', '--cache', file, '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.cache).toBe(file);
    expect(out.bytesAfter).toBeGreaterThan(0);
    expect(out.bytesBefore).toBeGreaterThan(0);
    expect(JSON.parse(uit(['cache', 'stats', '--cache', file, '--json']).stdout).rows.scores).toBe(50);
    expect(existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0).toBe(0);
  });
});
