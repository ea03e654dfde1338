// The text-only bound on token counts that lets a finished job skip the tokenizer: it must hold
// for every text on the tokenizers it is claimed for, and be refused where it may not hold.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tokenBoundFor, tokenBoundFromJson } from '../../src/perplexity/token-bound.js';
import { Rng } from '../../src/runtime/index.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { FIXTURE, NIV2_TASKS, tempDir } from './helpers.js';

const ALPHABET = ['a', ' ', '\n', 'é', '€', '😀', '\u0000', 'ﷺ', '<|endoftext|>', 'the', '  ', '\t', 'Ω', '日本'];

describe('tokenBoundFor', () => {
  it('is an upper bound on the token count of random and real texts (byte-level BPE)', () => {
    const dirs = [FIXTURE, 'models/uit-tiny'].filter((d) => {
      try {
        readFileSync(join(d, 'tokenizer.json'));
        return true;
      } catch {
        return false;
      }
    });
    // both tokenizers are committed: a filter that dropped them would leave nothing tested
    expect(dirs).toEqual([FIXTURE, 'models/uit-tiny']);
    const real = readFileSync(join(NIV2_TASKS, 'task1147_country_currency.json'), 'utf8');
    const rng = new Rng([9, 8, 7, 6]);
    for (const dir of dirs) {
      const bound = tokenBoundFor(join(dir, 'tokenizer.json'))!;
      expect(bound, dir).toBeTypeOf('function');
      const tok = loadTokenizer(dir);
      const texts = [real, real.slice(0, 500), ''];
      for (let i = 0; i < 200; i++) texts.push(Array.from({ length: rng.nextUint32() % 40 }, () => ALPHABET[rng.nextUint32() % ALPHABET.length]).join(''));
      for (const t of texts) expect(tok.encode(t).length, `${dir}: ${JSON.stringify(t.slice(0, 30))}`).toBeLessThanOrEqual(bound(t));
    }
  });

  it('claims no bound for a tokenizer with a normalizer, a non-BPE model or no byte-level pre-tokenizer', () => {
    const base = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    expect(tokenBoundFromJson(base)).toBeTypeOf('function');
    expect(tokenBoundFromJson({ ...base, normalizer: { type: 'NFKC' } })).toBeUndefined();
    expect(tokenBoundFromJson({ ...base, model: { type: 'Unigram' } })).toBeUndefined();
    expect(tokenBoundFromJson({ ...base, pre_tokenizer: { type: 'Whitespace' } })).toBeUndefined();
    expect(tokenBoundFromJson({ ...base, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split' }, { type: 'ByteLevel' }] } })).toBeTypeOf('function');
    expect(tokenBoundFor('/nonexistent/tokenizer.json')).toBeUndefined();
    // an absent normalizer is none, as null is
    const { normalizer, ...noNormalizerKey } = base;
    expect(normalizer).toBeNull();
    expect(tokenBoundFromJson(noNormalizerKey)).toBeTypeOf('function');
    // odd pre-tokenizer entries are no bound, never a crash
    for (const pre of [null, undefined, 'ByteLevel', 7, { type: 'Sequence' }, { type: 'Sequence', pretokenizers: [null, 'x', { type: 'Split' }] }])
      expect(tokenBoundFromJson({ ...base, pre_tokenizer: pre }), JSON.stringify(pre)).toBeUndefined();
    // only a Sequence's members count
    expect(tokenBoundFromJson({ ...base, pre_tokenizer: { type: 'Split', pretokenizers: [{ type: 'ByteLevel' }] } })).toBeUndefined();
    expect(tokenBoundFromJson({ ...base, pre_tokenizer: { type: 'Sequence', pretokenizers: [null, { type: 'Sequence', pretokenizers: [{ type: 'ByteLevel' }] }] } })).toBeTypeOf('function');
    // a file that is not JSON is no bound either
    const { dir, cleanup } = tempDir();
    try {
      writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
      expect(tokenBoundFor(join(dir, 'tokenizer.json'))).toBeUndefined();
    } finally {
      cleanup();
    }
  });
});
