// generate() pinned: exact ids and texts from the committed models, the counters it reports, the
// progress calls it makes, and the errors it gives (issue 26: every one of these was a mutant that
// no test saw). The literals come from the code at the time; the sampled ones are fixed by the
// seeded streams (sampling.test.ts pins those against an independent implementation).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode, UitError } from '../../src/errors.js';
import { generate, loadModel, type ForwardInput, type GenerateOptions, type GenerateRequest, type GenerateResult, type Model } from '../../src/runtime/index.js';
import { FIXTURE, withFixtureCopy, withForward } from './helpers.js';

let fixture: Model;
let tiny: Model;
beforeAll(async () => {
  fixture = await loadModel(FIXTURE, { threads: 1 });
  tiny = await loadModel('models/uit-tiny', { threads: 1 });
});
afterAll(async () => {
  await fixture.dispose();
  await tiny.dispose();
});

const SAMPLED: GenerateOptions = { maxNewTokens: 8, temperature: 0.9, topK: 50, topP: 0.95, seed: 7 };
const ids = (r: GenerateResult) => r.outputs.map((o) => o.samples.map((s) => s.tokenIds));
const counters = ({ promptTokens, newTokens, steps, draftedTokens, acceptedTokens }: GenerateResult['timings']) => ({ promptTokens, newTokens, steps, draftedTokens, acceptedTokens });

