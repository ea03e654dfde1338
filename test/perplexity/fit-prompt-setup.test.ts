// fitUitSetup, pinned exactly: which inputs the fit cuts and to how many tokens, which candidates
// take the task's shared fit and which are fitted alone, when the Definition reserve applies, when
// the byte bound spares the tokenizer, and every field of the FitReport. The fixture's tokenizer is
// byte-level with no merges (one token per byte), so each level below is worked out by hand; texts
// of digits have no spaces, so a cut takes exactly its level. The prompt frame is
// buildScoringPrefix's: 143 bytes + the examples' outputs, 148 with outputs "Yes" and "No".
// The exact check of a candidate fitted alone (tokens that merge across a cut) runs on
// models/uit-tiny's BPE tokenizer and real IMDB reviews.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildScoringPrefix, cutText, fitUitSetup, type FitReport, type UitSetup } from '../../src/perplexity/index.js';
import { tokenBoundFor } from '../../src/perplexity/token-bound.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';
import { FIXTURE } from './helpers.js';

const IMDB = '../shared/data/p3_rendered/imdb_Reviewer_Enjoyment_Yes_No.jsonl';

const bytes = loadTokenizer(FIXTURE);
const count = (s: string) => bytes.encode(s).length;
const bound = tokenBoundFor(`${FIXTURE}/tokenizer.json`)!;

/** `n` digits, no spaces: a cut of it takes exactly its budget. */
const digits = (n: number) => Array.from({ length: n }, (_, i) => String(i % 10)).join('');
/** A Definition of exactly `n` bytes. */
const def = (n: number) => 'Answer Yes when the review is positive, else No. '.repeat(Math.ceil(n / 49)).slice(0, n);

function setupOf(examples: [string, string][], instances: [string, string[]][]): UitSetup {
  return {
    taskId: 'hand-made',
    examples: examples.map(([input, output]) => ({ input, output })),
    examplesFromInstances: [],
    instances: instances.map(([input, outputs], i) => ({ id: `x${i}`, input, outputs })),
  };
}

/** Two examples of `a` and `b` digits, outputs "Yes" and "No" (the prompt frame is then 148 tokens). */
const examples = (a: number, b: number): [string, string][] => [
  [digits(a), 'Yes'],
  [digits(b), 'No'],
];

/** Token counts of a setup's inputs: what the fit cut, and to how much. */
const shape = (s: UitSetup) => ({ examples: s.examples.map((e) => count(e.input)), instances: s.instances.map((x) => count(x.input)) });
/** Tokens of instance i's prompt for Definition d, gold output included. */
const promptTokens = (d: string, s: UitSetup, i: number) => count(buildScoringPrefix(d, s.examples, s.instances[i].input)) + count(s.instances[i].outputs[0]);

/** A tokenizer count that counts its calls: the fit must not tokenize where the byte bound decides. */
function counted(): { count: (s: string) => number; calls: () => number } {
  let n = 0;
  return {
    count: (s) => {
      n++;
      return count(s);
    },
    calls: () => n,
  };
}

