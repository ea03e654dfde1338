// Prompt-lookup decoding: the drafts, and the engine's promise that greedy text does not change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { argmax, generate, loadModel, step, KvCache, type GenerateOptions, type Model } from '../../src/runtime/index.js';
import { lookupDraft } from '../../src/runtime/generation/prompt-lookup.js';
import { FIXTURE } from './helpers.js';

describe('lookupDraft', () => {
  it('continues the latest earlier occurrence of the longest matching suffix', () => {
    // "5 6 7" occurred twice; the later one was followed by 9.
    expect(lookupDraft([5, 6, 7, 8, 1, 5, 6, 7, 9, 2, 5, 6, 7], { maxDraft: 2 })).toEqual([9, 2]);
    // Only the last token matches: by default (2-token matches at least) no draft.
    expect(lookupDraft([4, 1, 2, 3, 9, 4], { maxDraft: 3 })).toEqual([]);
    expect(lookupDraft([4, 1, 2, 3, 9, 4], { maxDraft: 3, minNgram: 1 })).toEqual([1, 2, 3]);
    expect(lookupDraft([1, 2, 3], { maxDraft: 4 })).toEqual([]);
    expect(lookupDraft([1, 2, 1, 2], { maxDraft: 0 })).toEqual([]);
    expect(lookupDraft([1, 2, 1, 2], { maxDraft: 1 })).toEqual([1]);
  });

  it('falls back to a two-token match, and takes the n-gram lengths it is given', () => {
    // No earlier "9 1 2", but an earlier "1 2" (followed by 9).
    expect(lookupDraft([1, 2, 9, 5, 1, 2], { maxDraft: 3 })).toEqual([9, 5, 1]);
    // "1 2 3" occurred at the start (then 7); "2 3" last occurred later (then 8).
    const ctx = [1, 2, 3, 7, 0, 2, 3, 8, 1, 2, 3];
    expect(lookupDraft(ctx, { maxDraft: 2 })).toEqual([7, 0]);
    expect(lookupDraft(ctx, { maxDraft: 2, maxNgram: 2 })).toEqual([8, 1]);
    expect(lookupDraft(ctx, { maxDraft: 2, minNgram: 4 })).toEqual([]);
    // a context of one token has nothing earlier to match, even with one-token matches allowed
    expect(lookupDraft([5], { maxDraft: 2, minNgram: 1 })).toEqual([]);
  });

  it('drafts a loop periodically past the end of the context', () => {
    expect(lookupDraft([7, 1, 2, 1, 2], { maxDraft: 5 })).toEqual([1, 2, 1, 2, 1]);
    expect(lookupDraft([3, 3, 3], { maxDraft: 4 })).toEqual([3, 3, 3, 3]);
    expect(lookupDraft([3, 3], { maxDraft: 4, minNgram: 1 })).toEqual([3, 3, 3, 3]);
  });
});

const PROMPTS = [
  'Definition: In this task, you are given a question and you must answer it.\nInput: What is 2+2?\nOutput:',
  'abc abc abc abc abc abc abc',
  'Input: x\nOutput:',
];
const GREEDY: GenerateOptions = { maxNewTokens: 40, greedy: true, stopOnEos: false };

let model: Model;
let noShared: Model;
let slow: Model;
let tiny: Model;
beforeAll(async () => {
  model = await loadModel(FIXTURE, { threads: 1 });
  noShared = await loadModel(FIXTURE, { threads: 1, sharedKv: false });
  slow = await loadModel(FIXTURE, { threads: 1, fastGraphs: false });
  tiny = await loadModel('models/uit-tiny', { threads: 1 });
});
afterAll(async () => {
  for (const m of [model, noShared, slow, tiny]) await m.dispose();
});

describe('token_argmax', () => {
  it('is the argmax of the full logits at the drafted positions', async () => {
    const ids = model.tokenizer.encode(PROMPTS[0]);
    const n = 6;
    const fast = KvCache.create(model.backend.shape, 1, 0);
    const out = await step(model.backend, fast, ids, ids.length, 'last', { argmaxTail: n });
    const full = await step(slow.backend, KvCache.create(slow.backend.shape, 1, 0), ids, ids.length, 'logits', { writeKv: false });
    const V = full.vocabSize;
    const expected = Array.from({ length: n }, (_, j) => argmax(full.logits!.subarray((ids.length - 1 - n + j) * V, (ids.length - n + j) * V)));
    expect(Array.from(out.argmax!)).toEqual(expected);
    expect(argmax(out.last!)).toBe(argmax(full.logits!.subarray((ids.length - 1) * V, ids.length * V)));
  });
});

