// Candidate generation through the cache. Every sample is keyed by
// generationKey(generator identity, prompt, params, sample index), the recipe CachedGenerator
// (src/generator) uses too, so caches written by either are interchangeable. Only missing samples
// reach the model: a generator that can draw sample ranges (the local model) is asked for exactly
// the missing indices, any other (an API) for the whole request. Cached texts always win over
// freshly generated ones, and each request's new samples are stored in one transaction.
import type { Cache } from '../cache/index.js';
import { generationKey } from '../cache/index.js';
import { paramsJson, type GeneratedText, type GenerationParams, type TextGenerator } from '../generator/index.js';
import { isRangeGenerator, type RangeRequest } from './local-generator.js';

export interface CandidateStats {
  /** Samples the model produced in this process. */
  generated: number;
  /** Samples found in the cache. */
  cached: number;
  /** Requests sent to the generator (a request may draw several samples). */
  requests: number;
  /** New tokens of generated samples. */
  tokens: number;
}

export class CandidateSource {
  readonly stats: CandidateStats = { generated: 0, cached: 0, requests: 0, tokens: 0 };

  constructor(
    readonly generator: TextGenerator,
    private readonly cache: Cache,
    info: { name: string; info?: Record<string, string | number | boolean | null> },
  ) {
    if (!cache.readonly) cache.putModel({ id: generator.id, kind: generator.kind, name: info.name, info: { role: 'transfer', ...(info.info ?? {}) } });
  }

  /** Samples 0..n-1 of `prompt`, from the cache where present. */
  async samples(prompt: string, n: number, params: GenerationParams): Promise<GeneratedText[]> {
    const p = paramsJson(params);
    const keys = Array.from({ length: n }, (_, i) => generationKey({ modelId: this.generator.id, prompt, params: p, sampleIndex: i }));
    const found = this.cache.getGenerations(keys);
    const out: (GeneratedText | undefined)[] = keys.map((k) => {
      const g = found.get(k);
      if (!g) return undefined;
      return { text: g.text, finishReason: (g.finishReason ?? 'stop') as GeneratedText['finishReason'], ...(g.tokenCount !== null ? { tokens: g.tokenCount } : {}) };
    });
    const missing = out.flatMap((g, i) => (g === undefined ? [i] : []));
    this.stats.cached += n - missing.length;
    if (missing.length === 0) return out as GeneratedText[];

    // What to ask for: exact runs of missing indices when the generator can, else everything.
    const runs: RangeRequest[] = isRangeGenerator(this.generator) ? contiguousRuns(prompt, missing) : [{ prompt, first: 0, count: n }];
    const started = performance.now();
    const fresh = isRangeGenerator(this.generator)
      ? await this.generator.generateRange(runs, params)
      : await this.generator.generate([{ prompt, numSamples: n }], params);
    this.stats.requests += runs.length;
    const perSample = (performance.now() - started) / Math.max(1, runs.reduce((s, r) => s + r.count, 0));
    const records = [];
    for (let r = 0; r < runs.length; r++) {
      for (let j = 0; j < runs[r].count; j++) {
        const index = runs[r].first + j;
        const g = fresh[r][j];
        if (g === undefined) throw new Error(`generator ${this.generator.id} returned ${fresh[r].length} samples for a request of ${runs[r].count}`);
        if (out[index] !== undefined) continue; // cached wins
        out[index] = { text: g.text, finishReason: g.finishReason, ...(g.tokens !== undefined ? { tokens: g.tokens } : {}) };
        this.stats.generated++;
        this.stats.tokens += g.tokens ?? 0;
        const meta = 'meta' in g && g.meta !== null && typeof g.meta === 'object' ? (g.meta as Record<string, string | number | null>) : null;
        records.push({
          modelId: this.generator.id,
          prompt,
          params: p,
          sampleIndex: index,
          text: g.text,
          tokenCount: g.tokens ?? null,
          finishReason: g.finishReason,
          durationMs: perSample,
          meta,
        });
      }
    }
    if (!this.cache.readonly && records.length > 0) this.cache.putGenerations(records);
    return out as GeneratedText[];
  }
}

/** Sorted indices -> requests for each run of consecutive indices. */
export function contiguousRuns(prompt: string, indices: readonly number[]): RangeRequest[] {
  const runs: RangeRequest[] = [];
  for (const i of indices) {
    const last = runs[runs.length - 1];
    if (last && last.first + last.count === i) last.count++;
    else runs.push({ prompt, first: i, count: 1 });
  }
  return runs;
}
