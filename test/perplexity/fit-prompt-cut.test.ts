// Where a long input is cut, pinned exactly: waterLevel's levels, and cutText's kept beginning and
// end (split of the budget, word boundaries, the marker between, never half a surrogate pair, the
// re-fits when the joined text takes more tokens than its parts). The counts come from real
// tokenizers: the tiny GPT-J fixture's byte-level one (one token per UTF-8 byte, so each expected
// cut below can be followed by hand) and models/uit-tiny's BPE, whose merges differ across a cut.
import { describe, expect, it } from 'vitest';
import { CUT_MARKER, cutText, waterLevel } from '../../src/perplexity/index.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { FIXTURE } from './helpers.js';

const byteLevel = loadTokenizer(FIXTURE);
const bpe = loadTokenizer('models/uit-tiny');
const bytes = (s: string) => byteLevel.encode(s).length;
const bpeCount = (s: string) => bpe.encode(s).length;

describe('waterLevel', () => {
  it('is the highest level whose cut inputs fit the budget: Infinity when all fit uncut, null when not even the floor fits', () => {
    expect(waterLevel([10, 20, 30], 60, 2)).toBe(Infinity); // the sum exactly
    expect(waterLevel([10, 20, 30], 59, 2)).toBe(29); // 10 + 20 + 29
    expect(waterLevel([10, 20, 30], 40, 2)).toBe(15); // 10 + 15 + 15
    expect(waterLevel([5, 100], 30, 3)).toBe(25); // the short input stays whole
    expect(waterLevel([100, 100, 100], 8, 2)).toBe(2); // 3 would need 9
    expect(waterLevel([100, 100, 100], 6, 2)).toBe(2); // every input at the floor, exactly the budget
    expect(waterLevel([100, 100, 100], 5, 2)).toBeNull();
  });
});

