// `uit compare --scorer` on the real models/uit-tiny, through the binary (bin/uit.js -> dist/) and
// through the library: each side's perplexity is what `uit score-instructions` gives for the same
// definition, instances and seed; the winner and the summary follow from the numbers; the scores
// share score-instructions' cache, so a rerun makes no model call.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compare, perplexity, runtime } from '../../src/index.js';
import type { Task } from '../../src/types.js';
import { BOTH, FIX } from './fixture.js';

const MODEL = 'models/uit-tiny';
const tmp = mkdtempSync(join(tmpdir(), 'uit-compare-scorer-'));
/** The model identity memo and the default cache go to a temp dir, not the user's. */
const ENV = { ...process.env, XDG_CACHE_HOME: join(tmp, 'xdg'), UIT_CACHE: join(tmp, 'default-cache.sqlite') };

function uit(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/uit.js', ...args], { encoding: 'utf8', env: ENV });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Side {
  definition: string;
  perplexity: number | null;
}
interface CompareJson {
  tasks: { id: string; offline: Side; api: Side; winner: string | null }[];
  summary: {
    perplexity: {
      scored: number;
      offlineMean: number;
      apiMean: number;
      meanDifference: number;
      wins: { offline: number; api: number; tie: number };
      goldDiffers: string[];
    };
  };
}

function compareJson(...extra: string[]): { doc: CompareJson; stderr: string } {
  const r = uit('compare', '--offline', `${FIX}/offline`, '--api', `${FIX}/api`, '--scorer', MODEL, '--json', '--threads', '1', ...extra);
  expect(r.code, r.stderr).toBe(0);
  return { doc: JSON.parse(r.stdout) as CompareJson, stderr: r.stderr };
}

/** Perplexity of each task's first definition, by `uit score-instructions` on one side's task files (and the ids of the instances scored). */
function scoreInstructions(side: 'offline' | 'api', ...extra: string[]): Map<string, number | null> & { instances: Map<string, string[]> } {
  const files = BOTH.map((id) => `${FIX}/${side}/${id}.json`);
  const r = uit('score-instructions', '-m', MODEL, ...files, '--json', '--threads', '1', ...extra);
  expect(r.code, r.stderr).toBe(0);
  const docs = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { task: string; instances: string[]; candidates: { perplexity: number | null }[] });
  return Object.assign(new Map(docs.map((d) => [d.task, d.candidates[0].perplexity])), { instances: new Map(docs.map((d) => [d.task, d.instances])) });
}

/** Mean CEs (log perplexities) agree within 1e-6. */
function expectSame(got: number | null, want: number | null | undefined, what: string): void {
  expect(typeof got, what).toBe('number');
  expect(typeof want, what).toBe('number');
  expect(Math.abs(Math.log(got!) - Math.log(want!)), `${what}: ${got} vs ${want}`).toBeLessThan(1e-6);
}

function expectWinnersFollow(doc: CompareJson): void {
  for (const t of doc.tasks) {
    const o = t.offline.perplexity!;
    const a = t.api.perplexity!;
    expect(t.winner, t.id).toBe(o === a ? 'tie' : o < a ? 'offline' : 'api');
  }
  const p = doc.summary.perplexity;
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  expect(p.scored).toBe(doc.tasks.length);
  expect(p.offlineMean).toBeCloseTo(mean(doc.tasks.map((t) => t.offline.perplexity!)), 9);
  expect(p.apiMean).toBeCloseTo(mean(doc.tasks.map((t) => t.api.perplexity!)), 9);
  expect(p.meanDifference).toBeCloseTo(mean(doc.tasks.map((t) => t.offline.perplexity! - t.api.perplexity!)), 9);
  for (const w of ['offline', 'api', 'tie'] as const) expect(p.wins[w], w).toBe(doc.tasks.filter((t) => t.winner === w).length);
}

/** Runs shared by several tests, each made once (a test run alone with -t still gets them). */
let uncached: ReturnType<typeof compareJson> | undefined;
const uncachedRun = () => (uncached ??= compareJson('--no-cache'));
const CACHE = join(tmp, 'rerun.sqlite');
let cached: ReturnType<typeof compareJson> | undefined;
const firstCachedRun = () => (cached ??= compareJson('--cache', CACHE));

