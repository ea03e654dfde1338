// The pipeline's small parts: shard assignment, sample runs, output-side paths, cleanup of killed
// runs' leftovers, seed files, and the Definition list of a written task.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitCode, UitError } from '../../src/errors.js';
import { lazyFromTask } from '../../src/formats/api.js';
import { emitNiv2, RELEASED_STYLE } from '../../src/formats/niv2.js';
import { contiguousRuns } from '../../src/transfer/candidates.js';
import { prepareNiv2, withDefinitions } from '../../src/transfer/model-output.js';
import { loadSeeds } from '../../src/transfer/seeds.js';
import { inShard, parseShard, shardOf } from '../../src/transfer/shard.js';
import { removeStaleTemps } from '../../src/io/stale.js';
import { errorsPathFor } from '../../src/transfer/task-errors.js';
import type { Task } from '../../src/types.js';
import { NIV2_FILES, tempDir } from './helpers.js';

const tmp = tempDir('uit-pipeline-units-');
afterAll(() => tmp.cleanup());

describe('shards', () => {
  it('parses k/n (0-based) and rejects the rest', () => {
    expect(parseShard('3/8')).toEqual({ index: 3, count: 8 });
    expect(parseShard(' 0 / 1 ')).toEqual({ index: 0, count: 1 });
    for (const bad of ['8/8', '-1/2', '1', '1/0', 'x/y', '1.5/2', '1/2x', 'x1/2']) expect(() => parseShard(bad)).toThrow(UitError);
    expect(parseShard('12/16')).toEqual({ index: 12, count: 16 });
    expect(parseShard('0/1000000')).toEqual({ index: 0, count: 1_000_000 });
    // each refusal says what is wrong, with the usage exit code
    const why = (text: string) => {
      try {
        parseShard(text);
      } catch (err) {
        expect((err as UitError).exitCode).toBe(ExitCode.USAGE);
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(why('1/2x')).toBe('--shard "1/2x": expected k/n, e.g. 0/4 (k counts from 0)');
    expect(why('0/0')).toBe('--shard 0/0: n must be between 1 and 1000000');
    expect(why('0/1000001')).toBe('--shard 0/1000001: n must be between 1 and 1000000');
    expect(why('8/8')).toBe('--shard 8/8: k must be below n (shards are numbered 0..7)');
  });

  it('every id lands in exactly one shard, by a hash that does not change between releases', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `task${i}_x`);
    const counts = new Array(7).fill(0);
    for (const id of ids) {
      const owners = [0, 1, 2, 3, 4, 5, 6].filter((k) => inShard(id, { index: k, count: 7 }));
      expect(owners).toEqual([shardOf(id, 7)]);
      counts[owners[0]]++;
    }
    for (const c of counts) expect(c).toBeGreaterThan(100); // roughly even: 1000/7 = 143
    // pinned values: a shard's slice must not move when uit is upgraded mid-job
    expect(['flan/trec/0', 'task1411_dart_subject_identification', 'p3/imdb_Reviewer_Enjoyment_Yes_No'].map((id) => shardOf(id, 4))).toEqual([0, 0, 3]);
    expect(shardOf('flan/trec/0', 2)).toBe(0);
    expect(shardOf('p3/imdb_Reviewer_Enjoyment_Yes_No', 2)).toBe(1);
    expect(inShard('anything', undefined)).toBe(true);
  });
});

describe('missing samples', () => {
  it('are asked for as runs of consecutive indices', () => {
    expect(contiguousRuns('p', [0, 1, 2, 5, 7, 8])).toEqual([
      { prompt: 'p', first: 0, count: 3 },
      { prompt: 'p', first: 5, count: 1 },
      { prompt: 'p', first: 7, count: 2 },
    ]);
    expect(contiguousRuns('p', [])).toEqual([]);
  });
});

describe('output-side paths', () => {
  it('puts the errors file beside the output', () => {
    expect(errorsPathFor('out/niv2')).toBe('out/niv2.errors.jsonl');
    expect(errorsPathFor('out/niv2/')).toBe('out/niv2.errors.jsonl');
    expect(errorsPathFor('out/tasks.jsonl')).toBe('out/tasks.errors.jsonl');
    expect(errorsPathFor('one.json')).toBe('one.errors.jsonl');
  });

  it('removes the staging folders and temp files of dead processes only', () => {
    const out = join(tmp.dir, 'out');
    mkdirSync(join(out, '.uit-staging-999999-abc', 'p3'), { recursive: true });
    writeFileSync(join(out, '.uit-staging-999999-abc', 'p3', 'x.json'), '{}');
    writeFileSync(join(out, '.provenance.jsonl.999999.k2.tmp'), '');
    mkdirSync(join(out, `.uit-staging-${process.pid}-live`));
    writeFileSync(join(tmp.dir, '.out.errors.jsonl.999999.k3.tmp'), '');
    writeFileSync(join(tmp.dir, '.someone-else.999999.k4.tmp'), '');
    writeFileSync(join(out, 'task.json'), '{}');
    const removed = removeStaleTemps([out, join(tmp.dir, 'out.errors.jsonl')]);
    expect(removed.map((p) => p.slice(tmp.dir.length + 1)).sort()).toEqual([
      '.out.errors.jsonl.999999.k3.tmp',
      'out/.provenance.jsonl.999999.k2.tmp',
      'out/.uit-staging-999999-abc',
    ]);
    expect(existsSync(join(out, `.uit-staging-${process.pid}-live`))).toBe(true);
    expect(existsSync(join(tmp.dir, '.someone-else.999999.k4.tmp'))).toBe(true);
    expect(existsSync(join(out, 'task.json'))).toBe(true);
  });
});

