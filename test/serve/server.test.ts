// `uit serve` in-process (startServer) over the tiny GPT-J fixture: real HTTP on 127.0.0.1, the
// real model, and the runtime's generate() as the reference for every text.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model, generate, loadModel, type GenerateOptions, type GenerateRequest } from '../../src/runtime/index.js';
import { startServer, type RunningServer, type ServeOptions } from '../../src/serve/index.js';
import { FIXTURE, call, copyFixture, stopIn, tempDir, until, withForward } from './helpers.js';

const NAME = 'tiny-gptj';
const PROMPT = 'Definition: In this task, you are given';

let model: Model;
let server: RunningServer;
const logs: string[] = [];
const tmp = tempDir('uit-serve-');

async function serveWith(opts: Partial<ServeOptions> = {}): Promise<RunningServer> {
  return startServer({ model, port: 0, log: (l) => logs.push(l), ...opts });
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

const post = (path: string, body: object | string, headers?: Record<string, string>, on = server) => call(`${on.baseUrl}${path}`, { body, headers });

/** The runtime's texts for requests and options: what the server must answer. */
async function reference(requests: GenerateRequest[], opts: GenerateOptions): Promise<string[][]> {
  const r = await generate(model, requests, opts);
  return r.outputs.map((o) => o.samples.map((s) => s.text));
}

const texts = (json: { choices: { text?: string; message?: { content: string } }[] }) => json.choices.map((c) => c.text ?? c.message!.content);

describe('models', () => {
  it('lists the one model, by the folder name, and looks it up by id', async () => {
    expect(server.modelName).toBe(NAME);
    expect(server.baseUrl).toBe(`http://127.0.0.1:${server.port}/v1`);
    const list = await call(`${server.baseUrl}/models`);
    expect(list.status).toBe(200);
    expect(list.headers['content-type']).toMatch(/^application\/json/);
    expect(list.json).toEqual({ object: 'list', data: [{ id: NAME, object: 'model', created: expect.any(Number), owned_by: 'uit' }] });
    const one = await call(`${server.baseUrl}/models/${NAME}`);
    expect(one.json.id).toBe(NAME);
    const other = await call(`${server.baseUrl}/models/gpt-4`);
    expect(other.status).toBe(404);
    expect(other.json.error).toMatchObject({ param: 'model', code: 'model_not_found' });
  });
});

describe('completions', () => {
  it("answers in OpenAI's shape, with the runtime's texts for the same prompt, n and seed", async () => {
    const r = await post('/completions', { model: NAME, prompt: PROMPT, max_tokens: 12, temperature: 0.8, top_p: 0.9, n: 3, seed: 5 });
    expect(r.status).toBe(200);
    expect(Object.keys(r.json)).toEqual(['id', 'object', 'created', 'model', 'choices', 'usage']);
    expect(r.json.id).toMatch(/^cmpl-[0-9a-f]{24}$/);
    expect(r.json.object).toBe('text_completion');
    expect(Math.abs(r.json.created - Date.now() / 1000)).toBeLessThan(600);
    expect(r.json.model).toBe(NAME);
    expect(r.json.choices.map((c: { index: number }) => c.index)).toEqual([0, 1, 2]);
    for (const c of r.json.choices) expect(c).toEqual({ index: c.index, text: expect.any(String), logprobs: null, finish_reason: 'length' });
    const [ref] = await reference([{ prompt: PROMPT, numSamples: 3, seed: 5 }], { maxNewTokens: 12, temperature: 0.8, topP: 0.9 });
    expect(texts(r.json)).toEqual(ref);
    expect(new Set(ref).size).toBe(3);
    const promptTokens = model.tokenizer.encode(PROMPT).length;
    expect(r.json.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: 36, total_tokens: promptTokens + 36 });
  });

  it('gives the same text for the same seed, and other text for another seed or none', async () => {
    const body = { model: NAME, prompt: 'Input: 2+2', max_tokens: 16, temperature: 1, seed: 11 };
    const a = await post('/completions', body);
    const b = await post('/completions', body);
    expect(texts(b.json)).toEqual(texts(a.json));
    const c = await post('/completions', { ...body, seed: 12 });
    expect(texts(c.json)).not.toEqual(texts(a.json));
    const { seed: _, ...unseeded } = body;
    const d = await post('/completions', unseeded);
    const e = await post('/completions', unseeded);
    expect(texts(d.json)).not.toEqual(texts(e.json));
  });

  it('gives n choices per prompt in prompt order for a prompt array; token-id prompts equal text prompts', async () => {
    const prompts = ['a b c', 'Input: 1+1\nOutput:'];
    const body = { model: NAME, max_tokens: 8, temperature: 0.9, n: 2, seed: 3 };
    const r = await post('/completions', { ...body, prompt: prompts });
    expect(r.json.choices.map((c: { index: number }) => c.index)).toEqual([0, 1, 2, 3]);
    const ref = await reference(prompts.map((prompt) => ({ prompt, numSamples: 2, seed: 3 })), { maxNewTokens: 8, temperature: 0.9 });
    expect(texts(r.json)).toEqual(ref.flat());
    const ids = prompts.map((p) => model.tokenizer.encode(p));
    const byIds = await post('/completions', { ...body, prompt: ids });
    expect(texts(byIds.json)).toEqual(ref.flat());
    const one = await post('/completions', { ...body, prompt: ids[1] });
    expect(texts(one.json)).toEqual(ref[1]);
    expect(r.json.usage.prompt_tokens).toBe(ids[0].length + ids[1].length);
  });

  it('decodes greedily at temperature 0 and applies the top_k and repetition_penalty extensions as the runtime does', async () => {
    const greedy = await post('/completions', { model: NAME, prompt: PROMPT, max_tokens: 10, temperature: 0 });
    expect(texts(greedy.json)).toEqual((await reference([{ prompt: PROMPT }], { maxNewTokens: 10, greedy: true }))[0]);
    // A temperature too small to compute (1/t overflows float32) is greedy, its limit (issue 21).
    const tiny = await post('/completions', { model: NAME, prompt: PROMPT, max_tokens: 10, temperature: 1e-300, n: 2, seed: 4 });
    expect(tiny.status).toBe(200);
    expect(texts(tiny.json)).toEqual([...texts(greedy.json), ...texts(greedy.json)]);
    const ext = await post('/completions', { model: NAME, prompt: PROMPT, max_tokens: 10, temperature: 1.2, top_k: 5, repetition_penalty: 1.3, seed: 9, n: 2 });
    const ref = await reference([{ prompt: PROMPT, numSamples: 2, seed: 9 }], { maxNewTokens: 10, temperature: 1.2, topK: 5, repetitionPenalty: 1.3 });
    expect(texts(ext.json)).toEqual(ref[0]);
    // and the extensions do change the text (the test above would pass vacuously otherwise)
    const plain = await post('/completions', { model: NAME, prompt: PROMPT, max_tokens: 10, temperature: 1.2, seed: 9, n: 2 });
    expect(texts(plain.json)).not.toEqual(ref[0]);
  });

  it('cuts at a stop string (string or array) and reports finish_reason stop', async () => {
    // Sampled: greedy text from the random fixture is mostly non-ASCII bytes.
    const body = { model: NAME, prompt: PROMPT, max_tokens: 32, temperature: 1, seed: 21 };
    const full = (await post('/completions', body)).json.choices[0].text as string;
    const { stop, index } = stopIn(full, 2);
    for (const s of [stop, ['QQQQQQ', stop]]) {
      const r = await post('/completions', { ...body, stop: s });
      expect(r.json.choices[0]).toMatchObject({ text: full.slice(0, index), finish_reason: 'stop' });
      expect(r.json.usage.completion_tokens).toBeLessThan(32);
    }
    const ref = await reference([{ prompt: PROMPT, seed: 21 }], { maxNewTokens: 32, temperature: 1, stop: [stop] });
    expect(ref[0][0]).toBe(full.slice(0, index));
    // an empty stop string is ignored, as OpenAI does
    const empty = await post('/completions', { ...body, stop: '' });
    expect(empty.json.choices[0]).toMatchObject({ text: full, finish_reason: 'length' });
  });

  it("takes the pre-1.0 Python SDK's engine path (/v1/engines/{model}/completions) and an empty prompt", async () => {
    const body = { prompt: PROMPT, max_tokens: 6, temperature: 0.5, seed: 1 };
    const byEngine = await post(`/engines/${NAME}/completions`, body);
    expect(byEngine.status).toBe(200);
    expect(texts(byEngine.json)).toEqual(texts((await post('/completions', { ...body, model: NAME })).json));
    const chat = await post(`/engines/${NAME}/chat/completions`, { messages: [{ role: 'user', content: PROMPT }], max_tokens: 6, temperature: 0.5, seed: 1 });
    expect(texts(chat.json)).toEqual(texts(byEngine.json));
    expect((await post('/engines/text-davinci-003/completions', body)).json.error.code).toBe('model_not_found');
    // An empty prompt starts from BOS, as the runtime does.
    const empty = await post('/completions', { model: NAME, prompt: '', max_tokens: 4, temperature: 0 });
    expect(empty.json.usage.prompt_tokens).toBe(1);
    expect(texts(empty.json)).toEqual((await reference([{ prompt: '' }], { maxNewTokens: 4, greedy: true }))[0]);
  });

  it("defaults to OpenAI's 16 tokens", async () => {
    const r = await post('/completions', { model: NAME, prompt: 'x', temperature: 0 });
    const ref = await generate(model, [{ prompt: 'x' }], { maxNewTokens: 16, greedy: true });
    expect(r.json.choices[0].text).toBe(ref.outputs[0].samples[0].text);
    expect(r.json.usage.completion_tokens).toBe(ref.outputs[0].samples[0].tokenIds.length);
  });
});

