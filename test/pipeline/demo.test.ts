// `uit demo` through bin/uit.js: the bundled held-out sample through the model pipeline, one
// task's candidates with their perplexities and the pick, the output folder, a cached second run,
// and the message when the model folder is missing. The tiny fixture stands in for the model in
// most tests; the embedded models/uit-tiny runs when it is there.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE, jsonl, needBuilt, tempDir, tree, uit } from './helpers.js';

const tmp = tempDir('uit-pipeline-demo-');
const EMBEDDED = 'models/uit-tiny';

interface DemoJson {
  out: string;
  summary: { tasks: { ok: number; failed: number }; modelCalls: { total: number }; candidates: { generated: number; cached: number } };
  example: {
    task: string;
    file: string;
    sourceInstruction: string;
    candidates: { definition: string; perplexity: number | null; rank: number | null }[];
    chosen: number;
  };
}

beforeAll(() => needBuilt(['commands/demo', 'transfer/pipeline']));
afterAll(() => tmp.cleanup());

function demo(args: string[]): DemoJson {
  const r = uit(['demo', ...args, '--json', '--threads', '1']);
  if (r.code !== 0) throw new Error(`uit demo exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as DemoJson;
}

describe('uit demo', () => {
  it('converts the held-out P3 and FLAN sample, shows one task\'s candidates and pick, and caches its work', () => {
    const out = join(tmp.dir, 'out');
    const cache = join(tmp.dir, 'cache.sqlite');
    const r = demo(['--model', FIXTURE, '-o', out, '--cache', cache]);
    expect(r.summary.tasks).toMatchObject({ ok: 5, failed: 0 });
    expect([...tree(out).keys()].sort()).toEqual([
      'flan/trec/0.json', 'flan/trec/1.json', 'flan/trec/2.json',
      'p3/imdb_Movie_Expressed_Sentiment_2.json', 'p3/imdb_Reviewer_Enjoyment_Yes_No.json', 'provenance.jsonl',
    ]);
    const e = r.example;
    expect(e.task).toBe('p3/imdb_Movie_Expressed_Sentiment_2');
    expect(e.candidates).toHaveLength(4);
    const best = Math.min(...e.candidates.map((c) => c.perplexity!));
    expect(e.candidates[e.chosen].perplexity).toBe(best);
    const written = JSON.parse(readFileSync(e.file, 'utf8')) as { Definition: string[] };
    expect(written.Definition).toEqual([e.candidates[e.chosen].definition]);
    expect(jsonl(join(out, 'provenance.jsonl'))).toHaveLength(5);

    // the terminal view: the candidates by perplexity, the pick marked
    const text = uit(['demo', '--model', FIXTURE, '-o', out, '--cache', cache, '--threads', '1']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`Task ${e.task} (p3)`);
    expect(text.stdout).toMatch(new RegExp(`\\* #${e.chosen + 1} +ppl +${best.toFixed(2)}`));
    expect(text.stdout).toMatch(/convert: 5 tasks ok \| candidates 0 generated, 20 cached .*\| 0 model calls/);
  });

  it('says clearly when the model folder is missing', () => {
    const r = uit(['demo', '--model', join(tmp.dir, 'no-model'), '-o', join(tmp.dir, 'x')]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/no-model: no such model folder/);
  });

  it.skipIf(!existsSync(EMBEDDED))(`runs with the embedded model (skipped while ${EMBEDDED} is not there)`, () => {
    const r = demo(['-o', join(tmp.dir, 'embedded'), '--cache', join(tmp.dir, 'embedded.sqlite')]);
    expect(r.summary.tasks.ok).toBe(5);
    expect(r.example.candidates.every((c) => c.perplexity !== null && c.perplexity > 1)).toBe(true);
  });
});
