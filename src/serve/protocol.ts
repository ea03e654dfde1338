// The request and response shapes of OpenAI's /v1/completions and /v1/chat/completions, and
// their translation to and from the runtime's generate(). Requests are validated here, at the
// edge: every problem becomes a 400 that names the field (`param`), as OpenAI's own errors do.
import { randomBytes, randomInt } from 'node:crypto';
import { z } from 'zod';
import { isGreedy, type GenerationOutput } from '../runtime/index.js';
import type { UitTokenizer } from '../tokenizer/index.js';
import { ApiError, invalidParam, unsupported } from './errors.js';
import type { ChatFormatter, ChatMessage } from './chat.js';
import type { BatchOptions } from './scheduler.js';

export interface Limits {
  /** Largest max_tokens a request may ask for (default 512). */
  maxTokens: number;
  /** Largest n (default 16). */
  maxN: number;
  /** Most prompts in one /v1/completions request (default 32). */
  maxPrompts: number;
}

export const DEFAULT_LIMITS: Limits = { maxTokens: 512, maxN: 16, maxPrompts: 32 };

/** OpenAI's default max_tokens for /v1/completions; chat defaults to the limit (or what the context leaves). */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;
/** Stop strings per request (OpenAI takes 4; more cost nothing here). */
const MAX_STOP = 16;

export interface ProtocolContext {
  modelName: string;
  tokenizer: UitTokenizer;
  chat: ChatFormatter;
  limits: Limits;
  /** Positions the model takes (prompt + completion), when config.json says. */
  contextLength?: number;
}

/** What one API request asks the runtime for. */
export interface GenerationPlan {
  /** Token ids of each prompt; an empty prompt is [] (generate starts it from BOS). */
  prompts: number[][];
  n: number;
  seed: number;
  options: BatchOptions;
}

const int = z.number().int();
const samplingFields = {
  model: z.string({ error: 'you must provide a model parameter' }),
  n: int.min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(MAX_STOP)]).nullish(),
  seed: int.nullish(),
  stream: z.boolean().nullish(),
  presence_penalty: z.number().nullish(),
  frequency_penalty: z.number().nullish(),
  logit_bias: z.record(z.string(), z.number()).nullish(),
  user: z.string().nullish(),
  // Extensions (vLLM's names): top_k 0 or -1 means off.
  top_k: int.min(-1).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
};

const completionSchema = z.object({
  ...samplingFields,
  prompt: z.union(
    [z.string(), z.array(z.string()).min(1), z.array(int.min(0)).min(1), z.array(z.array(int.min(0)).min(1)).min(1)],
    { error: 'expected a string, a non-empty array of strings, or token ids (an array of integers, or an array of such arrays)' },
  ),
  max_tokens: int.min(1).nullish(),
  echo: z.boolean().nullish(),
  logprobs: int.min(0).nullish(),
  best_of: int.min(1).nullish(),
  suffix: z.string().nullish(),
});

const contentPart = z.object({ type: z.string(), text: z.string().optional() }).loose();
const messageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(contentPart), z.null()], { error: 'expected a string, an array of text parts, or null' }),
  name: z.string().optional(),
});

const chatSchema = z.object({
  ...samplingFields,
  messages: z.array(messageSchema).min(1),
  max_tokens: int.min(1).nullish(),
  max_completion_tokens: int.min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: int.nullish(),
  tools: z.array(z.unknown()).nullish(),
  response_format: z.object({ type: z.string() }).loose().nullish(),
});

type CompletionBody = z.infer<typeof completionSchema>;
type ChatBody = z.infer<typeof chatSchema>;
type SamplingBody = Pick<CompletionBody, keyof typeof samplingFields>;

/** The value at a zod issue's path (zod does not keep the input in issues by default). */
function valueAt(body: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = body;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const param = issue.path.map(String).join('.');
  if (issue.path.length > 0 && valueAt(body, issue.path) === undefined) {
    return fail(invalidParam(param, `Missing required parameter: '${param}'.`, 'missing_required_parameter'));
  }
  return fail(invalidParam(param || null, param ? `Invalid value for '${param}': ${issue.message}` : issue.message));
}

function fail(err: ApiError): never {
  throw err;
}