describe('chat completions', () => {
  it('sends a lone user message verbatim when the model has no chat template (same text as /v1/completions)', async () => {
    expect(server.chatFormat).toBe('plain');
    const body = { model: NAME, max_tokens: 12, temperature: 0.7, n: 2, seed: 4 };
    const chat = await post('/chat/completions', { ...body, messages: [{ role: 'user', content: PROMPT }] });
    expect(chat.status).toBe(200);
    expect(chat.json.id).toMatch(/^chatcmpl-/);
    expect(chat.json.object).toBe('chat.completion');
    for (const c of chat.json.choices) {
      expect(c).toEqual({ index: c.index, message: { role: 'assistant', content: expect.any(String) }, logprobs: null, finish_reason: 'length' });
    }
    const completion = await post('/completions', { ...body, prompt: PROMPT });
    expect(texts(chat.json)).toEqual(texts(completion.json));
    expect(chat.json.usage).toEqual(completion.json.usage);
  });

  it('turns a conversation into the plain "Role: content" transcript ending in "Assistant:"', async () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'text', text: ' there' }] },
      { role: 'assistant', content: 'Hello' },
      { role: 'user', content: 'Bye' },
    ];
    const prompt = 'System: Be brief.\n\nUser: Hi there\n\nAssistant: Hello\n\nUser: Bye\n\nAssistant:';
    const r = await post('/chat/completions', { model: NAME, messages, max_completion_tokens: 6, temperature: 0 });
    expect(r.json.usage.prompt_tokens).toBe(model.tokenizer.encode(prompt).length);
    expect(texts(r.json)).toEqual((await reference([{ prompt }], { maxNewTokens: 6, greedy: true }))[0]);
    expect(r.json.usage.completion_tokens).toBeLessThanOrEqual(6);
  });

  it("defaults max_tokens to the server's limit", async () => {
    const small = await serveWith({ limits: { maxTokens: 5 } });
    try {
      const r = await post('/chat/completions', { model: NAME, messages: [{ role: 'user', content: 'abc' }], temperature: 0 }, undefined, small);
      const ref = await generate(model, [{ prompt: 'abc' }], { maxNewTokens: 5, greedy: true });
      expect(r.json.choices[0].message.content).toBe(ref.outputs[0].samples[0].text);
      expect(r.json.usage.completion_tokens).toBe(ref.outputs[0].samples[0].tokenIds.length);
      const over = await post('/chat/completions', { model: NAME, messages: [{ role: 'user', content: 'abc' }], max_tokens: 6 }, undefined, small);
      expect(over.status).toBe(400);
      expect(over.json.error.param).toBe('max_tokens');
    } finally {
      await small.close();
    }
  });

  it("renders the model folder's chat template; the template's raise_exception is a 400", async () => {
    const dir = copyFixture(tmp.dir);
    const configFile = join(dir, 'tokenizer_config.json');
    const config = JSON.parse(readFileSync(configFile, 'utf8'));
    config.chat_template =
      "{% for m in messages %}{% if m.role == 'developer' %}{{ raise_exception('developer messages are not allowed') }}{% endif %}" +
      '<|{{ m.role }}|>{{ m.content }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}';
    writeFileSync(configFile, JSON.stringify(config));
    const owned = await startServer({ model: dir, port: 0, threads: 1 });
    try {
      expect(owned.chatFormat).toBe(`${configFile} (chat_template)`);
      expect(owned.modelName).toBe('model');
      const messages = [
        { role: 'system', content: 'S' },
        { role: 'user', content: 'Q' },
      ];
      const r = await post('/chat/completions', { model: 'model', messages, max_tokens: 8, temperature: 0.5, seed: 2 }, undefined, owned);
      const prompt = '<|system|>S<|endoftext|>\n<|user|>Q<|endoftext|>\n<|assistant|>';
      expect(r.json.usage.prompt_tokens).toBe(model.tokenizer.encode(prompt).length);
      expect(texts(r.json)).toEqual((await reference([{ prompt, seed: 2 }], { maxNewTokens: 8, temperature: 0.5 }))[0]);
      const bad = await post('/chat/completions', { model: 'model', messages: [{ role: 'developer', content: 'x' }] }, undefined, owned);
      expect(bad.status).toBe(400);
      expect(bad.json.error).toEqual({
        message: 'The chat template rejected the messages: developer messages are not allowed',
        type: 'invalid_request_error',
        param: 'messages',
        code: 'invalid_value',
      });
    } finally {
      await owned.close();
    }
  });

  it('answers a broken chat template with a 500 that leaks no detail; the server log has it', async () => {
    const file = join(tmp.dir, 'broken.jinja');
    writeFileSync(file, '{{ messages | no_such_filter }}');
    const broken = await serveWith({ chatTemplate: file });
    try {
      expect(broken.chatFormat).toBe(file);
      const r = await post('/chat/completions', { model: NAME, messages: [{ role: 'user', content: 'x' }] }, undefined, broken);
      expect(r.status).toBe(500);
      expect(r.json.error).toMatchObject({ type: 'server_error', param: null, code: 'internal_error' });
      expect(r.text).not.toMatch(/no_such_filter|\bat \w|\.js|\/work|jinja/);
      const id = /request id (req-[0-9a-f]+)/.exec(r.json.error.message)![1];
      const logged = logs.find((l) => l.includes(id));
      expect(logged).toMatch(/no_such_filter/);
      expect(logged).toMatch(/\n\s+at /); // the stack stays on the server
      // the server still works
      const ok = await post('/completions', { model: NAME, prompt: 'x', max_tokens: 2 }, undefined, broken);
      expect(ok.status).toBe(200);
    } finally {
      await broken.close();
    }
  });
});

