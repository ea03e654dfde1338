// The OpenAI-compatible client and backend against a real HTTP server on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { OpenAIClient } from '../../src/remote/openai.js';
import { OpenAIGenerator, apiIdentity, applyStop } from '../../src/remote/generator.js';
import { backoffMs, retryAfterMs, type RetryEvent } from '../../src/remote/http.js';
import { RemoteError } from '../../src/remote/errors.js';
import { Semaphore } from '../../src/remote/semaphore.js';
import { CachedGenerator } from '../../src/generator/cached-generator.js';
import { addOpenAIOptions, openAIGeneratorFromOptions, type OpenAICliOptions } from '../../src/remote/options.js';
import { openCache } from '../../src/cache/cache.js';
import { ExitCode, UitError } from '../../src/errors.js';
import type { GenerationParams } from '../../src/generator/generator.js';
import { closedPort, completion, json, startFakeServer, type FakeServer } from './fake-openai.js';

const PARAMS: GenerationParams = { maxNewTokens: 32, temperature: 0.7, topP: 0.9, stop: ['\n\n'], seed: 42 };
const FAST = { baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 5000 };

let server: FakeServer;
beforeAll(async () => {
  server = await startFakeServer((_req, res) => json(res, 500, {}));
});
afterAll(async () => {
  await server.close();
});

