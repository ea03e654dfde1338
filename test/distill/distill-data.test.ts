// `uit distill-data`: pairs from a teacher's converted output and from the cache, end to end
// through the real pipeline (an API served by `uit serve` over the tiny fixture, the fixture as
// scorer), and the selection, dedup, family and split rules on provenance lines written here.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Drops, buildPairs, selectCandidates, type DistillPair, type TeacherTask } from '../../src/distill/index.js';
import { startServer, type RunningServer } from '../../src/serve/index.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { buildTransferPrompt, transferPromptSource } from '../../src/transfer/prompt.js';
import { FIXTURE, GEN, NIV2_FILES, P3_FILES, SCORE, jsonl, needBuilt, tempDir, uit, uitAsync } from '../pipeline/helpers.js';

const tmp = tempDir('uit-distill-');
afterAll(() => tmp.cleanup());

interface Report {
  pairs: { train: number; dev: number };
  tasks: { read: number; withPairs: number };
  families: { train: string[]; dev: string[] };
  dropped: Record<string, { count: number; examples: string[] }>;
  tokenizer: { sha256: string; eos: number } | null;
}

function distill(args: string[]): Report {
  const r = uit(['distill-data', ...args, '--json']);
  if (r.code !== 0) throw new Error(`uit distill-data ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Report;
}

const pairsOf = (dir: string): DistillPair[] => [...jsonl<DistillPair>(join(dir, 'train.jsonl')), ...jsonl<DistillPair>(join(dir, 'dev.jsonl'))];

describe('from a real API transfer: the output folder and the cache give the same pairs', () => {
  let server: RunningServer;
  const cache = join(tmp.dir, 'api.sqlite');
  const out = join(tmp.dir, 'teacher');
  const inputs = [...P3_FILES, NIV2_FILES[0]];

  beforeAll(async () => {
    needBuilt(['commands/distill-data', 'distill/index', 'distill/pairs', 'distill/from-cache', 'distill/from-output']);
    server = await startServer({ model: FIXTURE, port: 0, threads: 1 });
    const api = ['--backend', 'openai', '--base-url', server.baseUrl, '--api-model', server.modelName];
    const r = await uitAsync(['convert', ...inputs, '--to', 'niv2', '--method', 'model', ...api, '--scorer', FIXTURE, ...GEN, ...SCORE, '-o', out, '--cache', cache]);
    if (r.code !== 0) throw new Error(r.stderr);
  }, 120_000);
  afterAll(async () => {
    await server?.close();
  });

  it('--pick best: the denoiser pick of each task, with the pair prompt, " " + definition, and token ids ending in EOS', () => {
    const a = distill([out, '-o', join(tmp.dir, 'a'), '--tokenizer', FIXTURE, '--dev-share', '0']);
    expect(a.pairs).toEqual({ train: 3, dev: 0 });
    const prov = jsonl<{ id: string; sourceInstruction: string; candidates: { definition: string }[]; chosen: number; transfer: { model: string } }>(
      join(out, 'provenance.jsonl'),
    );
    const tok = loadTokenizer(FIXTURE);
    const pairs = pairsOf(join(tmp.dir, 'a'));
    expect(pairs.map((p) => p.task)).toEqual(prov.map((p) => p.id));
    pairs.forEach((p, i) => {
      expect(p.id).toBe(`${prov[i].id}#${prov[i].chosen}`);
      expect(p.prompt).toBe(buildTransferPrompt(prov[i].sourceInstruction, 'pair'));
      expect(p.target).toBe(` ${prov[i].candidates[prov[i].chosen].definition}`);
      expect(p.prompt_ids).toEqual(tok.encode(p.prompt));
      expect(p.target_ids).toEqual([...tok.encode(p.target), tok.eosTokenIds[0]]);
      expect(p.tokenizer).toBe(a.tokenizer!.sha256);
      expect(p.teacher.model).toBe(`api:${server.baseUrl}#${server.modelName}`);
      expect(p.score!.rank).toBe(1);
    });
    const short = Math.min(...pairs.map((p) => p.prompt_ids!.length + p.target_ids!.length));
    const cut = distill([out, '-o', join(tmp.dir, 'a2'), '--tokenizer', FIXTURE, '--dev-share', '0', '--max-tokens', String(short)]);
    expect(cut.pairs.train).toBe(1);
    expect(cut.dropped['too-long'].count).toBe(2);
  });

  it('the cache route (source tasks + cache) finds the same candidates and pools the same scores', () => {
    for (const pick of [['--pick', 'best'], ['--pick', 'all']]) {
      distill([out, '-o', join(tmp.dir, 'o'), '--tokenizer', FIXTURE, '--dev-share', '0', '--force', ...pick]);
      distill([...inputs, '--cache', cache, '-o', join(tmp.dir, 'c'), '--tokenizer', FIXTURE, '--dev-share', '0', '--force', ...pick]);
      const key = (p: DistillPair) => `${p.task}\u0000${p.prompt}\u0000${p.target}`;
      const o = new Map(pairsOf(join(tmp.dir, 'o')).map((p) => [key(p), p]));
      const c = new Map(pairsOf(join(tmp.dir, 'c')).map((p) => [key(p), p]));
      expect([...c.keys()].sort()).toEqual([...o.keys()].sort());
      expect(o.size).toBeGreaterThanOrEqual(3);
      for (const [k, p] of o) {
        const q = c.get(k)!;
        expect(q.target_ids).toEqual(p.target_ids);
        expect(q.score!.meanCe).toBeCloseTo(p.score!.meanCe, 9);
        expect(q.score!.rank).toBe(p.score!.rank);
        expect(q.from).toBe(`cache ${cache}`);
      }
    }
  });

  it('refuses an -o folder that holds files; --force replaces only an earlier distill-data folder', () => {
    const dir = join(tmp.dir, 'o-force');
    expect(uit(['distill-data', out, '-o', dir, '--dev-share', '0']).code).toBe(0);
    const again = uit(['distill-data', out, '-o', dir, '--dev-share', '0']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('pass --force');
    const other = join(tmp.dir, 'not-ours');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'notes.txt'), 'mine');
    const forced = uit(['distill-data', out, '-o', other, '--dev-share', '0', '--force']);
    expect(forced.code).toBe(2);
    expect(forced.stderr).toContain('one with report.json');
    expect(readFileSync(join(other, 'notes.txt'), 'utf8')).toBe('mine');
    expect(uit(['distill-data', out, '-o', dir, '--dev-share', '0', '--force']).code).toBe(0);
  });

  it('--cache reports tasks with no generation of the teacher, and refuses an unknown --teacher', () => {
    const r = distill([...inputs, NIV2_FILES[1], '--cache', cache, '-o', join(tmp.dir, 'd'), '--dev-share', '0']);
    expect(r.dropped['no-teacher-generations']).toEqual(expect.objectContaining({ count: 1, examples: ['task1411_dart_subject_identification'] }));
    const bad = uit(['distill-data', ...inputs, '--cache', cache, '--teacher', 'nobody', '-o', join(tmp.dir, 'e')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--teacher "nobody" is not in .*api\.sqlite; its models: api:http/);
  });
});

