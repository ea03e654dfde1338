// A model folder's tokenizer: tokenizer.json (+ tokenizer_config.json) through @huggingface/tokenizers,
// with the facts generation needs (EOS ids) read from the folder's config files.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelError } from '../errors.js';

export interface EncodeOptions {
  /** Add the tokenizer's special tokens (BOS etc.). Off by default: uit builds its prompts itself. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (EOS, padding) from the text. Default true. */
  skipSpecialTokens?: boolean;
  /** Apply the tokenizer's clean-up of spaces before punctuation (default: tokenizer_config's setting). */
  cleanUpSpaces?: boolean;
}

type JsonObject = Record<string, unknown>;

function readJson(file: string, what: string): JsonObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ModelError(`cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error('expected a JSON object');
    }
    return value as JsonObject;
  } catch (err) {
    throw new ModelError(`${file}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

function readOptionalJson(file: string, what: string): JsonObject {
  return existsSync(file) ? readJson(file, what) : {};
}

/** `eos_token` in tokenizer_config.json is either a string or an AddedToken object `{content}`. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as JsonObject).content === 'string') {
    return (value as JsonObject).content as string;
  }
  return undefined;
}

function idList(value: unknown): number[] {
  if (typeof value === 'number' && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number' && Number.isInteger(v));
  return [];
}

export class UitTokenizer {
  /** Token ids that end generation, from generation_config.json, then config.json, then tokenizer_config.json. */
  readonly eosTokenIds: readonly number[];
  readonly bosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  /** Number of ids the tokenizer can produce (vocabulary + added tokens). */
  readonly vocabSize: number;
  private readonly textCache = new Map<number, string>();

  constructor(
    readonly inner: Tokenizer,
    config: { tokenizerConfig: JsonObject; modelConfig?: JsonObject; generationConfig?: JsonObject },
  ) {
    const tc = config.tokenizerConfig;
    const mc = config.modelConfig ?? {};
    const gc = config.generationConfig ?? {};
    const lookup = (name: unknown): number | undefined => {
      const content = tokenContent(name);
      return content === undefined ? undefined : inner.token_to_id(content);
    };
    let eos = idList(gc.eos_token_id);
    if (eos.length === 0) eos = idList(mc.eos_token_id);
    if (eos.length === 0) {
      const id = lookup(tc.eos_token);
      if (id !== undefined) eos = [id];
    }
    this.eosTokenIds = [...new Set(eos)];
    this.bosTokenId = idList(gc.bos_token_id)[0] ?? idList(mc.bos_token_id)[0] ?? lookup(tc.bos_token);
    this.padTokenId = idList(gc.pad_token_id)[0] ?? idList(mc.pad_token_id)[0] ?? lookup(tc.pad_token);
    const vocab = inner.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (text.length === 0 && !opts.addSpecialTokens) return [];
    return this.inner.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  encodeBatch(texts: readonly string[], opts: EncodeOptions = {}): number[][] {
    return texts.map((t) => this.encode(t, opts));
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    return this.inner.decode(ids as number[], {
      skip_special_tokens: opts.skipSpecialTokens ?? true,
      clean_up_tokenization_spaces: opts.cleanUpSpaces,
    });
  }

  /** The vocabulary string of one id (e.g. `Ġthe`), or undefined for an unknown id. */
  tokenString(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }

  /** The text one id decodes to on its own (e.g. ` the`); memoised, special tokens kept. */
  tokenText(id: number): string {
    const cached = this.textCache.get(id);
    if (cached !== undefined) return cached;
    const text = this.inner.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    this.textCache.set(id, text);
    return text;
  }

  isEos(id: number): boolean {
    return this.eosTokenIds.includes(id);
  }
}

/**
 * Loads `tokenizer.json` and `tokenizer_config.json` (optional) from a model folder, plus the EOS facts
 * from `generation_config.json` and `config.json` when present.
 */
export function loadTokenizer(dir: string): UitTokenizer {
  const tokenizerFile = join(dir, 'tokenizer.json');
  if (!existsSync(tokenizerFile)) {
    throw new ModelError(`${dir}: tokenizer.json is missing (a model folder needs the Hugging Face tokenizer file)`);
  }
  const tokenizerJson = readJson(tokenizerFile, 'tokenizer file');
  const tokenizerConfig = readOptionalJson(join(dir, 'tokenizer_config.json'), 'tokenizer config');
  const modelConfig = readOptionalJson(join(dir, 'config.json'), 'model config');
  const generationConfig = readOptionalJson(join(dir, 'generation_config.json'), 'generation config');
  let inner: Tokenizer;
  try {
    inner = new Tokenizer(tokenizerJson, tokenizerConfig);
  } catch (err) {
    throw new ModelError(`${tokenizerFile}: the tokenizer cannot be loaded: ${(err as Error).message}`, { cause: err });
  }
  return new UitTokenizer(inner, { tokenizerConfig, modelConfig, generationConfig });
}
