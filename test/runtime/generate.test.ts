import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode, UitError } from '../../src/errors.js';
import { KvCache, drawFromProbs, generate, loadModel, step, type GenerateOptions, type Model } from '../../src/runtime/index.js';
import { drawnNear } from '../../scripts/check-parity.mjs';
import { FIXTURE, copyFixture, maxAbsDiff, tempDir } from './helpers.js';

const PROMPTS = ['Definition: In this task, you are given', 'Input: What is 2+2?\nOutput:', 'x'];
const SAMPLED: GenerateOptions = { maxNewTokens: 12, temperature: 0.9, topK: 50, topP: 0.95, seed: 7 };

let model: Model;
let slow: Model;
beforeAll(async () => {
  model = await loadModel(FIXTURE, { threads: 1 });
  slow = await loadModel(FIXTURE, { threads: 1, fastGraphs: false });
});
afterAll(async () => {
  await model.dispose();
  await slow.dispose();
});

const ids = (r: Awaited<ReturnType<typeof generate>>) => r.outputs.map((o) => o.samples.map((s) => s.tokenIds));

describe('seeded sampling', () => {
  it('gives the same samples at batch sizes 1, 4 and 16', async () => {
    const requests = PROMPTS.map((prompt) => ({ prompt, numSamples: 3 }));
    const b1 = await generate(model, requests, { ...SAMPLED, batchSize: 1 });
    const b4 = await generate(model, requests, { ...SAMPLED, batchSize: 4 });
    const b16 = await generate(model, requests, { ...SAMPLED, batchSize: 16 });
    expect(ids(b4)).toEqual(ids(b1));
    expect(ids(b16)).toEqual(ids(b1));
    // the samples of one prompt really are sampled (not all the same)
    for (const o of b1.outputs) expect(new Set(o.samples.map((s) => s.tokenIds.join())).size).toBeGreaterThan(1);
    expect(b1.outputs[0].samples.map((s) => s.index)).toEqual([0, 1, 2]);
    expect(b16.timings.newTokens).toBe(9 * 12);
  });

  it('N samples in one call equal N calls that draw one sample each', async () => {
    const all = await generate(model, [{ prompt: PROMPTS[1], numSamples: 4 }], SAMPLED);
    for (let i = 0; i < 4; i++) {
      const one = await generate(model, [{ prompt: PROMPTS[1], numSamples: 1, firstSample: i }], SAMPLED);
      expect(one.outputs[0].samples[0]).toEqual(all.outputs[0].samples[i]);
    }
  });

  it('does not depend on the prompt order or on the other prompts in the batch', async () => {
    const a = await generate(model, [{ prompt: PROMPTS[0], numSamples: 2 }, { prompt: PROMPTS[2], numSamples: 2 }], SAMPLED);
    const b = await generate(model, [{ prompt: PROMPTS[2], numSamples: 2 }, { prompt: PROMPTS[0], numSamples: 2 }], SAMPLED);
    expect(ids(a)[0]).toEqual(ids(b)[1]);
    expect(ids(a)[1]).toEqual(ids(b)[0]);
  });

  it('changes with the seed', async () => {
    const a = await generate(model, [{ prompt: PROMPTS[0], numSamples: 2 }], SAMPLED);
    const b = await generate(model, [{ prompt: PROMPTS[0], numSamples: 2 }], { ...SAMPLED, seed: 8 });
    expect(ids(a)).not.toEqual(ids(b));
  });

  it('probs_last is softmax(logits / temperature), computed in the graph', async () => {
    expect(model.backend.fast.probs).toBe(true);
    expect(slow.backend.fast.probs).toBe(false);
    const p = model.tokenizer.encode(PROMPTS[1]);
    for (const t of [1, 0.7]) {
      const logitsRun = await step(model.backend, KvCache.create(model.backend.shape, 1, 0), p, p.length, 'last');
      const probsRun = await step(model.backend, KvCache.create(model.backend.shape, 1, 0), p, p.length, 'last', { temperature: t });
      expect(probsRun.last).toBeUndefined();
      const logits = logitsRun.last!;
      const max = Math.max(...logits);
      const e = Array.from(logits, (l) => Math.exp((l - max) / t));
      const sum = e.reduce((a, b) => a + b, 0);
      const probs = probsRun.probs!;
      expect(probs.length).toBe(logits.length);
      expect(maxAbsDiff(probs, Float32Array.from(e, (x) => x / sum))).toBeLessThan(1e-6);
      expect(Math.abs(probs.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-5);
    }
    await expect(step(model.backend, KvCache.create(model.backend.shape, 1, 0), p, p.length, 'logprobs', { temperature: 1 })).rejects.toThrow(/temperature needs want "last"/);
    await expect(step(slow.backend, KvCache.create(slow.backend.shape, 1, 0), p, p.length, 'last', { temperature: 1 })).rejects.toThrow(/probs_last/);
  });

  it('token_sampled draws in the graph the token sampleFromProbs draws from probs_last with the same number', async () => {
    expect(model.backend.fast.sample).toBe(true);
    expect(model.info.graphSampling).toBe(true);
    // The fixture's 257 ids make 16 blocks of 17 with 15 padded zeros. Numbers at both ends of
    // [0, 1) and spread between; at temperature 0.02 most probabilities are exactly 0, so a draw
    // must skip them, and near 1 it must land on the last token of nonzero probability.
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const ends = [0, 2 ** -53, 1e-9, 0.5, 1 - 1e-9, 1 - 2 ** -53];
    let mismatches = 0;
    let draws = 0;
    for (const prompt of PROMPTS) {
      const p = model.tokenizer.encode(prompt);
      const rows = 48;
      const batch = Array.from({ length: rows }, () => p).flat();
      for (const t of [1, 0.7, 0.02]) {
        const u = Float64Array.from({ length: rows }, (_, r) => (r < ends.length ? ends[r] : rand()));
        const drawn = await step(model.backend, KvCache.create(model.backend.shape, rows, 0), batch, p.length, 'last', { temperature: t, sampleUniform: u });
        expect(drawn.probs).toBeUndefined();
        const dist = await step(model.backend, KvCache.create(model.backend.shape, rows, 0), batch, p.length, 'last', { temperature: t });
        const V = dist.vocabSize;
        const row = (r: number) => dist.probs!.subarray(r * V, (r + 1) * V);
        const want = Array.from(u, (x, r) => drawFromProbs(row(r), x));
        // The graph's block sums are float32: a u within rounding of a boundary may land on the
        // neighbour (a few draws in a million); any other difference is a wrong draw.
        const got = Array.from(drawn.sampled!);
        const off = got.map((tok, r) => (tok === want[r] ? -1 : r)).filter((r) => r >= 0);
        for (const r of off) expect(drawnNear(row(r), u[r], got[r]), `row ${r}: ${got[r]} instead of ${want[r]}`).toBe(true);
        mismatches += off.length;
        draws += rows;
        for (const [r, tok] of got.entries()) expect(dist.probs![r * V + tok]).toBeGreaterThan(0);
        if (t === 0.02) expect(dist.probs!.subarray(0, V).filter((x) => x === 0).length).toBeGreaterThan(V / 2);
        else expect(new Set(want).size).toBeGreaterThan(10);
      }
    }
    expect(draws).toBe(432);
    expect(mismatches).toBeLessThanOrEqual(1);
    const p = model.tokenizer.encode(PROMPTS[1]);
    const one = () => KvCache.create(model.backend.shape, 1, 0);
    await expect(step(model.backend, one(), p, p.length, 'last', { sampleUniform: Float64Array.of(0.5) })).rejects.toThrow(/sampleUniform needs a temperature/);
    await expect(step(model.backend, one(), p, p.length, 'last', { temperature: 1, sampleUniform: Float64Array.of(1) })).rejects.toThrow(/not in \[0, 1\)/);
    await expect(step(model.backend, one(), p, p.length, 'last', { temperature: 1, sampleUniform: Float64Array.of(0.1, 0.2) })).rejects.toThrow(/2 numbers for 1 rows/);
  });

  it('draws plain samples in the graph with the tokens of the JavaScript draw', async () => {
    const js = await loadModel(FIXTURE, { threads: 1, graphSampling: false });
    try {
      expect(js.backend.fast.sample).toBe(false);
      const requests = PROMPTS.map((prompt) => ({ prompt, numSamples: 3 }));
      for (const temperature of [1, 0.6]) {
        const opts = { maxNewTokens: 12, temperature, seed: 3 };
        const inGraph = await generate(model, requests, opts);
        expect(ids(inGraph)).toEqual(ids(await generate(js, requests, opts)));
        expect(new Set(ids(inGraph).flat().map((s) => s.join())).size).toBe(9);
      }
    } finally {
      await js.dispose();
    }
  });

  it('gives the same tokens on the fast graphs and on model.onnx', async () => {
    const requests = PROMPTS.map((prompt) => ({ prompt, numSamples: 2 }));
    expect(ids(await generate(slow, requests, SAMPLED))).toEqual(ids(await generate(model, requests, SAMPLED)));
    const greedy = { maxNewTokens: 10, greedy: true };
    expect(ids(await generate(slow, requests, greedy))).toEqual(ids(await generate(model, requests, greedy)));
    // The fast graph samples from its probs_last; the repetition penalty needs the logits, so that
    // chain runs in JS on both graphs.
    const penalised = { ...SAMPLED, repetitionPenalty: 1.3 };
    expect(ids(await generate(slow, requests, penalised))).toEqual(ids(await generate(model, requests, penalised)));
  });
});

describe('left padding', () => {
  it('does not change a prompt: greedy tokens identical, prefill logits within 1e-4', async () => {
    const short = PROMPTS[2];
    const long = PROMPTS[0];
    const alone = await generate(model, [{ prompt: short }], { maxNewTokens: 16, greedy: true });
    const padded = await generate(model, [{ prompt: long }, { prompt: short }], { maxNewTokens: 16, greedy: true });
    expect(padded.outputs[1].samples[0].tokenIds).toEqual(alone.outputs[0].samples[0].tokenIds);

    const s = model.tokenizer.encode(short);
    const l = model.tokenizer.encode(long);
    expect(l.length).toBeGreaterThan(s.length + 10);
    const one = KvCache.create(model.backend.shape, 1, 0);
    const a = await step(model.backend, one, s, s.length, 'last');
    const two = KvCache.create(model.backend.shape, 2, 0);
    const pad = l.length - s.length;
    const batchIds = [...l, ...new Array(pad).fill(0), ...s];
    const valid = Uint8Array.from([...l.map(() => 1), ...new Array(pad).fill(0), ...s.map(() => 1)]);
    const b = await step(model.backend, two, batchIds, l.length, 'last', { newValid: valid });
    const V = a.vocabSize;
    expect(maxAbsDiff(a.last!, b.last!.subarray(V, 2 * V))).toBeLessThan(1e-4);
  });
});

describe('finishing', () => {
  it('stops at max new tokens with finish reason "length"', async () => {
    const r = await generate(model, [{ prompt: PROMPTS[0], numSamples: 2 }], { ...SAMPLED, maxNewTokens: 5 });
    for (const s of r.outputs[0].samples) {
      expect(s.finishReason).toBe('length');
      expect(s.tokenIds).toHaveLength(5);
      expect(s.text).toBe(model.tokenizer.decode(s.tokenIds));
    }
  });

  it('cuts at a stop string, and rows that stop leave the batch without disturbing the others', async () => {
    const opts = { ...SAMPLED, maxNewTokens: 24, temperature: 1.2, topK: undefined, topP: undefined };
    // Two prompts of different lengths (so rows differ in padding), three samples each: rows that
    // stop are compacted away and the other prompt's rows move into their places.
    const requests = [{ prompt: PROMPTS[2], numSamples: 3 }, { prompt: PROMPTS[1], numSamples: 3 }];
    const base = await generate(model, requests, opts);
    const all = base.outputs.flatMap((o) => o.samples);
    const texts = all.map((s) => s.text);
    // a printable two-character string that some samples contain (after their 2nd char) and some do not
    let stop: string | undefined;
    for (const t of texts) {
      for (let i = 2; i + 2 <= t.length && !stop; i++) {
        const c = t.slice(i, i + 2);
        const hits = texts.filter((x) => x.includes(c)).length;
        if (/^[\x20-\x7e]{2}$/.test(c) && hits > 0 && hits < texts.length) stop = c;
      }
    }
    expect(stop, `no usable stop string in ${JSON.stringify(texts)}`).toBeDefined();
    const r = await generate(model, requests, { ...opts, stop: [stop!] });
    let stopped = 0;
    r.outputs.flatMap((o) => o.samples).forEach((s, i) => {
      const orig = all[i];
      const at = orig.text.indexOf(stop!);
      if (at === -1) {
        expect(s).toEqual(orig);
      } else {
        stopped++;
        expect(s.finishReason).toBe('stop');
        expect(s.text).toBe(orig.text.slice(0, at));
        expect(orig.tokenIds.slice(0, s.tokenIds.length)).toEqual(s.tokenIds);
        expect(s.tokenIds.length).toBeLessThan(orig.tokenIds.length);
      }
    });
    expect(stopped).toBeGreaterThan(0);
  });

  it('ends a row at EOS (generation_config.json) and leaves EOS out of the text', async () => {
    const base = await generate(model, [{ prompt: PROMPTS[0], numSamples: 3 }], { ...SAMPLED, maxNewTokens: 16 });
    const sample = base.outputs[0].samples[1].tokenIds;
    const eos = sample[4];
    const cut = sample.indexOf(eos);
    const tmp = tempDir();
    try {
      const dir = copyFixture(tmp.dir);
      writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 256, eos_token_id: [eos] }));
      const m = await loadModel(dir, { threads: 1 });
      try {
        expect(m.tokenizer.eosTokenIds).toEqual([eos]);
        const r = await generate(m, [{ prompt: PROMPTS[0], numSamples: 3 }], { ...SAMPLED, maxNewTokens: 16 });
        const s = r.outputs[0].samples[1];
        expect(s.finishReason).toBe('eos');
        expect(s.tokenIds).toEqual(sample.slice(0, cut + 1));
        expect(s.text).toBe(m.tokenizer.decode(sample.slice(0, cut)));
        // and with stopOnEos: false it runs to the end
        const r2 = await generate(m, [{ prompt: PROMPTS[0], numSamples: 3 }], { ...SAMPLED, maxNewTokens: 16, stopOnEos: false });
        expect(r2.outputs[0].samples[1].tokenIds).toEqual(sample);
      } finally {
        await m.dispose();
      }
    } finally {
      tmp.cleanup();
    }
  });
});

