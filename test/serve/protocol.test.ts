// The OpenAI request shapes as `uit serve` reads them (src/serve/protocol.ts), without HTTP: what
// each field becomes for the runtime, every limit at and past its boundary, and the 400s that name
// the field. The tokenizer is the tiny fixture's (byte-level: one token per byte, BOS 256).
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { GenerationOutput } from '../../src/runtime/index.js';
import { ChatFormatter } from '../../src/serve/chat.js';
import { ApiError } from '../../src/serve/errors.js';
import {
  COMPLETIONS_DEFAULT_MAX_TOKENS,
  DEFAULT_LIMITS,
  chatResponse,
  completionResponse,
  parseChatRequest,
  parseCompletionRequest,
  responseId,
  type ProtocolContext,
} from '../../src/serve/protocol.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { FIXTURE, tempDir } from './helpers.js';

const tokenizer = loadTokenizer(FIXTURE);
const ctx: ProtocolContext = { modelName: 'm', tokenizer, chat: ChatFormatter.plain(), limits: DEFAULT_LIMITS, contextLength: 64 };
const small = { ...ctx, limits: { maxTokens: 8, maxN: 3, maxPrompts: 2 } };
const bytes = (s: string) => [...Buffer.from(s, 'utf8')];

/** The ApiError a call throws, as the fields a client sees. */
function refusal(fn: () => unknown): { status: number; param: string | null; code: string | null; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    const e = err as ApiError;
    return { status: e.status, param: e.param, code: e.code, message: e.message };
  }
  throw new Error('expected an ApiError');
}

const completion = (extra: object, c = ctx) => parseCompletionRequest({ model: 'm', prompt: 'Hi', ...extra }, c);
const chat = (extra: object, c = ctx) => parseChatRequest({ model: 'm', messages: [{ role: 'user', content: 'Hi' }], ...extra }, c);

