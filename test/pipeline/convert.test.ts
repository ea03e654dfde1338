// `uit convert --method model` end to end through bin/uit.js, with the tiny GPT-J fixture as
// transfer model and scorer (random weights: the text is junk, but deterministic), on held-out
// P3, FLAN and Ni-v2 inputs: output and provenance, independent re-computation of candidates and
// scores, a rerun with zero model calls, partial caches, selection options, transfer + denoise.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { materialize } from '../../src/formats/api.js';
import { readInput } from '../../src/formats/registry.js';
import { Scorer, scoreCandidates } from '../../src/perplexity/index.js';
import { generate, loadModel, type Model } from '../../src/runtime/index.js';
import { buildTransferPrompt, TRANSFER_STOP } from '../../src/transfer/prompt.js';
import { loadSeeds } from '../../src/transfer/seeds.js';
import type { Task } from '../../src/types.js';
import { ALL_INPUTS, FIXTURE, GEN, NIV2_FILES, SCORE, SMALL, jsonl, needBuilt, run, sameTree, tempDir, tree, type Summary } from './helpers.js';

interface ProvLine {
  id: string;
  output: string | null;
  method: string;
  source: { file: string; format: string; id: string };
  sourceInstruction: string;
  transfer: { model: string; promptStyle: string; params: Record<string, unknown>; candidates: number };
  scorer: { model: string; instances: number; scoredInstances: number };
  candidates: { definition: string; meanCe: number | null; perplexity: number | null; tokens: number; rank: number | null; kept: boolean }[];
  chosen: number | null;
  filtered?: string;
}

const tmp = tempDir('uit-pipeline-convert-');
const base = { out: join(tmp.dir, 'base/out'), cache: join(tmp.dir, 'base/cache.sqlite') };
const convertArgs = (out: string, cache: string, extra: string[] = []) => [
  'convert', ...ALL_INPUTS, '--to', 'niv2', '--method', 'model', '--model', FIXTURE, ...SMALL, '-o', out, '--cache', cache, ...extra,
];
let baseSummary: Summary;
let model: Model;

beforeAll(async () => {
  needBuilt(['commands/convert', 'commands/transfer', 'commands/denoise', 'transfer/pipeline', 'transfer/pipeline-cli']);
  baseSummary = run(convertArgs(base.out, base.cache));
  model = await loadModel(FIXTURE, { threads: 1 });
});
afterAll(async () => {
  await model?.dispose();
  tmp.cleanup();
});

const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;

