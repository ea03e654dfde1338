// Resuming and sharding through bin/uit.js: a run killed with SIGKILL in the middle resumes from
// the cache and writes the same bytes as an uninterrupted run into another folder; n shard runs
// give the unsharded output (their task files are its task files, their provenance lines its
// lines), and after `uit cache merge` of the shard caches an unsharded run needs no model call.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardOf } from '../../src/transfer/shard.js';
import { ALL_INPUTS, FIXTURE, SMALL, needBuilt, run, sameTree, tempDir, tree, uit, type Summary } from './helpers.js';

const tmp = tempDir('uit-pipeline-resume-');
// Longer candidates than the other tests, so that the killed run is still busy when killed.
const args = (out: string, cache: string, extra: string[] = []) => [
  'convert', ...ALL_INPUTS, '--to', 'niv2', '--method', 'model', '--model', FIXTURE, ...SMALL,
  '--num-candidates', '6', '--max-new-tokens', '48', '-o', out, '--cache', cache, ...extra,
];
const base = { out: join(tmp.dir, 'base/out'), cache: join(tmp.dir, 'base/cache.sqlite') };
let baseSummary: Summary;

beforeAll(() => {
  needBuilt(['commands/convert', 'transfer/pipeline']);
  baseSummary = run(args(base.out, base.cache));
});
afterAll(() => tmp.cleanup());

function generationRows(cache: string): number {
  if (!existsSync(cache)) return 0;
  try {
    const db = new Database(cache, { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM generations').get() as { n: number }).n;
    } finally {
      db.close();
    }
  } catch {
    return 0; // not created yet
  }
}

describe('kill -9 and resume', () => {
  it('a run killed after some tasks resumes from the cache and writes byte-identical output', async () => {
    expect(baseSummary.tasks.ok).toBe(6);
    const out = join(tmp.dir, 'killed/out');
    const cache = join(tmp.dir, 'killed/cache.sqlite');
    const child = spawn(process.execPath, ['bin/uit.js', ...args(out, cache)], { stdio: 'ignore' });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    let done = false;
    void exited.then(() => (done = true));
    // Kill once the first task's candidates are committed (6 rows) and before the run ends.
    let rows = 0;
    while (!done) {
      rows = generationRows(cache);
      if (rows >= 6) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(done).toBe(false);
    child.kill('SIGKILL');
    const { signal } = await exited;
    expect(signal).toBe('SIGKILL');
    const rowsAtKill = generationRows(cache);
    expect(rowsAtKill).toBeGreaterThanOrEqual(6);
    expect(rowsAtKill).toBeLessThan(36);
    // nothing at the output: only the dead run's hidden staging folder beside it
    expect(existsSync(out)).toBe(false);
    const left = readdirSync(dirname(out)).filter((f) => f !== 'cache.sqlite' && !f.startsWith('cache.sqlite-'));
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^\.out\.uit-staging-\d+-[0-9a-z]+$/);

    const resumed = run(args(out, cache));
    expect(resumed.tasks.ok).toBe(6);
    expect(resumed.candidates.cached).toBe(rowsAtKill);
    expect(resumed.candidates.generated).toBe(36 - rowsAtKill);
    expect(resumed.modelCalls.total).toBeLessThan(baseSummary.modelCalls.total);
    // the same files with the same bytes (the staging leftovers are gone)
    expect(sameTree(tree(out), tree(base.out))).toBe(7);
    expect(readdirSync(dirname(out)).filter((f) => f.includes('uit-staging'))).toEqual([]);
  });
});

describe('SIGTERM (a scheduler preempting the job)', () => {
  it('stops with exit code 143, records the run as interrupted, and the same command resumes', async () => {
    const out = join(tmp.dir, 'term/out');
    const cache = join(tmp.dir, 'term/cache.sqlite');
    const child = spawn(process.execPath, ['bin/uit.js', ...args(out, cache)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    while (generationRows(cache) < 6) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(stderr).toMatch(/SIGTERM: stopped; run the same command again to resume/);
    const db = new Database(cache, { readonly: true });
    const runs = db.prepare('SELECT status FROM runs').all() as { status: string }[];
    db.close();
    expect(runs).toEqual([{ status: 'interrupted' }]);
    expect([...tree(out).keys()].every((f) => f.startsWith('.'))).toBe(true);
    run(args(out, cache));
    expect(sameTree(tree(out), tree(base.out))).toBe(7);
  });
});

describe('--shard k/n', () => {
  it('shards split the tasks by id hash; their outputs and caches merge into the unsharded output', () => {
    const ids = [
      'p3/imdb_Reviewer_Enjoyment_Yes_No', 'p3/ag_news_classify_question_first', 'flan/trec/0', 'flan/trec/1',
      'task1413_dart_object_identification', 'task1411_dart_subject_identification',
    ];
    const n = 2;
    const owners = ids.map((id) => shardOf(id, n));
    expect(new Set(owners).size).toBe(n); // both shards get work with these ids
    const shards = [0, 1].map((k) => {
      const out = join(tmp.dir, `shard-${k}/out`);
      const cache = join(tmp.dir, `shard-${k}/cache.sqlite`);
      const s = run(args(out, cache, ['--shard', `${k}/${n}`]));
      return { out, cache, s };
    });
    shards.forEach(({ s }, k) => {
      expect(s.tasks.ok).toBe(owners.filter((o) => o === k).length);
      expect(s.tasks.ok + s.tasks.otherShards).toBe(6);
    });

    // 1. task files: the union of the shard folders is the unsharded folder, byte for byte
    const whole = tree(base.out);
    const union = new Map<string, Buffer>();
    for (const { out } of shards) for (const [f, b] of tree(out)) if (f !== 'provenance.jsonl') union.set(f, b);
    whole.delete('provenance.jsonl');
    expect(sameTree(union, whole)).toBe(6);
    // 2. provenance: the shards' lines, in input order, are the unsharded file's lines
    const lines = (t: Map<string, Buffer>) => t.get('provenance.jsonl')!.toString('utf8').split('\n').filter(Boolean);
    const baseLines = lines(tree(base.out));
    const shardLines = shards.flatMap(({ out }) => lines(tree(out)));
    const order = (l: string) => ids.indexOf((JSON.parse(l) as { id: string }).id);
    expect(shardLines.sort((a, b) => order(a) - order(b))).toEqual(baseLines);

    // 3. caches: merged, they hold everything an unsharded run needs
    const merged = join(tmp.dir, 'merged.sqlite');
    const m = uit(['cache', 'merge', ...shards.map((s) => s.cache), '--cache', merged]);
    expect(m.code).toBe(0);
    const out = join(tmp.dir, 'merged/out');
    const s = run(args(out, merged));
    expect(s.modelCalls.total).toBe(0);
    expect(sameTree(tree(out), tree(base.out))).toBe(7);
  });

  it('rejects a malformed shard with a usage error', () => {
    for (const bad of ['2/2', '1', 'a/b', '0/0']) {
      const r = uit(args(join(tmp.dir, 'bad'), join(tmp.dir, 'bad.sqlite'), ['--shard', bad]));
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--shard/);
    }
  });
});