beforeAll(() => {
  for (const f of ['commands/compare', 'commands/uit-scoring', 'perplexity/definition-scorer']) {
    const built = `dist/${f}.js`;
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(`src/${f}.ts`).mtimeMs) {
      throw new Error(`${built} is missing or older than its source: run \`npm run build\` first (npm test does)`);
    }
  }
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('uit compare --scorer (CLI, models/uit-tiny)', () => {
  it("each side's perplexity is score-instructions' for that side's definition; the winner follows from the numbers", () => {
    const { doc, stderr } = uncachedRun();
    expect(doc.tasks.map((t) => t.id)).toEqual(BOTH);
    const off = scoreInstructions('offline', '--no-cache');
    const api = scoreInstructions('api', '--no-cache');
    for (const t of doc.tasks) {
      expectSame(t.offline.perplexity, off.get(t.id), `${t.id} offline`);
      expectSame(t.api.perplexity, api.get(t.id), `${t.id} api`);
    }
    expectWinnersFollow(doc);
    expect(doc.tasks[0].winner).toBe('tie'); // identical instructions, one score
    expect(new Set(doc.tasks.map((t) => t.winner))).toEqual(new Set(['tie', 'offline', 'api']));
    expect(doc.summary.perplexity.goldDiffers).toEqual([]);
    // 5 tasks x 2 instructions x 4 instances; task003's two equal instructions share their 4 scores
    expect(stderr).toMatch(/^uit compare: 40 pairs \(36 computed, 0 from the cache, 0 empty\) .*; no cache\n$/);
  });

  it('--instances and --seed pick the instances as in score-instructions', () => {
    const { doc } = compareJson('--no-cache', '--instances', '2', '--seed', '3');
    const off = scoreInstructions('offline', '--no-cache', '--instances', '2', '--seed', '3');
    const api = scoreInstructions('api', '--no-cache', '--instances', '2', '--seed', '3');
    for (const t of doc.tasks) {
      expectSame(t.offline.perplexity, off.get(t.id), `${t.id} offline`);
      expectSame(t.api.perplexity, api.get(t.id), `${t.id} api`);
    }
    expectWinnersFollow(doc);
    // the options were not lost on the way (they would be lost for both commands alike): the
    // instances scored are the library's pick for M = 2, seed 3, and the numbers differ from the defaults'
    const offline = compare.readCompareSide(`${FIX}/offline`).tasks;
    for (const id of BOTH) {
      const pick = (seed: number) => perplexity.uitSetup(offline.get(id)!, { instances: 2, seed }).instances.map((x) => x.id);
      expect(off.instances.get(id), id).toEqual(pick(3));
    }
    expect(BOTH.some((id) => perplexity.uitSetup(offline.get(id)!, { instances: 2, seed: 0 }).instances[0].id !== off.instances.get(id)![0])).toBe(true);
    doc.tasks.forEach((t, i) => expect(t.offline.perplexity).not.toBe(uncachedRun().doc.tasks[i].offline.perplexity));
  });

  it('a rerun answers from the cache with no model call; score-instructions finds the same scores there', () => {
    const a = firstCachedRun();
    expect(a.stderr).toMatch(/\(36 computed, 0 from the cache, 0 empty\).*; cache /);
    const b = compareJson('--cache', CACHE);
    expect(b.stderr).toMatch(/\(0 computed, 36 from the cache, 0 empty\) in [\d.]+ s; 0 model calls \(0 prefills \+ 0 batches\)/);
    expect(b.doc).toEqual(a.doc);
    expect(b.doc).toEqual(uncachedRun().doc); // the cached numbers are the computed ones
    for (const side of ['offline', 'api'] as const) {
      const r = uit('score-instructions', '-m', MODEL, ...BOTH.map((id) => `${FIX}/${side}/${id}.json`), '--json', '--cache', CACHE);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr, side).toMatch(/ 0 model calls /);
    }
  });

  it('plain output adds the ppl columns and the summary lines', () => {
    const { doc } = firstCachedRun();
    const r = uit('compare', '--offline', `${FIX}/offline`, '--api', `${FIX}/api`, '--scorer', MODEL, '--cache', CACHE);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^task\s+ROUGE-L\s+BLEU\s+exact\s+words off\/api\s+chars off\/api\s+ppl offline\s+ppl api\s+winner\n/);
    expect(r.stdout).toMatch(/task003_mctaco_question_generation_event_duration .* 128\.4\s+128\.4\s+tie\n/);
    expect(r.stdout).toMatch(/scored on both sides\s+5\n/);
    expect(r.stdout).toMatch(/mean ppl off\/api\s+\d+(\.\d+)? \/ \d+(\.\d+)?\n/);
    expect(r.stdout).toMatch(/mean ppl difference \(off-api\)\s+-?\d/);
    const p = doc.summary.perplexity;
    expect(r.stdout).toContain(`wins offline/api/tie           ${p.wins.offline} / ${p.wins.api} / ${p.wins.tie}`);
  });

  const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
  const requireDeps = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';
  it.skipIf(!hasScript && !requireDeps)(
    `shows a progress bar that reaches the total on a terminal, none when piped${hasScript ? '' : ' (SKIPPED: util-linux `script` is missing, it makes the terminal)'}`,
    () => {
      const html = join(tmp, 'tty.html');
      const args = ['compare', '--offline', `${FIX}/offline`, '--api', `${FIX}/api`, '--scorer', MODEL, '--no-cache', '--html', html];
      const cmd = ['node', 'bin/uit.js', ...args].map((a) => `'${a}'`).join(' ');
      const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: ENV });
      expect(r.status, r.stdout).toBe(0);
      expect(r.stdout).toMatch(/score \[[^\]]*\] 40\/40 100%/); // 5 tasks x 2 instructions x 4 instances
      expect(uit(...args).stderr).not.toContain('score [');
    },
  );

  it('the scoring options without --scorer are a usage error (exit 2) naming the option', () => {
    for (const opt of [['--instances', '4'], ['--no-cache'], ['--cache', join(tmp, 'x.sqlite')], ['--device', 'cpu']]) {
      const r = uit('compare', '--offline', `${FIX}/offline`, '--api', `${FIX}/api`, ...opt);
      expect(r.code, opt[0]).toBe(2);
      expect(r.stderr).toContain(`${opt[0]} applies to --scorer only`);
    }
    expect(existsSync(join(tmp, 'x.sqlite'))).toBe(false);
  });

  it.skipIf(runtime.providerReport().cuda.installed)('--device reaches the model loader: cuda without its provider exits 4 and says what to install', () => {
    const r = uit('compare', '--offline', `${FIX}/offline`, '--api', `${FIX}/api`, '--scorer', MODEL, '--no-cache', '--device', 'cuda');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/--device cuda: .*CUDA/);
    expect(r.stdout).toBe('');
  });

  it('a bad input side fails (exit 3) before the model loads, a missing model folder exits 4', () => {
    const bad = uit('compare', '--offline', `${FIX}/offline`, '--api', `${FIX}/nope.jsonl`, '--scorer', join(tmp, 'no-model'), '--no-cache');
    expect(bad.code).toBe(3);
    const noModel = uit('compare', '--offline', `${FIX}/offline`, '--api', `${FIX}/api`, '--scorer', join(tmp, 'no-model'), '--no-cache');
    expect(noModel.code).toBe(4);
    expect(noModel.stderr).toContain('no-model');
  });
});