describe('uit convert --method model', () => {
  it('writes every held-out P3, FLAN and Ni-v2 task with the lowest-perplexity candidate and its provenance', () => {
    expect(baseSummary.tasks).toMatchObject({ ok: 6, failed: 0, filtered: 0, otherShards: 0 });
    expect(baseSummary.candidates).toEqual({ generated: 18, cached: 0 });
    expect(baseSummary.errors).toBeNull();
    const files = [...tree(base.out).keys()].sort();
    expect(files).toEqual([
      'flan/trec/0.json',
      'flan/trec/1.json',
      'p3/ag_news_classify_question_first.json',
      'p3/imdb_Reviewer_Enjoyment_Yes_No.json',
      'provenance.jsonl',
      'task1411_dart_subject_identification.json',
      'task1413_dart_object_identification.json',
    ]);
    const prov = jsonl<ProvLine>(join(base.out, 'provenance.jsonl'));
    // input order: P3 files, the FLAN folder, then the Ni-v2 files
    expect(prov.map((p) => p.id)).toEqual([
      'p3/imdb_Reviewer_Enjoyment_Yes_No',
      'p3/ag_news_classify_question_first',
      'flan/trec/0',
      'flan/trec/1',
      'task1413_dart_object_identification',
      'task1411_dart_subject_identification',
    ]);
    for (const p of prov) {
      expect(p.method).toBe('model');
      expect(p.transfer.model).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(p.scorer.model).toBe(p.transfer.model);
      expect(p.transfer.params).toEqual({ maxNewTokens: 24, temperature: 0.7, topP: 0.95, stop: ['\n\n'], seed: 0 });
      expect(p.candidates).toHaveLength(3);
      const scored = p.candidates.filter((c) => c.meanCe !== null);
      const best = Math.min(...scored.map((c) => c.meanCe!));
      expect(p.candidates[p.chosen!].meanCe).toBe(best);
      expect(p.candidates[p.chosen!].rank).toBe(1);
      expect(p.candidates.filter((c) => c.kept)).toHaveLength(1);
      for (const c of scored) expect(c.perplexity).toBeCloseTo(Math.exp(c.meanCe!), 9);
      // relative to OUT, the same as the heuristic method's (test/transfer/convert.test.ts)
      expect(p.output).toBe(`${p.id}.json`);
      const doc = readJson(join(base.out, p.output!));
      expect(doc.Definition).toEqual([p.candidates[p.chosen!].definition]);
      expect((doc['Positive Examples'] as unknown[]).length).toBeGreaterThanOrEqual(1);
    }
    // the outputs carry no time of day or duration
    expect(readFileSync(join(base.out, 'provenance.jsonl'), 'utf8')).not.toMatch(/20\d\d-\d\d-\d\dT|"(ms|seconds|durationMs|createdAt)"/);
  });

  it('a Ni-v2 input keeps everything but its Definition', () => {
    const src = readJson(NIV2_FILES[0]);
    const out = readJson(join(base.out, 'task1413_dart_object_identification.json'));
    expect(Object.keys(out)).toEqual(Object.keys(src));
    expect({ ...out, Definition: null }).toEqual({ ...src, Definition: null });
    expect(out.Definition).not.toEqual(src.Definition);
  });

  it('candidates are what the runtime samples from the few-shot transfer prompt, and scores what the scorer gives on the written task', async () => {
    const prov = jsonl<ProvLine>(join(base.out, 'provenance.jsonl'));
    const seeds = loadSeeds(join('test/pipeline/fixtures/seeds.json')).pairs;
    const scorer = new Scorer(model); // no cache: computed afresh
    for (const p of [prov[0], prov[2], prov[4]]) {
      // 1. generation: the same prompt and parameters straight through the runtime
      const prompt = buildTransferPrompt(p.sourceInstruction, 'fewshot', seeds);
      const g = await generate(model, [{ prompt, numSamples: 3 }], { maxNewTokens: 24, temperature: 0.7, topP: 0.95, stop: TRANSFER_STOP, seed: 0 });
      expect(p.candidates.map((c) => c.definition)).toEqual(g.outputs[0].samples.map((s) => s.text.trim()));
      // 2. scoring: the written task (its Positive Examples and Instances) with the candidates
      const written: Task[] = [];
      for await (const t of readInput(join(base.out, p.output!))) written.push(await materialize(t));
      // the instance shuffle is seeded by the task id, which a file read alone does not carry
      const s = await scoreCandidates(scorer, { ...written[0], id: p.id }, p.candidates.map((c) => c.definition), { instances: 6, seed: 0 });
      expect(s.setup.instances).toHaveLength(p.scorer.scoredInstances);
      expect(s.candidates.map((c) => c.meanCe)).toEqual(p.candidates.map((c) => c.meanCe));
    }
    expect(scorer.stats.cacheHits).toBe(0);
  });

  it('a rerun of the finished job makes no model calls and writes the same bytes', () => {
    const out = join(tmp.dir, 'rerun/out');
    const s = run(convertArgs(out, base.cache));
    expect(s.modelCalls).toEqual({ generation: 0, scoring: 0, total: 0 });
    expect(s.candidates).toEqual({ generated: 0, cached: 18 });
    expect(s.scores.computed).toBe(0);
    expect(s.scores.cached).toBe(baseSummary.scores.computed);
    expect(sameTree(tree(out), tree(base.out))).toBe(7);
  });

  it('a partly cached task draws only its missing samples, with the texts an uninterrupted run gets', () => {
    const dir = join(tmp.dir, 'partial');
    const cache = join(dir, 'cache.sqlite');
    const first = run(convertArgs(join(dir, 'two'), cache, ['--num-candidates', '2']));
    expect(first.candidates).toEqual({ generated: 12, cached: 0 });
    const s = run(convertArgs(join(dir, 'out'), cache)); // SMALL says 3 candidates
    expect(s.candidates).toEqual({ generated: 6, cached: 12 });
    expect(sameTree(tree(join(dir, 'out')), tree(base.out))).toBe(7);
  });

  it('--top-k and --keep-candidates write more Definitions; a threshold filters tasks out; none of it needs the model again', () => {
    const topk = join(tmp.dir, 'sel/topk');
    const s1 = run(convertArgs(topk, base.cache, ['--top-k', '2']));
    expect(s1.modelCalls.total).toBe(0);
    const keep = join(tmp.dir, 'sel/keep');
    run(convertArgs(keep, base.cache, ['--keep-candidates']));
    for (const p of jsonl<ProvLine>(join(topk, 'provenance.jsonl'))) {
      const byRank = [...p.candidates].sort((a, b) => a.rank! - b.rank!).map((c) => c.definition);
      expect(readJson(join(topk, p.output!)).Definition).toEqual(byRank.slice(0, 2));
      expect(readJson(join(keep, p.output!)).Definition).toEqual(byRank);
      // apart from the Definition list, the same document as the single-definition output
      const one = readJson(join(base.out, p.output!));
      expect({ ...readJson(join(keep, p.output!)), Definition: null }).toEqual({ ...one, Definition: null });
      expect(Object.keys(readJson(join(keep, p.output!)))).toEqual(Object.keys(one));
    }
    const thr = join(tmp.dir, 'sel/thr');
    const s3 = run(convertArgs(thr, base.cache, ['--threshold', '1.0001']));
    expect(s3.tasks).toMatchObject({ ok: 0, filtered: 6 });
    expect(s3.modelCalls.total).toBe(0);
    expect([...tree(thr).keys()]).toEqual(['provenance.jsonl']);
    const prov = jsonl<ProvLine>(join(thr, 'provenance.jsonl'));
    expect(prov.every((p) => p.output === null && p.chosen === null && p.filtered !== undefined)).toBe(true);
  });

  it('uit transfer then uit denoise writes exactly what uit convert writes', () => {
    const dir = join(tmp.dir, 'two-step');
    const cands = join(dir, 'cands.jsonl');
    const t = run(['transfer', ...ALL_INPUTS, '--model', FIXTURE, ...GEN, '--threads', '1', '-o', cands, '--cache', join(dir, 'cache.sqlite')]);
    expect(t.tasks.ok).toBe(6);
    expect(t.modelCalls.scoring).toBe(0);
    const lines = jsonl<{ task: string; candidates: string[]; source: { instruction: string } }>(cands);
    expect(lines.map((l) => l.candidates.length)).toEqual([3, 3, 3, 3, 3, 3]);
    const d = run(['denoise', ...ALL_INPUTS, '--candidates', cands, '--scorer', FIXTURE, ...SCORE, '--threads', '1', '-o', join(dir, 'out'), '--cache', join(dir, 'cache.sqlite')]);
    expect(d.tasks.ok).toBe(6);
    expect(d.modelCalls.generation).toBe(0);
    expect(d.unusedCandidates).toBe(0);
    expect(sameTree(tree(join(dir, 'out')), tree(base.out))).toBe(7);
  });
});
