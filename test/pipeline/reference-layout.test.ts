// `uit denoise` on candidates in the UIT reference's layout (one Ni-v2 file per candidate,
// `<k>of<N>sample_<task>.json`, each with its own Definition and Positive Examples), built from
// ../shared/data by test/perplexity/reference-fixture.ts: the files of one task rank together as
// one task with their own examples, the pick's examples are the written task's, both scoring
// modes run through the pipeline, and candidates JSONL may name a task by the reference's name.
import { mkdirSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeReferenceLayout, type ReferenceTask } from '../perplexity/reference-fixture.js';
import { FIXTURE, NIV2_FILES, jsonl, needBuilt, run, tempDir, uit } from './helpers.js';

const tmp = tempDir('uit-pipeline-reference-');
const folder = join(tmp.dir, 'tasks');
const cache = join(tmp.dir, 'cache.sqlite');
let layout: ReturnType<typeof writeReferenceLayout>;

interface NiTask {
  Definition: string[];
  'Positive Examples': { input: string; output: string }[];
  Instances: { id: string }[];
}
interface Prov {
  id: string;
  output: string | null;
  method: string;
  scorer: { scoring: string; scoredInstances: number };
  candidates: { definition: string; file?: string; ownExamples?: boolean; meanCe: number | null; rank: number | null; unscored?: string; chunkMeanCe?: number[] }[];
  chosen: number | null;
}

const file = (spec: ReferenceTask, k: number) => JSON.parse(readFileSync(spec.files[k], 'utf8')) as NiTask;

beforeAll(() => {
  needBuilt(['commands/denoise', 'transfer/pipeline', 'transfer/reference-layout', 'commands/score-instructions']);
  mkdirSync(folder);
  layout = writeReferenceLayout(folder);
});
afterAll(() => tmp.cleanup());