// A teacher task with four candidates: mean CEs 2, 1, null (unscored), 3; candidate 4 is empty.
function task(id: string, over: Partial<TeacherTask> = {}): TeacherTask {
  return {
    task: id,
    source: { file: `${id}.jsonl`, format: 'p3' },
    sourceInstruction: `Say what ${id} is about.\n{input}`,
    teacher: { model: 'api:x#t', name: 't' },
    scorer: 'sha256:s',
    candidates: [
      { definition: `In this task, ${id} A.`, meanCe: 2 },
      { definition: `In this task, ${id} B.`, meanCe: 1 },
      { definition: `In this task, ${id} C.`, meanCe: null },
      { definition: `In this task, ${id} D.`, meanCe: 3 },
      { definition: '  ', meanCe: null },
    ],
    chosen: null,
    from: 'here',
    ...over,
  };
}

describe('which candidates become pairs', () => {
  const pick = (t: TeacherTask, o: Parameters<typeof selectCandidates>[1]) => {
    const drops = new Drops();
    return { picked: selectCandidates(t, o, drops), drops: drops.toJson() };
  };

  it('--pick best takes the recorded pick, else the lowest perplexity', () => {
    expect(pick(task('t'), { pick: 'best' })).toMatchObject({ picked: [1], drops: { empty: { count: 1 }, 'not-picked': { count: 3 } } });
    expect(pick(task('t', { chosen: 3 }), { pick: 'best' }).picked).toEqual([3]);
    const unscored = task('t', { candidates: [{ definition: 'x', meanCe: null }] });
    expect(pick(unscored, { pick: 'best' })).toMatchObject({ picked: [], drops: { unscored: { count: 1 } } });
  });

  it('--pick all, --threshold and --top-k', () => {
    expect(pick(task('t'), { pick: 'all' }).picked).toEqual([0, 1, 2, 3]);
    // perplexity e^2 = 7.39 passes 8, e^3 = 20.1 does not; the unscored one cannot be judged
    expect(pick(task('t'), { pick: 'all', threshold: 8 })).toMatchObject({
      picked: [0, 1],
      drops: { unscored: { count: 1, examples: ['t#2'] }, 'above-threshold': { count: 1, examples: ['t#3'] } },
    });
    expect(pick(task('t'), { pick: 'all', topK: 2 })).toMatchObject({ picked: [0, 1], drops: { 'beyond-top-k': { count: 1, examples: ['t#3'] } } });
    expect(pick(task('t'), { pick: 'all', threshold: 5, topK: 2 }).picked).toEqual([1]);
    expect(pick(task('t', { chosen: 3 }), { pick: 'best', threshold: 8 }).picked).toEqual([]);
  });
});

