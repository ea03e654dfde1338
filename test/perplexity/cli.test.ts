// `uit score` and `uit score-instructions` through the real binary (bin/uit.js -> dist/): output
// shapes, input errors, the cache (rerun without model calls, SIGKILL mid-job then resume with
// identical numbers), and refused cache files.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scorer, scoreCandidates } from '../../src/perplexity/index.js';
import { loadModel, type Model } from '../../src/runtime/index.js';
import { niv2 } from '../../src/formats/niv2.js';
import type { Task } from '../../src/types.js';
import { FIXTURE, NIV2_TASKS, tempDir } from './helpers.js';

const tmp = tempDir('uit-score-cli-');
/** The identity memo goes to a temp dir, not the user's cache. */
const ENV = { ...process.env, XDG_CACHE_HOME: join(tmp.dir, 'xdg'), UIT_CACHE: join(tmp.dir, 'default-cache.sqlite') };

function uit(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/uit.js', ...args], { encoding: 'utf8', env: ENV });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

let model: Model;
beforeAll(async () => {
  for (const cmd of ['score', 'score-instructions']) {
    const built = `dist/commands/${cmd}.js`;
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(`src/commands/${cmd}.ts`).mtimeMs) {
      throw new Error(`${built} is missing or older than its source: run \`npm run build\` first (npm test does)`);
    }
  }
  model = await loadModel(FIXTURE, { threads: 1 });
});
afterAll(async () => {
  await model.dispose();
  tmp.cleanup();
});

const PAIRS = [
  { id: 'a', prefix: 'Definition: Answer the question.\n\nInput: 2+2?\nOutput: ', target: '4' },
  { prefix: 'Definition: Answer the question.\n\nInput: Capital of France?\nOutput: ', target: 'Paris' },
  { id: 3, prefix: 'Input: nothing to say\nOutput: ', target: '' },
  { id: 'd', prefix: 'Definition: Answer the question.\n\nInput: Colour of the sky?\nOutput: ', target: 'blue', extra: 'ignored' },
];

