// The runtime hook the scorer relies on: scoreContinuations reports each batch as it finishes
// (so the scorer stores a batch's scores in one cache transaction), in the engine's batch order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, prefill, scoreContinuations, type Model } from '../../src/runtime/index.js';
import { FIXTURE, maxAbsDiff } from './helpers.js';

let model: Model;
beforeAll(async () => {
  model = await loadModel(FIXTURE, { threads: 1 });
});
afterAll(async () => {
  await model.dispose();
});

describe('scoreContinuations onBatch', () => {
  it('is called once per batch, longest continuations first, with the log-probs it returns', async () => {
    const tok = model.tokenizer;
    const prefix = await prefill(model.backend, tok.encode('Definition: Say it politely.\n\nInput: '));
    const conts = ['Go.\nOutput: Please go.', 'Sit\nOutput: Please sit down, if you would.', 'x', 'Be quiet!\nOutput: Quiet, please.', 'Eat\nOutput: Do eat.'].map((t) =>
      tok.encode(t),
    );
    const seen: { indices: number[]; logprobs: Float32Array[] }[] = [];
    const res = await scoreContinuations(model.backend, prefix, conts, {
      batchSize: 2,
      onBatch: (indices, logprobs) => seen.push({ indices: [...indices], logprobs: [...logprobs] }),
    });
    // lengths 22, 42, 1, 31, 16: longest first, two per batch
    expect(seen.map((b) => b.indices)).toEqual([[1, 3], [0, 4], [2]]);
    for (const b of seen) b.indices.forEach((ci, j) => expect(b.logprobs[j]).toBe(res[ci]));
    expect(res.every((r) => r.every((x) => Number.isFinite(x)))).toBe(true);
  });
});

describe('scoreContinuations batches', () => {
  it('runs explicit batches in the given order, equal to default batching; unbatched ones stay empty', async () => {
    const tok = model.tokenizer;
    const prefix = await prefill(model.backend, tok.encode('Definition: Copy the input.\n\nInput: '));
    const conts = ['abc\nOutput: abc', 'hello world\nOutput: hello world', 'x\nOutput: x', 'q\nOutput: q'].map((t) => tok.encode(t));
    const plain = await scoreContinuations(model.backend, prefix, conts, { batchSize: 4 });
    const order: number[][] = [];
    const res = await scoreContinuations(model.backend, prefix, conts, {
      batches: [[2, 0], [1]],
      onBatch: (indices) => order.push([...indices]),
    });
    expect(order).toEqual([[2, 0], [1]]);
    for (const i of [0, 1, 2]) expect(maxAbsDiff(res[i], plain[i])).toBeLessThan(1e-5);
    expect(res[3]).toHaveLength(0);
    await expect(scoreContinuations(model.backend, prefix, conts, { batches: [[0, 0]] })).rejects.toThrow(RangeError);
    await expect(scoreContinuations(model.backend, prefix, conts, { batches: [[7]] })).rejects.toThrow(RangeError);
  });
});
