// Every expected number below is computed by hand in the comment next to it.
import { describe, expect, it } from 'vitest';
import {
  bleuFromStats,
  bleuStats,
  brevityPenalty,
  corpusBleu,
  exactMatch,
  lcsLength,
  normalizeWhitespace,
  rougeL,
  rougeTokens,
  sentenceBleu,
  textLength,
  tokenize13a,
} from '../../src/compare/metrics.js';

describe('ROUGE-L (rouge-score defaults, no stemmer)', () => {
  it('tokenizes like rouge-score: lowercase, non-[a-z0-9] runs are separators', () => {
    expect(rougeTokens("Don't STOP: <B-PER> café, 3.5!")).toEqual(['don', 't', 'stop', 'b', 'per', 'caf', '3', '5']);
    expect(rougeTokens('  ...  ')).toEqual([]);
  });

  it('computes LCS lengths', () => {
    expect(lcsLength(['a', 'b', 'c', 'd'], ['a', 'c'])).toBe(2);
    expect(lcsLength(['a', 'b', 'c', 'b', 'd', 'a', 'b'], ['b', 'd', 'c', 'a', 'b', 'a'])).toBe(4); // CLRS: "bcba"
    expect(lcsLength([], ['a'])).toBe(0);
  });

  it('is 5/6 for one substituted word in six', () => {
    // the cat sat on the mat / the cat is on the mat: LCS "the cat on the mat" = 5, P = R = 5/6.
    const r = rougeL('The cat sat on the mat.', 'the cat is on the mat');
    expect(r.precision).toBeCloseTo(5 / 6, 12);
    expect(r.recall).toBeCloseTo(5 / 6, 12);
    expect(r.fmeasure).toBeCloseTo(5 / 6, 12);
  });

  it('weighs precision and recall: target "a b c d", prediction "a c" gives F = 2/3', () => {
    // LCS 2, P = 2/2 = 1, R = 2/4 = 0.5, F = 2 * 1 * 0.5 / 1.5 = 2/3; F is symmetric.
    const r = rougeL('a b c d', 'a c');
    expect(r.precision).toBe(1);
    expect(r.recall).toBe(0.5);
    expect(r.fmeasure).toBeCloseTo(2 / 3, 12);
    expect(rougeL('a c', 'a b c d').fmeasure).toBeCloseTo(2 / 3, 12);
  });

  it('is 1 for identical text, 0 for disjoint or empty text (rouge-score gives 0 when a side is empty)', () => {
    expect(rougeL('Same words here', 'same   WORDS, here!').fmeasure).toBe(1);
    expect(rougeL('alpha beta', 'gamma delta').fmeasure).toBe(0);
    expect(rougeL('', '').fmeasure).toBe(0);
    expect(rougeL('---', 'a').fmeasure).toBe(0);
  });
});