describe('greedy decoding with prompt-lookup drafts', () => {
  for (const [name, get] of [
    ['the fixture (shared prompt KV)', () => model],
    ['the fixture, prompt copied into the row', () => noShared],
    ['uit-tiny', () => tiny],
  ] as const) {
    it(`gives the plain greedy output on ${name}, in fewer forwards`, async () => {
      const m = get();
      expect(m.backend.fast.argmax).toBe(true);
      let accepted = 0;
      let rejected = 0;
      for (const prompt of PROMPTS) {
        for (const maxNewTokens of [1, 7, 40]) {
          const plain = await generate(m, [{ prompt }], { ...GREEDY, maxNewTokens, draftTokens: 0 });
          const drafted = await generate(m, [{ prompt }], { ...GREEDY, maxNewTokens });
          expect(drafted.outputs).toEqual(plain.outputs);
          expect(plain.timings.draftedTokens).toBe(0);
          expect(drafted.timings.newTokens).toBe(plain.timings.newTokens);
          expect(drafted.timings.steps + drafted.timings.acceptedTokens).toBe(plain.timings.steps);
          accepted += drafted.timings.acceptedTokens;
          rejected += drafted.timings.draftedTokens - drafted.timings.acceptedTokens;
        }
      }
      // Both branches ran: drafts kept, and drafts refused.
      expect(accepted).toBeGreaterThan(0);
      expect(rejected).toBeGreaterThan(0);
    });
  }

  it('stops at a stop string or EOS inside an accepted draft as plain decoding does', async () => {
    let stoppedAfterDrafts = 0;
    for (const [m, prompt] of [
      [model, PROMPTS[0]],
      [tiny, PROMPTS[0]],
      [tiny, PROMPTS[1]],
    ] as const) {
      const plain = await generate(m, [{ prompt }], { ...GREEDY, draftTokens: 0 });
      const text = plain.outputs[0].samples[0].text;
      // every printable two-character string of the output: stops early, late, inside drafts or not
      const stops = [...new Set(Array.from({ length: Math.max(0, text.length - 1) }, (_, i) => text.slice(i, i + 2)))].filter((c) => /^[\x20-\x7e]{2}$/.test(c));
      expect(stops.length).toBeGreaterThan(0);
      const every = Math.ceil(stops.length / 12);
      for (const opts of [...stops.filter((_, i) => i % every === 0).map((c) => ({ stop: [c] })), { stopOnEos: true }]) {
        const a = await generate(m, [{ prompt }], { ...GREEDY, ...opts, draftTokens: 0 });
        const b = await generate(m, [{ prompt }], { ...GREEDY, ...opts });
        expect(b.outputs).toEqual(a.outputs);
        if (b.outputs[0].samples[0].finishReason === 'stop' && b.timings.acceptedTokens > 0) stoppedAfterDrafts++;
      }
    }
    expect(stoppedAfterDrafts).toBeGreaterThan(0);
  });

  it('is off where it cannot keep the greedy output: repetition penalty, sampling, the slow path, several rows', async () => {
    const prompt = PROMPTS[1];
    const cases: [Model, GenerateOptions, { prompt: string; numSamples?: number }[]][] = [
      [model, { ...GREEDY, repetitionPenalty: 1.3 }, [{ prompt }]],
      [model, { ...GREEDY, greedy: false, temperature: 0.7, seed: 1 }, [{ prompt }]],
      [slow, GREEDY, [{ prompt }]],
      [model, GREEDY, [{ prompt }, { prompt: PROMPTS[0] }]],
    ];
    for (const [m, opts, reqs] of cases) {
      const r = await generate(m, reqs, opts);
      expect(r.timings.draftedTokens).toBe(0);
      expect(r.timings.steps).toBe(opts.maxNewTokens - 1);
    }
    expect(slow.backend.fast.argmax).toBeFalsy();
  });

  it('rejects a bad draft length', async () => {
    await expect(generate(model, [{ prompt: 'x' }], { ...GREEDY, draftTokens: -1 })).rejects.toThrow(/draft tokens/);
  });
});