describe('fitUitSetup: the shared fit (water-filling, examples cut once per task)', () => {
  // x0 needs a cut; x1 fits; x2 and x3 have no gold output (scored null) and are never cut, however long
  const W = setupOf(
    examples(40, 300),
    [
      [digits(500), ['Yes']],
      [digits(90), ['No']],
      [digits(2000), []],
      [digits(3000), ['']],
    ],
  );

  it('cuts the longest inputs to one level, the examples to the level every instance can use, the rest to the instance', () => {
    // context 800: reserve min(128, 800/4) = 128, + 4 of slack. x0's prompt: 148 + 40 + 300 + 500 + 132 + 3 = 1123,
    // 323 over: its inputs may take 517; 40 + 2 * 238 = 516, so level 238: example 1 cut to 238, x0 gets the 239 left
    const short = 'Say Yes or No.';
    const fit = fitUitSetup(W, [short, def(128), def(129)], { count, maxPositions: 800 });
    expect(fit.shortenedExamples).toEqual([1]);
    expect(shape(fit.setups[0])).toEqual({ examples: [40, 238], instances: [239, 90, 2000, 3000] });
    expect(fit.setups[0].examples[1].input).toBe(cutText(digits(300), 238, count));
    expect(fit.setups[0].instances[0].input).toBe(cutText(digits(500), 239, count));
    // a Definition of up to the reserve (128 here) takes the shared fit; one token longer is fitted alone
    expect(fit.alone).toEqual([false, false, true]);
    expect(fit.setups[1]).toEqual(fit.setups[0]);
    expect(promptTokens(def(128), fit.setups[1], 0)).toBe(800 - 4);
    // fitted alone for 129 tokens: 148 + 340 + 500 + 129 + 3 = 1120, inputs may take 520: level 240
    expect(shape(fit.setups[2])).toEqual({ examples: [40, 240], instances: [240, 90, 2000, 3000] });
    expect(promptTokens(def(129), fit.setups[2], 0)).toBe(800);
    // the examples were cut, so every scored prompt holds a shortened input; unscored ones never count
    expect(fit.shortened).toEqual([0, 1, 2].map(() => [true, true, false, false]));
    // what was not cut is the task's own
    expect(fit.setups[0].examples[0]).toBe(W.examples[0]);
    expect(fit.setups[0].instances.slice(1)).toEqual(W.instances.slice(1));
    expect(fit.setups[0].instances[1]).toBe(W.instances[1]);
    // the task's setup is never changed
    expect(shape(W)).toEqual({ examples: [40, 300], instances: [500, 90, 2000, 3000] });
  });

  it('gives a candidate the same prompts whatever candidates come with it', () => {
    const all = fitUitSetup(W, ['Say Yes or No.', def(129), def(128)], { count, maxPositions: 800 });
    const one = fitUitSetup(W, [def(128)], { count, maxPositions: 800 });
    expect(one.setups[0]).toEqual(all.setups[2]);
    expect(one.shortenedExamples).toEqual(all.shortenedExamples);
    expect(fitUitSetup(W, [def(129)], { count, maxPositions: 800 }).setups[0]).toEqual(all.setups[1]);
  });

  it('with no candidates, reports nothing and cuts nothing', () => {
    expect(fitUitSetup(W, [], { count, maxPositions: 800 })).toEqual({ setups: [], shortened: [], alone: [], shortenedExamples: [] } satisfies FitReport);
  });

  it('leaves a task with no gold output to score as it is', () => {
    const none = setupOf([[digits(300), 'No']], [
      [digits(900), []],
      [digits(900), ['']],
    ]);
    expect(fitUitSetup(none, [def(200)], { count, maxPositions: 400 })).toEqual({
      setups: [none],
      shortened: [[false, false]],
      alone: [false],
      shortenedExamples: [],
    });
  });

  it('cuts only the examples when they are the long inputs, to the lower level of the two instances', () => {
    // context 800: x0 is 133 over, its inputs may take 517 = 50 + 2 * 233 + 1; x1 is 102 over, 518 = 20 + 2 * 249
    const Ex = setupOf(
      examples(300, 300),
      [
        [digits(50), ['Yes']],
        [digits(20), ['No']],
      ],
    );
    const fit = fitUitSetup(Ex, ['Yes or No?'], { count, maxPositions: 800 });
    expect(fit.shortenedExamples).toEqual([0, 1]);
    expect(shape(fit.setups[0])).toEqual({ examples: [233, 233], instances: [50, 20] });
    expect(fit.setups[0].instances[0]).toBe(Ex.instances[0]);
    expect(fit.setups[0].instances[1]).toBe(Ex.instances[1]);
    expect(fit.shortened).toEqual([[true, true]]);
    expect(fit.alone).toEqual([false]);
    expect(promptTokens(def(128), fit.setups[0], 0)).toBe(800 - 4 - 1);
  });

  it('leaves an example whose length is the level whole, and cuts only the instance', () => {
    // context 583: x0's inputs may take 583 - 148 - 132 - 3 = 300 = 100 + 100 + 100: level 100, the examples' own length
    const E = setupOf(
      examples(100, 100),
      [
        [digits(300), ['Yes']],
        [digits(10), ['No']],
      ],
    );
    const fit = fitUitSetup(E, ['Yes or No?'], { count, maxPositions: 583 });
    expect(fit.shortenedExamples).toEqual([]);
    expect(shape(fit.setups[0])).toEqual({ examples: [100, 100], instances: [100, 10] });
    expect(fit.setups[0].examples).toBe(E.examples);
    expect(fit.setups[0].instances[1]).toBe(E.instances[1]);
    expect(fit.shortened).toEqual([[true, false]]);
    expect(fit.alone).toEqual([false]);
    expect(promptTokens(def(128), fit.setups[0], 0)).toBe(583 - 4);
  });
});