describe("uit denoise on the reference's layout", () => {
  it('ranks the candidate files of each task together as one task, each with its own examples, and writes the pick with its examples', () => {
    const out = join(tmp.dir, 'out');
    const s = run(['denoise', folder, '--scorer', FIXTURE, '--threads', '1', '--instances', '8', '-o', out, '--cache', cache]);
    expect(s.tasks).toMatchObject({ ok: 3, failed: 0 });
    const prov = jsonl<Prov>(join(out, 'provenance.jsonl'));
    // in the order of their first files: 0of32sample_p3_train_common_gen, 0of3sample_..social_i_qa, 0of4sample_..commonsense_qa
    expect(prov.map((p) => p.id)).toEqual([layout.commonGen.id, layout.siqa.id, layout.csqa.id]);
    for (const [p, spec] of [
      [prov[0], layout.commonGen],
      [prov[2], layout.csqa],
    ] as const) {
      expect(p.method).toBe('denoise');
      expect(p.scorer.scoring).toBe('uit');
      expect(p.candidates.map((c) => c.file)).toEqual(spec.files);
      expect(p.candidates.every((c) => c.ownExamples === true)).toBe(true);
      expect(p.candidates.map((c) => c.definition)).toEqual(spec.files.map((_, k) => file(spec, k).Definition[0]));
      const ranks = p.candidates.map((c) => c.rank);
      expect(new Set(ranks).size).toBe(spec.files.length); // one ranking over all the files
      const written = JSON.parse(readFileSync(join(out, p.output!), 'utf8')) as NiTask;
      const pick = file(spec, p.chosen!);
      expect(written.Definition).toEqual(pick.Definition);
      expect(written['Positive Examples']).toEqual(pick['Positive Examples']);
      expect(written.Instances.map((x) => x.id)).toEqual(pick.Instances.map((x) => x.id));
    }
  }, 180_000);

  it('--scoring reference: scores as score-instructions does, fails the task the reference cannot score, and says so', () => {
    const out = join(tmp.dir, 'ref');
    const s = run(['denoise', folder, '--scorer', FIXTURE, '--threads', '1', '--scoring', 'reference', '-o', out, '--cache', cache], 6);
    expect(s.tasks).toMatchObject({ ok: 2, failed: 1 });
    expect(s.failures[0].task).toBe(layout.siqa.id);
    expect(s.failures[0].reason).toMatch(/reference scoring needs at least 25 instances.*this task has 20/);
    const prov = jsonl<Prov>(join(out, 'provenance.jsonl'));
    expect(prov.map((p) => [p.id, p.scorer.scoring])).toEqual([
      [layout.commonGen.id, 'reference'],
      [layout.csqa.id, 'reference'],
    ]);
    const last = prov[0].candidates[31];
    expect(last).toMatchObject({ meanCe: null, rank: null, unscored: 'prompt-over-context' });
    expect(prov[0].candidates[0].chunkMeanCe).toHaveLength(4);

    // score-instructions reads the same files as the same tasks and gives the same numbers, from the cache
    const r = uit(['score-instructions', '-m', FIXTURE, '--threads', '1', ...layout.csqa.files, ...layout.commonGen.files, '--scoring', 'reference', '--json', '--cache', cache]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/0 computed/);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { task: string; scoring: string; candidates: { file: string; mean_ce: number | null }[] });
    expect(lines.map((l) => [l.task, l.scoring])).toEqual([
      [layout.csqa.id, 'reference'],
      [layout.commonGen.id, 'reference'],
    ]);
    const byTask = new Map(prov.map((p) => [p.id, p]));
    for (const l of lines) {
      expect(l.candidates.map((c) => [basename(c.file), c.mean_ce])).toEqual(byTask.get(l.task)!.candidates.map((c) => [basename(c.file!), c.meanCe]));
    }
  }, 180_000);

  it('candidates JSONL may name a task by the reference name and carry examples; its entry replaces the files\' candidates', () => {
    const one = join(tmp.dir, 'one');
    mkdirSync(one);
    for (const f of layout.csqa.files) copyFileSync(f, join(one, basename(f)));
    const ex = file(layout.csqa, 0)['Positive Examples'];
    const cands = join(tmp.dir, 'cands.jsonl');
    const own = [{ input: ex[1].input, output: ex[1].output }, { input: ex[0].input, output: ex[0].output }];
    writeFileSync(
      cands,
      JSON.stringify({ task: layout.csqa.name, candidates: ['Classify the question.', { definition: 'Say what the question asks for.', positiveExamples: own }] }) + '\n',
    );
    const out = join(tmp.dir, 'jsonl-out');
    const s = run(['denoise', one, '--candidates', cands, '--scorer', FIXTURE, '--threads', '1', '--top-k', '1', '-o', out, '--cache', cache]);
    expect(s.tasks).toMatchObject({ ok: 1, failed: 0 });
    expect(s.unusedCandidates).toBe(0);
    const [p] = jsonl<Prov>(join(out, 'provenance.jsonl'));
    expect(p.candidates.map((c) => [c.definition, c.ownExamples ?? false, c.file])).toEqual([
      ['Classify the question.', false, undefined],
      ['Say what the question asks for.', true, undefined],
    ]);
    const written = JSON.parse(readFileSync(join(out, p.output!), 'utf8')) as NiTask;
    expect(written['Positive Examples'].map((e) => ({ input: e.input, output: e.output }))).toEqual(p.chosen === 1 ? own : ex.map((e) => ({ input: e.input, output: e.output })));

    // a bad examples list names the line and the field
    writeFileSync(cands, JSON.stringify({ task: layout.csqa.name, candidates: [{ definition: 'x', positiveExamples: [{ input: 'no output' }] }] }) + '\n');
    const bad = uit(['denoise', one, '--candidates', cands, '--scorer', FIXTURE, '-o', join(tmp.dir, 'bad'), '--cache', cache]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/cands\.jsonl:1: candidates\.0/);
  }, 180_000);

  it('a candidate file with two Definitions, or other Instances than its task\'s first file, fails its task naming the file and field', () => {
    const bad = join(tmp.dir, 'bad');
    mkdirSync(bad);
    const [f0, f1] = layout.csqa.files;
    const doc = JSON.parse(readFileSync(f1, 'utf8')) as NiTask;
    copyFileSync(f0, join(bad, basename(f0)));
    writeFileSync(join(bad, basename(f1)), JSON.stringify({ ...doc, Instances: doc.Instances.slice(1) }, null, 4));
    writeFileSync(join(bad, '0of1sample_two_definitions.json'), JSON.stringify({ ...doc, Definition: ['One.', 'Two.'] }, null, 4));
    // the folder and one of its files: that file is one candidate, not two
    const s = run(['denoise', bad, join(bad, basename(f0)), '--scorer', FIXTURE, '-o', join(tmp.dir, 'bad-out'), '--cache', cache], 6);
    expect(s.tasks).toMatchObject({ ok: 0, failed: 2 });
    expect(s.failures.map((f) => [basename(f.file), f.reason.replace(/ \(.*/, '').slice(0, 60)])).toEqual([
      ['0of1sample_two_definitions.json', "Definition: a candidate file of the reference's layout holds"],
      [basename(f1), `Instances: differ from those of ${join(bad, basename(f0))}: the`.slice(0, 60)],
    ]);
  });

  it('without --candidates and without candidate files, denoise is a usage error', () => {
    const r = uit(['denoise', NIV2_FILES[0], '--scorer', FIXTURE, '-o', join(tmp.dir, 'none'), '--cache', cache]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs --candidates FILE .* or candidate files in the UIT reference's layout/);
  });
});
