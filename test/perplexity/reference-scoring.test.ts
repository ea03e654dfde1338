// `--scoring reference` against a transcription of the UIT reference's Python (uit_reference.py,
// run by /usr/bin/python3): candidate files in the reference's layout built from ../shared/data
// (reference-fixture.ts) are read by uit as the pipeline reads them and scored in the reference
// mode; the transcription reads the same files with json.load and builds its own prompts. Every
// prefix and target must be byte-identical, and every candidate's score equal (None where the
// reference gives None). Skipped with the reason when there is no python3, unless
// UIT_REQUIRE_SYSTEM_DEPS=1.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache/index.js';
import { Scorer, scoreCandidates, uitPairs, type ScorePair, type TaskScores } from '../../src/perplexity/index.js';
import { loadModel, type Model } from '../../src/runtime/index.js';
import { readTasks, type InputItem } from '../../src/transfer/inputs.js';
import { FIXTURE, tempDir } from './helpers.js';
import { writeReferenceLayout } from './reference-fixture.js';

const PY = '/usr/bin/python3';
const hasPython = spawnSync(PY, ['-c', 'pass'], { stdio: 'ignore' }).status === 0;
const required = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';

interface PyResult {
  prefixes: string[];
  suffixes: string[];
  loss: number | null;
}

let tmp: ReturnType<typeof tempDir>;
let model: Model;
beforeAll(async () => {
  tmp = tempDir('uit-reference-');
  model = await loadModel(FIXTURE, { threads: 1 });
});
afterAll(async () => {
  await model?.dispose();
  tmp?.cleanup();
});

describe.skipIf(!hasPython && !required)("reference scoring equals a transcription of the reference's Python", () => {
  it('reads the candidate files as one task each, builds every prefix and target byte for byte, and aggregates as the reference does', async () => {
    const layout = writeReferenceLayout(tmp.dir);
    const tasks: Extract<InputItem, { kind: 'task' }>[] = [];
    for await (const item of readTasks([tmp.dir], undefined, {})) {
      if (item.kind === 'error') throw item.error;
      tasks.push(item);
    }
    // one task per task name, in the order of their first files, the files as candidates in k order
    expect(tasks.map((t) => [t.task.task.id, t.candidates?.length])).toEqual([
      [layout.commonGen.id, 32],
      [layout.siqa.id, 3],
      [layout.csqa.id, 4],
    ]);
    const byId = new Map(tasks.map((t) => [t.task.task.id, t]));
    for (const spec of [layout.commonGen, layout.csqa, layout.siqa]) {
      expect(byId.get(spec.id)!.candidates!.map((c) => c.file)).toEqual(spec.files);
    }

    const cache = openCache(join(tmp.dir, 'cache.sqlite'));
    try {
      const scorer = new Scorer(model, { cache, scorerId: 'test:tiny-gptj', batchSize: 16 });
      const results: { spec: typeof layout.commonGen; res: TaskScores; pairs: ScorePair[][] }[] = [];
      for (const spec of [layout.commonGen, layout.csqa, layout.siqa]) {
        const { task, candidates } = byId.get(spec.id)!;
        const res = await scoreCandidates(scorer, task.task, candidates!, { scoring: 'reference', seed: 3 });
        const pairs = candidates!.map((c, k) => uitPairs(res.scored[k], c.definition, c.file, 'reference'));
        results.push({ spec, res, pairs });
      }
      // The numbers the aggregation used: every scored pair is in the cache now (cached numbers
      // win). uit scored no pair of a candidate the reference gives no score whatever the model
      // says, but the reference runs the slices before the one that fails: the transcription needs
      // the numbers of a too-few-instances task's pairs (computed here), not of an overlong prompt's.
      const scoredPairs = results.flatMap((r) => r.pairs.filter((_, k) => r.res.candidates[k].unscored === null).flat());
      const fewPairs = results.flatMap((r) => r.pairs.filter((_, k) => r.res.candidates[k].unscored === 'too-few-instances').flat());
      const all = [...scoredPairs, ...fewPairs];
      const distinct = (ps: ScorePair[]) => new Set(ps.map((p) => `${p.prefix}\0${p.target}`)).size;
      const before = { ...scorer.stats };
      const scores = await scorer.score(all);
      expect(scorer.stats.cacheHits - before.cacheHits).toBe(distinct(scoredPairs));
      expect(scorer.stats.computed - before.computed).toBe(distinct(fewPairs));

      const job = {
        max_len: 2048,
        test_num: 32,
        files: results.flatMap((r) => r.spec.files.map((path) => ({ path, order: r.res.setup.instances.map((x) => x.id) }))),
        pairs: all.map((p, i) => [p.prefix, p.target, scores[i].sumCe, scores[i].tokens]),
      };
      const run = spawnSync(PY, [join(__dirname, 'uit_reference.py')], { input: JSON.stringify(job), encoding: 'utf8', maxBuffer: 1 << 28 });
      if (run.status !== 0) throw new Error(`uit_reference.py failed:\n${run.stderr}`);
      const py = JSON.parse(run.stdout) as Record<string, PyResult>;

      for (const { spec, res, pairs } of results) {
        spec.files.forEach((file, k) => {
          const want = py[file];
          expect(pairs[k].map((p) => p.prefix), file).toEqual(want.prefixes);
          expect(pairs[k].map((p) => p.target), file).toEqual(want.suffixes);
          expect(res.candidates[k].meanCe, file).toBe(want.loss);
        });
      }

      // what the fixture exercises, so that the equalities above cover it
      const [cg, cq, si] = results;
      expect(cg.res.setup.instances).toHaveLength(32); // 32 of 40
      expect(cg.pairs.flat().filter((p) => p.target === 'null').length).toBeGreaterThan(0);
      expect(cg.pairs.some((ps) => ps[0].prefix.startsWith('Definition: ["'))).toBe(true);
      expect(cg.pairs.some((ps) => ps[0].prefix.startsWith("Definition: ['") && ps[0].prefix.includes("\\'"))).toBe(true);
      expect(cg.pairs.some((ps) => ps[0].prefix.includes('\\n') && ps[0].prefix.includes('\\\\') && ps[0].prefix.includes('\\t'))).toBe(true);
      expect(cg.pairs.some((ps) => ps[0].prefix.includes('\\u200b') && ps[0].prefix.includes('\\xa0') && ps[0].prefix.includes('\u00e9'))).toBe(true);
      expect(cg.res.candidates.map((c) => c.unscored)).toEqual([...Array(31).fill(null), 'prompt-over-context']);
      expect(cg.res.candidates[0].chunkMeanCe).toHaveLength(4);
      expect(cq.res.setup.instances).toHaveLength(27); // the last slice holds 3, weighted as the others
      expect(cq.res.candidates.every((c) => c.meanCe !== null)).toBe(true);
      expect(si.res.candidates.map((c) => c.unscored)).toEqual(['too-few-instances', 'too-few-instances', 'too-few-instances']);
      // each candidate was scored with its own examples, not the first file's
      expect(cg.res.candidates.every((c) => c.ownExamples)).toBe(true);
      const cgCands = byId.get(layout.commonGen.id)!.candidates!;
      cg.res.scored.forEach((s, k) => expect(s.examples).toEqual(cgCands[k].positiveExamples!.slice(0, 2)));
      expect(new Set(cg.res.scored.map((s) => JSON.stringify(s.examples))).size).toBe(32);
    } finally {
      cache.close();
    }
  }, 240_000);
});
