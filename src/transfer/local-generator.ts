// The local ONNX model as a TextGenerator (src/generator/generator.ts), so the pipeline treats it
// like the API backend. src/runtime/text-generator.ts has the plain LocalGenerator; this one adds
// what the pipeline needs: counted model calls, and any range of sample indices
// (`generateRange`): sample i of a prompt comes from the PRNG stream (seed, i) whatever the batch,
// so a partly cached request regenerates only its missing samples and gets the same texts an
// uninterrupted run would have.
import { CountingBackend, type ModelCallCounts } from '../perplexity/counting-backend.js';
import { generate, Model, type GenerateOptions } from '../runtime/index.js';
import type { GeneratedText, GenerationParams, GenerationRequest, TextGenerator } from '../generator/index.js';

export interface RangeRequest {
  prompt: string;
  /** First sample index. */
  first: number;
  count: number;
}

/** A TextGenerator that can be asked for samples first..first+count-1 of a prompt. */
export interface RangeGenerator extends TextGenerator {
  generateRange(requests: RangeRequest[], params: GenerationParams): Promise<GeneratedText[][]>;
}

export function isRangeGenerator(g: TextGenerator): g is RangeGenerator {
  return typeof (g as Partial<RangeGenerator>).generateRange === 'function';
}

export interface LocalRangeGeneratorOptions {
  /** Rows decoded together (default: the runtime's 16). */
  batchSize?: number;
  /** Told about every decoding step's new tokens (progress: tokens per second). */
  onTokens?: (count: number) => void;
}

export class LocalRangeGenerator implements RangeGenerator {
  readonly kind = 'local' as const;
  /** Forward passes that reached the model (prefills and decoding steps). */
  readonly counts: ModelCallCounts;
  private readonly counted: Model;

  private constructor(
    readonly id: string,
    readonly model: Model,
    private readonly opts: LocalRangeGeneratorOptions,
  ) {
    const backend = new CountingBackend(model.backend);
    this.counts = backend.counts;
    // Same folder, tokenizer and facts; only the backend is wrapped so calls are counted.
    this.counted = new Model(model.folder, model.info, model.tokenizer, backend);
  }

  /** `id` defaults to the model's identity (a hash of its graph and tokenizer.json). */
  static async create(model: Model, opts: LocalRangeGeneratorOptions = {}): Promise<LocalRangeGenerator> {
    return new LocalRangeGenerator(await model.identity(), model, opts);
  }

  generate(requests: GenerationRequest[], params: GenerationParams): Promise<GeneratedText[][]> {
    return this.generateRange(
      requests.map((r) => ({ prompt: r.prompt, first: 0, count: r.numSamples })),
      params,
    );
  }

  async generateRange(requests: RangeRequest[], params: GenerationParams): Promise<GeneratedText[][]> {
    if (requests.length === 0) return [];
    const result = await generate(
      this.counted,
      requests.map((r) => ({ prompt: r.prompt, numSamples: r.count, firstSample: r.first })),
      runtimeOptions(params, this.opts),
    );
    return result.outputs.map((o) =>
      o.samples.map((s) => ({ text: s.text, finishReason: s.finishReason, tokens: s.tokenIds.length })),
    );
  }
}

/** GenerationParams in the runtime's terms (its isGreedy decides what greedy means, as in the API backend). */
export function runtimeOptions(p: GenerationParams, o: LocalRangeGeneratorOptions = {}): GenerateOptions {
  return {
    maxNewTokens: p.maxNewTokens,
    greedy: p.greedy,
    temperature: p.temperature,
    topK: p.topK,
    topP: p.topP,
    repetitionPenalty: p.repetitionPenalty,
    stop: p.stop,
    seed: p.seed,
    batchSize: o.batchSize,
    onTokens: o.onTokens,
  };
}
