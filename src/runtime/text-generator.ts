// The local ONNX model behind the transfer step's TextGenerator interface (the same interface the
// OpenAI-compatible backend implements), so the pipeline and the cache do not care where text
// comes from. Its id is the model identity, which the cache keys generations by.
import type { GeneratedText, GenerationParams, GenerationRequest, TextGenerator } from '../generator/index.js';
import { generate } from './generation/generate.js';
import type { Model } from './model.js';

export interface LocalGeneratorOptions {
  /** Most rows (prompt x sample) decoded together (default 16). */
  batchSize?: number;
  /** Dispose the model on close() (default false: the caller owns it). */
  ownsModel?: boolean;
}

export class LocalGenerator implements TextGenerator {
  readonly kind = 'local' as const;

  private constructor(
    readonly id: string,
    readonly model: Model,
    private readonly opts: LocalGeneratorOptions,
  ) {}

  /** Computes (or reads the memo of) the model identity, which becomes the generator's id. */
  static async create(model: Model, opts: LocalGeneratorOptions = {}): Promise<LocalGenerator> {
    return new LocalGenerator(await model.identity(), model, opts);
  }

  async generate(requests: GenerationRequest[], params: GenerationParams): Promise<GeneratedText[][]> {
    const result = await generate(
      this.model,
      requests.map((r) => ({ prompt: r.prompt, numSamples: r.numSamples })),
      {
        maxNewTokens: params.maxNewTokens,
        greedy: params.greedy,
        temperature: params.temperature,
        topK: params.topK,
        topP: params.topP,
        repetitionPenalty: params.repetitionPenalty,
        stop: params.stop,
        seed: params.seed,
        batchSize: this.opts.batchSize,
      },
    );
    return result.outputs.map((o) => o.samples.map((s) => ({ text: s.text, finishReason: s.finishReason, tokens: s.tokenIds.length })));
  }

  async close(): Promise<void> {
    if (this.opts.ownsModel) await this.model.dispose();
  }
}