function writePairs(name: string, pairs: readonly object[], blankAfter = 1): string {
  const file = join(tmp.dir, name);
  const lines = pairs.map((p) => JSON.stringify(p));
  lines.splice(blankAfter + 1, 0, ''); // a blank line is skipped but counts in line numbers
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

describe('uit score', () => {
  it('--json prints one object per pair in input order, with the API numbers', async () => {
    const file = writePairs('pairs.jsonl', PAIRS);
    const r = uit('score', '-m', FIXTURE, file, '--json', '--no-cache', '--threads', '1', '--batch-size', '2');
    expect(r.code, r.stderr).toBe(0);
    const rows = jsonLines(r.stdout);
    expect(rows.map((o) => o.line)).toEqual([1, 2, 4, 5]);
    expect(rows.map((o) => o.id)).toEqual(['a', undefined, 3, 'd']);
    expect(Object.keys(rows[0])).toEqual(['line', 'id', 'tokens', 'sum_ce', 'mean_ce', 'perplexity', 'truncated_prefix_tokens', 'cached']);
    const api = await new Scorer(model, { scorerId: 'x', batchSize: 2 }).score(PAIRS);
    rows.forEach((o, i) => {
      expect(o.tokens).toBe(api[i].tokens);
      expect(o.truncated_prefix_tokens).toBe(0);
      if (api[i].meanCe === null) {
        expect(o.mean_ce).toBeNull();
        expect(o.perplexity).toBeNull();
        return;
      }
      expect(Math.abs((o.sum_ce as number) - api[i].sumCe)).toBeLessThan(1e-6);
      expect(Math.abs((o.mean_ce as number) - api[i].meanCe!)).toBeLessThan(1e-6);
      expect(o.perplexity as number).toBeCloseTo(Math.exp(o.mean_ce as number), 8);
    });
    expect(r.stderr).toMatch(/^uit score: 4 pairs \(3 computed, 0 from the cache, 1 empty\) in [\d.]+ s; \d+ model calls .*; no cache\n$/);
  });

  it('--per-token adds each target token with its text and log-prob (summing to -sum_ce)', () => {
    const file = writePairs('pairs-pt.jsonl', PAIRS);
    const r = uit('score', '-m', FIXTURE, file, '--json', '--per-token', '--no-cache', '--threads', '1');
    expect(r.code, r.stderr).toBe(0);
    const rows = jsonLines(r.stdout) as { tokens: number; sum_ce: number; per_token: { id: number; text: string; logprob: number }[] }[];
    expect(rows[1].per_token.map((t) => t.text).join('')).toBe('Paris');
    expect(rows[2].per_token).toEqual([]);
    for (const row of rows) {
      expect(row.per_token).toHaveLength(row.tokens);
      const sum = row.per_token.reduce((a, t) => a - t.logprob, 0);
      expect(Math.abs(sum - row.sum_ce)).toBeLessThan(1e-5);
    }
  });

  it('plain output is a tab-separated table; -o writes it atomically', () => {
    const file = writePairs('pairs-plain.jsonl', PAIRS);
    const outFile = join(tmp.dir, 'scores.tsv');
    const r = uit('score', '-m', FIXTURE, file, '--no-cache', '--threads', '1', '-o', outFile);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    const lines = readFileSync(outFile, 'utf8').trimEnd().split('\n');
    expect(lines[0]).toBe('line\tid\ttokens\tsum_ce\tmean_ce\tperplexity\ttruncated');
    expect(lines).toHaveLength(5);
    expect(lines[3]).toBe('4\t3\t0\t0.0000\tnull\tnull\t0');
    expect(lines[2]).toMatch(/^2\t\t5\t\d+\.\d{4}\t\d+\.\d{4}\t\d+\.\d{3}\t0$/);
  });

  it('a bad line is an input error naming file:line and the field (exit 3), nothing on stdout', () => {
    const file = join(tmp.dir, 'bad.jsonl');
    writeFileSync(file, `${JSON.stringify(PAIRS[0])}\n{"prefix": 1, "target": "x"}\n`);
    const r = uit('score', '-m', FIXTURE, file, '--no-cache');
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`uit: ${file}:2: prefix: expected a string\n`);
    writeFileSync(file, `${JSON.stringify(PAIRS[0])}\n\n{"prefix": "a", "target": }\n`);
    const r2 = uit('score', '-m', FIXTURE, file, '--no-cache');
    expect(r2.code).toBe(3);
    expect(r2.stderr).toMatch(new RegExp(`^uit: ${file}:3: malformed JSON at column \\d+`));
    writeFileSync(file, '["prefix", "target"]\n');
    const r3 = uit('score', '-m', FIXTURE, file, '--no-cache');
    expect(r3.code).toBe(3);
    expect(r3.stderr).toBe(`uit: ${file}:1: expected an object {"prefix": string, "target": string, "id"?: string|number}\n`);
  });

  it('--overflow error names the line; the default truncates and reports it', () => {
    const file = writePairs('long.jsonl', [{ prefix: 'Q: ', target: 'ok' }, { prefix: 'x'.repeat(40), target: 'yes' }]);
    const r = uit('score', '-m', FIXTURE, file, '--no-cache', '--max-context', '24', '--overflow', 'error');
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^uit: ${file}:2: prefix \\(40 tokens\\) \\+ target \\(3\\) = 43 tokens, more than the model's 24 positions`));
    const ok = uit('score', '-m', FIXTURE, file, '--no-cache', '--max-context', '24', '--json');
    expect(ok.code, ok.stderr).toBe(0);
    expect(jsonLines(ok.stdout).map((o) => o.truncated_prefix_tokens)).toEqual([0, 19]);
  });

  it('a rerun answers from the cache with zero model calls and the same numbers', () => {
    const file = writePairs('pairs-cache.jsonl', PAIRS);
    const cacheFile = join(tmp.dir, 'rerun.sqlite');
    const first = uit('score', '-m', FIXTURE, file, '--json', '--cache', cacheFile);
    expect(first.code, first.stderr).toBe(0);
    const second = uit('score', '-m', FIXTURE, file, '--json', '--cache', cacheFile);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/\(0 computed, 3 from the cache, 1 empty\).*; 0 model calls /);
    const a = jsonLines(first.stdout);
    const b = jsonLines(second.stdout);
    expect(b.map((o) => o.cached)).toEqual([true, true, false, true]);
    expect(b.map(({ cached: _, ...o }) => o)).toEqual(a.map(({ cached: _, ...o }) => o));
  });

  it('SIGKILL mid-job loses no committed batch, and the rerun gives the uninterrupted numbers', async () => {
    // 150 groups of 8 pairs sharing a prefix, batches of 3: about 600 scoring batches.
    const pairs = [];
    for (let g = 0; g < 150; g++) {
      for (let i = 0; i < 8; i++) {
        pairs.push({ id: `${g}.${i}`, prefix: `Definition: task number ${g} says: repeat the word.\n\nInput: word ${i * 7 + g}\nOutput: `, target: `word ${i} of ${g}` });
      }
    }
    const file = join(tmp.dir, 'kill.jsonl');
    writeFileSync(file, pairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
    const args = ['score', '-m', FIXTURE, file, '--json', '--batch-size', '3', '--threads', '1'];

    const whole = uit(...args, '--cache', join(tmp.dir, 'uninterrupted.sqlite'));
    expect(whole.code, whole.stderr).toBe(0);

    const cacheFile = join(tmp.dir, 'killed.sqlite');
    const child = spawn(process.execPath, ['bin/uit.js', ...args, '--cache', cacheFile], { env: ENV, stdio: 'ignore' });
    let running = true;
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => {
        running = false;
        resolve(signal);
      }),
    );
    const rows = (): number => {
      if (!existsSync(cacheFile)) return 0;
      try {
        const db = new Database(cacheFile, { readonly: true, fileMustExist: true });
        try {
          return (db.prepare('SELECT count(*) AS n FROM scores').get() as { n: number }).n;
        } finally {
          db.close();
        }
      } catch {
        return 0; // not created or not migrated yet
      }
    };
    while (running && rows() < 30) await new Promise((r) => setTimeout(r, 5));
    expect(running, 'the run ended before it could be killed').toBe(true);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const kept = rows();
    expect(kept).toBeGreaterThanOrEqual(30);
    expect(kept).toBeLessThan(pairs.length); // it really died mid-job

    const resumed = uit(...args, '--cache', cacheFile);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`(${pairs.length - kept} computed, ${kept} from the cache, 0 empty)`);
    const strip = (text: string) => jsonLines(text).map(({ cached: _, ...o }) => o);
    expect(strip(resumed.stdout)).toEqual(strip(whole.stdout)); // bit for bit: the same plan, the same batches
    expect(rows()).toBe(pairs.length);
  });

  it('two processes scoring overlapping inputs into one cache both finish with the numbers of a lone run', async () => {
    const pairs = [];
    for (let g = 0; g < 40; g++) {
      for (let i = 0; i < 6; i++) pairs.push({ prefix: `Definition: group ${g} asks for a number.\n\nInput: ${i}\nOutput: `, target: `${i * g}` });
    }
    const a = join(tmp.dir, 'two-a.jsonl');
    const b = join(tmp.dir, 'two-b.jsonl');
    writeFileSync(a, pairs.slice(0, 160).map((p) => JSON.stringify(p)).join('\n') + '\n');
    writeFileSync(b, pairs.slice(80).map((p) => JSON.stringify(p)).join('\n') + '\n');
    const shared = join(tmp.dir, 'two-writers.sqlite');
    const run = (file: string) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['bin/uit.js', 'score', '-m', FIXTURE, file, '--json', '--batch-size', '4', '--threads', '1', '--cache', shared], { env: ENV });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d));
        child.stderr.on('data', (d: Buffer) => (stderr += d));
        child.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
    const [ra, rb] = await Promise.all([run(a), run(b)]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    const alone = uit('score', '-m', FIXTURE, a, '--json', '--batch-size', '4', '--threads', '1', '--no-cache');
    // Pairs the other process stored first come from its batches: equal up to float noise.
    const mine = jsonLines(ra.stdout);
    const lone = jsonLines(alone.stdout);
    expect(mine.map((o) => [o.line, o.tokens])).toEqual(lone.map((o) => [o.line, o.tokens]));
    mine.forEach((o, i) => expect(Math.abs((o.mean_ce as number) - (lone[i].mean_ce as number))).toBeLessThan(1e-6));
    expect(jsonLines(rb.stdout)).toHaveLength(160);
    const db = new Database(shared, { readonly: true });
    try {
      expect((db.prepare('SELECT count(*) AS n FROM scores').get() as { n: number }).n).toBe(pairs.length);
    } finally {
      db.close();
    }
  });

  it('refuses a corrupt or foreign cache file with a clear error (exit 5), before loading the model', () => {
    const file = writePairs('pairs-refuse.jsonl', PAIRS);
    const corrupt = join(tmp.dir, 'corrupt.sqlite');
    copyFileSync(join(FIXTURE, 'config.json'), corrupt);
    const r = uit('score', '-m', FIXTURE, file, '--cache', corrupt);
    expect(r.code).toBe(5);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(corrupt);
    expect(r.stderr).toMatch(/not a (uit cache|SQLite)/i);
    expect(readFileSync(corrupt, 'utf8')).toBe(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));

    const foreign = join(tmp.dir, 'foreign.sqlite');
    const db = new Database(foreign);
    db.exec('CREATE TABLE people (name TEXT); INSERT INTO people VALUES (\'ada\')');
    db.close();
    const r2 = uit('score', '-m', FIXTURE, file, '--cache', foreign);
    expect(r2.code).toBe(5);
    expect(r2.stderr).toContain(foreign);
    expect(r2.stderr).toMatch(/not a uit cache/i);
  });

  const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
  const requireDeps = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';
  it.skipIf(!hasScript && !requireDeps)(
    `shows a progress bar that reaches the total on a terminal, none when piped${hasScript ? '' : ' (SKIPPED: util-linux `script` is missing, it makes the terminal)'}`,
    () => {
      const file = writePairs('pairs-tty.jsonl', [...PAIRS, PAIRS[0]]); // a repeated pair and an empty target still count
      const out = join(tmp.dir, 'tty.tsv');
      const cmd = ['node', 'bin/uit.js', 'score', '-m', FIXTURE, file, '--no-cache', '-o', out].map((a) => `'${a}'`).join(' ');
      const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: ENV });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/score \[[^\]]*\] 5\/5 100%/);
      const piped = uit('score', '-m', FIXTURE, file, '--no-cache', '-o', out);
      expect(piped.stderr).not.toContain('score [');
    },
  );

  it('--help shows an example', () => {
    const r = uit('score', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('$ uit score --model');
    expect(r.stdout).toContain('--overflow <policy>');
  });
});