/** The checks shared by both endpoints: the model name, unsupported features, sampling options. */
function common(body: SamplingBody, ctx: ProtocolContext): { n: number; seed: number; sampling: Omit<BatchOptions, 'maxNewTokens'> } {
  if (body.model !== ctx.modelName) {
    throw new ApiError(404, `The model '${body.model}' does not exist. This server serves '${ctx.modelName}' (GET /v1/models).`, 'invalid_request_error', 'model', 'model_not_found');
  }
  if (body.stream) throw unsupported('stream', 'Streaming is not supported by uit serve: send "stream": false (or leave it out) and read the whole response.');
  if (body.presence_penalty) throw unsupported('presence_penalty', 'presence_penalty is not supported (only 0); use the repetition_penalty extension.');
  if (body.frequency_penalty) throw unsupported('frequency_penalty', 'frequency_penalty is not supported (only 0); use the repetition_penalty extension.');
  if (body.logit_bias && Object.keys(body.logit_bias).length > 0) throw unsupported('logit_bias', 'logit_bias is not supported.');
  const n = body.n ?? 1;
  if (n > ctx.limits.maxN) throw invalidParam('n', `n is ${n}; this server allows at most ${ctx.limits.maxN} (uit serve --max-n).`);
  const stops = body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  const temperature = body.temperature ?? 1;
  // A temperature under MIN_SAMPLING_TEMPERATURE is greedy (its limit); say so as 0, so that it
  // batches with temperature 0.
  const greedy = isGreedy({ temperature });
  return {
    n,
    // Without a seed every request samples afresh, as OpenAI does; with one it is reproducible.
    seed: body.seed ?? randomInt(2 ** 31),
    sampling: {
      temperature: greedy ? 0 : temperature,
      greedy,
      ...(body.top_p !== undefined && body.top_p !== null && body.top_p < 1 ? { topP: body.top_p } : {}),
      ...(typeof body.top_k === 'number' && body.top_k > 0 ? { topK: body.top_k } : {}),
      ...(body.repetition_penalty !== undefined && body.repetition_penalty !== null && body.repetition_penalty !== 1
        ? { repetitionPenalty: body.repetition_penalty }
        : {}),
      stop: stops.filter((s) => s !== ''),
    },
  };
}

/** max_tokens against the server's limit and the model's context. */
function maxTokensFor(requested: number | undefined, prompts: number[][], param: string, promptParam: string, ctx: ProtocolContext): number {
  const longest = Math.max(...prompts.map((p) => Math.max(p.length, 1)));
  if (requested !== undefined && requested > ctx.limits.maxTokens) {
    throw invalidParam(param, `${param} is ${requested}; this server allows at most ${ctx.limits.maxTokens} (uit serve --max-tokens).`);
  }
  const room = ctx.contextLength === undefined ? Infinity : ctx.contextLength - longest;
  const maxTokens = Math.max(1, requested ?? Math.min(ctx.limits.maxTokens, room));
  if (ctx.contextLength !== undefined && longest + maxTokens > ctx.contextLength) {
    throw invalidParam(
      promptParam,
      `This model's maximum context length is ${ctx.contextLength} tokens. However, you requested ${longest + maxTokens} tokens ` +
        `(${longest} in the prompt, ${maxTokens} for the completion). Please reduce the prompt or the completion length.`,
      'context_length_exceeded',
    );
  }
  return maxTokens;
}

function checkIds(ids: number[], param: string, tokenizer: UitTokenizer): number[] {
  const bad = ids.find((t) => t >= tokenizer.vocabSize);
  if (bad !== undefined) throw invalidParam(param, `Token id ${bad} is out of range: the vocabulary has ${tokenizer.vocabSize} tokens.`);
  return ids;
}

function checkNotEmpty(prompts: number[][], param: string, tokenizer: UitTokenizer): void {
  if (tokenizer.bosTokenId === undefined && prompts.some((p) => p.length === 0)) {
    throw invalidParam(param, 'The prompt is empty and this model has no BOS token to start from.');
  }
}