describe('errors', () => {
  const errorShape = (r: { json: { error: Record<string, unknown> } }) => {
    expect(Object.keys(r.json)).toEqual(['error']);
    expect(Object.keys(r.json.error)).toEqual(['message', 'type', 'param', 'code']);
    expect(typeof r.json.error.message).toBe('string');
  };

  it('malformed JSON and non-object bodies are 400 invalid_json', async () => {
    for (const body of ['{"model": "tiny-gptj", "prompt": ', '[1, 2]', 'null', '']) {
      const r = await post('/completions', body);
      expect(r.status).toBe(400);
      errorShape(r);
      expect(r.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json' });
    }
    const r = await post('/completions', '{"model": ');
    expect(r.json.error.message).toMatch(/could not parse the JSON body/);
  });

  it('missing and invalid fields are 400 naming the field', async () => {
    const cases: [string, object, string, string][] = [
      ['/completions', { model: NAME }, 'prompt', 'missing_required_parameter'],
      ['/completions', { prompt: 'x' }, 'model', 'missing_required_parameter'],
      ['/completions', { model: NAME, prompt: 'x', temperature: 'hot' }, 'temperature', 'invalid_value'],
      ['/completions', { model: NAME, prompt: 'x', temperature: 3 }, 'temperature', 'invalid_value'],
      ['/completions', { model: NAME, prompt: 'x', top_p: 0 }, 'top_p', 'invalid_value'],
      ['/completions', { model: NAME, prompt: 'x', n: 0 }, 'n', 'invalid_value'],
      ['/completions', { model: NAME, prompt: 'x', max_tokens: 1.5 }, 'max_tokens', 'invalid_value'],
      ['/completions', { model: NAME, prompt: [] }, 'prompt', 'invalid_value'],
      ['/completions', { model: NAME, prompt: [300] }, 'prompt', 'invalid_value'],
      ['/chat/completions', { model: NAME, messages: [{ role: 'robot', content: 'x' }] }, 'messages.0.role', 'invalid_value'],
      ['/chat/completions', { model: NAME, messages: [{ role: 'user' }] }, 'messages.0.content', 'missing_required_parameter'],
      ['/chat/completions', { model: NAME, messages: [] }, 'messages', 'invalid_value'],
      ['/chat/completions', { model: NAME, messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }, 'messages.0.content.0', 'unsupported_parameter'],
    ];
    for (const [path, body, param, code] of cases) {
      const r = await post(path, body);
      expect([r.status, r.json.error.param, r.json.error.code], JSON.stringify(body)).toEqual([400, param, code]);
      errorShape(r);
    }
  });

  it('an unknown model is 404; an unknown route is 404; a wrong method is 405 with Allow', async () => {
    const model404 = await post('/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'x' });
    expect(model404.status).toBe(404);
    expect(model404.json.error).toMatchObject({ param: 'model', code: 'model_not_found' });
    expect(model404.json.error.message).toContain(`'${NAME}'`);
    expect((await post('/chat/completions', { model: 'gpt-4', messages: [{ role: 'user', content: 'x' }] })).status).toBe(404);
    for (const path of ['/v1/engines', '/', '/v1/completionsx', '/v2/completions']) {
      const r = await call(`${server.url}${path}`);
      expect([path, r.status, r.json.error.code]).toEqual([path, 404, 'unknown_url']);
    }
    const get = await call(`${server.baseUrl}/completions`);
    expect([get.status, get.headers.allow, get.json.error.code]).toEqual([405, 'POST', 'method_not_allowed']);
    const malformed = await call(`${server.baseUrl}/models/%E0%A4%A`);
    expect([malformed.status, malformed.json.error.code]).toEqual([400, 'invalid_url']);
    const del = await call(`${server.baseUrl}/models`, { method: 'DELETE' });
    expect([del.status, del.headers.allow]).toEqual([405, 'GET']);
  });

  it('a body over the limit is 413, announced or chunked, and the server keeps serving', async () => {
    const small = await serveWith({ maxBodyBytes: 1000 });
    try {
      const body = JSON.stringify({ model: NAME, prompt: 'x'.repeat(5000) });
      for (const chunked of [false, true]) {
        const r = await call(`${small.baseUrl}/completions`, { body, chunked });
        expect(r.status).toBe(413);
        errorShape(r);
        expect(r.json.error.code).toBe('request_too_large');
        expect(r.json.error.message).toContain('1000 bytes');
      }
      const fits = await call(`${small.baseUrl}/completions`, { body: { model: NAME, prompt: 'x'.repeat(900), max_tokens: 1 } });
      expect(fits.status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it('max_tokens, n and prompts over the limits are 400; so is a prompt longer than the context', async () => {
    const over = await post('/completions', { model: NAME, prompt: 'x', max_tokens: 513 });
    expect([over.status, over.json.error.param]).toEqual([400, 'max_tokens']);
    expect(over.json.error.message).toContain('at most 512');
    expect((await post('/completions', { model: NAME, prompt: 'x', max_tokens: 512 })).status).toBe(200);
    const n = await post('/completions', { model: NAME, prompt: 'x', n: 17 });
    expect([n.status, n.json.error.param]).toEqual([400, 'n']);
    expect(n.json.error.message).toContain('at most 16');
    // the limits themselves are allowed
    const atN = await post('/completions', { model: NAME, prompt: 'x', n: 16, max_tokens: 1 });
    expect([atN.status, atN.json.choices?.length]).toEqual([200, 16]);
    const many = await post('/completions', { model: NAME, prompt: Array(33).fill('x') });
    expect([many.status, many.json.error.param]).toEqual([400, 'prompt']);
    const atPrompts = await post('/completions', { model: NAME, prompt: Array(32).fill('x'), max_tokens: 1 });
    expect([atPrompts.status, atPrompts.json.choices?.length]).toEqual([200, 32]);
    // The fixture takes 2048 positions and its tokenizer is byte-level: 2100 characters are 2100 tokens.
    const long = await post('/completions', { model: NAME, prompt: 'y'.repeat(2100), max_tokens: 1 });
    expect([long.status, long.json.error.param, long.json.error.code]).toEqual([400, 'prompt', 'context_length_exceeded']);
    expect(long.json.error.message).toContain('maximum context length is 2048 tokens');
    const tight = await post('/completions', { model: NAME, prompt: 'y'.repeat(2040), max_tokens: 9 });
    expect(tight.json.error.message).toContain('2049 tokens (2040 in the prompt, 9 for the completion)');
    const chat = await post('/chat/completions', { model: NAME, messages: [{ role: 'user', content: 'y'.repeat(2100) }] });
    expect([chat.status, chat.json.error.param, chat.json.error.code]).toEqual([400, 'messages', 'context_length_exceeded']);
  });

  it('streaming, logprobs, echo and other unsupported features are a clear 400; their defaults are accepted', async () => {
    const cases: [string, object, string][] = [
      ['/completions', { stream: true }, 'stream'],
      ['/completions', { logprobs: 1 }, 'logprobs'],
      ['/completions', { echo: true }, 'echo'],
      ['/completions', { best_of: 3 }, 'best_of'],
      ['/completions', { suffix: 'end' }, 'suffix'],
      ['/completions', { presence_penalty: 0.5 }, 'presence_penalty'],
      ['/completions', { frequency_penalty: 1 }, 'frequency_penalty'],
      ['/completions', { logit_bias: { '50': 5 } }, 'logit_bias'],
      ['/chat/completions', { stream: true }, 'stream'],
      ['/chat/completions', { logprobs: true }, 'logprobs'],
      ['/chat/completions', { tools: [{ type: 'function' }] }, 'tools'],
      ['/chat/completions', { response_format: { type: 'json_object' } }, 'response_format'],
    ];
    const base = (path: string) => (path === '/completions' ? { model: NAME, prompt: 'x' } : { model: NAME, messages: [{ role: 'user', content: 'x' }] });
    for (const [path, extra, param] of cases) {
      const r = await post(path, { ...base(path), ...extra });
      expect([r.status, r.json.error.param, r.json.error.code], JSON.stringify(extra)).toEqual([400, param, 'unsupported_parameter']);
    }
    const stream = await post('/completions', { ...base('/completions'), stream: true });
    expect(stream.json.error.message).toMatch(/Streaming is not supported/);
    const defaults = { stream: false, logprobs: null, echo: false, best_of: 1, presence_penalty: 0, frequency_penalty: 0, logit_bias: {}, user: 'me', max_tokens: 2 };
    expect((await post('/completions', { ...base('/completions'), ...defaults })).status).toBe(200);
    expect((await post('/chat/completions', { ...base('/chat'), stream: false, logprobs: false, tools: [], max_tokens: 2 })).status).toBe(200);
  });
});

describe('bearer token', () => {
  it('is required on every route when set: missing and wrong are 401, right is 200', async () => {
    const locked = await serveWith({ apiKey: 'sk-local-123' });
    try {
      const body = { model: NAME, prompt: 'x', max_tokens: 2 };
      const missing = await post('/completions', body, undefined, locked);
      expect([missing.status, missing.json.error.code, missing.headers['www-authenticate']]).toEqual([401, 'missing_api_key', 'Bearer']);
      expect(missing.json.error.message).toBe("You didn't provide an API key. Send it in the header 'Authorization: Bearer <key>'.");
      const wrong = await post('/completions', body, { authorization: 'Bearer sk-local-124' }, locked);
      expect([wrong.status, wrong.json.error.code, wrong.headers['www-authenticate']]).toEqual([401, 'invalid_api_key', 'Bearer']);
      expect(wrong.json.error.message).toBe('Incorrect API key provided.');
      // the scheme must come first: a header that only contains it somewhere is no bearer token
      const inside = await post('/completions', body, { authorization: 'NotBearer sk-local-123' }, locked);
      expect([inside.status, inside.json.error.code]).toEqual([401, 'missing_api_key']);
      // spaces after the scheme are not part of the key
      expect((await post('/completions', body, { authorization: 'Bearer    sk-local-123' }, locked)).status).toBe(200);
      // only the whole key: not a prefix of it, not the key with more after it, not another case
      for (const token of ['sk-local-12', 's', 'sk-local-1234', 'SK-LOCAL-123', 'sk-local-123x']) {
        const r = await post('/completions', body, { authorization: `Bearer ${token}` }, locked);
        expect([r.status, r.json.error?.code], token).toEqual([401, 'invalid_api_key']);
      }
      const notBearer = await post('/completions', body, { authorization: 'Basic c2stbG9jYWwtMTIz' }, locked);
      expect(notBearer.status).toBe(401);
      expect((await call(`${locked.baseUrl}/models`)).status).toBe(401);
      expect((await call(`${locked.url}/nope`)).status).toBe(401); // no route list for strangers
      // the health check is open, and says nothing about the model
      const health = await call(`${locked.url}/health`);
      expect([health.status, health.json]).toEqual([200, { status: 'ok', waiting: 0, running: false }]);
      expect((await post('/completions', body, { authorization: 'Bearer sk-local-123' }, locked)).status).toBe(200);
      expect((await call(`${locked.baseUrl}/models`, { headers: { authorization: 'bearer sk-local-123' } })).status).toBe(200);
    } finally {
      await locked.close();
    }
  });
});

describe('binding', () => {
  it('warns when it answers beyond this machine without a token', async () => {
    const seen: string[] = [];
    const open = await startServer({ model, port: 0, host: '0.0.0.0', log: (l) => seen.push(l) });
    await open.close();
    expect(open.url).toBe(`http://0.0.0.0:${open.port}`);
    expect(seen.join('\n')).toContain('warning: listening on 0.0.0.0 without a token');
    const locked = await startServer({ model, port: 0, host: '0.0.0.0', apiKey: 'k', log: (l) => seen.push(l) });
    await locked.close();
    const local = await startServer({ model, port: 0, log: (l) => seen.push(l) });
    await local.close();
    expect(seen.filter((l) => l.includes('warning'))).toHaveLength(1);
  });
});

/** The real ORT backend, counting how many forwards run at once. */
function countingModel(inner: Model): { model: Model; maxConcurrent: () => number; forwards: () => number } {
  let now = 0;
  let max = 0;
  let total = 0;
  const model = withForward(inner, async (next, ...args) => {
    now++;
    total++;
    max = Math.max(max, now);
    try {
      return await next(...args);
    } finally {
      now--;
    }
  });
  return { model, maxConcurrent: () => max, forwards: () => total };
}


describe('queue', () => {
  it('runs one batch at a time, batches compatible requests, and each request gets its solo text', async () => {
    const counting = countingModel(model);
    const q = await startServer({ model: counting.model, port: 0, log: (l) => logs.push(l) });
    try {
      const sampled = { model: NAME, max_tokens: 10, temperature: 0.9, top_p: 0.95 };
      type Body = { model: string; prompt: string; max_tokens: number; temperature: number; top_p?: number; seed?: number; n?: number };
      const bodies: Body[] = [
        { ...sampled, prompt: 'one', seed: 1 },
        { ...sampled, prompt: 'two two', seed: 2, n: 2 },
        { ...sampled, prompt: PROMPT, seed: 3 },
        { ...sampled, prompt: 'four', seed: 4 },
        { model: NAME, max_tokens: 7, temperature: 0, prompt: 'greedy' },
        { model: NAME, max_tokens: 7, temperature: 0, prompt: 'greedy too' },
      ];
      const replies = await Promise.all(bodies.map((b) => post('/completions', b, undefined, q)));
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
      for (const [i, b] of bodies.entries()) {
        const opts = b.temperature === 0 ? { maxNewTokens: 7, greedy: true } : { maxNewTokens: 10, temperature: 0.9, topP: 0.95 };
        const ref = await reference([{ prompt: b.prompt, numSamples: b.n ?? 1, seed: b.seed }], opts);
        expect(texts(replies[i].json), b.prompt).toEqual(ref[0]);
      }
      expect(counting.maxConcurrent()).toBe(1);
      expect(counting.forwards()).toBeGreaterThan(0);
      const st = q.status();
      expect(st.batchedRequests).toBe(6);
      expect(st.batches).toBeLessThan(6); // some requests shared a run
      expect(st.batches).toBeGreaterThanOrEqual(2); // two sets of options cannot share one
      expect(logs.some((l) => /^batch: [2-9] requests/.test(l))).toBe(true);
    } finally {
      await q.close();
    }
  });

  it('answers 503 with Retry-After when the queue is full', async () => {
    const q = await serveWith({ maxQueue: 1 });
    try {
      const long = post('/completions', { model: NAME, prompt: PROMPT, max_tokens: 300, n: 16, seed: 1 }, undefined, q);
      await until(() => q.status().running && q.status().waiting === 0, 'the long request to start');
      const queued = post('/completions', { model: NAME, prompt: 'b', max_tokens: 2 }, undefined, q);
      await until(() => q.status().waiting === 1, 'the second request to queue');
      const refused = await post('/completions', { model: NAME, prompt: 'c', max_tokens: 2 }, undefined, q);
      expect([refused.status, refused.json.error.code, refused.headers['retry-after']]).toEqual([503, 'server_overloaded', '1']);
      expect((await long).status).toBe(200);
      expect((await queued).status).toBe(200);
    } finally {
      await q.close();
    }
  });

  it('drops a queued request whose client went away', async () => {
    const q = await serveWith();
    try {
      const long = post('/completions', { model: NAME, prompt: PROMPT, max_tokens: 300, n: 16, seed: 1 }, undefined, q);
      await until(() => q.status().running && q.status().waiting === 0, 'the long request to start');
      const req = request(`${q.baseUrl}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
      req.on('error', () => {});
      req.end(JSON.stringify({ model: NAME, prompt: 'gone', max_tokens: 5, temperature: 0.5 }));
      await until(() => q.status().waiting === 1, 'the second request to queue');
      req.destroy();
      await until(() => q.status().waiting === 0, 'the abandoned request to leave the queue');
      expect(q.status().running).toBe(true);
      expect((await long).status).toBe(200);
      expect(q.status().batchedRequests).toBe(1);
    } finally {
      await q.close();
    }
  });

  it('close() answers the running request, fails the queued one with 503, then refuses connections', async () => {
    const q = await serveWith();
    const body = { model: NAME, prompt: PROMPT, max_tokens: 200, n: 16, temperature: 0.8, seed: 8 };
    const running = post('/completions', body, undefined, q);
    await until(() => q.status().running && q.status().waiting === 0, 'the first request to start');
    const queued = post('/completions', { model: NAME, prompt: 'late', max_tokens: 3 }, undefined, q);
    await until(() => q.status().waiting === 1, 'the second request to queue');
    await q.close();
    const [a, b] = await Promise.all([running, queued]);
    expect(a.status).toBe(200);
    expect(a.json.choices).toHaveLength(16);
    expect(texts(a.json)).toEqual((await reference([{ prompt: PROMPT, numSamples: 16, seed: 8 }], { maxNewTokens: 200, temperature: 0.8 }))[0]);
    expect([b.status, b.json.error.code]).toEqual([503, 'server_shutting_down']);
    await expect(call(`${q.baseUrl}/models`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await q.close(); // idempotent
    // the caller's model was not disposed by the server
    expect((await post('/completions', { model: NAME, prompt: 'x', max_tokens: 2 })).status).toBe(200);
  });
});