describe('fitUitSetup: the Definition reserve', () => {
  // context 401: the default reserve is 401/4 = 100; x0: 148 + 440 + 104 + 3 = 695, inputs may take 146 = 40 + 2 * 53
  const R = setupOf(
    examples(40, 100),
    [[digits(300), ['Yes']]],
  );

  it('is a quarter of a small context: a Definition of 100 tokens takes the shared fit, one of 101 is fitted alone', () => {
    const fit = fitUitSetup(R, [def(100), def(101)], { count, maxPositions: 401 });
    expect(fit.alone).toEqual([false, true]);
    expect(shape(fit.setups[0])).toEqual({ examples: [40, 53], instances: [53] });
    // alone, for 101 tokens: inputs may take 149 = 40 + 2 * 54 + 1
    expect(shape(fit.setups[1])).toEqual({ examples: [40, 54], instances: [55] });
    expect(promptTokens(def(101), fit.setups[1], 0)).toBe(401);
    expect(fit.shortenedExamples).toEqual([1]);
    expect(fit.shortened).toEqual([[true], [true]]);
  });

  it('is the one given (definitionReserve) when given', () => {
    // reserve 20: x0 148 + 440 + 24 + 3 = 615, inputs may take 226: level 93
    const fit = fitUitSetup(R, [def(20), def(21)], { count, maxPositions: 401, reserve: 20 });
    expect(fit.alone).toEqual([false, true]);
    expect(shape(fit.setups[0])).toEqual({ examples: [40, 93], instances: [93] });
    expect(shape(fit.setups[1])).toEqual({ examples: [40, 94], instances: [95] });
  });

  it('does not apply when nothing has to be cut: any Definition whose prompts fit whole takes them whole', () => {
    // context 346, reserve 86: 148 + 5 + 100 + 90 + 3 = 346, exactly full with the reserve and its slack
    const X = setupOf(
      [
        ['abc', 'Yes'],
        ['de', 'No'],
      ],
      [[digits(100), ['Yes']]],
    );
    for (const b of [undefined, bound]) {
      const fit = fitUitSetup(X, ['Answer yes.', def(89), def(90), def(91)], { count, maxPositions: 346, bound: b });
      expect(fit.alone).toEqual([false, false, false, true]);
      expect(fit.setups.slice(0, 3)).toEqual([X, X, X]);
      expect(fit.setups[0]).toBe(X);
      expect(fit.setups[2]).toBe(X);
      // 91 tokens: one over, x0 cut from 100 to 99
      expect(shape(fit.setups[3])).toEqual({ examples: [3, 2], instances: [99] });
      expect(fit.shortened).toEqual([[false], [false], [false], [true]]);
      expect(fit.shortenedExamples).toEqual([]);
    }
  });
});

