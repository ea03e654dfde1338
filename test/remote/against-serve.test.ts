// The OpenAI-compatible backend (src/remote/) against the real `uit serve` (src/serve/) on
// 127.0.0.1: real HTTP both ways, the tiny GPT-J fixture behind it, and the runtime's generate()
// as the reference for every text.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache/cache.js';
import { ExitCode } from '../../src/errors.js';
import { CachedGenerator } from '../../src/generator/cached-generator.js';
import { RemoteError } from '../../src/remote/errors.js';
import { OpenAIGenerator, type OpenAIGeneratorOptions } from '../../src/remote/generator.js';
import type { RetryEvent } from '../../src/remote/http.js';
import { OpenAIClient } from '../../src/remote/openai.js';
import { generate, loadModel, type GenerateOptions, type Model } from '../../src/runtime/index.js';
import { startServer, type RunningServer, type ServeOptions } from '../../src/serve/index.js';
import type { GenerationParams } from '../../src/generator/generator.js';
import { FIXTURE, tempDir } from '../runtime/helpers.js';

const NAME = 'tiny-gptj';
const KEY = 'sk-uit-local';
const PROMPT = 'Instruction: Classify the review.\nDefinition:';
const PARAMS: GenerationParams = { maxNewTokens: 12, temperature: 0.8, topP: 0.9, seed: 42 };
const FAST = { baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 30_000 };

let model: Model;
let server: RunningServer;
const tmp = tempDir('uit-against-serve-');

async function serveWith(opts: Partial<ServeOptions> = {}): Promise<RunningServer> {
  return startServer({ model, port: 0, apiKey: KEY, ...opts });
}

beforeAll(async () => {
  model = await loadModel(FIXTURE, { threads: 1 });
  server = await serveWith();
});
afterAll(async () => {
  await server.close();
  await model.dispose();
  tmp.cleanup();
});

function generator(opts: Partial<OpenAIGeneratorOptions> & { key?: string; retries?: number; onRetry?: (e: RetryEvent) => void; on?: RunningServer } = {}) {
  const { key, retries, onRetry, on, ...rest } = opts;
  return new OpenAIGenerator({
    client: {
      baseUrl: (on ?? server).baseUrl,
      apiKey: key ?? KEY,
      apiKeyEnv: 'UIT_TEST_KEY',
      http: { ...FAST, maxRetries: retries ?? 2, onRetry },
    },
    model: NAME,
    ...rest,
  });
}

/** What the runtime gives for one prompt: the reference texts. */
async function reference(prompt: string, numSamples: number, params: GenerationParams): Promise<string[]> {
  const opts: GenerateOptions = {
    maxNewTokens: params.maxNewTokens,
    ...(params.temperature === 0 ? { greedy: true } : { temperature: params.temperature, topP: params.topP }),
    stop: params.stop,
  };
  const r = await generate(model, [{ prompt, numSamples, seed: params.seed }], opts);
  return r.outputs[0].samples.map((s) => s.text);
}

async function remoteError(p: Promise<unknown>): Promise<RemoteError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(RemoteError);
    expect((e as RemoteError).exitCode).toBe(ExitCode.REMOTE);
    return e as RemoteError;
  }
  throw new Error('expected a RemoteError');
}

