// The pluggable model interface (as in Simon Willison's `llm`): the local ONNX runtime and an
// OpenAI-compatible API both produce text through it, so the transfer pipeline, the cache and
// distillation do not care where text comes from. It sits below all of them: the runtime and the
// API client implement it, transfer and distill use it, and none of those import each other for it.
import type { JsonObject, JsonValue } from '../cache/keys.js';

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

/** GenerationParams as the cache's JSON: undefined fields dropped, so `{topP: undefined}` keys like `{}`. */
export function paramsJson(params: GenerationParams): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined) out[k] = v as JsonValue;
  }
  return out;
}
