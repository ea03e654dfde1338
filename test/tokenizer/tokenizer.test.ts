import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelError } from '../../src/errors.js';
import { IncrementalDecoder, loadTokenizer } from '../../src/tokenizer/index.js';

const FIXTURE = resolve('test/fixtures/tiny-gptj'); // byte-level BPE with no merges: one id per byte
const tok = loadTokenizer(FIXTURE);

describe('UitTokenizer', () => {
  it('encodes without special tokens and decodes back, multi-byte characters included', () => {
    const text = 'Héllo wörld 🙂\n\nDefinition:';
    const ids = tok.encode(text);
    expect(ids).toHaveLength(Buffer.byteLength(text, 'utf8'));
    expect(ids).not.toContain(256);
    expect(tok.decode(ids)).toBe(text);
    expect(tok.encodeBatch(['a', 'bc'])).toEqual([tok.encode('a'), tok.encode('bc')]);
    expect(tok.encode('')).toEqual([]);
    expect(tok.decode([])).toBe('');
  });

  it('reads EOS and BOS from the folder and drops special tokens when decoding', () => {
    expect(tok.eosTokenIds).toEqual([256]);
    expect(tok.bosTokenId).toBe(256);
    expect(tok.vocabSize).toBe(257);
    expect(tok.isEos(256)).toBe(true);
    const ids = [...tok.encode('end'), 256];
    expect(tok.decode(ids)).toBe('end');
    expect(tok.decode(ids, { skipSpecialTokens: false })).toBe('end<|endoftext|>');
  });

  it('gives the text and the vocabulary string of one id', () => {
    const [space] = tok.encode(' ');
    expect(tok.tokenText(space)).toBe(' ');
    expect(tok.tokenString(space)).toBe('Ġ');
    expect(tok.tokenText(256)).toBe('<|endoftext|>');
  });

  it('names a missing tokenizer.json', () => {
    const dir = mkdtempSync(join(tmpdir(), 'uit-tok-'));
    try {
      expect(() => loadTokenizer(dir)).toThrow(ModelError);
      expect(() => loadTokenizer(dir)).toThrow(/tokenizer\.json is missing/);
      writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
      expect(() => loadTokenizer(dir)).toThrow(/tokenizer\.json: not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('IncrementalDecoder', () => {
  it('holds back an incomplete character until its last byte arrives', () => {
    const ids = tok.encode('a🙂b');
    expect(ids).toHaveLength(6);
    const dec = new IncrementalDecoder(tok, tok.encode('prompt '));
    const pieces = ids.map((id) => dec.push(id));
    expect(pieces).toEqual(['a', '', '', '', '🙂', 'b']);
    expect(dec.flush()).toBe('');
  });

  it('streams exactly the full decode, and flush releases a dangling partial character', () => {
    const text = 'Schöne Grüße, 世界! Done.';
    const ids = [...tok.encode(text), ...tok.encode('é').slice(0, 1)];
    const dec = new IncrementalDecoder(tok);
    const streamed = ids.map((id) => dec.push(id)).join('');
    expect(streamed).toBe(text);
    expect(dec.flush()).toBe('\uFFFD');
  });
});
