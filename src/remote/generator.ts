// The OpenAI-compatible backend of the transfer step: a TextGenerator over /completions or
// /chat/completions, so the API route of the paper runs through the same pipeline, denoiser
// and cache as the local model.
import { isGreedy } from '../runtime/generation/processors.js';
import type { FinishReason, GeneratedText, GenerationParams, GenerationRequest, TextGenerator } from '../generator/index.js';
import { RemoteError } from './errors.js';
import { OpenAIClient, type OpenAIClientOptions, type ChatMessage, type Usage } from './openai.js';

export type ApiEndpoint = 'completions' | 'chat';

/** What an API says about one generated text, small enough to keep per cached row. */
export interface ApiMeta {
  [key: string]: string | number | null;
  endpoint: ApiEndpoint;
  responseId: string | null;
  /** The server's finish_reason as sent (`stop`, `length`, `content_filter`, ...). */
  apiFinishReason: string | null;
  /** Usage of the whole response (shared by its n choices). */
  promptTokens: number | null;
  completionTokens: number | null;
}

export interface ApiGeneratedText extends GeneratedText {
  meta: ApiMeta;
}

export interface OpenAIGeneratorOptions {
  /** An existing client (shares its concurrency limit) or the options to make one. */
  client: OpenAIClient | OpenAIClientOptions;
  /** The API's model name (`--api-model`). */
  model: string;
  endpoint?: ApiEndpoint;
  /**
   * `auto` (default): one request with `n` samples; samples a server does not return (some ignore
   * `n`, some reject it with a 400) are fetched one call each, and later requests go one call per
   * sample. `repeat`: always one call per sample.
   */
  samples?: 'auto' | 'repeat';
  /** Chat only: a system message before the prompt. */
  systemPrompt?: string;
  /** Extra body fields for servers that take them (e.g. `{ top_k: 40 }` for vLLM). */
  extraBody?: Record<string, unknown>;
}

/** OpenAI accepts at most 4 stop sequences; the rest are applied to the text here. */
const MAX_API_STOP = 4;

/** Cache identity: `api:<base-url>#<model>`, with `#chat` for the chat endpoint (a different text for the same prompt). */
export function apiIdentity(baseUrl: string, model: string, endpoint: ApiEndpoint = 'completions'): string {
  return `api:${baseUrl}#${model}${endpoint === 'chat' ? '#chat' : ''}`;
}

/** Cuts `text` before the first stop string; reports whether it cut. */
export function applyStop(text: string, stop: readonly string[] | undefined): { text: string; stopped: boolean } {
  let cut = -1;
  for (const s of stop ?? []) {
    if (s === '') continue;
    const i = text.indexOf(s);
    if (i >= 0 && (cut < 0 || i < cut)) cut = i;
  }
  return cut < 0 ? { text, stopped: false } : { text: text.slice(0, cut), stopped: true };
}

function finishReasonOf(api: string | null | undefined, cutHere: boolean): FinishReason {
  if (cutHere) return 'stop';
  return api === 'length' ? 'length' : 'stop';
}

interface Choice {
  text: string;
  index: number;
  finish: string | null;
}

interface ResponseChoices {
  id: string | null;
  choices: Choice[];
  usage: Usage | null | undefined;
}

export class OpenAIGenerator implements TextGenerator {
  readonly id: string;
  readonly kind = 'api' as const;
  readonly client: OpenAIClient;
  readonly endpoint: ApiEndpoint;
  private nSupported: boolean;

  constructor(private readonly opts: OpenAIGeneratorOptions) {
    this.client = opts.client instanceof OpenAIClient ? opts.client : new OpenAIClient(opts.client);
    this.endpoint = opts.endpoint ?? 'completions';
    this.id = apiIdentity(this.client.baseUrl, opts.model, this.endpoint);
    this.nSupported = (opts.samples ?? 'auto') === 'auto';
  }