describe('a completion request', () => {
  it("becomes the runtime's options: OpenAI's defaults, greedy at temperature 0, extensions off at their neutral values", () => {
    const plan = completion({ seed: 7 });
    expect(plan).toStrictEqual({ prompts: [bytes('Hi')], n: 1, seed: 7, options: { temperature: 1, greedy: false, stop: [], maxNewTokens: COMPLETIONS_DEFAULT_MAX_TOKENS } });
    expect(COMPLETIONS_DEFAULT_MAX_TOKENS).toBe(16);
    expect(completion({ seed: 1, temperature: 0 }).options).toEqual({ temperature: 0, greedy: true, stop: [], maxNewTokens: 16 });
    const all = completion({ seed: 1, n: 2, temperature: 0.5, top_p: 0.9, top_k: 40, repetition_penalty: 1.2, stop: ['\n', ''], max_tokens: 5 });
    expect(all).toStrictEqual({
      prompts: [bytes('Hi')],
      n: 2,
      seed: 1,
      options: { temperature: 0.5, greedy: false, topP: 0.9, topK: 40, repetitionPenalty: 1.2, stop: ['\n'], maxNewTokens: 5 },
    });
    // neutral values and nulls: no warper
    const neutral = completion({ seed: 1, top_p: 1, top_k: 0, repetition_penalty: 1, stop: null, temperature: null, n: null });
    // no key for an option left at its neutral value, not even one set to undefined
    expect(neutral.options).toStrictEqual({ temperature: 1, greedy: false, stop: [], maxNewTokens: 16 });
    expect(completion({ seed: 1, top_k: -1, top_p: null, repetition_penalty: null }).options).toStrictEqual(neutral.options);
    expect(completion({ seed: 1 }).options).toStrictEqual(neutral.options);
    expect(completion({ seed: 1, stop: 'END' }).options.stop).toEqual(['END']);
  });

  it('draws a fresh seed when none is given', () => {
    const seeds = new Set(Array.from({ length: 20 }, () => completion({}).seed));
    expect(seeds.size).toBeGreaterThan(15);
    for (const s of seeds) expect(Number.isInteger(s) && s >= 0 && s < 2 ** 31).toBe(true);
  });

  it('takes a string, strings, token ids, or lists of token ids', () => {
    expect(completion({ prompt: ['a', 'bc'] }).prompts).toEqual([bytes('a'), bytes('bc')]);
    expect(completion({ prompt: [72, 105] }).prompts).toEqual([[72, 105]]);
    expect(completion({ prompt: [[72], [105, 256]] }).prompts).toEqual([[72], [105, 256]]);
    expect(completion({ prompt: '' }).prompts).toEqual([[]]); // generate starts it from BOS
    expect(refusal(() => completion({ prompt: [72, 257] }))).toEqual({
      status: 400,
      param: 'prompt',
      code: 'invalid_value',
      message: 'Token id 257 is out of range: the vocabulary has 257 tokens.',
    });
    expect(refusal(() => completion({ prompt: [[72], [300]] })).param).toBe('prompt.1');
    expect(refusal(() => completion({ prompt: [] })).param).toBe('prompt');
  });

  it('allows n, max_tokens and the prompt count up to their limits, and names the field past them', () => {
    expect(completion({ n: 3 }, small).n).toBe(3);
    expect(refusal(() => completion({ n: 4 }, small))).toEqual({
      status: 400,
      param: 'n',
      code: 'invalid_value',
      message: 'n is 4; this server allows at most 3 (uit serve --max-n).',
    });
    expect(completion({ max_tokens: 8 }, small).options.maxNewTokens).toBe(8);
    // OpenAI's default of 16 is cut to a lower limit, not refused: the client never sent max_tokens
    expect(completion({}, small).options.maxNewTokens).toBe(8);
    expect(refusal(() => completion({ max_tokens: 9 }, small))).toEqual({
      status: 400,
      param: 'max_tokens',
      code: 'invalid_value',
      message: 'max_tokens is 9; this server allows at most 8 (uit serve --max-tokens).',
    });
    expect(completion({ prompt: ['a', 'b'], max_tokens: 1 }, small).prompts).toHaveLength(2);
    expect(refusal(() => completion({ prompt: ['a', 'b', 'c'], max_tokens: 1 }, small))).toEqual({
      status: 400,
      param: 'prompt',
      code: 'invalid_value',
      message: 'The request has 3 prompts; this server allows at most 2 per request.',
    });
    expect(DEFAULT_LIMITS).toEqual({ maxTokens: 512, maxN: 16, maxPrompts: 32 });
  });

  it('fits the longest prompt and the completion in the context, exactly up to it', () => {
    const p = 'x'.repeat(60);
    expect(completion({ prompt: [p, 'y'], max_tokens: 4 }).options.maxNewTokens).toBe(4); // 60 + 4 = 64
    expect(refusal(() => completion({ prompt: ['y', p], max_tokens: 5 }))).toEqual({
      status: 400,
      param: 'prompt',
      code: 'context_length_exceeded',
      message:
        "This model's maximum context length is 64 tokens. However, you requested 65 tokens (60 in the prompt, 5 for the completion). Please reduce the prompt or the completion length.",
    });
    // an empty prompt still takes a position (BOS)
    expect(refusal(() => completion({ prompt: '', max_tokens: 64 })).message).toContain('you requested 65 tokens (1 in the prompt, 64');
    // no context length known: only the limit applies
    expect(completion({ prompt: 'x'.repeat(600), max_tokens: 512 }, { ...ctx, contextLength: undefined }).options.maxNewTokens).toBe(512);
  });

  it('refuses what it does not implement, naming the field, and accepts those fields at their defaults', () => {
    const cases: [object, string][] = [
      [{ stream: true }, 'stream'],
      [{ presence_penalty: 0.1 }, 'presence_penalty'],
      [{ frequency_penalty: -0.1 }, 'frequency_penalty'],
      [{ logit_bias: { '5': 1 } }, 'logit_bias'],
      [{ echo: true }, 'echo'],
      [{ logprobs: 0 }, 'logprobs'],
      [{ best_of: 2 }, 'best_of'],
      [{ suffix: 'x' }, 'suffix'],
    ];
    for (const [extra, param] of cases) {
      const r = refusal(() => completion(extra));
      expect([r.status, r.param, r.code], param).toEqual([400, param, 'unsupported_parameter']);
    }
    expect(cases.map(([extra]) => refusal(() => completion(extra)).message)).toEqual([
      'Streaming is not supported by uit serve: send "stream": false (or leave it out) and read the whole response.',
      'presence_penalty is not supported (only 0); use the repetition_penalty extension.',
      'frequency_penalty is not supported (only 0); use the repetition_penalty extension.',
      'logit_bias is not supported.',
      'echo is not supported: only "echo": false.',
      'logprobs are not supported by uit serve (use uit score for log-probabilities).',
      'best_of is not supported (only equal to n).',
      'suffix is not supported.',
    ]);
    const defaults = { stream: false, presence_penalty: 0, frequency_penalty: 0, logit_bias: {}, echo: false, logprobs: null, suffix: '', user: 'u' };
    expect(completion({ ...defaults, seed: 3 })).toEqual(completion({ seed: 3 }));
    expect(completion({ best_of: 2, n: 2 }).n).toBe(2); // best_of equal to n is plain sampling
  });

  it('answers a wrong model with 404 and a malformed body with a 400 that names the field', () => {
    expect(refusal(() => parseCompletionRequest({ model: 'other', prompt: 'x' }, ctx))).toEqual({
      status: 404,
      param: 'model',
      code: 'model_not_found',
      message: "The model 'other' does not exist. This server serves 'm' (GET /v1/models).",
    });
    expect(refusal(() => parseCompletionRequest({ prompt: 'x' }, ctx))).toEqual({
      status: 400,
      param: 'model',
      code: 'missing_required_parameter',
      message: "Missing required parameter: 'model'.",
    });
    const n = refusal(() => completion({ n: 0 }));
    expect([n.status, n.param, n.code]).toEqual([400, 'n', 'invalid_value']);
    expect(n.message).toMatch(/^Invalid value for 'n': /);
    // each field's range, just inside and just outside
    const accepted: object[] = [{ temperature: 2 }, { top_p: 1 }, { top_k: -1 }, { stop: [] }, { max_tokens: 1 }, { best_of: null }];
    for (const extra of accepted) expect(() => completion(extra), JSON.stringify(extra)).not.toThrow();
    const rejected: [object, string][] = [
      [{ temperature: 2.5 }, 'temperature'],
      [{ temperature: -0.1 }, 'temperature'],
      [{ top_p: 0 }, 'top_p'],
      [{ top_p: 1.5 }, 'top_p'],
      [{ top_k: -2 }, 'top_k'],
      [{ top_k: 1.5 }, 'top_k'],
      [{ max_tokens: 0 }, 'max_tokens'],
      [{ logprobs: -1 }, 'logprobs'],
      [{ best_of: 0 }, 'best_of'],
      [{ repetition_penalty: 0 }, 'repetition_penalty'],
      [{ seed: 1.5 }, 'seed'],
      [{ prompt: [-1] }, 'prompt.0'],
      [{ prompt: [[]] }, 'prompt.0'],
      [{ prompt: [[-1]] }, 'prompt.0.0'],
      [{ prompt: [1.5] }, 'prompt'],
      [{ prompt: 5 }, 'prompt'],
    ];
    for (const [extra, param] of rejected) {
      const r = refusal(() => completion(extra));
      expect([r.status, r.param, r.code], JSON.stringify(extra)).toEqual([400, param, 'invalid_value']);
    }
    expect(refusal(() => completion({ prompt: 5 })).message).toBe(
      "Invalid value for 'prompt': expected a string, a non-empty array of strings, or token ids (an array of integers, or an array of such arrays)",
    );
    expect(refusal(() => parseCompletionRequest({ model: 5, prompt: 'x' }, ctx)).message).toBe("Invalid value for 'model': you must provide a model parameter");
    expect(refusal(() => completion({ stop: Array(17).fill('x') })).param).toBe('stop');
    expect(completion({ stop: Array(16).fill('x') }).options.stop).toHaveLength(16);
    expect(refusal(() => completion({ messages: 1, prompt: { a: 1 } })).param).toBe('prompt');
    for (const body of [[1], undefined, 'x']) {
      const r = refusal(() => parseCompletionRequest(body, ctx));
      expect([r.status, r.param, r.code], JSON.stringify(body)).toEqual([400, null, 'invalid_value']);
    }
  });
});

