import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openCache, type Cache, type GenerationRecord, type ScoreRecord } from '../../src/cache/index.js';
import { generationKey, scoreKey } from '../../src/cache/keys.js';
import { tempDir } from './helpers.js';

let tmp: ReturnType<typeof tempDir>;
let cache: Cache;
let file: string;

beforeEach(() => {
  tmp = tempDir();
  file = join(tmp.dir, 'nested', 'cache.sqlite');
  cache = openCache(file);
});
afterEach(() => {
  cache.close();
  tmp.cleanup();
});

const PREFIX_HEAD = 'Definition: Classify the sentiment.\n\nPositive Examples 1\nInput: great\nOutput: positive\n\n';
function score(i: number, target = `t${i}`): ScoreRecord {
  const n = target === '' ? 0 : 2;
  return {
    scorerId: 'scorer-1',
    prefix: `${PREFIX_HEAD}Now complete the following example -\nInput: x${i}\nOutput: `,
    target,
    tokenCount: n,
    sumCe: n === 0 ? 0 : 1.25 + i,
    meanCe: n === 0 ? null : (1.25 + i) / 2,
    tokenLogprobs: n === 0 ? null : [-0.5, -(0.75 + i)],
    durationMs: 4.5,
  };
}
function generation(i: number): GenerationRecord {
  return {
    modelId: 'model-1',
    prompt: 'Rewrite each instruction.\n\nInstruction: a\nDefinition: b\n\nInstruction: new task\nDefinition:',
    params: { temperature: 0.7, seed: 3 },
    sampleIndex: i,
    text: ` candidate ${i}`,
    tokenCount: 3,
    finishReason: 'stop',
    durationMs: 12,
    meta: { usage: { completion_tokens: 3 } },
  };
}

describe('generations', () => {
  it('round-trip by key, count hits and misses, and keep the first writer', () => {
    const keys = cache.putGenerations([generation(0), generation(1)]);
    expect(keys).toEqual([generationKey(generation(0)), generationKey(generation(1))]);
    const got = cache.getGenerations([...keys, 'f'.repeat(64), keys[0]]);
    expect(got.size).toBe(2);
    expect(got.get(keys[1])).toMatchObject({ text: ' candidate 1', tokenCount: 3, finishReason: 'stop', durationMs: 12, meta: { usage: { completion_tokens: 3 } } });
    expect(cache.counters.generations).toEqual({ hits: 2, misses: 1, writes: 2 });

    // Same key again (another process got there first, or a rerun): the stored row wins.
    cache.putGenerations([{ ...generation(0), text: 'different' }]);
    expect(cache.getGenerations([keys[0]]).get(keys[0])?.text).toBe(' candidate 0');
    expect(cache.counters.generations.writes).toBe(2);
  });

  it('store a prompt shared by N samples once', () => {
    cache.putGenerations([0, 1, 2, 3, 4, 5, 6, 7].map(generation));
    // The prompt has three paragraphs; eight samples share them.
    expect(cache.stats().rows).toMatchObject({ generations: 8, texts: 3 });
    const exported = [...cache.exportRows('generations')];
    expect(exported).toHaveLength(8);
    for (const row of exported) expect(row.prompt).toBe(generation(0).prompt);
  });

  it('reject malformed records before writing anything', () => {
    expect(() => cache.putGenerations([generation(0), { ...generation(1), tokenCount: -1 }])).toThrow(/record 1: tokenCount -1/);
    expect(() => cache.putGenerations([{ ...generation(0), modelId: '' }])).toThrow(/modelId/);
    expect(cache.stats().rows.generations).toBe(0);
  });
});

describe('scores', () => {
  it('round-trip numbers, per-token log-probs (float32) and a null mean for an empty target', () => {
    const records = [score(0), score(1), score(2, '')];
    const keys = cache.putScores(records);
    expect(keys[2]).toBe(scoreKey(records[2]));
    const got = cache.getScores(keys);
    expect(got.get(keys[1])).toMatchObject({ tokenCount: 2, sumCe: 2.25, meanCe: 1.125, durationMs: 4.5 });
    expect(Array.from(got.get(keys[1])!.tokenLogprobs!)).toEqual([-0.5, -1.75]);
    expect(got.get(keys[2])).toMatchObject({ tokenCount: 0, sumCe: 0, meanCe: null, tokenLogprobs: null });
    expect(cache.counters.scores).toEqual({ hits: 3, misses: 0, writes: 3 });
  });

  it('share prefix paragraphs between rows', () => {
    cache.putScores([0, 1, 2, 3].map((i) => score(i)));
    // Two shared paragraphs plus one instance paragraph per row.
    expect(cache.stats().rows.texts).toBe(2 + 4);
    const rows = [...cache.exportRows('scores')];
    expect(rows.map((r) => r.prefix).sort()).toEqual([0, 1, 2, 3].map((i) => score(i).prefix).sort());
  });

  it('check consistency: a mean CE exactly when there are tokens, one log-prob per token', () => {
    expect(() => cache.putScores([{ ...score(0), meanCe: null }])).toThrow(/meanCe must be null exactly when tokenCount is 0/);
    expect(() => cache.putScores([{ ...score(0, ''), meanCe: 0 }])).toThrow(/meanCe/);
    expect(() => cache.putScores([{ ...score(0), tokenLogprobs: [-1] }])).toThrow(/1 token log-probs for 2 tokens/);
    expect(() => cache.putScores([{ ...score(0), sumCe: NaN }])).toThrow(/sumCe/);
  });
});