describe('compare with a scorer from the library (compare.compareOutputs + perplexity.definitionScorer)', () => {
  let model: runtime.Model;
  beforeAll(async () => {
    model = await runtime.loadModel(MODEL, { threads: 1 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  const side = (p: string) => compare.readCompareSide(p).tasks;

  it('gives the numbers scoreCandidates gives for each definition, and flags tasks whose gold data differ', async () => {
    const scorer = new perplexity.Scorer(model, { scorerId: 'test' });
    const offline = side(`${FIX}/offline`);
    const api = side(`${FIX}/api`);
    // The API side's task610 lost an instance: both instructions are still scored on the offline copy.
    const t610 = api.get('task610_conllpp_ner')!;
    api.set(t610.id, { ...t610, instances: t610.instances.slice(1) } satisfies Task);
    const report = await compare.compareOutputs({
      offlinePath: 'offline',
      apiPath: 'api',
      offline,
      api,
      scorer: perplexity.definitionScorer(scorer, { instances: 3, seed: 1 }),
    });
    for (const t of report.tasks) {
      const direct = await perplexity.scoreCandidates(scorer, offline.get(t.id)!, [t.offline.definition, t.api.definition], { instances: 3, seed: 1 });
      expect(t.offline.perplexity).toBe(direct.candidates[0].perplexity);
      expect(t.api.perplexity).toBe(direct.candidates[1].perplexity);
      expect(t.winner).toBe(compare.winnerOf(t.offline.perplexity, t.api.perplexity));
    }
    expect(report.summary.perplexity!.goldDiffers).toEqual(['task610_conllpp_ner']);
    expect(compare.renderTable(report)).toMatch(/gold data differs\s+1 task\(s\), scored on the offline side's examples and instances: task610_conllpp_ner/);
  });

  it('a task with no gold output on the offline side has no perplexity and no winner', async () => {
    const offline = side(`${FIX}/offline`);
    const t040 = offline.get('task040_qasc_question_generation')!;
    offline.set(t040.id, { ...t040, instances: t040.instances.map((x) => ({ ...x, outputs: [''] })) });
    const report = await compare.compareOutputs({
      offlinePath: 'offline',
      apiPath: 'api',
      offline,
      api: side(`${FIX}/api`),
      scorer: perplexity.definitionScorer(new perplexity.Scorer(model, { scorerId: 'test' })),
    });
    const t = report.tasks.find((x) => x.id === t040.id)!;
    expect([t.offline.perplexity, t.api.perplexity, t.winner]).toEqual([null, null, null]);
    expect(report.summary.perplexity!.scored).toBe(4);
    expect(report.tasks.filter((x) => x.winner != null)).toHaveLength(4);
  });
});
