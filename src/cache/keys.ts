// Content keys for the cache. Every module that looks up or stores a generation or a score
// computes its key here, so two processes (or two machines whose caches are merged later)
// agree on the key of the same work.
import { createHash } from 'node:crypto';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Bump only when the key recipe changes; old rows then simply stop matching (a cold cache). */
export const KEY_VERSION = 1;

/**
 * JSON with object keys sorted (by UTF-16 code units, as Array.prototype.sort does) and no
 * whitespace, so equal values always give equal bytes. `undefined` object fields are dropped, as
 * JSON.stringify does. Non-finite numbers, bigints, functions and non-plain objects are rejected:
 * they have no single JSON spelling, and a key must never depend on an accident of encoding.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, '$');
}

function encode(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: ${path} is ${value}, which JSON cannot encode`);
      return JSON.stringify(value); // -0 encodes as 0, the shortest round-trip form otherwise
    case 'object': {
      if (Array.isArray(value)) {
        return `[${value.map((v, i) => (v === undefined ? 'null' : encode(v, `${path}[${i}]`))).join(',')}]`;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError(`canonicalJson: ${path} is a ${proto.constructor?.name ?? 'non-plain object'}, not plain JSON`);
      }
      const obj = value as Record<string, unknown>;
      const fields = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${encode(obj[k], `${path}.${k}`)}`);
      return `{${fields.join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: ${path} is a ${typeof value}, not JSON`);
  }
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What identifies one generated text: the same inputs always give the same key. */
export interface GenerationInput {
  /** Model identity: the runtime's `modelIdentity()` (`sha256:<hex>`) for a local model, `api:<base-url>#<model>` for an API. */
  modelId: string;
  prompt: string;
  /** Everything else that changes the output (sampling parameters, stop strings, seed, max tokens). */
  params: JsonObject;
  /** Sample i of N for one prompt. */
  sampleIndex: number;
}

/** What identifies one teacher-forced score. */
export interface ScoreInput {
  /** Scorer model identity: the runtime's `modelIdentity()`. */
  scorerId: string;
  prefix: string;
  target: string;
  /** Anything else that changes the numbers, e.g. `{ maxContext: 2048, truncate: 'left' }`. Default `{}`. */
  params?: JsonObject;
}

export function generationKey(input: GenerationInput): string {
  if (!Number.isInteger(input.sampleIndex) || input.sampleIndex < 0) {
    throw new TypeError(`generationKey: sampleIndex must be a non-negative integer, got ${input.sampleIndex}`);
  }
  return sha256Hex(
    canonicalJson({
      v: KEY_VERSION,
      kind: 'generation',
      model: input.modelId,
      prompt: input.prompt,
      params: input.params,
      sample: input.sampleIndex,
    }),
  );
}

export function scoreKey(input: ScoreInput): string {
  return sha256Hex(
    canonicalJson({
      v: KEY_VERSION,
      kind: 'score',
      scorer: input.scorerId,
      prefix: input.prefix,
      target: input.target,
      params: input.params ?? {},
    }),
  );
}