describe('fitUitSetup: the byte bound decides without the tokenizer', () => {
  // the fixture's bound is bytes + 1 per text. x0: bound(prefix) 254 + reserve 50 + 4 + bound("Yes") 4 = 312;
  // x1: 164 + 54 + 3 = 221; x2 has no gold output (never checked, however long)
  const Bd = setupOf(
    [
      ['abc', 'Yes'],
      ['de', 'No'],
    ],
    [
      [digits(100), ['Yes']],
      [digits(10), ['No']],
      [digits(5000), []],
    ],
  );

  it('tokenizes nothing when every prompt fits by the bound, exactly full included', () => {
    const c = counted();
    const fit = fitUitSetup(Bd, ['Say yes.'], { count: c.count, maxPositions: 312, bound, reserve: 50 });
    expect(c.calls()).toBe(0);
    expect(fit).toEqual({ setups: [Bd], shortened: [[false, false, false]], alone: [false], shortenedExamples: [] });
    expect(fit.setups[0]).toBe(Bd);
  });

  it('tokenizes when one prompt is a token over the bound, and cuts nothing when the exact count fits', () => {
    const c = counted();
    const fit = fitUitSetup(Bd, ['Say yes.'], { count: c.count, maxPositions: 311, bound, reserve: 50 });
    expect(c.calls()).toBeGreaterThan(0);
    expect(fit).toEqual({ setups: [Bd], shortened: [[false, false, false]], alone: [false], shortenedExamples: [] });
    expect(fit.setups[0]).toBe(Bd);
  });

  it('gives a short candidate the shared cut, even where its own prompts would fit whole by the bound', () => {
    // context 300: with the reserve x0 is 253 + 54 + 3 - 300 = 10 over, cut from 100 to 90; "Say yes." alone would fit
    // (bound 254 + 9 + 4 = 267), but it is scored on the task's shared evidence
    const fit = fitUitSetup(Bd, ['Say yes.'], { count, maxPositions: 300, bound, reserve: 50 });
    expect(shape(fit.setups[0])).toEqual({ examples: [3, 2], instances: [90, 10, 5000] });
    expect(fit).toMatchObject({ shortened: [[true, false, false]], alone: [false], shortenedExamples: [] });
  });

  it("decides each candidate by its own bound, then by its exact count: over the reserve, it is alone only when cut", () => {
    // 55 bytes: bound 254 + 56 + 4 = 314 > 312, exact 253 + 55 + 3 = 311 fits; 57 bytes: 313, one over
    const fit = fitUitSetup(Bd, [def(55), def(57)], { count, maxPositions: 312, bound, reserve: 50 });
    expect(fit.alone).toEqual([false, true]);
    expect(fit.setups[0]).toBe(Bd);
    expect(shape(fit.setups[1])).toEqual({ examples: [3, 2], instances: [99, 10, 5000] });
    expect(fit.shortened).toEqual([
      [false, false, false],
      [true, false, false],
    ]);
  });
});

