// `uit serve` shares the model fairly (issue 21): requests are cut into slices of --batch-size rows
// and take turns, so a small request does not wait for all of a big one, and slicing changes no
// text. Real HTTP on 127.0.0.1, the tiny GPT-J fixture, the runtime's unsliced generate() as the
// reference. Orders, never seconds.
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { generate, type GenerateOptions, type GenerateRequest } from '../../src/runtime/index.js';
import { sliceRequests, type RunningServer } from '../../src/serve/index.js';
import { call, fixtureServers, until } from './helpers.js';

const NAME = 'tiny-gptj';
const PROMPTS = ['Definition: In this task, you are given', 'Input: What is 2+2?\nOutput:', 'x', 'A longer prompt, to pad the others'];

const { model: fixture, serveWith } = fixtureServers();
const post = (on: RunningServer, body: object) => call(`${on.baseUrl}/completions`, { body });
const texts = (json: { choices: { text: string }[] }) => json.choices.map((c) => c.text);

/** The runtime's texts in one unsliced call (choice order: prompt * n + sample). */
async function reference(prompts: string[], n: number, seed: number, opts: GenerateOptions): Promise<string[]> {
  const requests: GenerateRequest[] = prompts.map((prompt) => ({ prompt, numSamples: n, seed }));
  const r = await generate(fixture(), requests, { ...opts, batchSize: 64 });
  return r.outputs.flatMap((o) => o.samples.map((s) => s.text));
}


describe('slices', () => {
  it('cover every row once, in row order, at most maxRows each; a request without rows still appears', () => {
    const requests: GenerateRequest[] = [
      { prompt: 'a', numSamples: 3, seed: 1 },
      { prompt: 'b', numSamples: 0 },
      { prompt: 'c', numSamples: 6, firstSample: 2 },
      { prompt: 'd' },
    ];
    const slices = sliceRequests(requests, 4);
    expect(slices.map((s) => s.reduce((n, p) => n + (p.request.numSamples ?? 1), 0))).toEqual([4, 4, 2]);
    const rows = slices.flatMap((s) => s.flatMap((p) => Array.from({ length: p.request.numSamples ?? 1 }, (_, k) => `${p.of}:${(p.request.firstSample ?? 0) + k}`)));
    expect(rows).toEqual(['0:0', '0:1', '0:2', '1:0', '2:2', '2:3', '2:4', '2:5', '2:6', '2:7', '3:0'].filter((r) => r !== '1:0'));
    expect(slices[0].map((p) => p.of)).toEqual([0, 1, 2]); // b rides in the slice it falls in
    expect(slices[0][0].request).toEqual({ prompt: 'a', numSamples: 3, firstSample: 0, seed: 1 });
    expect(sliceRequests([], 4)).toEqual([]);
  });
});

describe('turns', () => {
  it('a small request sent while a big one runs finishes before the big one', async () => {
    const s = await serveWith({ batchRows: 4 });
    try {
      // 4 prompts x n 4 = 16 rows: four slices of 4.
      const bigBody = { model: NAME, prompt: PROMPTS, n: 4, max_tokens: 24, temperature: 0.8, seed: 3 };
      const order: string[] = [];
      const big = post(s, bigBody).then((r) => (order.push('big'), r));
      await until(() => s.status().batches >= 1, 'the big request to start');
      const small = await post(s, { model: NAME, prompt: 'Hi', max_tokens: 2, seed: 1 });
      order.push('small');
      const b = await big;
      expect(order).toEqual(['small', 'big']);
      expect([small.status, b.status]).toEqual([200, 200]);
      expect(texts(b.json)).toEqual(await reference(PROMPTS, 4, 3, { maxNewTokens: 24, temperature: 0.8 }));
      expect(s.status().batches).toBe(5); // the big one's four slices and the small one
    } finally {
      await s.close();
    }
  });

  it('requests take turns: a later, shorter request finishes first, and both texts equal their solo runs', async () => {
    const s = await serveWith({ batchRows: 2 });
    try {
      const opts = { max_tokens: 12, temperature: 0.9 };
      const order: string[] = [];
      const a = post(s, { model: NAME, prompt: PROMPTS, n: 3, seed: 1, ...opts }).then((r) => (order.push('a'), r)); // 12 rows: 6 slices
      await until(() => s.status().batches >= 1, 'the first request to start');
      const b = post(s, { model: NAME, prompt: PROMPTS[1], n: 4, seed: 2, ...opts }).then((r) => (order.push('b'), r)); // 2 slices
      const [ra, rb] = await Promise.all([a, b]);
      expect(order).toEqual(['b', 'a']);
      expect(texts(ra.json)).toEqual(await reference(PROMPTS, 3, 1, { maxNewTokens: 12, temperature: 0.9 }));
      expect(texts(rb.json)).toEqual(await reference([PROMPTS[1]], 4, 2, { maxNewTokens: 12, temperature: 0.9 }));
    } finally {
      await s.close();
    }
  });
});

