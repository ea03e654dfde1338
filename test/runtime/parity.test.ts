// The engine (KvCache + step) replays the fixture's parity.json, recorded from the PyTorch
// reference, on both paths: fast graphs (new KV entries only) and model.onnx (present fed back).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvCache, loadModel, step, type Model } from '../../src/runtime/index.js';
import { FIXTURE } from './helpers.js';
import { replayParity } from './parity-replay.js';

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
      expect(worst).toBeLessThan(1e-4); // NaN fails here too
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