describe('a model without a BOS token', () => {
  it('cannot start from an empty prompt: a 400 naming the field', () => {
    const tmp = tempDir('uit-protocol-');
    try {
      const dir = join(tmp.dir, 'model');
      cpSync(FIXTURE, dir, { recursive: true });
      for (const f of ['config.json', 'generation_config.json', 'tokenizer_config.json']) {
        const j = JSON.parse(readFileSync(join(dir, f), 'utf8'));
        delete j.bos_token_id;
        delete j.bos_token;
        writeFileSync(join(dir, f), JSON.stringify(j));
      }
      const noBos = { ...ctx, tokenizer: loadTokenizer(dir) };
      expect(noBos.tokenizer.bosTokenId).toBeUndefined();
      expect(refusal(() => completion({ prompt: ['a', ''] }, noBos))).toEqual({
        status: 400,
        param: 'prompt',
        code: 'invalid_value',
        message: 'The prompt is empty and this model has no BOS token to start from.',
      });
      expect(completion({ prompt: ['a', 'b'] }, noBos).prompts).toEqual([[97], [98]]);
      expect(refusal(() => chat({ messages: [{ role: 'user', content: '' }] }, noBos)).param).toBe('messages');
    } finally {
      tmp.cleanup();
    }
  });
});

describe('a chat request', () => {
  it('sends a lone user message verbatim and anything longer as a plain transcript', () => {
    const one = chat({ seed: 2 });
    expect(one).toEqual({ prompt: 'Hi', prompts: [bytes('Hi')], n: 1, seed: 2, options: { temperature: 1, greedy: false, stop: [], maxNewTokens: 62 } });
    const many = chat({
      seed: 2,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }], name: 'me' },
        { role: 'assistant', content: null },
      ],
    });
    expect(many.prompt).toBe('System: Be brief.\n\nUser: ab\n\nAssistant: \n\nAssistant:');
  });

  it("defaults max_tokens to what the context leaves, up to the server's limit; max_completion_tokens wins and is named", () => {
    expect(chat({}).options.maxNewTokens).toBe(62); // 64 - 2
    expect(chat({}, { ...ctx, contextLength: 1000 }).options.maxNewTokens).toBe(512);
    expect(chat({}, { ...ctx, contextLength: undefined }).options.maxNewTokens).toBe(512);
    expect(chat({ max_tokens: 3 }).options.maxNewTokens).toBe(3);
    expect(chat({ max_tokens: 3, max_completion_tokens: 5 }).options.maxNewTokens).toBe(5);
    expect(refusal(() => chat({ max_tokens: 3, max_completion_tokens: 600 })).param).toBe('max_completion_tokens');
    expect(refusal(() => chat({ max_tokens: 600 })).param).toBe('max_tokens');
    // a prompt that fills the context leaves no room even for one token
    const full = refusal(() => chat({ messages: [{ role: 'user', content: 'x'.repeat(64) }] }));
    expect([full.param, full.code]).toEqual(['messages', 'context_length_exceeded']);
    expect(full.message).toContain('you requested 65 tokens (64 in the prompt, 1 for the completion)');
    expect(chat({ messages: [{ role: 'user', content: 'x'.repeat(63) }] }).options.maxNewTokens).toBe(1);
  });

  it('refuses non-text parts, logprobs, tools and other response formats, naming the field', () => {
    const part = refusal(() => chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image_url' }] }] }));
    expect(part).toEqual({
      status: 400,
      param: 'messages.0.content.1',
      code: 'unsupported_parameter',
      message: "Content parts of type 'image_url' are not supported: only text.",
    });
    expect(refusal(() => chat({ messages: [{ role: 'user', content: [{ type: 'text' }] }] })).param).toBe('messages.0.content.0');
    // a part that is not text is refused even when it carries a text field
    expect(refusal(() => chat({ messages: [{ role: 'user', content: [{ type: 'input_audio', text: 'a' }] }] })).param).toBe('messages.0.content.0');
    for (const [extra, param] of [
      [{ logprobs: true }, 'logprobs'],
      [{ top_logprobs: 2 }, 'top_logprobs'],
      [{ tools: [{}] }, 'tools'],
      [{ response_format: { type: 'json_object' } }, 'response_format'],
      [{ n: 17 }, 'n'],
    ] as const) {
      expect(refusal(() => chat(extra)).param).toBe(param);
    }
    expect(
      [
        { logprobs: true },
        { top_logprobs: 2 },
        { tools: [{}] },
        { response_format: { type: 'json_object' } },
      ].map((extra) => refusal(() => chat(extra)).message),
    ).toEqual([
      'logprobs are not supported by uit serve.',
      'top_logprobs is not supported by uit serve.',
      'tools (function calling) are not supported by uit serve.',
      "response_format 'json_object' is not supported: only text.",
    ]);
    expect(chat({ seed: 1, logprobs: false, top_logprobs: null, tools: [], response_format: { type: 'text' } })).toStrictEqual(chat({ seed: 1 }));
    // the shapes themselves: every role OpenAI has, a part needs its type, a response_format its type
    const roomy = { ...ctx, contextLength: undefined };
    const roles = chat({ messages: ['system', 'developer', 'user', 'assistant'].map((role) => ({ role, content: role })) }, roomy).prompt;
    expect(roles).toBe('System: system\n\nDeveloper: developer\n\nUser: user\n\nAssistant: assistant\n\nAssistant:');
    const noType = refusal(() => chat({ messages: [{ role: 'user', content: [{ text: 'a' }] }] }));
    expect([noType.param, noType.code, noType.message]).toEqual([
      'messages.0.content',
      'invalid_value',
      "Invalid value for 'messages.0.content': expected a string, an array of text parts, or null",
    ]);
    const format = refusal(() => chat({ response_format: {} }));
    expect([format.param, format.code]).toEqual(['response_format.type', 'missing_required_parameter']);
    for (const extra of [{ max_tokens: 0 }, { max_completion_tokens: 0 }, { max_completion_tokens: null, max_tokens: 0 }]) {
      expect(refusal(() => chat(extra)).code, JSON.stringify(extra)).toBe('invalid_value');
    }
    expect(chat({ max_completion_tokens: null, max_tokens: 3 }).options.maxNewTokens).toBe(3);
    expect(refusal(() => chat({ max_completion_tokens: null, max_tokens: 600 })).param).toBe('max_tokens');
    expect(refusal(() => chat({ messages: [] })).param).toBe('messages');
    expect(refusal(() => chat({ messages: [{ role: 'robot', content: 'x' }] })).param).toBe('messages.0.role');
  });

  it("renders the model folder's template, and its raise_exception is a 400 on messages", () => {
    const tmp = tempDir('uit-protocol-');
    try {
      const dir = join(tmp.dir, 'model');
      cpSync(FIXTURE, dir, { recursive: true });
      const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
      config.chat_template =
        "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system messages') }}{% endif %}[{{ m.role }}{% if m.name %} {{ m.name }}{% endif %}] {{ m.content }}\n{% endfor %}[assistant]";
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
      const templated = { ...ctx, chat: ChatFormatter.forModelFolder(dir) };
      expect(chat({}, templated).prompt).toBe('[user] Hi\n[assistant]');
      // a message's name reaches the template
      expect(chat({ messages: [{ role: 'user', content: 'Hi', name: 'ann' }, { role: 'assistant', content: 'Yo' }] }, templated).prompt).toBe('[user ann] Hi\n[assistant] Yo\n[assistant]');
      expect(refusal(() => chat({ messages: [{ role: 'system', content: 's' }] }, templated))).toEqual({
        status: 400,
        param: 'messages',
        code: 'invalid_value',
        message: 'The chat template rejected the messages: no system messages',
      });
    } finally {
      tmp.cleanup();
    }
  });
});