describe('BLEU (sacrebleu sentence_bleu defaults)', () => {
  it('tokenizes with the 13a rules', () => {
    expect(tokenize13a("Hello, world! It's 3.5-4 (x).")).toEqual(['Hello', ',', 'world', '!', "It's", '3.5', '-', '4', '(', 'x', ')', '.']);
    expect(tokenize13a('a &amp; b &lt;tag&gt;')).toEqual(['a', '&', 'b', '<', 'tag', '>']);
    expect(tokenize13a('line-\nbreak\nend')).toEqual(['linebreak', 'end']);
    expect(tokenize13a('end-\n')).toEqual(['end-']); // right-stripped first, so no join
    expect(tokenize13a('1,000 and 2.')).toEqual(['1,000', 'and', '2', '.']);
  });

  it('is 1 for identical sentences', () => {
    expect(sentenceBleu('the cat sat on the mat', 'the cat sat on the mat')).toBe(1);
  });

  it('matches a hand count: precisions 6/7, 4/6, 2/5, 1/4', () => {
    // hyp: the cat sat on the mat .   ref: the cat sat on a mat .   (7 tokens each, BP = 1)
    // 1-grams: the (min(2,1)=1) cat sat on mat . -> 6/7; 2-grams: the cat, cat sat, sat on, mat . -> 4/6
    // 3-grams: the cat sat, cat sat on -> 2/5; 4-grams: the cat sat on -> 1/4
    // BLEU = (6/7 * 4/6 * 2/5 * 1/4)^(1/4) = (2/35)^(1/4)
    const s = bleuStats('the cat sat on the mat .', 'the cat sat on a mat .');
    expect(s.matches).toEqual([6, 4, 2, 1]);
    expect(s.totals).toEqual([7, 6, 5, 4]);
    expect(sentenceBleu('the cat sat on the mat .', 'the cat sat on a mat .')).toBeCloseTo((2 / 35) ** 0.25, 12);
  });

  it('smooths zero precisions with the exp method: 1/(2^k * total)', () => {
    // hyp a b c d, ref a b x d: p1 = 3/4, p2 = 1/3, p3 = 0/2 -> 1/(2*2), p4 = 0/1 -> 1/(4*1)
    // BLEU = (3/4 * 1/3 * 1/4 * 1/4)^(1/4) = (1/64)^(1/4) = 1/(2*sqrt(2))
    expect(sentenceBleu('a b c d', 'a b x d')).toBeCloseTo(1 / (2 * Math.SQRT2), 12);
  });

  it('uses the effective order for short hypotheses, and the brevity penalty', () => {
    // hyp "a b": only 1- and 2-grams exist, both precisions 1, BP = 1 -> 1.
    expect(sentenceBleu('a b', 'a b')).toBe(1);
    // hyp a b c vs ref a b c d e: p1..p3 = 1, no 4-grams; BP = exp(1 - 5/3).
    expect(sentenceBleu('a b c', 'a b c d e')).toBeCloseTo(Math.exp(1 - 5 / 3), 12);
    // Without effective order (corpus BLEU) a missing order makes the score 0.
    expect(bleuFromStats(bleuStats('a b', 'a b'), false)).toBe(0);
    expect(brevityPenalty(0, 3)).toBe(0);
    expect(brevityPenalty(4, 3)).toBe(1);
  });

  it('is 0 for an empty hypothesis and, as sacrebleu 2 does, when no n-gram matches', () => {
    expect(sentenceBleu('', 'a b c')).toBe(0);
    expect(sentenceBleu('x y z w', 'a b c d')).toBe(0); // no smoothing of a total miss
    // One unigram match is enough to smooth the rest: p1 = 1/4, p2 = 0/3 -> 1/(2*3),
    // p3 = 0/2 -> 1/(4*2), p4 = 0/1 -> 1/(8*1); BLEU = (1/4 * 1/6 * 1/8 * 1/8)^(1/4) = (1/1536)^(1/4)
    expect(sentenceBleu('a y z w', 'a b c d')).toBeCloseTo((1 / 1536) ** 0.25, 12);
  });

  it('sums statistics for corpus BLEU', () => {
    // Two identical pairs of 4 tokens: every precision 1, BP 1.
    expect(corpusBleu([
      { hypothesis: 'a b c d', reference: 'a b c d' },
      { hypothesis: 'e f g h', reference: 'e f g h' },
    ])).toBe(1);
    // "a b" + "c d e f": totals 6, 4, 2, 1; all matched -> 1 (no effective order needed here).
    expect(corpusBleu([
      { hypothesis: 'a b', reference: 'a b' },
      { hypothesis: 'c d e f', reference: 'c d e f' },
    ])).toBe(1);
    expect(corpusBleu([])).toBe(0);
  });
});

describe('exact match and lengths', () => {
  it('ignores whitespace differences only', () => {
    expect(normalizeWhitespace('  a\n\tb   c ')).toBe('a b c');
    expect(exactMatch('Write a question.', '  Write a\nquestion. ')).toBe(true);
    expect(exactMatch('Write a question.', 'write a question.')).toBe(false);
    expect(exactMatch('Write a question.', 'Write a question')).toBe(false);
  });

  it('counts words by whitespace and chars by code point', () => {
    expect(textLength('  two words ')).toEqual({ words: 2, chars: 12 });
    expect(textLength('')).toEqual({ words: 0, chars: 0 });
    expect(textLength('→ é')).toEqual({ words: 2, chars: 3 });
    expect(textLength('😀')).toEqual({ words: 1, chars: 1 });
  });
});