describe('seed pairs', () => {
  it('load from an array or {pairs}, and name the bad field', () => {
    const f = join(tmp.dir, 'seeds.json');
    writeFileSync(f, JSON.stringify([{ source: 'Q: {q}', definition: 'Answer the question.', note: 'ignored' }]));
    const a = loadSeeds(f);
    expect(a.pairs).toEqual([{ source: 'Q: {q}', definition: 'Answer the question.' }]);
    writeFileSync(f, JSON.stringify({ pairs: [{ source: 'Q: {q}', definition: 'Answer the question.' }] }));
    expect(loadSeeds(f).digest).toBe(a.digest);
    writeFileSync(f, JSON.stringify([{ source: 'Q: {q}' }]));
    expect(() => loadSeeds(f)).toThrow(/seeds\.json: 0\.definition: expected a JSON array/);
    expect(() => loadSeeds(join(tmp.dir, 'none.json'))).toThrow(/no such file/);
  });
});

describe('the written task', () => {
  const task: Task = {
    id: 'p3/demo',
    source: { format: 'p3', file: 'demo.jsonl', extra: {} },
    definition: '{input} Is it positive?',
    positiveExamples: [],
    negativeExamples: [],
    instances: [1, 2, 3, 4].map((i) => ({ id: `demo-${i}`, input: `in ${i}`, outputs: [`out ${i}`], extra: { row: i } })),
  };
  const text = async (definitions: string[]) => {
    const { task: prepared } = prepareNiv2(lazyFromTask(task), 2);
    let s = '';
    await emitNiv2(withDefinitions(prepared, definitions), (c) => (s += c), RELEASED_STYLE);
    return s;
  };
  // Every released Ni-v2 file has these keys in this order (all 180 in ../shared/data), and is
  // json.dump(indent=4, ensure_ascii=False): the layout a task from another format must get.
  const released = readFileSync(NIV2_FILES[0], 'utf8');
  const releasedKeys = Object.keys(JSON.parse(released) as object);

  it('borrows two instances as Positive Examples and lists several Definitions in the released layout', async () => {
    const one = await text(['Say if the review is positive.']);
    const three = await text(['Say if the review is positive.', 'Classify the review.', 'Answer yes or no.']);
    const list = (xs: string[]) => (xs.length ? `[\n${xs.map((x) => `        ${JSON.stringify(x)}`).join(',\n')}\n    ]` : '[]');
    const expected = (definitions: string[]) =>
      [
        '{',
        '    "Contributors": [],',
        `    "Source": ${list(['demo'])},`,
        '    "URL": [],',
        '    "Categories": [],',
        '    "Reasoning": [],',
        `    "Definition": ${list(definitions)},`,
        '    "Input_language": [],',
        '    "Output_language": [],',
        '    "Instruction_language": [],',
        '    "Domains": [],',
        '    "Positive Examples": [',
        '        {',
        '            "input": "in 1",',
        '            "output": "out 1"',
        '        },',
        '        {',
        '            "input": "in 2",',
        '            "output": "out 2"',
        '        }',
        '    ],',
        '    "Negative Examples": [],',
        '    "Instances": [',
        '        {',
        '            "id": "demo-3",',
        '            "input": "in 3",',
        '            "output": [',
        '                "out 3"',
        '            ]',
        '        },',
        '        {',
        '            "id": "demo-4",',
        '            "input": "in 4",',
        '            "output": [',
        '                "out 4"',
        '            ]',
        '        }',
        '    ],',
        '    "Instance License": []',
        '}',
      ].join('\n');
    expect(one).toBe(expected(['Say if the review is positive.']));
    expect(three).toBe(expected(['Say if the review is positive.', 'Classify the review.', 'Answer yes or no.']));
    // the literal above is the released files' layout, key for key
    expect(Object.keys(JSON.parse(one) as object)).toEqual(releasedKeys);
    expect(Object.keys(JSON.parse(three) as object)).toEqual(releasedKeys);
    expect(released).toBe(JSON.stringify(JSON.parse(released), null, 4) + '\n');
    expect(one + '\n').toBe(JSON.stringify(JSON.parse(one), null, 4) + '\n');
  });

  it('replaces every Definition of a Ni-v2 source, keeping the rest of its layout', async () => {
    const niv2: Task = {
      ...task,
      id: 'task_x',
      source: { format: 'niv2', file: 'x.json', extra: { Contributors: ['a'], Definition: ['second source definition'], 'Positive Examples': null, Instances: null, Domains: ['d'] } },
      positiveExamples: [{ input: 'i', output: 'o' }],
      instances: task.instances.map(({ extra: _e, ...i }) => i),
    };
    let s = '';
    await emitNiv2(withDefinitions(lazyFromTask(niv2), ['Chosen.']), (c) => (s += c), RELEASED_STYLE);
    const doc = JSON.parse(s) as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual(['Contributors', 'Definition', 'Positive Examples', 'Instances', 'Domains']);
    expect(doc.Definition).toEqual(['Chosen.']);
  });
});
