// The pluggable model interface of the transfer step (as in Simon Willison's `llm`): the local
// ONNX runtime and an OpenAI-compatible API both produce candidate instructions through it, so
// the pipeline, the denoiser and the cache do not care where text comes from.

export interface GenerationParams {
  maxNewTokens: number;
  /** 0 (or under 1e-5: the runtime's isGreedy) or `greedy` means argmax decoding. */
  temperature: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  greedy?: boolean;
  /** The text is cut before the first stop string. */
  stop?: string[];
  /** Sample i of a request is drawn from a stream seeded by (seed, i): local generation is reproducible. */
  seed: number;
}

export interface GenerationRequest {
  prompt: string;
  numSamples: number;
}

export type FinishReason = 'stop' | 'eos' | 'length';

export interface GeneratedText {
  text: string;
  finishReason: FinishReason;
  /** New tokens produced (local models; API usage where reported). */
  tokens?: number;
}

export interface TextGenerator {
  /** Stable identity used in cache keys: a model hash for local models, `api:<base-url>#<model>` for APIs. */
  readonly id: string;
  readonly kind: 'local' | 'api';
  /** One array of `numSamples` texts per request, in request order. */
  generate(requests: GenerationRequest[], params: GenerationParams): Promise<GeneratedText[][]>;
  close?(): Promise<void> | void;
}