describe('tiny temperatures (issue 21)', () => {
  it('decode greedily, their limit, on every path of the trained model instead of degenerating', async () => {
    // uit-tiny's real logits, where 1/1e-40 overflowed float32 (the graph's inv_temperature, the JS
    // chain's Float32Array) and the text became `!!!!!!!!`.
    const paths = [
      ['graph sampling', { threads: 1 }],
      ['probs_last + JS draw', { threads: 1, graphSampling: false }],
      ['model.onnx + JS chain', { threads: 1, fastGraphs: false }],
    ] as const;
    for (const [path, opts] of paths) {
      const m = await loadModel('models/uit-tiny', opts);
      try {
        const requests = [{ prompt: 'Hi', numSamples: 2 }, { prompt: 'Definition: In this task, you are given' }];
        const greedy = await generate(m, requests, { maxNewTokens: 8, greedy: true, seed: 1 });
        expect(greedy.outputs[0].samples[0].text, path).not.toMatch(/^!+$/);
        for (const temperature of [1e-40, 1e-300, 5e-6]) {
          const tiny = await generate(m, requests, { maxNewTokens: 8, temperature, topP: 0.9, seed: 1 });
          expect(ids(tiny), `${path}, t=${temperature}`).toEqual(ids(greedy));
        }
      } finally {
        await m.dispose();
      }
    }
  });

  it('the graph refuses a temperature whose inverse overflows its float32 input', async () => {
    const p = model.tokenizer.encode('x');
    const err = await step(model.backend, KvCache.create(model.backend.shape, 1, 0), p, p.length, 'last', { temperature: 1e-39 }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/overflows float32/);
  });
});