describe('texts', () => {
  it('are the same sliced (slices across prompts, neighbours riding along) and unsliced', async () => {
    const sliced = await serveWith({ batchRows: 4 });
    const whole = await serveWith({ batchRows: 64 });
    try {
      const sampled = { max_tokens: 10, temperature: 0.9, top_p: 0.95 };
      const bodies = [
        { model: NAME, prompt: PROMPTS, n: 3, seed: 5, ...sampled }, // 12 rows: slices of 4 cut prompts apart
        { model: NAME, prompt: 'ride along', seed: 6, ...sampled }, // same options: joins a slice's run
        { model: NAME, prompt: PROMPTS.slice(0, 3), n: 2, max_tokens: 10, temperature: 0 }, // greedy, 6 rows
        { model: NAME, prompt: [PROMPTS[2]], n: 5, seed: 7, max_tokens: 10, temperature: 1.1, top_k: 20, stop: ['e'] },
      ];
      // One server at a time: the two share the model.
      const a = await Promise.all(bodies.map((body) => post(sliced, body)));
      const b = await Promise.all(bodies.map((body) => post(whole, body)));
      expect(a.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      for (let i = 0; i < bodies.length; i++) {
        expect(a[i].json.choices, `request ${i}`).toEqual(b[i].json.choices);
        expect(a[i].json.usage, `request ${i}`).toEqual(b[i].json.usage);
      }
      expect(texts(a[0].json)).toEqual(await reference(PROMPTS, 3, 5, { maxNewTokens: 10, temperature: 0.9, topP: 0.95 }));
      expect(texts(a[2].json)).toEqual(await reference(PROMPTS.slice(0, 3), 2, 0, { maxNewTokens: 10, greedy: true }));
      expect(texts(a[3].json)).toEqual(await reference([PROMPTS[2]], 5, 7, { maxNewTokens: 10, temperature: 1.1, topK: 20, stop: ['e'] }));
      expect(sliced.status().batches).toBeGreaterThan(whole.status().batches);
    } finally {
      await sliced.close();
      await whole.close();
    }
  });
});

describe('leaving and stopping', () => {
  it("a client that leaves mid-request frees the model at the next turn: its other slices don't run", async () => {
    const s = await serveWith({ batchRows: 2 });
    try {
      const req = request(`${s.baseUrl}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
      req.on('error', () => {});
      req.end(JSON.stringify({ model: NAME, prompt: PROMPTS, n: 4, max_tokens: 30, seed: 1 })); // 16 rows: 8 slices
      await until(() => s.status().batches >= 1, 'the request to start');
      req.destroy();
      await until(() => !s.status().running, 'the model to be free');
      expect(s.status().batches).toBeLessThanOrEqual(2);
      expect(s.status().waiting).toBe(0);
      expect((await post(s, { model: NAME, prompt: 'next', max_tokens: 2 })).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('close() finishes a started request, all its slices, and answers one that had not started with 503', async () => {
    const s = await serveWith({ batchRows: 4 });
    const body = { model: NAME, prompt: PROMPTS, n: 4, max_tokens: 16, temperature: 0.8, seed: 8 };
    const started = post(s, body);
    await until(() => s.status().batches >= 1, 'the first request to start');
    const waiting = post(s, { model: NAME, prompt: 'late', max_tokens: 3, temperature: 0.5 });
    await until(() => s.status().active === 2, 'the second request to queue');
    await s.close();
    const [a, b] = await Promise.all([started, waiting]);
    expect(a.status).toBe(200);
    expect(texts(a.json)).toEqual(await reference(PROMPTS, 4, 8, { maxNewTokens: 16, temperature: 0.8 }));
    expect([b.status, b.json.error.code]).toEqual([503, 'server_shutting_down']);
  });
});