describe('dedup and the split by family', () => {
  const split = { devShare: 0, seed: 0 };

  it('drops a pair with the same prompt and target as an earlier one', () => {
    const drops = new Drops();
    const a = task('p3/a');
    const b = { ...task('p3/b'), sourceInstruction: a.sourceInstruction, candidates: a.candidates };
    const built = buildPairs([a, b], { pick: 'all' }, split, drops);
    expect(built.train.map((p) => p.id)).toEqual(['p3/a#0', 'p3/a#1', 'p3/a#2', 'p3/a#3']);
    expect(drops.toJson().duplicate).toMatchObject({ count: 4, examples: ['p3/b#0', 'p3/b#1', 'p3/b#2', 'p3/b#3'] });
  });

  it('tasks sharing a prompt or a target are one family, and go to one side together', () => {
    const a = task('p3/a');
    const b = { ...task('p3/b'), candidates: [{ definition: 'In this task, p3/a B.', meanCe: 0.5 }] }; // a's target
    const c = { ...task('p3/c'), sourceInstruction: task('p3/d').sourceInstruction }; // d's prompt
    const d = task('p3/d');
    const e = task('p3/e');
    const all = [a, b, c, d, e];
    const built = buildPairs(all, { pick: 'best' }, { ...split, devPattern: /^p3\/[cb]$/ }, new Drops());
    expect([...built.families.keys()].sort()).toEqual(['p3:a', 'p3:c', 'p3:e']);
    expect(built.families.get('p3:a')).toEqual({ split: 'dev', tasks: ['p3/a', 'p3/b'] });
    expect(built.families.get('p3:c')).toEqual({ split: 'dev', tasks: ['p3/c', 'p3/d'] });
    expect(built.train.map((p) => p.task)).toEqual(['p3/e']);
    expect(built.dev.map((p) => p.task)).toEqual(['p3/a', 'p3/b', 'p3/c', 'p3/d']);
  });

  it('--dev-share draws whole families by a seeded hash of their key, whatever the input order', () => {
    const tasks = Array.from({ length: 200 }, (_, i) => task(`p3/t${i}`));
    const pairsBySplit = (ts: TeacherTask[], seed: number) => {
      const b = buildPairs(ts, { pick: 'best' }, { devShare: 0.25, seed }, new Drops());
      return new Set(b.dev.map((p) => p.task));
    };
    const dev = pairsBySplit(tasks, 0);
    expect(dev.size).toBeGreaterThan(30);
    expect(dev.size).toBeLessThan(70);
    expect(pairsBySplit([...tasks].reverse(), 0)).toEqual(dev);
    expect(pairsBySplit(tasks.slice(0, 100), 0)).toEqual(new Set([...dev].filter((t) => Number(t.slice(4)) < 100)));
    expect(pairsBySplit(tasks, 1)).not.toEqual(dev);
    // --family-pattern: t1x and t1xx are one family here (the first capture), so they travel together
    const b = buildPairs(tasks, { pick: 'best' }, { devShare: 0.5, seed: 0, familyPattern: /^p3\/(t\d)/ }, new Drops());
    expect(b.families.size).toBe(10);
    for (const f of b.families.values()) expect(new Set(f.tasks.map((t) => t.slice(0, 5))).size).toBe(1);
  });
});

