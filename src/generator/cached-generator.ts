// Puts the SQLite cache in front of any TextGenerator (the API backend uses it; nothing here is
// API-specific): each sample is looked up by generationKey(identity, prompt, params, sample
// index) and only requests with a missing sample reach the model; new samples are written in
// one transaction per batch. A second run of a finished job makes no model (or HTTP) calls.
import type { Cache } from '../cache/cache.js';
import { generationKey, type JsonObject } from '../cache/keys.js';
import { paramsJson, type GeneratedText, type GenerationParams, type GenerationRequest, type TextGenerator } from './generator.js';

export interface CachedGeneratorOptions {
  /** What the user called the model, stored in the cache's models table (default: the identity). */
  name?: string;
  info?: JsonObject;
}

export class CachedGenerator implements TextGenerator {
  readonly id: string;
  readonly kind: 'local' | 'api';
  /** Model calls made by this wrapper (requests that missed the cache), for reports and tests. */
  readonly stats = { hits: 0, misses: 0, requestsSent: 0 };

  constructor(
    readonly inner: TextGenerator,
    readonly cache: Cache,
    opts: CachedGeneratorOptions = {},
  ) {
    this.id = inner.id;
    this.kind = inner.kind;
    if (!cache.readonly) cache.putModel({ id: inner.id, kind: inner.kind, name: opts.name ?? inner.id, info: opts.info ?? {} });
  }

  async generate(requests: GenerationRequest[], params: GenerationParams): Promise<GeneratedText[][]> {
    const p = paramsJson(params);
    const keys = requests.map((r) =>
      Array.from({ length: r.numSamples }, (_, i) => generationKey({ modelId: this.id, prompt: r.prompt, params: p, sampleIndex: i })),
    );
    const found = this.cache.getGenerations(keys.flat());
    const results: (GeneratedText[] | undefined)[] = keys.map((ks) =>
      ks.every((k) => found.has(k))
        ? ks.map((k) => {
            const g = found.get(k)!;
            return {
              text: g.text,
              finishReason: (g.finishReason ?? 'stop') as GeneratedText['finishReason'],
              ...(g.tokenCount !== null ? { tokens: g.tokenCount } : {}),
            };
          })
        : undefined,
    );
    // A request with any sample missing is generated whole: a generator cannot be asked for
    // "sample 3 only", and local sample i depends on (seed, i), so partial requests would not match.
    const missing = results.flatMap((r, i) => (r === undefined ? [i] : []));
    this.stats.hits += requests.length - missing.length;
    this.stats.misses += missing.length;
    if (missing.length > 0) {
      this.stats.requestsSent += missing.length;
      const started = Date.now();
      const fresh = await this.inner.generate(missing.map((i) => requests[i]), params);
      const perRow = (Date.now() - started) / Math.max(1, fresh.reduce((s, f) => s + f.length, 0));
      const records = missing.flatMap((ri, j) =>
        fresh[j].map((g, sampleIndex) => ({
          modelId: this.id,
          prompt: requests[ri].prompt,
          params: p,
          sampleIndex,
          text: g.text,
          tokenCount: g.tokens ?? null,
          finishReason: g.finishReason,
          durationMs: perRow,
          meta: 'meta' in g && g.meta && typeof g.meta === 'object' ? (g.meta as JsonObject) : null,
        })),
      );
      if (!this.cache.readonly) this.cache.putGenerations(records);
      missing.forEach((ri, j) => (results[ri] = fresh[j].map(({ text, finishReason, tokens }) => ({ text, finishReason, ...(tokens !== undefined ? { tokens } : {}) }))));
    }
    return results as GeneratedText[][];
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}

/** One request read back from the cache: the samples CachedGenerator (or any writer of generationKey rows) stored. */
export interface CachedRequest {
  prompt: string;
  params: JsonObject;
  /** By sample index; an index that was never stored is undefined. */
  samples: (GeneratedText | undefined)[];
}

/** Every request of generator `modelId` in the cache, the reverse of CachedGenerator's writes. */
export function cachedRequests(cache: Cache, modelId: string): CachedRequest[] {
  return cache.generationsOf(modelId).map((g) => {
    const samples: (GeneratedText | undefined)[] = [];
    for (const s of g.samples) {
      samples[s.sampleIndex] = {
        text: s.text,
        finishReason: (s.finishReason ?? 'stop') as GeneratedText['finishReason'],
        ...(s.tokenCount !== null ? { tokens: s.tokenCount } : {}),
      };
    }
    return { prompt: g.prompt, params: g.params, samples };
  });
}
