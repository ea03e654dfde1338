// The word diff of the HTML report against hand-worked cases, and against an independent LCS
// (the O(n*m) table of metrics.ts) on random texts: the marked common part is a common
// subsequence of both sides, as long as the longest one, and the pieces give back the texts.
import { describe, expect, it } from 'vitest';
import { diffTokens, wordDiff, type DiffSpan } from '../../src/compare/diff.js';
import { lcsLength } from '../../src/compare/metrics.js';

const show = (spans: DiffSpan[], open: string, close: string) => spans.map((s) => (s.changed ? `${open}${s.text}${close}` : s.text)).join('');
const del = (spans: DiffSpan[]) => show(spans, '[-', '-]');
const ins = (spans: DiffSpan[]) => show(spans, '{+', '+}');

/** The texts of the tokens left unmarked, in order. */
function kept(spans: DiffSpan[]): string[] {
  return spans.filter((s) => !s.changed).flatMap((s) => diffTokens(s.text).map((t) => t.text));
}

describe('wordDiff', () => {
  it('marks nothing for equal texts, or texts that differ in spacing only', () => {
    const d = wordDiff('Answer the question.', 'Answer the question.');
    expect(d).toEqual({ offline: [{ text: 'Answer the question.', changed: false }], api: [{ text: 'Answer the question.', changed: false }], deleted: 0, inserted: 0, common: 4 });
    const w = wordDiff('Answer  the\nquestion .', ' Answer the question.\n');
    expect(w.deleted + w.inserted).toBe(0);
    expect(w.api).toEqual([{ text: ' Answer the question.\n', changed: false }]);
  });

  it('marks substituted words, and a run of changed words as one piece with its inner spaces', () => {
    const d = wordDiff('the cat sat on the mat.', 'the dog sat on a mat!');
    expect(del(d.offline)).toBe('the [-cat-] sat on [-the-] mat[-.-]');
    expect(ins(d.api)).toBe('the {+dog+} sat on {+a+} mat{+!+}');
    expect([d.deleted, d.inserted, d.common]).toEqual([3, 3, 4]);
    const r = wordDiff('a b c d', 'a x  y d');
    expect(del(r.offline)).toBe('a [-b c-] d');
    expect(ins(r.api)).toBe('a {+x  y+} d');
  });

  it('handles pure insertions and deletions, empty sides, and text at the edges', () => {
    expect(ins(wordDiff('Classify the review.', 'Classify the movie review as positive.').api)).toBe('Classify the {+movie+} review {+as positive+}.');
    expect(del(wordDiff('Please, classify it', 'classify it').offline)).toBe('[-Please,-] classify it');
    expect(wordDiff('', 'new text')).toMatchObject({ offline: [], api: [{ text: 'new text', changed: true }], deleted: 0, inserted: 2 });
    expect(wordDiff('  ', '')).toMatchObject({ offline: [{ text: '  ', changed: false }], api: [], common: 0 });
  });

  it('tokens: words (letters with their marks, digits, _), single punctuation, never half a character', () => {
    expect(diffTokens('Label <B-PER> (naïve, 3.5) 😀ok').map((t) => t.text)).toEqual(['Label', '<', 'B', '-', 'PER', '>', '(', 'naïve', ',', '3', '.', '5', ')', '😀', 'ok']);
    expect(diffTokens('cafe\u0301 x_1')[0].text).toBe('cafe\u0301'); // a combining accent stays in its word
    expect(del(wordDiff('the <B-PER> tag', 'the <I-PER> tag').offline)).toBe('the <[-B-]-PER> tag');
  });

  it('keeps a longest common subsequence on random texts (checked against the LCS table)', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const vocab = ['a', 'b', 'c', 'd', 'e', '.', ',', 'the'];
    const text = () =>
      Array.from({ length: rnd(40) }, () => vocab[rnd(vocab.length)])
        .map((w) => w + [' ', '  ', '\n', ''][rnd(4)])
        .join('');
    for (let round = 0; round < 300; round++) {
      const x = text();
      const y = rnd(3) === 0 ? x.replace(/a/g, 'b') : text();
      const d = wordDiff(x, y);
      expect(d.offline.map((s) => s.text).join('')).toBe(x);
      expect(d.api.map((s) => s.text).join('')).toBe(y);
      const tx = diffTokens(x).map((t) => t.text);
      const ty = diffTokens(y).map((t) => t.text);
      expect(kept(d.offline)).toEqual(kept(d.api));
      expect(kept(d.offline)).toHaveLength(lcsLength(tx, ty));
      expect([d.common, d.deleted, d.inserted]).toEqual([lcsLength(tx, ty), tx.length - d.common, ty.length - d.common]);
      // no two neighbouring pieces of the same kind
      for (const side of [d.offline, d.api]) side.slice(1).forEach((s, i) => expect(s.changed).not.toBe(side[i].changed));
    }
  });

  it('is exact on long instructions (2,000 words a side)', () => {
    const words = Array.from({ length: 2000 }, (_, i) => `w${(i * 7919) % 613}`);
    const x = words.join(' ');
    const y = words.filter((_, i) => i % 5 !== 0).join(' ') + ' tail';
    const d = wordDiff(x, y);
    expect(d.common).toBe(lcsLength(diffTokens(x).map((t) => t.text), diffTokens(y).map((t) => t.text)));
    expect([d.common, d.deleted, d.inserted]).toEqual([1600, 400, 1]);
  });
});