describe('provenance lines', () => {
  it('counts filtered and non-model lines, and names the file, line and field of a bad one', () => {
    const dir = join(tmp.dir, 'prov');
    mkdirSync(dir, { recursive: true });
    const good = {
      id: 'p3/x',
      output: 'p3/x.json',
      source: { file: 'x.jsonl', format: 'p3', id: 'p3/x' },
      method: 'api',
      sourceInstruction: 'Classify:\n{input}',
      transfer: { backend: 'openai', model: 'api:x#t', name: 't' },
      scorer: { model: 'sha256:s' },
      candidates: [{ definition: 'In this task, classify.', meanCe: 1.5, perplexity: 4.48 }],
      chosen: 0,
    };
    const lines = [
      good,
      { ...good, id: 'p3/y', output: null, filtered: 'every candidate is above the threshold' },
      { id: 'p3/z', output: 'p3/z.json', source: good.source, method: 'heuristic', target: 'niv2' },
    ];
    writeFileSync(join(dir, 'provenance.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const r = distill([dir, '-o', join(tmp.dir, 'prov-out'), '--dev-share', '0']);
    expect(r.pairs).toEqual({ train: 1, dev: 0 });
    expect(r.tasks).toEqual({ read: 3, withPairs: 1 });
    expect(r.dropped['teacher-filtered']).toMatchObject({ count: 1, examples: ['p3/y'] });
    expect(r.dropped['not-a-transfer']).toMatchObject({ count: 1, examples: ['p3/z'] });
    expect(readFileSync(join(tmp.dir, 'prov-out', 'report.json'), 'utf8')).toContain('"teacher-filtered"');

    writeFileSync(join(dir, 'provenance.jsonl'), JSON.stringify(good) + '\n' + JSON.stringify({ ...good, candidates: [{ definition: 3 }] }) + '\n');
    const bad = uit(['distill-data', dir, '-o', join(tmp.dir, 'prov-bad')]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain(`${join(dir, 'provenance.jsonl')}:2: candidates.0.definition: not a uit provenance line`);
    const none = uit(['distill-data', tmp.dir, '-o', join(tmp.dir, 'prov-bad')]);
    expect(none.code).toBe(3);
    expect(none.stderr).toContain('no provenance.jsonl in this folder');
    const usage = uit(['distill-data', dir, '--teacher', 'x', '-o', join(tmp.dir, 'prov-bad')]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--teacher needs --cache');
  });
});

describe('transferPromptSource', () => {
  it('reads the source instruction back from either prompt style', () => {
    const src = 'Do these mean the same?\n{q1}\n\n{q2}';
    expect(transferPromptSource(buildTransferPrompt(src, 'pair'))).toBe(src);
    const seeds = [{ source: 'Is it positive?\n{text}', definition: 'Classify the review.' }];
    expect(transferPromptSource(buildTransferPrompt(src, 'fewshot', seeds))).toBe(src);
    expect(transferPromptSource('Definition: x\n\nNow complete the following example -\nInput: y\nOutput: ')).toBeUndefined();
  });
});

describe('the cache route pools each candidate\'s scores on its own task only', () => {
  it('the same candidate text for two tasks keeps two scores', async () => {
    const { openCache } = await import('../../src/cache/index.js');
    const { readTasks } = await import('../../src/transfer/inputs.js');
    const { readCacheTeacher } = await import('../../src/distill/index.js');
    const { buildScoringPrefix } = await import('../../src/perplexity/scoring-prompt.js');
    const file = join(tmp.dir, 'pool.sqlite');
    const cache = openCache(file);
    const teacher = 'api:http://127.0.0.1:1/v1#t';
    cache.putModel({ id: teacher, kind: 'api', name: 't' });
    const shared = 'In this task, you classify the text.';
    const own: Record<string, number> = {};
    let k = 0;
    for await (const item of readTasks(P3_FILES, undefined, {})) {
      if (item.kind !== 'task') throw item.error;
      const t = item.task.task;
      const prompt = buildTransferPrompt(t.definition.trim(), 'pair');
      cache.putGenerations([
        { modelId: teacher, prompt, params: { seed: 0 }, sampleIndex: 0, text: ` ${shared}` },
        { modelId: teacher, prompt, params: { seed: 0 }, sampleIndex: 1, text: `Only ${t.id}.` },
      ]);
      // two scored instances per task, 2 and 3 tokens, sums chosen per task
      k++;
      const [i1, i2] = t.instances.filter((i) => i.outputs[0]);
      cache.putScores([
        { scorerId: 'sha256:s', prefix: buildScoringPrefix(shared, [], i1.input), target: i1.outputs[0], tokenCount: 2, sumCe: 2 * k, meanCe: k },
        { scorerId: 'sha256:s', prefix: buildScoringPrefix(shared, [], i2.input), target: i2.outputs[0], tokenCount: 3, sumCe: 6 * k, meanCe: 2 * k },
        // the reference scoring prompt's form (Definition: ['...']) counts when there is no other
        { scorerId: 'sha256:s', prefix: buildScoringPrefix(`Only ${t.id}.`, [], i1.input, 'reference'), target: i1.outputs[0], tokenCount: 4, sumCe: 2, meanCe: 0.5 },
      ]);
      own[t.id] = (8 * k) / 5;
    }
    const drops = new Drops();
    const tasks = await readCacheTeacher(cache, P3_FILES, { read: {} }, drops);
    cache.close();
    expect(tasks.map((t) => t.task)).toEqual(Object.keys(own));
    for (const t of tasks) {
      expect(t.candidates.map((c) => c.definition)).toEqual([shared, `Only ${t.task}.`]);
      expect(t.candidates[0].meanCe).toBeCloseTo(own[t.task], 12);
      expect(t.candidates[1].meanCe).toBe(0.5);
      expect(t.scorer).toBe('sha256:s');
    }
  });
});
