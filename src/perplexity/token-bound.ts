// An upper bound on how many tokens a text can become, without running the tokenizer. The scorer
// uses it to answer a fully cached job from the cache by text alone: a pair whose bound fits the
// context is certainly untruncated, so its cache key is known before tokenizing (tokenizing a
// job's prompts costs more than looking them up).
//
// The bound is only claimed for tokenizers where it provably holds: byte-level BPE with no
// normalizer (GPT-2, GPT-J, Llama 3, Qwen, and uit's own models). There every token covers at
// least one UTF-8 byte of the input (added tokens too), and the ByteLevel pre-tokenizer adds at
// most one leading space. A normalizer (NFKC can turn one character into many) voids the bound.
import { readFileSync } from 'node:fs';

type Json = Record<string, unknown>;

function isByteLevel(pre: unknown): boolean {
  const p = pre as Json | null | undefined; // from JSON: a non-object has no `type`
  if (p?.type === 'ByteLevel') return true;
  return p?.type === 'Sequence' && Array.isArray(p.pretokenizers) && (p.pretokenizers as unknown[]).some(isByteLevel);
}

/** `text => max tokens`, or undefined when no safe bound is known for this tokenizer.json. */
export function tokenBoundFromJson(tokenizer: Json): ((text: string) => number) | undefined {
  const model = tokenizer.model as Json | undefined;
  if (tokenizer.normalizer !== null && tokenizer.normalizer !== undefined) return undefined;
  if (model?.type !== 'BPE' || !isByteLevel(tokenizer.pre_tokenizer)) return undefined;
  return (text: string) => Buffer.byteLength(text, 'utf8') + 1;
}

/** The bound for a model folder's tokenizer.json (undefined if unreadable or unknown). */
export function tokenBoundFor(tokenizerFile: string): ((text: string) => number) | undefined {
  try {
    return tokenBoundFromJson(JSON.parse(readFileSync(tokenizerFile, 'utf8')) as Json);
  } catch {
    // unreadable or not JSON: no bound (the function returns undefined)
  }
}
