// A small client for OpenAI-compatible APIs (OpenAI, vLLM, llama.cpp's server, `uit serve`):
// /completions, /chat/completions and /models under a base URL that includes the version
// prefix, as the OpenAI SDKs take it (`https://api.openai.com/v1`, `http://127.0.0.1:8080/v1`).
// Responses are validated at the edge: a server that answers something else gets a RemoteError
// that shows what was received.
import { z } from 'zod';
import { RemoteError } from './errors.js';
import { JsonHttpClient, type HttpOptions } from './http.js';

export interface CompletionRequest {
  model: string;
  prompt: string;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  n?: number;
  stop?: string[];
  seed?: number;
  /** Fields some compatible servers accept (e.g. vLLM's `top_k`); sent as given. */
  [extra: string]: unknown;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatCompletionRequest extends Omit<CompletionRequest, 'prompt'> {
  messages: ChatMessage[];
}

const usageSchema = z
  .object({
    prompt_tokens: z.number().optional(),
    completion_tokens: z.number().optional(),
    total_tokens: z.number().optional(),
  })
  .loose();

const completionSchema = z
  .object({
    id: z.string().optional(),
    model: z.string().optional(),
    choices: z.array(
      z
        .object({
          text: z.string(),
          index: z.number().int().optional(),
          finish_reason: z.string().nullable().optional(),
        })
        .loose(),
    ),
    usage: usageSchema.nullable().optional(),
  })
  .loose();

const chatSchema = z
  .object({
    id: z.string().optional(),
    model: z.string().optional(),
    choices: z.array(
      z
        .object({
          message: z.object({ role: z.string().optional(), content: z.string().nullable() }).loose(),
          index: z.number().int().optional(),
          finish_reason: z.string().nullable().optional(),
        })
        .loose(),
    ),
    usage: usageSchema.nullable().optional(),
  })
  .loose();

const modelsSchema = z
  .object({ data: z.array(z.object({ id: z.string() }).loose()) })
  .loose();

export type CompletionResponse = z.infer<typeof completionSchema>;
export type ChatCompletionResponse = z.infer<typeof chatSchema>;
export type ModelList = z.infer<typeof modelsSchema>;
export type Usage = z.infer<typeof usageSchema>;

/** Look-up and store hooks around every request: the pipeline's cache plugs in here. */
export interface RequestCache {
  get(endpoint: string, body: unknown): Promise<unknown | undefined> | unknown | undefined;
  set(endpoint: string, body: unknown, response: unknown): Promise<void> | void;
}

export interface OpenAIClientOptions {
  /** Including the version prefix, e.g. `http://127.0.0.1:8080/v1`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>`; none when undefined (local servers often need none). */
  apiKey?: string;
  /** Where the key came from, for error messages (default OPENAI_API_KEY). */
  apiKeyEnv?: string;
  http?: Partial<HttpOptions>;
  /** Called for every request and response (after validation); see RequestCache. */
  requestCache?: RequestCache;
}

export function normalizeBaseUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RemoteError(`--base-url ${JSON.stringify(url)} is not a URL (expected e.g. http://127.0.0.1:8080/v1)`, { url });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new RemoteError(`--base-url ${url}: only http and https are supported`, { url });
  }
  return url.replace(/\/+$/, '');
}

export class OpenAIClient {
  readonly baseUrl: string;
  readonly http: JsonHttpClient;
  private readonly keyEnv: string;
  private readonly hasKey: boolean;

  constructor(private readonly opts: OpenAIClientOptions) {
    this.baseUrl = normalizeBaseUrl(opts.baseUrl);
    this.keyEnv = opts.apiKeyEnv ?? 'OPENAI_API_KEY';
    this.hasKey = opts.apiKey !== undefined && opts.apiKey !== '';
    const headers = { ...opts.http?.headers };
    if (this.hasKey) headers.authorization = `Bearer ${opts.apiKey}`;
    this.http = new JsonHttpClient({ ...opts.http, headers });
  }

  async completions(body: CompletionRequest): Promise<CompletionResponse> {
    return this.post('/completions', body, completionSchema);
  }

  async chatCompletions(body: ChatCompletionRequest): Promise<ChatCompletionResponse> {
    return this.post('/chat/completions', body, chatSchema);
  }

  async models(): Promise<ModelList> {
    const url = `${this.baseUrl}/models`;
    return this.validate(url, await this.call(() => this.http.getJson(url)), modelsSchema);
  }

  private async post<T>(endpoint: string, body: object, schema: z.ZodType<T>): Promise<T> {
    const url = `${this.baseUrl}${endpoint}`;
    const cache = this.opts.requestCache;
    if (cache) {
      const hit = await cache.get(endpoint, body);
      if (hit !== undefined) return this.validate(url, hit, schema);
    }
    const raw = await this.call(() => this.http.postJson(url, body));
    const parsed = this.validate(url, raw, schema);
    if (cache) await cache.set(endpoint, body, raw);
    return parsed;
  }

  private async call(fn: () => Promise<unknown>): Promise<unknown> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof RemoteError && (err.details.status === 401 || err.details.status === 403)) {
        const hint = this.hasKey
          ? `check the key in $${this.keyEnv}`
          : `$${this.keyEnv} is not set, so no key was sent`;
        throw new RemoteError(`${err.message} (${hint})`, err.details, { cause: err });
      }
      throw err;
    }
  }

  private validate<T>(url: string, raw: unknown, schema: z.ZodType<T>): T {
    const r = schema.safeParse(raw);
    if (r.success) return r.data;
    const issue = r.error.issues[0];
    let shown = JSON.stringify(raw) ?? String(raw);
    if (shown.length > 300) shown = `${shown.slice(0, 300)}…`;
    throw new RemoteError(
      `${url}: unexpected response shape (${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}): received ${shown}`,
      { url },
    );
  }
}