describe('fitUitSetup: prompts that the shared fit cannot make fit', () => {
  it('fits a short candidate alone when an instance does not fit the reserve even with every input cut to the marker', () => {
    // context 400, reserve 100. x1's gold output is 150 tokens: 148 + 3 * 5 + 104 + 150 > 400, so in the shared fit it
    // is cut to the marker, and x0 sets the examples' level (48 = 145 / 3)
    const U = setupOf(
      examples(50, 60),
      [
        [digits(200), ['Yes']],
        [digits(30), ['N'.repeat(150)]],
      ],
    );
    const runaway = def(500);
    const fit = fitUitSetup(U, ['Say it now', runaway], { count, maxPositions: 400 });
    expect(fit.shortenedExamples).toEqual([0, 1]);
    // alone for 10 tokens: x0's level is 129, x1's 31 (92 = 30 + 2 * 31); the examples take the lower, and x1 then
    // fits whole: 148 + 62 + 30 + 10 + 150 = 400
    expect(fit.alone).toEqual([true, true]);
    expect(shape(fit.setups[0])).toEqual({ examples: [31, 31], instances: [177, 30] });
    expect(fit.setups[0].instances[1]).toBe(U.instances[1]);
    expect([0, 1].map((i) => promptTokens('Say it now', fit.setups[0], i))).toEqual([400, 400]);
    // a Definition longer than the context: every input cut to the marker, the rest left to the overflow policy
    expect(fit.setups[1].examples.map((e) => e.input)).toEqual(['...', '...']);
    expect(fit.setups[1].instances.map((x) => x.input)).toEqual(['...', '...']);
    expect(fit.shortened).toEqual([
      [true, true],
      [true, true],
    ]);
  });

  it('cuts the examples to the marker when no over-long instance can fit, and keeps the instances that fit', () => {
    // context 600, reserve 128. x0 (gold output 306 tokens) is 136 over with 150 of inputs: not even 3 * 5 fits, so it
    // is cut to the marker; x1 is exactly full (0 over) and x2 has no gold output: neither sets a level
    const U2 = setupOf(
      examples(50, 60),
      [
        [digits(40), ['y'.repeat(306)]],
        [digits(208), ['No']],
        [digits(1000), []],
      ],
    );
    const fit = fitUitSetup(U2, ['Say No.', def(128)], { count, maxPositions: 600 });
    expect(fit.shortenedExamples).toEqual([0, 1]);
    expect(fit.setups[0].examples.map((e) => e.input)).toEqual(['...', '...']);
    expect(fit.setups[0].instances.map((x) => x.input)).toEqual(['...', digits(208), digits(1000)]);
    expect(fit.setups[1]).toEqual(fit.setups[0]);
    // the marker is 5 tokens in the plan, '...' is 3: x0 fits after all (148 + 9 + 128 + 306 = 591), so both take the shared fit
    expect(fit.alone).toEqual([false, false]);
    expect([0, 1].map((i) => promptTokens(def(128), fit.setups[1], i))).toEqual([591, 492]);
    expect(fit.shortened).toEqual([
      [true, true, false],
      [true, true, false],
    ]);
  });

  it('leaves alone an instance whose gold output takes the whole context (the scorer reports it), not one a token shorter', () => {
    const task = (target: number) =>
      setupOf(
        examples(50, 60),
        [[digits(40), ['y'.repeat(target)]]],
      );
    // 300 tokens of gold output in 300 positions: nothing can help, nothing is cut
    const full = task(300);
    const f1 = fitUitSetup(full, ['Answer.', def(100)], { count, maxPositions: 300 });
    expect(f1.setups).toEqual([full, full]);
    expect(f1.setups[0]).toBe(full);
    expect(f1.alone[0]).toBe(false);
    expect(f1.shortened).toEqual([[false], [false]]);
    expect(f1.shortenedExamples).toEqual([]);
    // 299: one token of context would fit it, so every input is cut to the marker
    const f2 = fitUitSetup(task(299), ['Answer.'], { count, maxPositions: 300 });
    expect(f2.alone).toEqual([true]);
    expect(f2.shortenedExamples).toEqual([0, 1]);
    expect(f2.setups[0].examples.map((e) => e.input)).toEqual(['...', '...']);
    expect(f2.setups[0].instances.map((x) => x.input)).toEqual(['...']);
    expect(f2.shortened).toEqual([[true]]);
  });
});

describe('fitUitSetup: the exact check of a candidate fitted alone (BPE merges across a cut)', () => {
  const tiny = loadTokenizer('models/uit-tiny');
  const bpe = (s: string) => tiny.encode(s).length;
  const reviews = readFileSync(IMDB, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { prompt: string }).prompt);
  const d = 'Decide whether the reviewer of the movie enjoyed it, from the words of the review. '.repeat(2);
  const fewWords: [string, string][] = [
    ['A fine film.', 'Yes'],
    ['Dull.', 'No'],
  ];

  it('cuts an input again when its cut merges into more tokens than planned, until the prompt fits', () => {
    // 400 characters of a real review from its 147th, 6 positions of room for the input: the planned cut,
    // "marrie ... icture", takes one token more in the prompt than alone, so it is cut once more
    const input = reviews[12].slice(147, 547);
    const S = setupOf(fewWords, [[input, ['Yes']]]);
    const max = bpe(buildScoringPrefix(d, S.examples, '')) + bpe('Yes') + 6;
    const fit = fitUitSetup(S, [d], { count: bpe, maxPositions: max });
    expect(fit.alone).toEqual([true]);
    const cut = fit.setups[0].instances[0].input;
    expect(cut).toBe('marr ... icture');
    expect(bpe(buildScoringPrefix(d, S.examples, cut)) + bpe('Yes')).toBe(max);
    expect(fit.shortened).toEqual([[true]]);
    expect(fit.setups[0].examples).toBe(S.examples);
  });
});
