// Measures the cache on a realistic job, for docs/cache.md: file size with paragraph-deduplicated
// prompts (what uit stores) against the same rows with every prompt stored whole, and the speed
// of batch writes, batch lookups and merging. Run after `npx tsc -p tsconfig.build.json`:
//   node test/cache/tools/measure-size.mjs [TASKS=60]
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { openCache, scoreKey } from '../../../dist/cache/index.js';
import { buildScoringPrefix } from '../../../dist/perplexity/scoring-prompt.js';
import { buildTransferPrompt } from '../../../dist/transfer/prompt.js';

const data = fileURLToPath(new URL('../../../../shared/data/', import.meta.url));
const nTasks = Number(process.argv[2] ?? 60);
const files = readdirSync(join(data, 'niv2', 'tasks')).sort().slice(0, nTasks);
const tasks = files.flatMap((f) => {
  try {
    return [JSON.parse(readFileSync(join(data, 'niv2', 'tasks', f), 'utf8'))];
  } catch {
    return []; // a few released files hold Python's NaN, which JSON.parse refuses
  }
});
const defs = readFileSync(join(data, 'niv2', 'definitions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).definition);
const seeds = [0, 1, 2].map((i) => ({ source: defs[900 + i], definition: defs[i] }));
const CANDIDATES = 8;
const M = 32;

// The rows a `uit convert` of these tasks would store: 8 sampled definitions per task, then
// each candidate scored on up to 32 instances (these files hold 20).
const generations = [];
const scores = [];
tasks.forEach((t, ti) => {
  const prompt = buildTransferPrompt(t.Definition[0], 'fewshot', seeds);
  const examples = t['Positive Examples'].map((e) => ({ input: e.input, output: e.output }));
  for (let c = 0; c < CANDIDATES; c++) {
    const text = ` ${defs[(ti * CANDIDATES + c + 300) % defs.length]}`;
    generations.push({ modelId: 'f'.repeat(64), prompt, params: { maxNewTokens: 128, temperature: 0.7, topP: 0.9, seed: 1, stop: ['\n\n'] }, sampleIndex: c, text, tokenCount: 80, finishReason: 'stop', durationMs: 900 });
    for (const inst of t.Instances.slice(0, M)) {
      scores.push({ scorerId: 'e'.repeat(64), prefix: buildScoringPrefix(text.trim(), examples, inst.input), target: inst.output[0], tokenCount: 12, sumCe: 30.5, meanCe: 2.54, durationMs: 3.1 });
    }
  }
});
const promptChars = generations.reduce((n, g) => n + g.prompt.length, 0) + scores.reduce((n, s) => n + s.prefix.length, 0);

const dir = mkdtempSync(join(tmpdir(), 'uit-cache-measure-'));
const size = (f) => statSync(f).size;
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
// CPU time too: on a shared machine wall time says more about the neighbours than about SQLite.
const cpuMs = (c0) => {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};

// 1. What uit stores, written in batches of one candidate (as the scorer does).
const file = join(dir, 'uit.sqlite');
const cache = openCache(file);
let t0 = process.hrtime.bigint();
let c0 = process.cpuUsage();
for (let i = 0; i < generations.length; i += CANDIDATES) cache.putGenerations(generations.slice(i, i + CANDIDATES));
for (let i = 0; i < scores.length; i += 20) cache.putScores(scores.slice(i, i + 20));
const writeMs = ms(t0);
const writeCpu = cpuMs(c0);
t0 = process.hrtime.bigint();
c0 = process.cpuUsage();
const keys = scores.map(scoreKey);
let hits = 0;
for (let i = 0; i < keys.length; i += 256) hits += cache.getScores(keys.slice(i, i + 256)).size;
const readMs = ms(t0);
const readCpu = cpuMs(c0);
cache.vacuum();
const stats = cache.stats();
cache.close();

// 2. The same rows with prompts stored whole (the layout we did not choose).
const inline = join(dir, 'inline.sqlite');
const db = new Database(inline);
db.pragma('journal_mode = WAL');
db.exec(`CREATE TABLE generations (key TEXT PRIMARY KEY, model_id TEXT, prompt TEXT, params TEXT, sample_index INTEGER, text TEXT, token_count INTEGER, finish_reason TEXT, meta TEXT, created_at TEXT, duration_ms REAL, run_id TEXT) WITHOUT ROWID;
CREATE TABLE scores (key TEXT PRIMARY KEY, scorer_id TEXT, prefix TEXT, target TEXT, params TEXT, token_count INTEGER, sum_ce REAL, mean_ce REAL, token_logprobs BLOB, created_at TEXT, duration_ms REAL, run_id TEXT);`);
const now = new Date().toISOString();
const ig = db.prepare('INSERT OR IGNORE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL)');
const is = db.prepare("INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, '{}', ?, ?, ?, NULL, ?, ?, NULL)");
db.transaction(() => {
  generations.forEach((g, i) => ig.run(String(i).padStart(64, '0'), g.modelId, g.prompt, JSON.stringify(g.params), g.sampleIndex, g.text, g.tokenCount, g.finishReason, now, g.durationMs));
  scores.forEach((s) => is.run(scoreKey(s), s.scorerId, s.prefix, s.target, s.tokenCount, s.sumCe, s.meanCe, now, s.durationMs));
})();
db.exec('VACUUM');
db.pragma('wal_checkpoint(TRUNCATE)');
db.close();

// 3. Merging: two halves of the job into one file.
const halves = [0, 1].map((h) => {
  const f = join(dir, `half-${h}.sqlite`);
  const c = openCache(f);
  c.putScores(scores.filter((_, i) => i % 2 === h));
  c.close();
  return f;
});
const merged = openCache(join(dir, 'merged.sqlite'));
t0 = process.hrtime.bigint();
c0 = process.cpuUsage();
for (const f of halves) merged.mergeFrom(f);
const mergeMs = ms(t0);
const mergeCpu = cpuMs(c0);
const mergedRows = merged.stats().rows.scores;
merged.close();

const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
console.log(`tasks ${tasks.length}, generations ${generations.length}, scores ${scores.length} (unique ${stats.rows.scores}), prompt+prefix text ${mb(promptChars)}`);
console.log(`uit layout (paragraphs stored once): ${mb(size(file))}, ${stats.rows.texts} text pieces`);
console.log(`prompts stored whole:                ${mb(size(inline))}  (${(size(inline) / size(file)).toFixed(1)}x larger)`);
const rate = (n, t) => (n / (t / 1000)).toFixed(0);
console.log(`writes: ${rate(scores.length, writeMs)} score rows/s wall, ${rate(scores.length, writeCpu)} per CPU-second (batches of 20, plus ${generations.length} generations)`);
console.log(`lookups (keys computed too): ${rate(keys.length, readMs)} keys/s wall, ${rate(keys.length, readCpu)} per CPU-second (batches of 256, ${hits} hits)`);
console.log(`merge: ${mergedRows} rows from 2 files in ${mergeMs.toFixed(0)} ms wall, ${mergeCpu.toFixed(0)} ms CPU`);
rmSync(dir, { recursive: true, force: true });