describe('the OpenAI backend against uit serve', () => {
  it('lists the served model', async () => {
    const client = new OpenAIClient({ baseUrl: server.baseUrl, apiKey: KEY });
    expect((await client.models()).data.map((m) => m.id)).toEqual([NAME]);
  });

  it('completions: n samples in one request, the same texts as the runtime for the same seed', async () => {
    const g = generator();
    expect(g.id).toBe(`api:${server.baseUrl}#${NAME}`);
    const before = server.status().batchedRequests;
    const [samples] = await g.generate([{ prompt: PROMPT, numSamples: 3 }], PARAMS);
    expect(server.status().batchedRequests - before).toBe(1); // one request for the 3 samples
    expect(samples.map((s) => s.text)).toEqual(await reference(PROMPT, 3, PARAMS));
    expect(samples.every((s) => s.finishReason === 'length')).toBe(true);
    expect(samples[0].meta).toMatchObject({ endpoint: 'completions', apiFinishReason: 'length', promptTokens: model.tokenizer.encode(PROMPT).length, completionTokens: 36 });
    expect(samples[0].meta.responseId).toMatch(/^cmpl-/);
    // seeded: the same call again gives the same texts
    const [again] = await g.generate([{ prompt: PROMPT, numSamples: 3 }], PARAMS);
    expect(again.map((s) => s.text)).toEqual(samples.map((s) => s.text));
  });

  it("repeat mode: sample i is one call with seed + i, the runtime's first sample of that seed", async () => {
    const [samples] = await generator({ samples: 'repeat' }).generate([{ prompt: PROMPT, numSamples: 3 }], PARAMS);
    const expected = await Promise.all([0, 1, 2].map(async (i) => (await reference(PROMPT, 1, { ...PARAMS, seed: PARAMS.seed + i }))[0]));
    expect(samples.map((s) => s.text)).toEqual(expected);
    expect(samples.map((s) => s.tokens)).toEqual([12, 12, 12]);
  });

  it('chat: a lone user message gives the completion texts; a system prompt gives the plain transcript', async () => {
    const [chat] = await generator({ endpoint: 'chat' }).generate([{ prompt: PROMPT, numSamples: 2 }], PARAMS);
    expect(chat.map((s) => s.text)).toEqual(await reference(PROMPT, 2, PARAMS));
    expect(chat[0].meta.responseId).toMatch(/^chatcmpl-/);
    const [sys] = await generator({ endpoint: 'chat', systemPrompt: 'You rewrite instructions.' }).generate([{ prompt: PROMPT, numSamples: 2 }], PARAMS);
    const transcript = `System: You rewrite instructions.\n\nUser: ${PROMPT}\n\nAssistant:`;
    expect(sys.map((s) => s.text)).toEqual(await reference(transcript, 2, PARAMS));
  });

  it('greedy and stop strings: the server cuts and says stop, as the runtime does', async () => {
    const long = { ...PARAMS, maxNewTokens: 32, seed: 21, temperature: 1, topP: undefined };
    const [[full]] = await generator().generate([{ prompt: PROMPT, numSamples: 1 }], long);
    const i = [...full.text].findIndex((c, j) => /[A-Za-z0-9]/.test(c) && full.text.indexOf(c) === j && j > 0);
    expect(i).toBeGreaterThan(0);
    const stop = full.text[i];
    const [[cut]] = await generator().generate([{ prompt: PROMPT, numSamples: 1 }], { ...long, stop: [stop, 'NEVER-SEEN'] });
    expect(cut.text).toBe(full.text.slice(0, i));
    expect(cut.finishReason).toBe('stop');
    expect(cut.meta.apiFinishReason).toBe('stop'); // cut by the server, not only by the client
    expect(cut.text).toBe((await reference(PROMPT, 1, { ...long, stop: [stop] }))[0]);

    const greedy = { ...PARAMS, temperature: 0 };
    const [[g]] = await generator().generate([{ prompt: PROMPT, numSamples: 1 }], greedy);
    expect(g.text).toBe((await reference(PROMPT, 1, greedy))[0]);
  });

  it('several prompts in parallel (the client sends them concurrently, the server batches them)', async () => {
    const prompts = ['Instruction: A\nDefinition:', 'Instruction: B\nDefinition:', 'Instruction: C\nDefinition:'];
    const out = await generator().generate(prompts.map((prompt) => ({ prompt, numSamples: 2 })), PARAMS);
    for (const [k, prompt] of prompts.entries()) expect(out[k].map((s) => s.text)).toEqual(await reference(prompt, 2, PARAMS));
  });

  it('through the cache: a rerun makes no HTTP request', async () => {
    const path = join(tmp.dir, 'cache.sqlite');
    const reqs = [
      { prompt: PROMPT, numSamples: 2 },
      { prompt: 'Instruction: other\nDefinition:', numSamples: 1 },
    ];
    const c1 = openCache(path);
    const first = await new CachedGenerator(generator(), c1).generate(reqs, PARAMS);
    c1.close();
    const served = server.status().batchedRequests;
    const c2 = openCache(path);
    const g2 = new CachedGenerator(generator(), c2);
    const again = await g2.generate(reqs, PARAMS);
    c2.close();
    expect(server.status().batchedRequests).toBe(served);
    expect(g2.stats).toEqual({ hits: 2, misses: 0, requestsSent: 0 });
    expect(again.map((r) => r.map((s) => s.text))).toEqual(first.map((r) => r.map((s) => s.text)));
    expect(first[0].map((s) => s.text)).toEqual(await reference(PROMPT, 2, PARAMS));
  });
});

