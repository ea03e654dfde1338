// A random GPT-J of a shape the fixture does not have (3 layers, 3 heads, rotary over the whole
// head), exported by scripts/export-gptj.py into a temp dir in float32 and float16: the engine
// matches its parity.json and KV-cached decoding matches a full forward. Needs /usr/bin/python3
// with torch and onnx: skipped with the reason otherwise, unless UIT_REQUIRE_SYSTEM_DEPS=1.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvCache, generate, loadModel, step } from '../../src/runtime/index.js';
import { tempDir, torchAvailable } from './helpers.js';
import { replayParity } from './parity-replay.js';

const torch = torchAvailable();
const required = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';
const run = torch.ok || required;
const title = `a random GPT-J of another shape${run ? '' : ` (skipped: ${torch.reason})`}`;

const SHAPE = { vocab_size: 257, n_positions: 512, n_embd: 48, n_layer: 3, n_head: 3, rotary_dim: 16, n_inner: 96 };
let tmp: ReturnType<typeof tempDir>;
const dirs = { fp32: '', fp16: '' };

describe.runIf(run)(title, () => {
  beforeAll(() => {
    if (!torch.ok) throw new Error(`UIT_REQUIRE_SYSTEM_DEPS=1 but ${torch.reason}`);
    tmp = tempDir('uit-random-gptj-');
    dirs.fp32 = join(tmp.dir, 'fp32');
    dirs.fp16 = join(tmp.dir, 'fp16');
    const cfg = join(tmp.dir, 'config.json');
    writeFileSync(cfg, JSON.stringify(SHAPE));
    for (const dtype of ['fp32', 'fp16'] as const) {
      const r = spawnSync('/usr/bin/python3', ['scripts/export-gptj.py', '--random-init', cfg, dirs[dtype], '--dtype', dtype, '--seed', '11'], {
        encoding: 'utf8',
        env: { ...process.env, OMP_NUM_THREADS: '2' },
      });
      if (r.status !== 0) throw new Error(`export-gptj.py failed:\n${r.stderr.slice(-2000)}`);
    }
  }, 300_000);
  afterAll(() => tmp?.cleanup());

  it('float32: parity.json on the fast graphs', () => replayParity(dirs.fp32, true)());
  it('float32: parity.json on model.onnx', () => replayParity(dirs.fp32, false)());
  it('float16 KV cache: parity.json on the fast graphs', () => replayParity(dirs.fp16, true)());
  it('float16 KV cache: parity.json on model.onnx', () => replayParity(dirs.fp16, false)());

  it('float32: KV-cached decoding equals the full forward (< 1e-4), and both paths generate alike', async () => {
    const fast = await loadModel(dirs.fp32, { threads: 1 });
    const slow = await loadModel(dirs.fp32, { threads: 1, fastGraphs: false });
    try {
      expect(fast.info).toMatchObject({ numLayers: 3, numKvHeads: 3, headDim: 16, kvDtype: 'float32' });
      const ids = fast.tokenizer.encode('Unseen shapes must work the same way.');
      const full = await step(slow.backend, KvCache.create(slow.backend.shape, 1, 0), ids, ids.length, 'logits', { writeKv: false });
      const V = full.vocabSize;
      const cache = KvCache.create(fast.backend.shape, 1, 0);
      let out = await step(fast.backend, cache, ids.slice(0, 5), 5, 'last');
      let worst = 0;
      for (let t = 4; t < ids.length; t++) {
        for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(out.last![j] - full.logits![t * V + j]));
        if (t + 1 < ids.length) out = await step(fast.backend, cache, [ids[t + 1]], 1, 'last');
      }
      expect(worst).toBeLessThan(1e-4);
      const opts = { maxNewTokens: 10, temperature: 0.8, seed: 2 };
      const requests = [{ prompt: 'a', numSamples: 2 }, { prompt: 'longer prompt', numSamples: 1 }];
      const a = await generate(fast, requests, opts);
      const b = await generate(slow, requests, opts);
      expect(a.outputs.map((o) => o.samples.map((s) => s.tokenIds))).toEqual(b.outputs.map((o) => o.samples.map((s) => s.tokenIds)));
    } finally {
      await fast.dispose();
      await slow.dispose();
    }
  });

  it('float16: the engine keeps the KV cache as raw half floats', async () => {
    const m = await loadModel(dirs.fp16, { threads: 1 });
    try {
      expect(m.info.kvDtype).toBe('float16');
      const cache = KvCache.create(m.backend.shape, 1, 0);
      await step(m.backend, cache, [1, 2, 3], 3, 'last');
      expect(cache.keys[0]).toBeInstanceOf(Uint16Array);
      const parity = JSON.parse(readFileSync(join(dirs.fp16, 'onnx', 'parity.json'), 'utf8')) as { dtype: string };
      expect(parity.dtype).toBe('fp16');
    } finally {
      await m.dispose();
    }
  });
});