  async generate(requests: GenerationRequest[], params: GenerationParams): Promise<ApiGeneratedText[][]> {
    return Promise.all(requests.map((r) => this.generateOne(r, params)));
  }

  private body(params: GenerationParams, n: number, seed: number): Record<string, unknown> {
    // The local model's rule: a temperature under MIN_SAMPLING_TEMPERATURE is sent as its limit, 0.
    const greedy = isGreedy(params);
    const body: Record<string, unknown> = {
      ...this.opts.extraBody,
      model: this.opts.model,
      max_tokens: params.maxNewTokens,
      temperature: greedy ? 0 : params.temperature,
      seed,
    };
    if (!greedy && params.topP !== undefined) body.top_p = params.topP;
    if (params.stop && params.stop.length > 0) body.stop = params.stop.slice(0, MAX_API_STOP);
    if (n > 1) body.n = n;
    return body;
  }

  private async call(prompt: string, params: GenerationParams, n: number, seed: number): Promise<ResponseChoices> {
    const body = this.body(params, n, seed);
    if (this.endpoint === 'chat') {
      const messages: ChatMessage[] = [];
      if (this.opts.systemPrompt) messages.push({ role: 'system', content: this.opts.systemPrompt });
      messages.push({ role: 'user', content: prompt });
      const r = await this.client.chatCompletions({ ...body, model: this.opts.model, messages });
      return {
        id: r.id ?? null,
        usage: r.usage,
        choices: r.choices.map((c, i) => ({ text: c.message.content ?? '', index: c.index ?? i, finish: c.finish_reason ?? null })),
      };
    }
    const r = await this.client.completions({ ...body, model: this.opts.model, prompt });
    return {
      id: r.id ?? null,
      usage: r.usage,
      choices: r.choices.map((c, i) => ({ text: c.text, index: c.index ?? i, finish: c.finish_reason ?? null })),
    };
  }

  private toText(c: Choice, res: ResponseChoices, params: GenerationParams, single: boolean): ApiGeneratedText {
    const { text, stopped } = applyStop(c.text, params.stop);
    return {
      text,
      finishReason: finishReasonOf(c.finish, stopped),
      ...(single && res.usage?.completion_tokens !== undefined ? { tokens: res.usage.completion_tokens } : {}),
      meta: {
        endpoint: this.endpoint,
        responseId: res.id,
        apiFinishReason: c.finish,
        promptTokens: res.usage?.prompt_tokens ?? null,
        completionTokens: res.usage?.completion_tokens ?? null,
      },
    };
  }

  private async generateOne(req: GenerationRequest, params: GenerationParams): Promise<ApiGeneratedText[]> {
    const n = req.numSamples;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`numSamples must be a positive integer, got ${n}`);
    const out: ApiGeneratedText[] = [];
    if (n > 1 && this.nSupported) {
      try {
        const res = await this.call(req.prompt, params, n, params.seed);
        const sorted = [...res.choices].sort((a, b) => a.index - b.index).slice(0, n);
        for (const c of sorted) out.push(this.toText(c, res, params, false));
        if (out.length < n) this.nSupported = false; // the server ignores n: go one by one from now on
      } catch (err) {
        if (!(err instanceof RemoteError && err.details.status === 400 && /\bn\b/.test(err.message))) throw err;
        this.nSupported = false; // the server rejects n > 1
      }
    }
    // One call per missing sample; sample i gets seed + i so a seeded server still varies them.
    const rest = Array.from({ length: n - out.length }, (_, k) => out.length + k);
    const singles = await Promise.all(
      rest.map(async (i) => {
        const res = await this.call(req.prompt, params, 1, params.seed + i);
        const c = res.choices[0];
        if (!c) throw new RemoteError(`${this.client.baseUrl}: the response has no choices`, { url: this.client.baseUrl });
        return this.toText(c, res, params, true);
      }),
    );
    return [...out, ...singles];
  }
}