describe('transactions', () => {
  it('a failed batch leaves nothing behind, and the next batch stores its text pieces again', () => {
    expect(() =>
      cache.transaction(() => {
        cache.putScores([score(0), score(1)]);
        throw new Error('model crashed mid-batch');
      }),
    ).toThrow('model crashed mid-batch');
    expect(cache.stats().rows).toMatchObject({ scores: 0, texts: 0 });
    cache.putScores([score(0)]);
    // The pieces seen in the rolled-back batch must have been written for real this time.
    expect([...cache.exportRows('scores')][0].prefix).toBe(score(0).prefix);
  });
});

describe('runs and models', () => {
  it('log a run with its counts and attribute rows to it', () => {
    cache.putModel({ id: 'model-1', kind: 'local', name: 'models/uit-tiny', info: { layers: 4 } });
    cache.putModel({ id: 'model-1', kind: 'local', name: 'renamed' });
    const runId = cache.startRun('convert', { input: 'x.json' });
    const [key] = cache.putGenerations([generation(0)]);
    cache.getGenerations([key, 'missing']);
    cache.finishRun('ok');
    expect(cache.getGenerations([key]).get(key)?.runId).toBe(runId);
    const [run] = [...cache.exportRows('runs')];
    expect(run).toMatchObject({ id: runId, command: 'convert', args: { input: 'x.json' }, status: 'ok', pid: process.pid });
    expect(run.counts).toMatchObject({ generations: { hits: 1, misses: 1, writes: 1 } });
    expect(cache.models()).toEqual([
      expect.objectContaining({ id: 'model-1', kind: 'local', name: 'models/uit-tiny', info: { layers: 4 } }),
    ]);
    const stats = cache.stats();
    expect(stats.generations.byModel).toEqual([{ id: 'model-1', name: 'models/uit-tiny', kind: 'local', rows: 1 }]);
    expect(stats.runs.last).toMatchObject({ id: runId, status: 'ok' });
  });
});

describe('export', () => {
  it('pages through more rows than one page, in key order, each exactly once', () => {
    const records = Array.from({ length: 1234 }, (_, i) => score(i));
    cache.putScores(records);
    const keys = [...cache.exportRows('scores', 100)].map((r) => r.key as string);
    expect(keys).toHaveLength(1234);
    expect(keys).toEqual(records.map(scoreKey).sort());
  });
});

describe('merge', () => {
  it('adds what the other cache lacks, is idempotent, and leaves the other file unchanged', () => {
    const otherFile = join(tmp.dir, 'shard.sqlite');
    const other = openCache(otherFile);
    other.putModel({ id: 'scorer-1', kind: 'local', name: 'scorer' });
    other.putScores([score(0), score(1), score(2)]);
    other.close();
    const otherBytes = readFileSync(otherFile);
    cache.putScores([score(0)]);

    const first = cache.mergeFrom(otherFile);
    expect(first.added).toMatchObject({ scores: 2, models: 1 });
    expect(first.added.texts).toBe(2); // instance paragraphs of rows 1 and 2
    expect(cache.mergeFrom(otherFile).added).toEqual({ models: 0, texts: 0, runs: 0, generations: 0, scores: 0 });
    expect(cache.stats().rows.scores).toBe(3);
    expect([...cache.exportRows('scores')].map((r) => r.prefix).sort()).toEqual([0, 1, 2].map((i) => score(i).prefix).sort());

    expect(readFileSync(otherFile).equals(otherBytes)).toBe(true);
    const raw = new Database(otherFile, { readonly: true });
    expect((raw.prepare('SELECT count(*) AS n FROM scores').get() as { n: number }).n).toBe(3);
    raw.close();
    expect(() => cache.mergeFrom(file)).toThrow(/is the cache itself/);
  });
});

describe('vacuum', () => {
  it('keeps every row and reports sizes', () => {
    cache.putScores(Array.from({ length: 200 }, (_, i) => score(i)));
    const { before, after } = cache.vacuum();
    expect(before).toBeGreaterThan(0);
    expect(after).toBeGreaterThan(0);
    expect(cache.stats().rows.scores).toBe(200);
    expect(cache.check()).toEqual([]);
  });
});

describe('read-only', () => {
  it('reads but refuses to write', () => {
    cache.putScores([score(0)]);
    const ro = openCache(file, { readonly: true });
    try {
      expect(ro.getScores([scoreKey(score(0))]).size).toBe(1);
      expect(() => ro.putScores([score(1)])).toThrow(/read-only/);
    } finally {
      ro.close();
    }
  });
});