describe('generate, pinned', () => {
  it('sampled ids, sample indices and counters on the fixture', async () => {
    const before = performance.now();
    const r = await generate(fixture, [{ prompt: 'Input: x', numSamples: 2 }, { prompt: 'ab', firstSample: 3 }], { ...SAMPLED, batchSize: 2 });
    const wall = performance.now() - before;
    expect(ids(r)).toEqual([
      [
        [74, 21, 147, 151, 225, 14, 180, 48],
        [158, 232, 234, 222, 110, 42, 8, 48],
      ],
      [[79, 222, 238, 238, 3, 73, 222, 81]],
    ]);
    expect(r.outputs.map((o) => o.samples.map((s) => s.index))).toEqual([[0, 1], [3]]);
    expect(r.outputs.map((o) => o.promptTokens)).toEqual([8, 2]);
    expect(r.outputs.flatMap((o) => o.samples.map((s) => s.finishReason))).toEqual(['length', 'length', 'length']);
    // two batches (the two samples of 'Input: x', then 'ab'), each prompt prefilled once: three
    // rows of eight tokens, seven steps a batch
    expect(counters(r.timings)).toEqual({ promptTokens: 10, newTokens: 24, steps: 14, draftedTokens: 0, acceptedTokens: 0 });
    const { prefillMs, decodeMs, totalMs } = r.timings;
    expect(prefillMs).toBeGreaterThan(0);
    expect(decodeMs).toBeGreaterThan(0);
    expect(totalMs).toBeGreaterThanOrEqual(prefillMs + decodeMs);
    expect(totalMs).toBeLessThanOrEqual(wall);
  });

  it("a request's seed overrides the options' seed, and the seed defaults to 0", async () => {
    const one = async (seed: number | undefined, reqSeed?: number) => ids(await generate(fixture, [{ prompt: 'ab', seed: reqSeed }], { ...SAMPLED, seed }))[0][0];
    const seven = await one(7);
    expect(await one(8, 7)).toEqual(seven);
    expect(await one(7, 8)).toEqual(await one(8));
    expect(await one(7, 8)).not.toEqual(seven);
    expect(await one(undefined)).toEqual(await one(0));
    expect(await one(undefined)).not.toEqual(seven);
    // no temperature is temperature 1
    const t1 = await generate(fixture, [{ prompt: 'ab' }], { maxNewTokens: 8, seed: 7, temperature: 1 });
    expect(ids(await generate(fixture, [{ prompt: 'ab' }], { maxNewTokens: 8, seed: 7 }))).toEqual(ids(t1));
    expect(ids(t1)).not.toEqual([[seven]]);
    // prompt ids are the prompt's tokens
    expect(ids(await generate(fixture, [{ promptIds: fixture.tokenizer.encode('ab') }], SAMPLED))[0][0]).toEqual(seven);
    // a request's seed is checked as the options' seed is, greedy or not
    for (const greedy of [false, true]) {
      const err = await generate(fixture, [{ prompt: 'ab' }, { prompt: 'x', seed: 1.5 }], { ...SAMPLED, greedy }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UitError);
      expect((err as UitError).exitCode).toBe(ExitCode.USAGE);
      expect((err as Error).message).toBe('request 1: seed must be an integer, got 1.5');
    }
  });

  it('the repetition penalty counts the prompt tokens, not only the generated ones', async () => {
    const prompt = 'Definition: In this task, you are given a question. Answer it.\nInput:';
    const plain = await generate(tiny, [{ prompt }], { maxNewTokens: 12, greedy: true });
    const penal = await generate(tiny, [{ prompt }], { maxNewTokens: 12, greedy: true, repetitionPenalty: 1.3 });
    expect(plain.outputs[0].samples[0].text).toBe(' The task is to generate the correct answer to the question.');
    expect(penal.outputs[0].samples[0].text).toBe(' The Bestan is an incorrectly to the ben');
  });

  it('greedy drafting: the draft schedule and the progress calls, kept drafts and refused ones', async () => {
    const calls: number[] = [];
    const loop = await generate(fixture, [{ prompt: 'abc abc abc abc abc abc abc' }], { maxNewTokens: 30, greedy: true, onTokens: (n) => calls.push(n) });
    expect(loop.outputs[0].samples[0].tokenIds).toEqual([238, ...new Array<number>(29).fill(169)]);
    // a 2-token match first appears after four tokens; then drafts of 8, 8 and the 7 the budget leaves
    expect(calls).toEqual([1, 1, 1, 1, 8, 1, 8, 1, 7, 1]);
    expect(counters(loop.timings)).toEqual({ promptTokens: 27, newTokens: 30, steps: 6, draftedTokens: 23, acceptedTokens: 23 });

    calls.length = 0;
    const prose = await generate(tiny, [{ prompt: 'Definition: In this task, you are given a question. Answer it.\nInput:' }], { maxNewTokens: 30, greedy: true, onTokens: (n) => calls.push(n) });
    const s = prose.outputs[0].samples[0];
    expect(s.text).toBe(' The task is to generate the correct answer to the question.\nOutput: Yes');
    expect(s.finishReason).toBe('eos');
    expect(s.tokenIds.at(-1)).toBe(4095);
    // every draft refused: no progress call for them, and each refusal shortens the next draft
    expect(calls).toEqual(new Array<number>(18).fill(1));
    expect(counters(prose.timings)).toEqual({ promptTokens: 18, newTokens: 18, steps: 17, draftedTokens: 15, acceptedTokens: 0 });
  });

  it('the forwards it runs: shared prefix, padded rest, row buffers grown by chunks, and what each asks of the graph', async () => {
    // Each forward as "rows seq past shared", then the temperature the graph applies (probs_last),
    // the numbers it draws with (token_sampled) and the drafts it verifies (token_argmax); in runs.
    const calls: string[] = [];
    const rec = withForward(fixture, (next, input: ForwardInput, want, fetchKv) => {
      const sig = [input.rows, input.seq, input.pastLength, input.shared?.length ?? 0].join(' ');
      const extra = [input.temperature !== undefined && `t=${input.temperature}`, input.sampleUniform && `u=${input.sampleUniform.length}`, input.argmaxTail && `draft=${input.argmaxTail}`];
      const c = [sig, ...extra.filter(Boolean)].join(' ');
      calls.push(c);
      return next(input, want, fetchKv);
    });
    const runs = async (requests: GenerateRequest[], opts: Partial<GenerateOptions>) => {
      calls.length = 0;
      await generate(rec, requests, { maxNewTokens: 4, seed: 1, stopOnEos: false, ...opts });
      const out: [string, number][] = [];
      for (const c of calls) {
        if (out.length > 0 && out[out.length - 1][0] === c) out[out.length - 1][1]++;
        else out.push([c, 1]);
      }
      return out;
    };
    const two = [{ prompt: 'Input: x', numSamples: 2 }, { prompt: 'Input: yz' }];
    // 'Input: ' (7 tokens) once, the rests left-padded to 2; the rows' own buffers start with room
    // for 8 tokens and grow by chunks; plain sampling draws in the graph
    expect(await runs(two, { temperature: 0.7, maxNewTokens: 70 })).toEqual([
      ['1 7 0 0 t=0.7', 1],
      ['2 2 0 7 t=0.7', 1],
      ['3 1 10 7 t=0.7 u=3', 9],
      ['3 1 18 7 t=0.7 u=3', 8],
      ['3 1 26 7 t=0.7 u=3', 8],
      ['3 1 34 7 t=0.7 u=3', 8],
      ['3 1 43 7 t=0.7 u=3', 9],
      ['3 1 54 7 t=0.7 u=3', 11],
      ['3 1 68 7 t=0.7 u=3', 14],
      ['3 1 85 7 t=0.7 u=3', 2],
    ]);
    // top-k runs in JS on the graph's probabilities; room for only the 4 tokens asked for
    expect(await runs(two, { temperature: 0.7, topK: 5 })).toEqual([
      ['1 7 0 0 t=0.7', 1],
      ['2 2 0 7 t=0.7', 1],
      ['3 1 6 7 t=0.7', 3],
    ]);
    // the repetition penalty needs the logits; one prompt is shared whole
    expect(await runs([{ prompt: 'Input: x', numSamples: 2 }], { temperature: 0.7, repetitionPenalty: 1.2 })).toEqual([
      ['1 8 0 0', 1],
      ['2 1 4 8', 3],
    ]);
    // one greedy row verifies its drafts in one forward each
    expect(await runs([{ prompt: 'abc abc abc abc abc abc abc' }], { greedy: true, maxNewTokens: 30 })).toEqual([
      ['1 27 0 0', 1],
      ['1 1 8 27', 3],
      ['1 9 8 27 draft=8', 1],
      ['1 9 16 27 draft=8', 1],
      ['1 8 24 27 draft=7', 1],
    ]);
    // model.onnx (no fast graphs): each step's past is exactly what came before, one slot more a step
    const slow = await loadModel(FIXTURE, { threads: 1, fastGraphs: false });
    try {
      calls.length = 0;
      await generate(withForward(slow, (next, input: ForwardInput, want, fetchKv) => (calls.push(`${input.rows} ${input.seq} ${input.pastLength}`), next(input, want, fetchKv))), two, { maxNewTokens: 4, temperature: 0.7, seed: 1 });
      expect(calls).toEqual(['2 9 0', '3 1 9', '3 1 10', '3 1 11']);
    } finally {
      await slow.dispose();
    }
    // rows' buffers are sized for the row that may generate longest (here the short prompt, under a
    // 40-position model)
    const fortyPositions = (dir: string) => {
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, n_positions: 40 }));
    };
    await withFixtureCopy(fortyPositions, async (m) => {
      calls.length = 0;
      const r = await generate(withForward(m, (next, input: ForwardInput, want, fetchKv) => (calls.push(`${input.rows} ${input.pastLength}`), next(input, want, fetchKv))), [{ prompt: 'x'.repeat(35) }, { prompt: 'short' }], { maxNewTokens: 20, greedy: true });
      expect(r.outputs.map((o) => o.samples[0].tokenIds.length)).toEqual([5, 20]);
      expect(calls.slice(0, 3)).toEqual(['2 0', '2 44', '2 44']); // 35 + min(20, a chunk of 9)
    });
  });

  it('numSamples 0 gives no samples; a bad count is refused', async () => {
    const r = await generate(fixture, [{ prompt: 'ab', numSamples: 0 }, { prompt: 'x', numSamples: 1 }], SAMPLED);
    expect(r.outputs.map((o) => o.samples.length)).toEqual([0, 1]);
    const none = await generate(fixture, [{ prompt: 'ab', numSamples: 0 }], SAMPLED);
    expect(none.outputs).toEqual([{ promptTokens: 2, samples: [] }]);
    expect(counters(none.timings)).toEqual({ promptTokens: 0, newTokens: 0, steps: 0, draftedTokens: 0, acceptedTokens: 0 });
    for (const numSamples of [-1, 1.5]) {
      const err = await generate(fixture, [{ prompt: 'x' }, { prompt: 'ab', numSamples }], SAMPLED).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UitError);
      expect((err as UitError).exitCode).toBe(ExitCode.USAGE);
      expect((err as Error).message).toBe('request 1: numSamples must be a non-negative integer');
    }
    for (const firstSample of [-1, 0.5]) {
      const err = await generate(fixture, [{ prompt: 'ab', firstSample }], SAMPLED).catch((e: unknown) => e);
      expect((err as UitError).exitCode).toBe(ExitCode.USAGE);
      expect((err as Error).message).toBe('request 0: firstSample must be a non-negative integer');
    }
  });

  it('names the bad option in its usage error', async () => {
    const cases: [Partial<GenerateOptions>, string][] = [
      [{ maxNewTokens: 0 }, 'max new tokens must be a positive integer, got 0'],
      [{ maxNewTokens: 2.5 }, 'max new tokens must be a positive integer, got 2.5'],
      [{ batchSize: 0 }, 'batch size must be a positive integer'],
      [{ batchSize: 1.5 }, 'batch size must be a positive integer'],
      [{ seed: 0.5 }, 'seed must be an integer, got 0.5'],
      [{ seed: 2 ** 53 }, `seed must be an integer, got ${2 ** 53}`],
      [{ draftTokens: -1 }, 'draft tokens must be a non-negative integer'],
      [{ draftTokens: 0.5 }, 'draft tokens must be a non-negative integer'],
      [{ topK: 0.5 }, 'top-k must be a positive integer, got 0.5'],
      [{ repetitionPenalty: 0 }, 'repetition penalty must be > 0, got 0'],
    ];
    for (const [bad, message] of cases) {
      const err = await generate(fixture, [{ prompt: 'x' }], { maxNewTokens: 2, ...bad }).catch((e: unknown) => e);
      expect(err, message).toBeInstanceOf(UitError);
      expect((err as UitError).exitCode).toBe(ExitCode.USAGE);
      expect((err as Error).message).toBe(message);
    }
    // and the edges that are allowed
    const ok = await generate(fixture, [{ prompt: 'x' }], { maxNewTokens: 1, greedy: true, batchSize: 1, seed: 2 ** 53 - 1, draftTokens: 0 });
    expect(ok.outputs[0].samples[0].tokenIds).toHaveLength(1);
  });

  it("addSpecialTokens adds the tokenizer's template tokens to the prompt", async () => {
    // a template that starts every text with <|endoftext|> (id 256), as Llama's does with <s>
    const template = (dir: string) => {
      const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
      const special = { '<|endoftext|>': { id: '<|endoftext|>', ids: [256], tokens: ['<|endoftext|>'] } };
      const single = [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }];
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ ...tj, post_processor: { type: 'TemplateProcessing', single, pair: single, special_tokens: special } }));
    };
    await withFixtureCopy(template, async (m) => {
      const opts = { maxNewTokens: 3, greedy: true };
      const withBos = await generate(m, [{ prompt: 'ab' }], { ...opts, addSpecialTokens: true });
      expect(withBos.outputs[0].promptTokens).toBe(3);
      expect(withBos.outputs).toEqual((await generate(m, [{ promptIds: [256, 97, 98] }], opts)).outputs);
      expect((await generate(m, [{ prompt: 'ab' }], opts)).outputs[0].promptTokens).toBe(2);
    });
  });

  it('an empty prompt starts from BOS, or is refused when the tokenizer has none', async () => {
    const fromBos = await generate(fixture, [{ prompt: '' }], { maxNewTokens: 3, greedy: true });
    expect(fromBos.outputs[0].samples[0].tokenIds).toEqual((await generate(fixture, [{ promptIds: [256] }], { maxNewTokens: 3, greedy: true })).outputs[0].samples[0].tokenIds);
    const noBos = (dir: string) => {
      writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 256 }));
      for (const f of ['config.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
        const j = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>;
        delete j.bos_token_id;
        delete j.bos_token;
        writeFileSync(join(dir, f), JSON.stringify(j));
      }
    };
    await withFixtureCopy(noBos, async (m) => {
      expect(m.tokenizer.bosTokenId).toBeUndefined();
      const err = await generate(m, [{ prompt: 'x' }, { prompt: '' }], { maxNewTokens: 2, greedy: true }).catch((e: unknown) => e);
      expect((err as UitError).exitCode).toBe(ExitCode.BAD_INPUT);
      expect((err as Error).message).toBe('request 1: the prompt is empty and the tokenizer has no BOS token to start from');
    });
  });
});