function generator(opts: { key?: string; retries?: number; timeoutMs?: number; concurrency?: number; onRetry?: (e: RetryEvent) => void; endpoint?: 'completions' | 'chat'; samples?: 'auto' | 'repeat'; baseUrl?: string } = {}) {
  return new OpenAIGenerator({
    client: {
      baseUrl: opts.baseUrl ?? server.baseUrl,
      apiKey: opts.key ?? 'sk-test',
      apiKeyEnv: 'UIT_TEST_KEY',
      http: { ...FAST, maxRetries: opts.retries ?? 3, timeoutMs: opts.timeoutMs ?? FAST.timeoutMs, concurrency: opts.concurrency ?? 4, onRetry: opts.onRetry },
    },
    model: 'test-model',
    endpoint: opts.endpoint,
    samples: opts.samples,
  });
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

describe('completions and chat', () => {
  it('sends the sampling parameters and the bearer token, and returns n samples from one request', async () => {
    server.setHandler((req, res) => json(res, 200, completion(req.body, (i) => `Definition ${i}.\n\nignored`)));
    const g = generator();
    expect(g.id).toBe(`api:${server.baseUrl}#test-model`);
    expect(g.kind).toBe('api');
    const out = await g.generate([{ prompt: 'Instruction: x\nDefinition:', numSamples: 3 }], PARAMS);
    expect(server.seen).toHaveLength(1);
    const s = server.seen[0];
    expect(s.method).toBe('POST');
    expect(s.path).toBe('/v1/completions');
    expect(s.auth).toBe('Bearer sk-test');
    expect(s.body).toEqual({
      model: 'test-model',
      prompt: 'Instruction: x\nDefinition:',
      max_tokens: 32,
      temperature: 0.7,
      top_p: 0.9,
      stop: ['\n\n'],
      seed: 42,
      n: 3,
    });
    // The server did not honour the stop string: the client cuts at it.
    expect(out[0].map((g) => g.text)).toEqual(['Definition 0.', 'Definition 1.', 'Definition 2.']);
    expect(out[0].every((g) => g.finishReason === 'stop')).toBe(true);
  });

  it('greedy sends temperature 0 and no top_p; a length stop is reported', async () => {
    server.setHandler((req, res) => json(res, 200, completion(req.body, () => 'cut short', 'length')));
    const [[g]] = await generator().generate([{ prompt: 'p', numSamples: 1 }], { ...PARAMS, greedy: true });
    expect(server.seen[0].body.temperature).toBe(0);
    expect(server.seen[0].body).not.toHaveProperty('top_p');
    expect(server.seen[0].body).not.toHaveProperty('n');
    expect(g).toMatchObject({ text: 'cut short', finishReason: 'length', tokens: 3 });
    // A temperature too small to compute locally is greedy here too: it is sent as its limit, 0.
    await generator().generate([{ prompt: 'p', numSamples: 1 }], { ...PARAMS, temperature: 1e-40 });
    expect(server.seen[1].body.temperature).toBe(0);
  });

  it('talks to /chat/completions with the prompt as a user message', async () => {
    server.setHandler((req, res) =>
      json(res, 200, {
        id: 'chat-1',
        choices: [{ index: 0, message: { role: 'assistant', content: 'A chat answer' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 9, completion_tokens: 3 },
      }),
    );
    const g = generator({ endpoint: 'chat' });
    expect(g.id).toBe(`api:${server.baseUrl}#test-model#chat`);
    const out = await g.generate([{ prompt: 'Rewrite this.', numSamples: 1 }], PARAMS);
    expect(server.seen[0].path).toBe('/v1/chat/completions');
    expect(server.seen[0].body.messages).toEqual([{ role: 'user', content: 'Rewrite this.' }]);
    expect(out[0][0].text).toBe('A chat answer');
  });

  it('falls back to one call per sample (seed + i) when the server ignores n', async () => {
    server.setHandler((req, res) => json(res, 200, completion({ ...req.body, n: 1 }, () => `seed ${req.body.seed}`)));
    const g = generator();
    const out = await g.generate([{ prompt: 'p', numSamples: 3 }], PARAMS);
    expect(out[0].map((x) => x.text)).toEqual(['seed 42', 'seed 43', 'seed 44']);
    expect(server.seen.map((s) => s.body.n)).toEqual([3, undefined, undefined]);
    // From now on this generator asks one sample per call.
    await g.generate([{ prompt: 'q', numSamples: 2 }], PARAMS);
    expect(server.seen.slice(3).map((s) => [s.body.n, s.body.seed])).toEqual([[undefined, 42], [undefined, 43]]);
  });

  it('falls back when the server rejects n with a 400', async () => {
    server.setHandler((req, res) =>
      req.body.n ? json(res, 400, { error: { message: "'n' must be 1 for this model" } }) : json(res, 200, completion(req.body, () => 'one')),
    );
    const out = await generator().generate([{ prompt: 'p', numSamples: 2 }], PARAMS);
    expect(out[0].map((x) => x.text)).toEqual(['one', 'one']);
    expect(server.seen).toHaveLength(3);
  });

  it('lists models', async () => {
    server.setHandler((req, res) => json(res, 200, { object: 'list', data: [{ id: 'test-model', object: 'model' }] }));
    const c = new OpenAIClient({ baseUrl: `${server.baseUrl}/` });
    expect((await c.models()).data.map((m) => m.id)).toEqual(['test-model']);
    expect(server.seen[0]).toMatchObject({ method: 'GET', path: '/v1/models', auth: undefined });
  });
});

describe('retries, timeouts and errors', () => {
  it('honours Retry-After on 429, then succeeds', async () => {
    server.setHandler((req, res, n) =>
      n === 1 ? json(res, 429, { error: { message: 'Rate limit reached' } }, { 'retry-after': '1' }) : json(res, 200, completion(req.body, () => 'ok')),
    );
    const events: RetryEvent[] = [];
    const out = await generator({ onRetry: (e) => events.push(e) }).generate([{ prompt: 'p', numSamples: 1 }], PARAMS);
    expect(out[0][0].text).toBe('ok');
    expect(server.seen).toHaveLength(2);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ attempt: 1, delayMs: 1000, status: 429, fromRetryAfter: true });
    expect(events[0].reason).toContain('Rate limit reached');
  });

  it('retries 500s with backoff, then succeeds', async () => {
    server.setHandler((req, res, n) => (n <= 2 ? json(res, 500, { error: { message: 'boom' } }) : json(res, 200, completion(req.body, () => 'ok'))));
    const events: RetryEvent[] = [];
    const out = await generator({ onRetry: (e) => events.push(e) }).generate([{ prompt: 'p', numSamples: 1 }], PARAMS);
    expect(out[0][0].text).toBe('ok');
    expect(server.seen).toHaveLength(3);
    expect(events.map((e) => [e.attempt, e.status, e.fromRetryAfter])).toEqual([[1, 500, false], [2, 500, false]]);
    // Backoff within [step/2, step] for steps 5 and 10 ms.
    expect(events[0].delayMs).toBeGreaterThanOrEqual(2);
    expect(events[0].delayMs).toBeLessThanOrEqual(5);
    expect(events[1].delayMs).toBeGreaterThanOrEqual(5);
    expect(events[1].delayMs).toBeLessThanOrEqual(10);
  });

  it('gives up after the retries with a REMOTE error', async () => {
    server.setHandler((_req, res) => json(res, 503, { error: { message: 'overloaded' } }));
    const e = await remoteError(generator({ retries: 2 }).generate([{ prompt: 'p', numSamples: 1 }], PARAMS));
    expect(server.seen).toHaveLength(3);
    expect(e.message).toContain('failed after 3 attempts: HTTP 503: overloaded');
    expect(e.details).toMatchObject({ status: 503, attempts: 3 });
  });

  it('reports malformed JSON with what was received, without retrying', async () => {
    server.setHandler((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"choices": [ {"text": "unterminated');
    });
    const e = await remoteError(generator().generate([{ prompt: 'p', numSamples: 1 }], PARAMS));
    expect(server.seen).toHaveLength(1);
    expect(e.message).toContain('malformed JSON');
    expect(e.message).toContain('received {"choices": [ {"text": "unterminated');
  });

  it('reports a JSON answer of the wrong shape', async () => {
    server.setHandler((_req, res) => json(res, 200, { result: 'hello' }));
    const e = await remoteError(generator().generate([{ prompt: 'p', numSamples: 1 }], PARAMS));
    expect(e.message).toContain('unexpected response shape (choices:');
    expect(e.message).toContain('received {"result":"hello"}');
  });

  it('rejects a wrong bearer token with 401 at once, naming the key variable', async () => {
    server.setHandler((req, res) =>
      req.auth === 'Bearer right' ? json(res, 200, completion(req.body, () => 'ok')) : json(res, 401, { error: { message: 'Incorrect API key provided' } }),
    );
    const e = await remoteError(generator({ key: 'wrong' }).generate([{ prompt: 'p', numSamples: 1 }], PARAMS));
    expect(server.seen).toHaveLength(1);
    expect(e.details.status).toBe(401);
    expect(e.message).toContain('HTTP 401: Incorrect API key provided');
    expect(e.message).toContain('check the key in $UIT_TEST_KEY');
    const ok = await generator({ key: 'right' }).generate([{ prompt: 'p', numSamples: 1 }], PARAMS);
    expect(ok[0][0].text).toBe('ok');
  });

  it('says when no key was sent', async () => {
    server.setHandler((_req, res) => json(res, 401, { error: { message: 'Missing bearer token' } }));
    const g = new OpenAIGenerator({ client: { baseUrl: server.baseUrl }, model: 'm' });
    const e = await remoteError(g.generate([{ prompt: 'p', numSamples: 1 }], PARAMS));
    expect(server.seen[0].auth).toBeUndefined();
    expect(e.message).toContain('$OPENAI_API_KEY is not set, so no key was sent');
  });

  it('fails other 4xx at once with the server message', async () => {
    server.setHandler((_req, res) => json(res, 404, { error: { message: 'The model `nope` does not exist' } }));
    const e = await remoteError(generator().generate([{ prompt: 'p', numSamples: 1 }], PARAMS));
    expect(server.seen).toHaveLength(1);
    expect(e.message).toContain('HTTP 404: The model `nope` does not exist');
  });

  it('times out a slow response, retries, and fails with the timeout', async () => {
    server.setHandler((req, res) => {
      const t = setTimeout(() => json(res, 200, completion(req.body, () => 'late')), 3000);
      res.on('close', () => clearTimeout(t));
    });
    const e = await remoteError(generator({ timeoutMs: 150, retries: 1 }).generate([{ prompt: 'p', numSamples: 1 }], PARAMS));
    expect(server.seen).toHaveLength(2);
    expect(e.message).toContain('failed after 2 attempts: timeout after 150 ms');
  });

  it('times out a body that stalls after the headers', async () => {
    server.setHandler((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"choices": [');
    });
    const e = await remoteError(generator({ timeoutMs: 150, retries: 0 }).generate([{ prompt: 'p', numSamples: 1 }], PARAMS));
    expect(e.message).toContain('failed after 1 attempt: timeout after 150 ms (HTTP 200, reading the body)');
  });

  it('does not retry a port that fetch refuses', async () => {
    const e = await remoteError(generator({ baseUrl: 'http://127.0.0.1:6000/v1' }).generate([{ prompt: 'p', numSamples: 1 }], PARAMS));
    expect(e.message).toContain('bad port');
  });

  it('recovers when only the first response is slow', async () => {
    server.setHandler((req, res, n) => {
      if (n === 1) {
        const t = setTimeout(() => json(res, 200, completion(req.body, () => 'late')), 3000);
        res.on('close', () => clearTimeout(t));
      } else json(res, 200, completion(req.body, () => 'fast'));
    });
    const out = await generator({ timeoutMs: 150 }).generate([{ prompt: 'p', numSamples: 1 }], PARAMS);
    expect(out[0][0].text).toBe('fast');
    expect(server.seen).toHaveLength(2);
  });

  it('fails clearly when the server is down', async () => {
    const port = await closedPort();
    const events: RetryEvent[] = [];
    const g = generator({ baseUrl: `http://127.0.0.1:${port}/v1`, retries: 2, onRetry: (e) => events.push(e) });
    const e = await remoteError(g.generate([{ prompt: 'p', numSamples: 1 }], PARAMS));
    expect(e.message).toContain('failed after 3 attempts: ECONNREFUSED');
    expect(e.message).toContain('is the server running');
    expect(events).toHaveLength(2);
  });

  it('fails at once when Retry-After asks for more than the client waits', async () => {
    server.setHandler((_req, res) => json(res, 429, { error: { message: 'quota' } }, { 'retry-after': '3600' }));
    const e = await remoteError(generator().generate([{ prompt: 'p', numSamples: 1 }], PARAMS));
    expect(server.seen).toHaveLength(1);
    expect(e.message).toContain('retry after 3600 s');
  });
});

describe('concurrency', () => {
  it('keeps at most `concurrency` requests in flight', async () => {
    // The server holds every request until none has arrived for 200 ms, then answers all it
    // holds. With the limit, it can never hold more than 3 (the client waits for answers); without
    // it, all 10 would arrive inside the quiet period. Timing changes only the speed here.
    const held: (() => void)[] = [];
    let quiet: NodeJS.Timeout | undefined;
    server.setHandler((req, res) => {
      held.push(() => json(res, 200, completion(req.body, () => `r-${req.body.prompt}`)));
      clearTimeout(quiet);
      quiet = setTimeout(() => held.splice(0).forEach((f) => f()), 200);
    });
    const reqs = Array.from({ length: 10 }, (_, i) => ({ prompt: `p${i}`, numSamples: 1 }));
    const out = await generator({ concurrency: 3 }).generate(reqs, PARAMS);
    expect(out.map((o) => o[0].text)).toEqual(reqs.map((r) => `r-${r.prompt}`));
    expect(server.seen).toHaveLength(10);
    expect(server.maxInFlight).toBeLessThanOrEqual(3);
    expect(server.maxInFlight).toBeGreaterThan(0);
  });

  it('semaphore hands slots over in order', async () => {
    const s = new Semaphore(2);
    const order: number[] = [];
    const r1 = await s.acquire();
    const r2 = await s.acquire();
    const p3 = s.acquire().then((r) => (order.push(3), r));
    const p4 = s.acquire().then((r) => (order.push(4), r));
    expect(s.inUse).toBe(2);
    r1();
    r1(); // releasing twice is harmless
    const r3 = await p3;
    expect(order).toEqual([3]);
    r2();
    const r4 = await p4;
    expect(order).toEqual([3, 4]);
    r3();
    r4();
    expect(s.inUse).toBe(0);
  });
});

describe('helpers', () => {
  it('parses Retry-After forms', () => {
    const now = Date.parse('2024-01-01T00:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after': '2' }), now)).toBe(2000);
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '250', 'retry-after': '2' }), now)).toBe(250);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Mon, 01 Jan 2024 00:00:05 GMT' }), now)).toBe(5000);
    expect(retryAfterMs(new Headers({}), now)).toBeUndefined();
    expect(retryAfterMs(new Headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
  });

  it('backs off exponentially within the jitter band, capped', () => {
    const o = { baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffMs(0, { ...o, random: () => 0 })).toBe(50);
    expect(backoffMs(0, { ...o, random: () => 0.999999 })).toBe(100);
    expect(backoffMs(3, { ...o, random: () => 0 })).toBe(400);
    expect(backoffMs(10, { ...o, random: () => 0.999999 })).toBe(1000);
  });

  it('cuts at the first stop string', () => {
    expect(applyStop('a\n\nb###c', ['###', '\n\n'])).toEqual({ text: 'a', stopped: true });
    expect(applyStop('abc', ['x', ''])).toEqual({ text: 'abc', stopped: false });
    expect(apiIdentity('http://h/v1', 'm')).toBe('api:http://h/v1#m');
  });
});