describe('cutText, counted in bytes (the fixture tokenizer)', () => {
  // budget = 5 (the marker " ... ") + rest; the tail gets floor(rest / 2), the head the other half
  it('counts the marker and a character as their UTF-8 bytes', () => {
    expect([bytes(CUT_MARKER), bytes('🎬'), bytes('\ud83c')]).toEqual([5, 4, 3]); // a lone surrogate is U+FFFD
  });

  it('keeps a beginning and an end that end and start on word boundaries', () => {
    const text = 'It starts well. The movie was long and slow. Did the reviewer enjoy it?';
    // 25: head 10 bytes "It starts " back to the space, tail 10 " enjoy it?" starts on one
    expect(cutText(text, 25, bytes)).toBe('It starts ... enjoy it?');
    // 31: head "It starts wel" back to "It starts", tail "wer enjoy it?" forward to " enjoy it?"
    expect(cutText(text, 31, bytes)).toBe('It starts ... enjoy it?');
    expect(cutText(text, 40, bytes)).toBe('It starts well. ... enjoy it?');
    expect(cutText(text, 70, bytes)).toBe('It starts well. The movie was ... slow. Did the reviewer enjoy it?');
    for (const budget of [25, 31, 40, 70]) expect(bytes(cutText(text, budget, bytes))).toBeLessThanOrEqual(budget);
  });

  it('keeps a cut that falls on a whitespace, and joins the ends with single spaces however much whitespace was around the cut', () => {
    const text = 'Intro line.\n\n\nMiddle part that goes on and on.\n\n\nLast line?';
    // 26: head 11 "Intro line." (the next character is a newline), tail 10 "Last line?" (a newline before it)
    expect(cutText(text, 26, bytes)).toBe('Intro line. ... Last line?');
    // 30: head 13 "Intro line.\n\n", tail 12 "\n\nLast line?": the newlines give way to one space each side
    expect(cutText(text, 30, bytes)).toBe('Intro line. ... Last line?');
  });

  it('moves a cut at most 16 characters to reach a word boundary', () => {
    const text = `ab ${'x'.repeat(40)} yz`; // the spaces at 2 and 43
    // 41: head 18 (the space 16 back: moved to it), tail 18 (the space 15 ahead: moved to it)
    expect(cutText(text, 41, bytes)).toBe('ab ... yz');
    // 42: head 19 (the space 17 back: kept mid-word), tail 18
    expect(cutText(text, 42, bytes)).toBe(`ab ${'x'.repeat(16)} ... yz`);
    // 44: head 20, tail 19 (the space 16 ahead: moved to it)
    expect(cutText(text, 44, bytes)).toBe(`ab ${'x'.repeat(17)} ... yz`);
    // 45: head 20, tail 20 (the space 17 ahead: kept mid-word)
    expect(cutText(text, 45, bytes)).toBe(`ab ${'x'.repeat(17)} ... ${'x'.repeat(17)} yz`);
  });

  it('never moves the head back to a space the text starts with', () => {
    expect(cutText(` ${'x'.repeat(40)} `, 15, bytes)).toBe(' xxxx ...');
  });

  it('leaves out the space beside the marker on a side that keeps nothing', () => {
    // the head's 3 bytes are spaces: nothing of the beginning is kept
    expect(cutText(`    ${'x'.repeat(10)} yy`, 11, bytes)).toBe('... yy');
    // the tail's 3 bytes are spaces: nothing of the end is kept
    expect(cutText(`xx ${'y'.repeat(10)}    `, 11, bytes)).toBe('xx ...');
    expect(cutText(`    ${'x'.repeat(10)} ${'y'.repeat(10)}    `, 11, bytes)).toBe('...');
  });

  it('gives the marker alone when the budget holds no more than the marker', () => {
    const text = 'one two three';
    expect(cutText(text, 5, bytes)).toBe('...'); // nothing left for either end
    expect(cutText(text, 1, bytes)).toBe('...'); // less than the marker: the bare marker, the overflow policy does the rest
    expect(cutText(text, 6, bytes)).toBe('o ...'); // the odd byte goes to the head
    expect(cutText(text, 7, bytes)).toBe('o ... e');
  });

  it('marks a cut even where the budget would hold the whole text (callers cut only texts over their budget)', () => {
    expect(cutText('one two', 100, bytes)).toBe('one two ...');
    // head 48 bytes, and the 23 the head left fit the tail's 47: the ends meet
    const text = 'It starts well. The movie was long and slow. Did the reviewer enjoy it?';
    expect(cutText(text, 100, bytes)).toBe('It starts well. The movie was long and slow. Did ... the reviewer enjoy it?');
  });

  it('never keeps half a surrogate pair, at either end, for any surrogate value', () => {
    // 19: 7 bytes for each end hold one 4-byte character and not half (3 bytes as U+FFFD) of another
    expect(cutText('🎬'.repeat(12), 19, bytes)).toBe('🎬 ... 🎬');
    expect(cutText('🎬'.repeat(12), 21, bytes)).toBe('🎬🎬 ... 🎬🎬');
    // between one-byte characters: 4 bytes each end hold "🎬" and "x"; 8 hold "🎬x" and "x🎬x"
    expect(cutText('🎬x'.repeat(6), 13, bytes)).toBe('🎬 ... x');
    expect(cutText('🎬x'.repeat(6), 21, bytes)).toBe('🎬x ... x🎬x');
    // a character above the surrogates (the fullwidth "！", U+FF01) is a whole one: 3 bytes hold it
    expect(cutText('この映画は長いけれど、最後はよかった！', 11, bytes)).toBe('こ ... ！');
    // the edges of the surrogate ranges: U+10000 is \ud800\udc00, U+1F3FF \ud83c\udfff, U+10FFFD \udbff\udffd
    expect(cutText('\u{10000}'.repeat(6) + '\u{1F3FF}'.repeat(6), 19, bytes)).toBe('\u{10000} ... \u{1F3FF}');
    expect(cutText('\u{10FFFD}'.repeat(6) + '\u{10000}'.repeat(6), 19, bytes)).toBe('\u{10FFFD} ... \u{10000}');
  });
});

describe('cutText, counted by BPE (models/uit-tiny)', () => {
  const url = 'Read more at https://en.wikipedia.org/wiki/Ontology';
  it('counts the marker as three tokens, and the end of a word as fewer tokens alone than after a space', () => {
    expect(bpeCount(CUT_MARKER)).toBe(3);
    expect([bpeCount('ology'), bpeCount(' ology')]).toEqual([1, 4]);
  });

  it('re-fits when the joined text is longer than its parts: the excess comes off the tail first, then the head', () => {
    // 7: head 2 "Read more", tail 2 "tology", joined 8 tokens; the excess 1 comes off the tail: head 3, tail 1
    expect(cutText(url, 7, bpeCount)).toBe('Read more at ... y');
    // 6: head 2, tail 1 "ology", joined 8 (" ology" is 4 tokens); the excess 2 takes the tail's 1 and 1 of the head
    expect(cutText(url, 6, bpeCount)).toBe('Read more ...');
    expect(bpeCount(cutText(url, 7, bpeCount))).toBeLessThanOrEqual(7);
    expect(bpeCount(cutText(url, 6, bpeCount))).toBeLessThanOrEqual(6);
  });

  it('gives the marker alone when four re-fits still come out over the budget', () => {
    // every tail cut inside "fortunatelyfortunately..." costs more tokens after the marker's space than alone
    expect(cutText(`a b c d e f g h i j ${'fortunately'.repeat(6)}`, 15, bpeCount)).toBe('...');
  });
});
