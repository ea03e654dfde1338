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
    expect(segmentable({ ...base, normalizer: { type: 'NFC' } })).toBe(false);
    expect(segmentable({ ...base, pre_tokenizer: { ...pre, add_prefix_space: true } })).toBe(false);
    expect(segmentable({ ...base, pre_tokenizer: { ...pre, use_regex: false } })).toBe(false);
    expect(segmentable({ ...base, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split' }, pre] } })).toBe(false);
    expect(segmentable({ ...base, model: { type: 'Unigram' } })).toBe(false);
    expect(SegmentTokenizer.forFile(loadTokenizer(FIXTURE), '/nonexistent/tokenizer.json').cut).toBe(false);
  });
});