describe('command-line options', () => {
  function parse(args: string[]): OpenAICliOptions {
    const cmd = addOpenAIOptions(new Command('x').exitOverride());
    cmd.parse(args, { from: 'user' });
    return cmd.opts<OpenAICliOptions>();
  }

  it('builds a generator with the key from the named variable', async () => {
    const o = parse(['--backend', 'openai', '--base-url', server.baseUrl, '--api-model', 'gpt-x', '--api-key-env', 'MY_KEY', '--api-retries', '0']);
    expect(o).toMatchObject({ backend: 'openai', apiEndpoint: 'completions', apiTimeout: 60000, apiRetries: 0, apiConcurrency: 4 });
    server.setHandler((req, res) => json(res, 200, completion(req.body, () => String(req.auth))));
    const g = openAIGeneratorFromOptions(o, { MY_KEY: 'sk-from-env' });
    expect(g.id).toBe(`api:${server.baseUrl}#gpt-x`);
    const out = await g.generate([{ prompt: 'p', numSamples: 1 }], PARAMS);
    expect(out[0][0].text).toBe('Bearer sk-from-env');
  });

  it('names the missing option', () => {
    expect(() => openAIGeneratorFromOptions(parse(['--backend', 'openai', '--api-model', 'm']), {})).toThrow('--backend openai needs --base-url');
    expect(() => openAIGeneratorFromOptions(parse(['--base-url', 'http://x/v1']), {})).toThrow('needs --api-model');
    try {
      openAIGeneratorFromOptions(parse(['--base-url', 'ftp://x', '--api-model', 'm']), {});
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UitError);
      expect((e as UitError).message).toContain('only http and https');
    }
    expect(() => parse(['--api-endpoint', 'edits'])).toThrow();
  });
});

