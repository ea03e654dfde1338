import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalGenerator, generate, loadModel, type Model } from '../../src/runtime/index.js';
import { LocalRangeGenerator } from '../../src/transfer/local-generator.js';
import { FIXTURE } from './helpers.js';

let model: Model;
const xdg = mkdtempSync(join(tmpdir(), 'uit-xdg-'));
const oldXdg = process.env.XDG_CACHE_HOME;
beforeAll(async () => {
  process.env.XDG_CACHE_HOME = xdg; // keep the identity memo out of the user's cache
  model = await loadModel(FIXTURE, { threads: 1 });
});
afterAll(async () => {
  await model.dispose();
  if (oldXdg === undefined) delete process.env.XDG_CACHE_HOME;
  else process.env.XDG_CACHE_HOME = oldXdg;
  rmSync(xdg, { recursive: true, force: true });
});

describe('LocalGenerator (TextGenerator over the local model)', () => {
  it('uses the model identity as id and returns what generate() returns', async () => {
    const g = await LocalGenerator.create(model, { batchSize: 3 });
    expect(g.id).toBe(await model.identity());
    expect(g.id).toMatch(/^sha256:/);
    expect(g.kind).toBe('local');
    const params = { maxNewTokens: 6, temperature: 0.7, topP: 0.9, seed: 5, stop: ['\n'] };
    const out = await g.generate([{ prompt: 'Definition:', numSamples: 2 }, { prompt: 'Input: x', numSamples: 1 }], params);
    const ref = await generate(model, [{ prompt: 'Definition:', numSamples: 2 }, { prompt: 'Input: x', numSamples: 1 }], params);
    expect(out).toEqual(ref.outputs.map((o) => o.samples.map((s) => ({ text: s.text, finishReason: s.finishReason, tokens: s.tokenIds.length }))));
    // temperature 0 means greedy
    const greedy = await g.generate([{ prompt: 'abc', numSamples: 2 }], { maxNewTokens: 5, temperature: 0, seed: 1 });
    expect(greedy[0][0]).toEqual(greedy[0][1]);
    await g.close(); // does not own the model: it stays usable
    expect((await generate(model, [{ prompt: 'a' }], { maxNewTokens: 1, greedy: true })).outputs).toHaveLength(1);
  });
});

describe("transfer's LocalRangeGenerator", () => {
  it('decodes a temperature too small to compute (1e-40) greedily, as temperature 0', async () => {
    const g = await LocalRangeGenerator.create(model);
    const params = { maxNewTokens: 8, seed: 1 };
    const requests = [{ prompt: 'Definition:', first: 0, count: 2 }];
    const greedy = await g.generateRange(requests, { ...params, temperature: 0 });
    expect(greedy[0][0]).toEqual(greedy[0][1]);
    expect(await g.generateRange(requests, { ...params, temperature: 1e-40 })).toEqual(greedy);
    // and an ordinary temperature does sample (so the line above is not vacuous)
    expect(await g.generateRange(requests, { ...params, temperature: 1 })).not.toEqual(greedy);
  });
});