describe('uit score-instructions', () => {
  const taskFile = join(NIV2_TASKS, 'task1147_country_currency.json');
  const CANDIDATES = [
    'You are given a country name and you need to return the currency of the given country.',
    'Translate the sentence to French.',
    'Name the currency used in the country.',
  ];

  it('--json ranks the candidates of a candidates file with the API numbers', async () => {
    const cands = join(tmp.dir, 'candidates.jsonl');
    writeFileSync(
      cands,
      `${JSON.stringify({ task: 'task1147_country_currency', candidates: [CANDIDATES[0], CANDIDATES[1], { definition: CANDIDATES[2] }] })}\n` +
        `${JSON.stringify({ task: 'not_an_input', candidates: ['x'] })}\n`,
    );
    const r = uit('score-instructions', '-m', FIXTURE, taskFile, '--candidates', cands, '--instances', '6', '--seed', '2', '--top-k', '2', '--json', '--no-cache', '--threads', '1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('1 task(s) not among the inputs, ignored: not_an_input');
    const [doc] = jsonLines(r.stdout) as {
      task: string;
      instances: string[];
      candidates: { index: number; definition: string; mean_ce: number; perplexity: number; rank: number; kept: boolean; instances_scored: number }[];
      pick: number;
    }[];
    expect(doc.task).toBe('task1147_country_currency');
    let task: Task | undefined;
    for await (const lazy of niv2.read(taskFile, {})) task = lazy.task;
    const api = await scoreCandidates(new Scorer(model, { scorerId: 'x' }), task!, CANDIDATES, { instances: 6, seed: 2, topK: 2 });
    expect(doc.instances).toEqual(api.setup.instances.map((x) => x.id));
    expect(doc.candidates.map((c) => c.definition)).toEqual(CANDIDATES);
    doc.candidates.forEach((c, i) => {
      expect(Math.abs(c.mean_ce - api.candidates[i].meanCe!)).toBeLessThan(1e-6);
      expect(c.rank).toBe(api.candidates[i].rank);
      expect(c.kept).toBe(api.candidates[i].kept);
      expect(c.instances_scored).toBe(6);
    });
    expect(doc.pick).toBe(api.best);
    expect(doc.candidates.filter((c) => c.kept)).toHaveLength(2);
  });

  it("without --candidates scores each task's own Definition list; the table marks the pick", () => {
    const doc = JSON.parse(readFileSync(taskFile, 'utf8')) as Record<string, unknown>;
    const multi = join(tmp.dir, 'task_multi_def.json');
    writeFileSync(multi, JSON.stringify({ ...doc, Definition: [CANDIDATES[0], CANDIDATES[1]] }, null, 4));
    const r = uit('score-instructions', '-m', FIXTURE, multi, '--instances', '4', '--no-cache', '--threads', '1');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('task_multi_def: 2 candidates, 4 instances, 2 examples');
    expect(lines[1]).toBe('  rank\tmean_ce\tperplexity\ttokens\tpick\tdefinition');
    expect(lines.slice(2).map((l) => l.split('\t')[0])).toEqual(['  1', '  2']);
    expect(lines.slice(2).filter((l) => l.split('\t')[4] === '*')).toHaveLength(1);
    expect(lines.slice(2).map((l) => l.split('\t')[5]).sort()).toEqual([`[0] ${CANDIDATES[0]}`, `[1] ${CANDIDATES[1]}`]);
  });

  it('a task missing from the candidates file is an input error', () => {
    const cands = join(tmp.dir, 'candidates-other.jsonl');
    writeFileSync(cands, `${JSON.stringify({ task: 'another', candidates: ['x'] })}\n`);
    const r = uit('score-instructions', '-m', FIXTURE, taskFile, '--candidates', cands, '--no-cache');
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`uit: ${cands}: no candidates for task task1147_country_currency (from ${taskFile})\n`);
  });
});
