// The shared-prefix path: graphs with shared_key_values inputs take a prefix common to all rows once
// (N samples of one prompt, a scored candidate's prefix), instead of a copy in every row. It must
// give what the copy-based path gives (which graphs without those inputs use), and really be taken.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  KvCache,
  Model,
  generate,
  loadModel,
  prefill,
  scoreContinuations,
  step,
  type ForwardInput,
  type GenerateOptions,
} from '../../src/runtime/index.js';
import { FIXTURE, maxAbsDiff, withForward } from './helpers.js';

let shared: Model;
let copies: Model;
beforeAll(async () => {
  shared = await loadModel(FIXTURE, { threads: 1 });
  copies = await loadModel(FIXTURE, { threads: 1, sharedKv: false });
});
afterAll(async () => {
  await shared.dispose();
  await copies.dispose();
});

interface Call {
  rows: number;
  seq: number;
  past: number;
  shared: number;
}

/** The model with a backend that records the shape of every forward. */
function recording(inner: Model): { model: Model; calls: Call[] } {
  const calls: Call[] = [];
  const model = withForward(inner, (next, input: ForwardInput, want, fetchKv) => {
    calls.push({ rows: input.rows, seq: input.seq, past: input.pastLength, shared: input.shared?.length ?? 0 });
    return next(input, want, fetchKv);
  });
  return { model, calls };
}

describe('KvCache with a shared prefix', () => {
  it('puts the shared slots first in the mask, continues positions after them, and keeps them through gather and compact', async () => {
    const prefix = await prefill(shared.backend, [10, 20, 30, 40]);
    const cache = KvCache.create(shared.backend.shape, 2, 0, prefix.kv);
    expect(cache.validCount[0]).toBe(4);
    await step(shared.backend, cache, [1, 2, 0, 3], 2, 'last', { newValid: Uint8Array.from([1, 1, 0, 1]) });
    expect(Array.from(cache.attentionMask(1)).map(Number)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1]);
    expect(Array.from(cache.positionIds(1)).map(Number)).toEqual([6, 5]);
    const g = KvCache.gather(cache, [1, 1, 0], 8);
    expect(g.shared).toBe(prefix.kv);
    expect(Array.from(g.positionIds(1)).map(Number)).toEqual([5, 5, 6]);
    g.compact([2]);
    expect(Array.from(g.attentionMask(1)).map(Number)).toEqual([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1]);
    expect(() => KvCache.create(shared.backend.shape, 2, 0, cache)).toThrow(/one row/);
  });

  it('a step over shared + own past gives the logits of the same step over copies', async () => {
    const prefix = await prefill(shared.backend, shared.tokenizer.encode('Definition: Say hi.\n\nInput: '));
    const viaShared = KvCache.create(shared.backend.shape, 3, 0, prefix.kv);
    const viaCopies = await prefix.kv.gather([0, 0, 0], prefix.kv.used);
    const ids = [65, 66, 67, 68, 69, 70];
    const valid = Uint8Array.from([1, 1, 0, 1, 1, 1]);
    const a = await step(shared.backend, viaShared, ids, 2, 'last', { newValid: valid });
    const b = await step(shared.backend, viaCopies, ids, 2, 'last', { newValid: valid });
    expect(maxAbsDiff(a.last!, b.last!)).toBeLessThan(1e-5);
    const c = await step(shared.backend, viaShared, [71, 72, 73], 1, 'last');
    const d = await step(shared.backend, viaCopies, [71, 72, 73], 1, 'last');
    expect(maxAbsDiff(c.last!, d.last!)).toBeLessThan(1e-5);
    // the rows' own buffers hold only what follows the prefix
    expect(viaShared.used).toBe(3);
    expect(viaCopies.used).toBe(prefix.kv.used + 3);
  });
});