describe('cache', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'uit-remote-cache-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('stores every response, and a rerun makes no HTTP calls', async () => {
    server.setHandler((req, res) => json(res, 200, completion(req.body, (i) => `${req.body.prompt} #${i}`)));
    const path = join(dir, 'cache.sqlite');
    const reqs = [
      { prompt: 'first', numSamples: 2 },
      { prompt: 'second', numSamples: 1 },
    ];
    const c1 = openCache(path);
    const g1 = new CachedGenerator(generator(), c1, { name: 'test-model' });
    const first = await g1.generate(reqs, PARAMS);
    c1.close();
    expect(server.seen).toHaveLength(2);
    expect(first.map((r) => r.map((x) => x.text))).toEqual([['first #0', 'first #1'], ['second #0']]);

    const c2 = openCache(path);
    const g2 = new CachedGenerator(generator(), c2);
    const again = await g2.generate(reqs, PARAMS);
    expect(server.seen).toHaveLength(2); // no new request
    expect(again).toEqual(first);
    expect(g2.stats).toEqual({ hits: 2, misses: 0, requestsSent: 0 });
    const stored = c2.db.prepare('SELECT model_id, sample_index, text, meta FROM generations ORDER BY sample_index').all() as { model_id: string; meta: string }[];
    expect(stored).toHaveLength(3);
    expect(stored[0].model_id).toBe(`api:${server.baseUrl}#test-model`);
    expect(JSON.parse(stored[0].meta)).toMatchObject({ endpoint: 'completions', responseId: 'cmpl-test' });
    expect(c2.models().map((m) => [m.id, m.kind])).toEqual([[`api:${server.baseUrl}#test-model`, 'api']]);

    // Other parameters are other keys: one new request.
    await g2.generate([reqs[1]], { ...PARAMS, temperature: 0.2 });
    expect(server.seen).toHaveLength(3);
    c2.close();
  });
});
