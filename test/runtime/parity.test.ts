// The engine (KvCache + step) replays the fixture's parity.json, recorded from the PyTorch
// reference, on both paths: fast graphs (new KV entries only) and model.onnx (present fed back).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvCache, loadModel, logSoftmaxAt, step, type Model } from '../../src/runtime/index.js';
import { FIXTURE } from './helpers.js';

interface ParityStep {
  input_ids: number[][];
  attention_mask: number[][];
  position_ids: number[][];
  past: 'none' | 'previous';
  expected: {
    logits_last_head: number[][];
    argmax_last: number[];
    logsumexp_last: number[];
    token_logprobs: (number | null)[][];
  };
}
interface Parity {
  tolerance: { atol: number; rtol: number };
  steps: ParityStep[];
}

export function replayParity(dir: string, fast: boolean) {
  return async () => {
    const parity = JSON.parse(readFileSync(join(dir, 'onnx', 'parity.json'), 'utf8')) as Parity;
    const model = await loadModel(dir, { fastGraphs: fast, threads: 1 });
    try {
      expect(model.info.fastGeneration).toBe(fast);
      const { atol, rtol } = parity.tolerance;
      const close = (got: number, want: number, what: string) => {
        if (!(Math.abs(got - want) <= atol + rtol * Math.abs(want))) throw new Error(`${what}: got ${got}, want ${want}`);
      };
      const rows = parity.steps[0].input_ids.length;
      const cache = KvCache.create(model.backend.shape, rows, 0);
      let compared = 0;
      for (const [k, st] of parity.steps.entries()) {
        const s = st.input_ids[0].length;
        const pastLen = st.attention_mask[0].length - s;
        expect(pastLen).toBe(cache.used);
        const valid = Uint8Array.from(st.attention_mask.flatMap((m) => m.slice(pastLen)));
        // The engine's own mask and positions equal the recorded ones.
        // (the fast path's cache may have free slots between `used` and `capacity`: leave them out)
        const mask = Array.from(cache.attentionMask(s, valid)).map(Number);
        const width = cache.capacity + s;
        const used = (r: number) => [...mask.slice(r * width, r * width + cache.used), ...mask.slice(r * width + cache.capacity, (r + 1) * width)];
        expect(Array.from({ length: rows }, (_, r) => used(r)).flat()).toEqual(st.attention_mask.flat());
        expect(Array.from(cache.positionIds(s, valid)).map(Number)).toEqual(st.position_ids.flat());
        const ids = st.input_ids.flat();
        const scored = await step(model.backend, cache, ids, s, 'logprobs', { newValid: valid, writeKv: false });
        const out = await step(model.backend, cache, ids, s, 'last', { newValid: valid });
        const V = out.vocabSize;
        for (let b = 0; b < rows; b++) {
          const last = out.last!.subarray(b * V, (b + 1) * V);
          st.expected.logits_last_head[b].forEach((want, j) => close(last[j], want, `step ${k} row ${b} logit ${j}`));
          let max = -Infinity;
          for (const v of last) max = Math.max(max, v);
          // logsumexp = logit - log_softmax(logit), for any entry
          close(last[0] - logSoftmaxAt(last, 0, V, 0), st.expected.logsumexp_last[b], `step ${k} row ${b} logsumexp`);
          close(last[st.expected.argmax_last[b]], max, `step ${k} row ${b} argmax`);
          st.expected.token_logprobs[b].forEach((want, t) => {
            if (want === null) return;
            close(scored.logprobs![b * (s - 1) + t], want, `step ${k} row ${b} token_logprob ${t}`);
            compared++;
          });
        }
      }
      expect(compared).toBeGreaterThan(0);
    } finally {
      await model.dispose();
    }
  };
}

describe('parity.json of the fixture', () => {
  it('matches through the fast graphs and the engine-owned KV cache', replayParity(FIXTURE, true));
  it('matches through model.onnx (slow path, present fed back)', replayParity(FIXTURE, false));
});

describe('KV-cached decoding', () => {
  let fastModel: Model;
  let slowModel: Model;
  beforeAll(async () => {
    fastModel = await loadModel(FIXTURE, { threads: 1 });
    slowModel = await loadModel(FIXTURE, { threads: 1, fastGraphs: false });
  });
  afterAll(async () => {
    await fastModel.dispose();
    await slowModel.dispose();
  });

  /** Full logits of one sequence in one forward (no past), from model.onnx. */
  async function fullLogits(ids: number[]): Promise<{ logits: Float32Array; V: number }> {
    const cache = KvCache.create(slowModel.backend.shape, 1, 0);
    const out = await step(slowModel.backend, cache, ids, ids.length, 'logits', { writeKv: false });
    return { logits: out.logits!, V: out.vocabSize };
  }

  for (const path of ['fast', 'slow'] as const) {
    it(`prefill + single-token steps give the full forward's logits (${path} path, < 1e-4)`, async () => {
      const model = path === 'fast' ? fastModel : slowModel;
      const ids = model.tokenizer.encode('The quick brown fox jumps over the lazy dog, twice.');
      const { logits, V } = await fullLogits(ids);
      const cache = KvCache.create(model.backend.shape, 1, 0);
      const prefix = 9;
      let out = await step(model.backend, cache, ids.slice(0, prefix), prefix, 'last');
      let worst = 0;
      for (let t = prefix - 1; t < ids.length; t++) {
        const want = logits.subarray(t * V, (t + 1) * V);
        for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(out.last![j] - want[j]));
        if (t + 1 < ids.length) out = await step(model.backend, cache, [ids[t + 1]], 1, 'last');
      }
      expect(cache.used).toBe(ids.length);
      expect(worst).toBeLessThan(1e-4);
      expect(worst).toBeGreaterThanOrEqual(0);
    });
  }

  it('a cache with free (masked) slots gives the same logits as a tight one', async () => {
    const ids = fastModel.tokenizer.encode('Padding slots must not change anything.');
    const tight = KvCache.create(fastModel.backend.shape, 1, 0);
    await step(fastModel.backend, tight, ids.slice(0, 10), 10, 'last');
    const roomy = KvCache.gather(tight, [0], 40); // 30 unused slots passed as past every step
    let a = await step(fastModel.backend, tight, [ids[10]], 1, 'last');
    let b = await step(fastModel.backend, roomy, [ids[10]], 1, 'last');
    for (let t = 11; t < ids.length; t++) {
      let d = 0;
      for (let j = 0; j < a.vocabSize; j++) d = Math.max(d, Math.abs(a.last![j] - b.last![j]));
      expect(d).toBeLessThan(1e-5);
      a = await step(fastModel.backend, tight, [ids[t]], 1, 'last');
      b = await step(fastModel.backend, roomy, [ids[t]], 1, 'last');
    }
    expect(roomy.capacity).toBe(40);
    expect(tight.capacity).toBeGreaterThan(10);
  });
});