describe('options', () => {
  it('repetition penalty changes greedy output', async () => {
    const plain = await generate(model, [{ prompt: PROMPTS[0] }], { maxNewTokens: 12, greedy: true });
    const penal = await generate(model, [{ prompt: PROMPTS[0] }], { maxNewTokens: 12, greedy: true, repetitionPenalty: 3 });
    expect(ids(penal)).not.toEqual(ids(plain));
  });

  it('rejects impossible options with a usage error', async () => {
    for (const bad of [{ maxNewTokens: 0 }, { maxNewTokens: 4, temperature: -1 }, { maxNewTokens: 4, topP: 0 }, { maxNewTokens: 4, topK: 0.5 }]) {
      const err = await generate(model, [{ prompt: 'x' }], bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UitError);
      expect((err as UitError).exitCode).toBe(ExitCode.USAGE);
    }
  });

  it('stops each row at the model\'s position limit, whatever its batch neighbours', async () => {
    const tmp = tempDir();
    try {
      const dir = copyFixture(tmp.dir);
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, n_positions: 40 }));
      const m = await loadModel(dir, { threads: 1 });
      try {
        expect(m.info.maxPositions).toBe(40);
        const long = 'x'.repeat(30);
        const opts = { maxNewTokens: 20, greedy: true };
        const both = await generate(m, [{ prompt: long }, { prompt: 'short' }], opts);
        const alone = await generate(m, [{ prompt: 'short' }], opts);
        expect(both.outputs[0].samples[0].tokenIds).toHaveLength(10);
        expect(both.outputs[0].samples[0].finishReason).toBe('length');
        expect(both.outputs[1].samples[0].tokenIds).toEqual(alone.outputs[0].samples[0].tokenIds);
        expect(alone.outputs[0].samples[0].tokenIds).toHaveLength(20);
        const err = await generate(m, [{ prompt: 'y'.repeat(40) }], opts).catch((e: unknown) => e);
        expect((err as UitError).exitCode).toBe(ExitCode.BAD_INPUT);
        expect((err as Error).message).toMatch(/the prompt has 40 tokens; the model takes at most 40 positions/);
      } finally {
        await m.dispose();
      }
    } finally {
      tmp.cleanup();
    }
  });

  it('starts an empty prompt from BOS', async () => {
    const r = await generate(model, [{ prompt: '' }], { maxNewTokens: 3, greedy: true });
    expect(r.outputs[0].promptTokens).toBe(1);
    expect(r.outputs[0].samples[0].tokenIds).toHaveLength(3);
  });
});