export function parseCompletionRequest(body: unknown, ctx: ProtocolContext): GenerationPlan {
  const req = parse(completionSchema, body);
  const base = common(req, ctx);
  if (req.echo) throw unsupported('echo', 'echo is not supported: only "echo": false.');
  if (req.logprobs !== undefined && req.logprobs !== null) throw unsupported('logprobs', 'logprobs are not supported by uit serve (use uit score for log-probabilities).');
  if (req.best_of !== undefined && req.best_of !== null && req.best_of !== base.n) throw unsupported('best_of', 'best_of is not supported (only equal to n).');
  if (req.suffix) throw unsupported('suffix', 'suffix is not supported.');

  const p = req.prompt;
  let prompts: number[][];
  if (typeof p === 'string') prompts = [ctx.tokenizer.encode(p)];
  else if (typeof p[0] === 'string') prompts = (p as string[]).map((s) => ctx.tokenizer.encode(s));
  else if (typeof p[0] === 'number') prompts = [checkIds(p as number[], 'prompt', ctx.tokenizer)];
  else prompts = (p as number[][]).map((ids, i) => checkIds(ids, `prompt.${i}`, ctx.tokenizer));
  if (prompts.length > ctx.limits.maxPrompts) {
    throw invalidParam('prompt', `The request has ${prompts.length} prompts; this server allows at most ${ctx.limits.maxPrompts} per request.`);
  }
  checkNotEmpty(prompts, 'prompt', ctx.tokenizer);
  // OpenAI's default, within this server's limit: a request that sends no max_tokens is never refused for it
  const maxTokens = req.max_tokens ?? Math.min(COMPLETIONS_DEFAULT_MAX_TOKENS, ctx.limits.maxTokens);
  const maxNewTokens = maxTokensFor(maxTokens, prompts, 'max_tokens', 'prompt', ctx);
  return { prompts, n: base.n, seed: base.seed, options: { ...base.sampling, maxNewTokens } };
}

function messageText(m: ChatBody['messages'][number], i: number): string {
  if (m.content === null) return '';
  if (typeof m.content === 'string') return m.content;
  return m.content
    .map((part, j) => {
      if (part.type !== 'text' || typeof part.text !== 'string') {
        throw unsupported(`messages.${i}.content.${j}`, `Content parts of type '${part.type}' are not supported: only text.`);
      }
      return part.text;
    })
    .join('');
}

export function parseChatRequest(body: unknown, ctx: ProtocolContext): GenerationPlan & { prompt: string } {
  const req = parse(chatSchema, body);
  const base = common(req, ctx);
  if (req.logprobs) throw unsupported('logprobs', 'logprobs are not supported by uit serve.');
  if (req.top_logprobs !== undefined && req.top_logprobs !== null) throw unsupported('top_logprobs', 'top_logprobs is not supported by uit serve.');
  if (req.tools && req.tools.length > 0) throw unsupported('tools', 'tools (function calling) are not supported by uit serve.');
  if (req.response_format && req.response_format.type !== 'text') throw unsupported('response_format', `response_format '${req.response_format.type}' is not supported: only text.`);
  const messages: ChatMessage[] = req.messages.map((m, i) => ({ role: m.role, content: messageText(m, i), ...(m.name ? { name: m.name } : {}) }));
  const prompt = ctx.chat.format(messages);
  const prompts = [ctx.tokenizer.encode(prompt)];
  checkNotEmpty(prompts, 'messages', ctx.tokenizer);
  const param = req.max_completion_tokens !== undefined && req.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
  const maxNewTokens = maxTokensFor(req.max_completion_tokens ?? req.max_tokens ?? undefined, prompts, param, 'messages', ctx);
  return { prompt, prompts, n: base.n, seed: base.seed, options: { ...base.sampling, maxNewTokens } };
}

// ---- responses ----

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

type OpenAIFinish = 'stop' | 'length';

/** EOS and stop strings are both `stop` to OpenAI clients. */
const finishOf = (r: string): OpenAIFinish => (r === 'length' ? 'length' : 'stop');

function usageOf(outputs: GenerationOutput[]): Usage {
  const prompt = outputs.reduce((n, o) => n + o.promptTokens, 0);
  const completion = outputs.reduce((n, o) => n + o.samples.reduce((m, s) => m + s.tokenIds.length, 0), 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export function responseId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`;
}

/** Choices in OpenAI's order: all samples of prompt 0, then prompt 1, ... (index = prompt * n + sample). */
export function completionResponse(id: string, model: string, outputs: GenerationOutput[]) {
  return {
    id,
    object: 'text_completion' as const,
    created: Math.floor(Date.now() / 1000),
    model,
    choices: outputs.flatMap((o) => o.samples).map((s, index) => ({ index, text: s.text, logprobs: null, finish_reason: finishOf(s.finishReason) })),
    usage: usageOf(outputs),
  };
}

export function chatResponse(id: string, model: string, output: GenerationOutput) {
  return {
    id,
    object: 'chat.completion' as const,
    created: Math.floor(Date.now() / 1000),
    model,
    choices: output.samples.map((s, index) => ({
      index,
      message: { role: 'assistant' as const, content: s.text },
      logprobs: null,
      finish_reason: finishOf(s.finishReason),
    })),
    usage: usageOf([output]),
  };
}
