// The prefix-reuse forward the scorer builds on: continuations scored on copies of a prefilled
// prefix's KV cache equal log-softmax of one full forward over prefix + continuation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvCache, gatherLogprobs, loadModel, prefill, scoreContinuations, step, type Model } from '../../src/runtime/index.js';
import { FIXTURE, maxAbsDiff } from './helpers.js';

let fast: Model;
let slow: Model;
beforeAll(async () => {
  fast = await loadModel(FIXTURE, { threads: 1 });
  slow = await loadModel(FIXTURE, { threads: 1, fastGraphs: false });
});
afterAll(async () => {
  await fast.dispose();
  await slow.dispose();
});

/** log p(ids[t] | ids[<t]) for t >= 1 from one full forward of model.onnx. */
async function reference(ids: number[]): Promise<Float32Array> {
  const cache = KvCache.create(slow.backend.shape, 1, 0);
  const out = await step(slow.backend, cache, ids, ids.length, 'logits', { writeKv: false });
  return gatherLogprobs(out.logits!, BigInt64Array.from(ids.map(BigInt)), 1, ids.length, out.vocabSize);
}

describe('scoreContinuations', () => {
  for (const path of ['fast', 'slow'] as const) {
    it(`equals a full forward for continuations of different lengths in shared batches (${path})`, async () => {
      const m = path === 'fast' ? fast : slow;
      expect(m.info.fastScoring).toBe(path === 'fast');
      const tok = m.tokenizer;
      const prefixIds = tok.encode('Definition: Answer the question.\n\nInput: ');
      const conts = ['What is 2+2?\nOutput: 4', 'Hi\nOutput: hello there', 'x', '', 'A much longer question, with commas?\nOutput: no'].map((t) => tok.encode(t));
      const prefix = await prefill(m.backend, prefixIds);
      const scores = await scoreContinuations(m.backend, prefix, conts, { batchSize: 2 });
      expect(scores.map((s) => s.length)).toEqual(conts.map((c) => c.length));
      for (const [i, c] of conts.entries()) {
        if (c.length === 0) continue;
        const ref = await reference([...prefixIds, ...c]);
        expect(maxAbsDiff(scores[i], ref.subarray(prefixIds.length - 1)), `continuation ${i}`).toBeLessThan(1e-4);
      }
      // the prefix is not changed by scoring
      expect(prefix.kv.used).toBe(prefixIds.length);
    });
  }

  it('a prefix built in stages equals one built at once', async () => {
    const ids = fast.tokenizer.encode('Positive Examples 1\nInput: a\nOutput: b\n\n');
    const once = await prefill(fast.backend, ids);
    const first = await prefill(fast.backend, ids.slice(0, 7));
    const staged = await prefill(fast.backend, ids.slice(7), first);
    expect(staged.ids).toEqual(ids);
    expect(maxAbsDiff(staged.lastLogits, once.lastLogits)).toBeLessThan(1e-4);
    // the base prefix is left as it was
    expect(first.kv.used).toBe(7);
    const a = await scoreContinuations(fast.backend, once, [[65, 66, 67]]);
    const b = await scoreContinuations(fast.backend, staged, [[65, 66, 67]]);
    expect(maxAbsDiff(a[0], b[0])).toBeLessThan(1e-4);
  });

  for (const path of ['fast', 'slow'] as const) {
    it(`with tails, gives the same numbers for the needed last tokens and NaN before them (${path})`, async () => {
      const m = path === 'fast' ? fast : slow;
      const tok = m.tokenizer;
      const prefix = await prefill(m.backend, tok.encode('Definition: Copy the input.\n\n'));
      const conts = ['Input: abc\nOutput: abc', 'Input: a much longer input\nOutput: x', 'Input: q\nOutput: qq'].map((t) => tok.encode(t));
      const tails = [3, 1, 0];
      const all = await scoreContinuations(m.backend, prefix, conts, { batchSize: 3 });
      const cut = await scoreContinuations(m.backend, prefix, conts, { batchSize: 3, tails });
      conts.forEach((c, i) => {
        const from = c.length - tails[i];
        expect(maxAbsDiff(cut[i].subarray(from), all[i].subarray(from)), `continuation ${i}`).toBeLessThan(1e-5);
        // The batch's graph call scores its last 3 columns (the largest tail): earlier entries are not
        // computed (NaN), except the first token's, which comes from the prefix.
        expect(Number.isFinite(cut[i][0])).toBe(true);
        for (let t = 1; t < c.length - 3; t++) expect(Number.isNaN(cut[i][t]), `continuation ${i} token ${t}`).toBe(true);
      });
      expect(tails.map((n, i) => Array.from(cut[i].subarray(conts[i].length - n)).every(Number.isFinite))).toEqual([true, true, true]);
    });
  }

  it('without a prefix the first token has no log-prob (NaN)', async () => {
    const [s] = await scoreContinuations(fast.backend, undefined, [[65, 66, 67]]);
    expect(Number.isNaN(s[0])).toBe(true);
    expect(Number.isFinite(s[1])).toBe(true);
  });
});