describe('responses', () => {
  const sample = (text: string, ids: number[], finishReason: string) => ({ text, tokenIds: ids, finishReason });
  const outputs = [
    { promptTokens: 3, samples: [sample('a', [1], 'eos'), sample('bc', [2, 3], 'length')] },
    { promptTokens: 5, samples: [sample('d', [4], 'stop'), sample('', [], 'eos')] },
  ] as unknown as GenerationOutput[];

  it("list every prompt's samples in order, with OpenAI's finish reasons and the token usage", () => {
    const r = completionResponse('cmpl-1', 'm', outputs);
    expect(r).toEqual({
      id: 'cmpl-1',
      object: 'text_completion',
      created: r.created,
      model: 'm',
      choices: [
        { index: 0, text: 'a', logprobs: null, finish_reason: 'stop' },
        { index: 1, text: 'bc', logprobs: null, finish_reason: 'length' },
        { index: 2, text: 'd', logprobs: null, finish_reason: 'stop' },
        { index: 3, text: '', logprobs: null, finish_reason: 'stop' },
      ],
      usage: { prompt_tokens: 8, completion_tokens: 4, total_tokens: 12 },
    });
    expect(Math.abs(r.created - Date.now() / 1000)).toBeLessThan(5);
    const c = chatResponse('chatcmpl-1', 'm', outputs[0]);
    expect(c.object).toBe('chat.completion');
    expect(c.choices).toEqual([
      { index: 0, message: { role: 'assistant', content: 'a' }, logprobs: null, finish_reason: 'stop' },
      { index: 1, message: { role: 'assistant', content: 'bc' }, logprobs: null, finish_reason: 'length' },
    ]);
    expect(c.usage).toEqual({ prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 });
    expect([c.id, c.model]).toEqual(['chatcmpl-1', 'm']);
    expect(Math.abs(c.created - Date.now() / 1000)).toBeLessThan(5);
    expect(responseId('cmpl')).toMatch(/^cmpl-[0-9a-f]{24}$/);
    expect(responseId('cmpl')).not.toBe(responseId('cmpl'));
  });
});
