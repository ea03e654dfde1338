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

  it('stops at a file that is not a cache, keeping what was merged before it', () => {
    const good = join(tmp.dir, 'good.sqlite');
    makeShard(good, 0, 4);
    const bad = join(tmp.dir, 'bad.sqlite');
    writeFileSync(bad, 'not a database at all, just some text');
    const target = join(tmp.dir, 'merged.sqlite');
    const r = uit(['cache', 'merge', good, bad, '--cache', target]);
    expect(r.code).toBe(ExitCode.CACHE);
    expect(r.stderr).toContain(`${bad} is not a SQLite database`);
    const c = openCache(target, { readonly: true });
    expect(c.stats().rows.scores).toBe(4);
    expect(c.stats().runs.last?.status).toBe('failed');
    c.close();
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
