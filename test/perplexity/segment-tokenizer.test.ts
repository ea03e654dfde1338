// Tokenizing prompts segment by segment (memoised) must give exactly the ids of tokenizing them
// whole, on the tokenizers where the scorer does it; elsewhere it must not cut.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildScoringPrefix } from '../../src/perplexity/index.js';
import { SegmentTokenizer, segmentable, segments } from '../../src/perplexity/segment-tokenizer.js';
import { Rng } from '../../src/runtime/index.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { FIXTURE, NIV2_TASKS } from './helpers.js';

interface Doc {
  Definition: string[];
  'Positive Examples': { input: string; output: string }[];
  Instances: { input: string; output: string[] }[];
}

/** UIT prompts of every real task file, with odd line starts mixed in. */
function realPrompts(): string[] {
  const out: string[] = [];
  for (const f of readdirSync(NIV2_TASKS).filter((n) => n.endsWith('.json'))) {
    const d = JSON.parse(readFileSync(join(NIV2_TASKS, f), 'utf8').replace(/\bNaN\b/g, 'null')) as Doc;
    for (const inst of d.Instances.slice(0, 3)) out.push(buildScoringPrefix(d.Definition[0], d['Positive Examples'], inst.input) + inst.output[0]);
  }
  return out;
}

const ODD = ['a\n\nb', 'y\n\nPositive', 'u \n\nV', '.\n\n\nW', 'x  \nA', 'x \n y', '\n\n\nZ', 'q\r\nR', "it\n's", '1\n2', 'end\n', '\n', 'tab\n\tT', 'uni\nÉcole', 'emoji\n😀', 'a\n-b', 'sp\n  ', ' \n!'];

describe('SegmentTokenizer', () => {
  it('cuts before a newline that a visible ASCII character follows, nowhere else', () => {
    expect(segments('Definition: d\n\nPositive Examples 1\nInput: x\nOutput: ')).toEqual(['Definition: d\n', '\nPositive Examples 1', '\nInput: x', '\nOutput: ']);
    expect(segments('a\n b\n\tc\nÉ')).toEqual(['a\n b\n\tc\nÉ']);
    expect(segments('')).toEqual(['']);
    // the visible ASCII range is exactly '!' (0x21) to '~' (0x7E): not space, not DEL (0x7F)
    expect(segments('a\n!b\n~c\n\x7fd\n e')).toEqual(['a', '\n!b', '\n~c\n\x7fd\n e']);
    // never an empty first piece, whatever the text starts with
    expect(segments('\nA\nB')).toEqual(['\nA', '\nB']);
    expect(segments('\n\nA')).toEqual(['\n', '\nA']);
  });

  it('tokenizes each distinct segment once until cleared, and a text whole when not cutting', () => {
    const tok = loadTokenizer(FIXTURE);
    const calls: string[] = [];
    const encode = tok.encode.bind(tok);
    tok.encode = (text, opts) => {
      calls.push(text);
      return encode(text, opts);
    };
    const a = 'Definition: d\n\nInput: x\nOutput: ';
    const b = 'Definition: d\n\nInput: y\nOutput: ';
    const seg = new SegmentTokenizer(tok, true);
    expect(seg.encode(a)).toEqual(encode(a));
    expect(seg.encode(b)).toEqual(encode(b));
    expect(seg.encode(a)).toEqual(encode(a));
    expect(calls).toEqual(['Definition: d\n', '\nInput: x', '\nOutput: ', '\nInput: y']);
    seg.clear();
    calls.length = 0;
    expect(seg.encode(a)).toEqual(encode(a));
    expect(calls).toEqual(['Definition: d\n', '\nInput: x', '\nOutput: ']);
    calls.length = 0;
    const whole = new SegmentTokenizer(tok, false);
    expect(whole.encode(a)).toEqual(encode(a));
    expect(whole.encode(a)).toEqual(encode(a));
    expect(calls).toEqual([a, a]);
  });

  it('gives exactly the ids of whole-text tokenization on real Ni-v2 prompts (byte-level BPE tokenizers)', () => {
    const texts = realPrompts();
    const rng = new Rng([3, 1, 4, 1]);
    for (let i = 0; i < 300; i++) texts.push(Array.from({ length: 1 + (rng.nextUint32() % 6) }, () => ODD[rng.nextUint32() % ODD.length]).join(''));
    const dirs = [FIXTURE, 'models/uit-tiny'].filter((d) => {
      try {
        return segmentable(JSON.parse(readFileSync(join(d, 'tokenizer.json'), 'utf8')) as Record<string, unknown>);
      } catch {
        return false;
      }
    });
    expect(dirs).toContain(FIXTURE);
    for (const dir of dirs) {
      const tok = loadTokenizer(dir);
      const seg = SegmentTokenizer.forFile(tok, join(dir, 'tokenizer.json'));
      expect(seg.cut).toBe(true);
      for (const t of texts) expect(seg.encode(t), `${dir}: ${JSON.stringify(t.slice(0, 40))}`).toEqual(tok.encode(t));
    }
  });

  it('does not cut for tokenizers where a cut could change the ids', () => {
    const base = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    const pre = base.pre_tokenizer as Record<string, unknown>;
    expect(segmentable(base)).toBe(true);
    const { normalizer, ...noNormalizerKey } = base;
    expect(normalizer).toBeNull();
    expect(segmentable(noNormalizerKey)).toBe(true); // an absent normalizer is none, as null is
    expect(segmentable({ ...base, normalizer: { type: 'NFC' } })).toBe(false);
    expect(segmentable({ ...base, pre_tokenizer: { ...pre, add_prefix_space: true } })).toBe(false);
    expect(segmentable({ ...base, pre_tokenizer: { ...pre, use_regex: false } })).toBe(false);
    expect(segmentable({ ...base, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split' }, pre] } })).toBe(false);
    expect(segmentable({ ...base, model: { type: 'Unigram' } })).toBe(false);
    expect(SegmentTokenizer.forFile(loadTokenizer(FIXTURE), '/nonexistent/tokenizer.json').cut).toBe(false);
  });
});