describe('error paths, as the client reports them', () => {
  const one = [{ prompt: PROMPT, numSamples: 1 }];

  it('a wrong token and a missing token are 401 at once, naming the key variable', async () => {
    const retries: RetryEvent[] = [];
    const wrong = await remoteError(generator({ key: 'sk-wrong', onRetry: (e) => retries.push(e) }).generate(one, PARAMS));
    expect(wrong.details.status).toBe(401);
    expect(wrong.message).toContain('Incorrect API key provided');
    expect(wrong.message).toContain('check the key in $UIT_TEST_KEY');
    const missing = await remoteError(generator({ key: '', onRetry: (e) => retries.push(e) }).generate(one, PARAMS));
    expect(missing.message).toContain("You didn't provide an API key");
    expect(missing.message).toContain('$UIT_TEST_KEY is not set');
    expect(retries).toEqual([]);
  });

  it("an unknown model is a 404 with the server's message, not retried", async () => {
    const retries: RetryEvent[] = [];
    const g = new OpenAIGenerator({ client: { baseUrl: server.baseUrl, apiKey: KEY, http: { ...FAST, onRetry: (e) => retries.push(e) } }, model: 'gpt-3.5-turbo-instruct' });
    const e = await remoteError(g.generate(one, PARAMS));
    expect(e.details.status).toBe(404);
    expect(e.message).toContain("The model 'gpt-3.5-turbo-instruct' does not exist. This server serves 'tiny-gptj'");
    expect(retries).toEqual([]);
  });

  it('max_tokens over the limit is a 400 that says the limit', async () => {
    const tokens = await remoteError(generator().generate(one, { ...PARAMS, maxNewTokens: 513 }));
    expect([tokens.details.status, tokens.message]).toEqual([400, expect.stringContaining('max_tokens is 513; this server allows at most 512')]);
  });

  it('n over the limit is a 400 on n, which the client answers by asking one sample per call (seed + i)', async () => {
    const g = generator();
    const before = server.status().batchedRequests;
    const [samples] = await g.generate([{ prompt: PROMPT, numSamples: 17 }], { ...PARAMS, maxNewTokens: 3 });
    expect(samples).toHaveLength(17);
    expect(server.status().batchedRequests - before).toBe(17); // the refused n=17 never reached the model
    for (const i of [0, 16]) expect(samples[i].text).toBe((await reference(PROMPT, 1, { ...PARAMS, maxNewTokens: 3, seed: PARAMS.seed + i }))[0]);
  });

  it('an oversize body is a 413, not retried', async () => {
    const small = await serveWith({ maxBodyBytes: 4096 });
    try {
      const e = await remoteError(generator({ on: small }).generate([{ prompt: 'x'.repeat(10_000), numSamples: 1 }], PARAMS));
      expect(e.details.status).toBe(413);
      expect(e.message).toContain("larger than this server's limit of 4096 bytes");
    } finally {
      await small.close();
    }
  });

  it("a full queue's 503 is retried after the server's Retry-After, then succeeds", async () => {
    const busy = await serveWith({ maxQueue: 1 });
    try {
      const retries: RetryEvent[] = [];
      const g = generator({ on: busy, retries: 6, onRetry: (e) => retries.push(e) });
      // one long request runs, one waits, so the third finds the queue full
      const long = g.generate([{ prompt: PROMPT, numSamples: 16 }], { ...PARAMS, maxNewTokens: 300 });
      while (!(busy.status().running && busy.status().waiting === 0)) await new Promise((r) => setTimeout(r, 5));
      const queued = g.generate(one, PARAMS);
      while (busy.status().waiting !== 1) await new Promise((r) => setTimeout(r, 5));
      const third = await g.generate([{ prompt: 'third', numSamples: 1 }], PARAMS);
      expect(third[0].map((s) => s.text)).toEqual(await reference('third', 1, PARAMS));
      expect(retries.length).toBeGreaterThan(0);
      expect(retries[0]).toMatchObject({ status: 503, fromRetryAfter: true, delayMs: 1000 });
      expect((await long)[0]).toHaveLength(16);
      expect((await queued)[0]).toHaveLength(1);
    } finally {
      await busy.close();
    }
  });

  it('a stopped server: connection refused after the retries', async () => {
    const gone = await serveWith();
    const g = generator({ on: gone, retries: 2 });
    expect((await g.generate(one, { ...PARAMS, maxNewTokens: 2 }))[0]).toHaveLength(1);
    await gone.close();
    const retries: RetryEvent[] = [];
    const e = await remoteError(generator({ on: gone, retries: 2, onRetry: (r) => retries.push(r) }).generate(one, PARAMS));
    expect(e.message).toMatch(/failed after 3 attempts: ECONNREFUSED \(is the server running/);
    expect(retries.map((r) => r.reason)).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
  });
});