describe('generation on the shared path', () => {
  const SAMPLED: GenerateOptions = { maxNewTokens: 10, temperature: 0.9, topP: 0.95, seed: 3 };

  it('reports which path a model gets', () => {
    expect(shared.info.sharedKv).toBe(true);
    expect(copies.info.sharedKv).toBe(false);
    expect(shared.backend.fast.sharedKv).toBe(true);
  });

  it('N samples of one prompt: the prompt runs once as the shared prefix, and the tokens equal the copy path', async () => {
    const prompt = 'Definition: In this task, you are given a question.';
    const s = recording(shared);
    const c = recording(copies);
    const a = await generate(s.model, [{ prompt, numSamples: 6 }], SAMPLED);
    const b = await generate(c.model, [{ prompt, numSamples: 6 }], SAMPLED);
    expect(a.outputs[0].samples.map((x) => x.tokenIds)).toEqual(b.outputs[0].samples.map((x) => x.tokenIds));
    expect(new Set(a.outputs[0].samples.map((x) => x.tokenIds.join())).size).toBeGreaterThan(1);
    const n = shared.tokenizer.encode(prompt).length;
    // shared path: one 1-row prefill of the prompt, then 6-row steps whose own past holds only generated tokens
    expect(s.calls[0]).toEqual({ rows: 1, seq: n, past: 0, shared: 0 });
    for (const call of s.calls.slice(1)) {
      expect(call.shared).toBe(n);
      expect(call.past).toBeLessThanOrEqual(64);
    }
    // copy path: no shared input; every row's past holds the prompt
    for (const call of c.calls.slice(1)) {
      expect(call.shared).toBe(0);
      expect(call.past).toBeGreaterThanOrEqual(n);
    }
  });

  it('prompts with a common beginning share it; greedy and sampled tokens equal the copy path', async () => {
    const head = 'Definition: Rewrite the instruction.\n\nInput: ';
    const requests = [
      { prompt: `${head}first task`, numSamples: 2 },
      { prompt: `${head}second, longer task text`, numSamples: 1 },
      { prompt: head, numSamples: 2 },
    ];
    for (const opts of [SAMPLED, { maxNewTokens: 8, greedy: true }] as GenerateOptions[]) {
      const s = recording(shared);
      const a = await generate(s.model, requests, opts);
      const b = await generate(copies, requests, opts);
      expect(a.outputs.map((o) => o.samples.map((x) => x.tokenIds))).toEqual(b.outputs.map((o) => o.samples.map((x) => x.tokenIds)));
      const common = shared.tokenizer.encode(head).length - 1; // the shortest prompt keeps one token of its own
      expect(s.calls[0]).toEqual({ rows: 1, seq: common, past: 0, shared: 0 });
      expect(s.calls[1].shared).toBe(common);
      expect(s.calls[1].rows).toBe(3);
    }
  });

  it('prompts with nothing in common run as before (no shared prefix)', async () => {
    const s = recording(shared);
    const requests = [{ prompt: 'abc' }, { prompt: 'xyz!' }];
    const a = await generate(s.model, requests, SAMPLED);
    const b = await generate(copies, requests, SAMPLED);
    expect(a.outputs.map((o) => o.samples[0].tokenIds)).toEqual(b.outputs.map((o) => o.samples[0].tokenIds));
    expect(s.calls.every((call) => call.shared === 0)).toBe(true);
  });

  it('grows a row past its first chunk of slots', async () => {
    const a = await generate(shared, [{ prompt: 'Input: x', numSamples: 2 }], { ...SAMPLED, maxNewTokens: 150, stopOnEos: false });
    const b = await generate(copies, [{ prompt: 'Input: x', numSamples: 2 }], { ...SAMPLED, maxNewTokens: 150, stopOnEos: false });
    expect(a.outputs[0].samples.map((x) => x.tokenIds.length)).toEqual([150, 150]);
    expect(a.outputs[0].samples.map((x) => x.tokenIds)).toEqual(b.outputs[0].samples.map((x) => x.tokenIds));
  });
});

describe('scoring on the shared path', () => {
  it('passes the prefix once and gives the copy path numbers within 1e-5', async () => {
    const s = recording(shared);
    const tok = shared.tokenizer;
    const prefixIds = tok.encode('Definition: Answer the question.\n\nInput: ');
    const conts = ['What is 2+2?\nOutput: 4', 'Hi\nOutput: hello there', 'x', '', 'A longer one, with commas?\nOutput: no'].map((t) => tok.encode(t));
    const p1 = await prefill(s.model.backend, prefixIds);
    const viaShared = await scoreContinuations(s.model.backend, p1, conts, { batchSize: 2 });
    const p2 = await prefill(copies.backend, prefixIds);
    const viaCopies = await scoreContinuations(copies.backend, p2, conts, { batchSize: 2 });
    for (const [i, c] of conts.entries()) {
      expect(viaShared[i].length).toBe(c.length);
      expect(maxAbsDiff(viaShared[i], viaCopies[i]), `continuation ${i}`).toBeLessThan(1e-5);
    }
    const batches = s.calls.slice(1);
    expect(batches.length).toBe(2);
    for (const call of batches) expect(call).toMatchObject({ shared: prefixIds.length, past: 0 });
  });
});
