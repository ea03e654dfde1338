// Fitting UIT scoring prompts into the scorer's context by shortening the INPUT texts, so that the
// Definition (the thing being judged) stays whole. The scorer's generic overflow policy drops
// prefix tokens from the left, which for a UIT prompt cuts the Definition first: with long inputs
// (IMDB reviews, articles) every candidate then loses its whole Definition and all candidates tie.
//
// The rule (docs/scoring.md, "Long inputs"):
// - only inputs are cut: the two examples' inputs and the instance's input. Definitions, example
//   outputs and the gold output are never touched here;
// - the longest inputs are cut first (water-filling: every input longer than a level is cut to that
//   level, in tokens); an input is cut in its middle, keeping its beginning and its end joined by
//   the marker " ... " (the marker's tokens count inside the level);
// - the examples are cut once per task (to the lowest level any instance needs), so all prompts of
//   a task share them (prefix reuse);
// - the inputs are fitted for a Definition of `reserve` tokens (default min(128, context / 4)),
//   not for the candidates at hand: every candidate within the reserve is scored on the same
//   evidence, and its prompts depend on the task and on itself only, never on which other
//   candidates are scored with it (so adding candidates to a task leaves the cached scores of the
//   others valid). A candidate longer than the reserve, or whose prompt still does not fit, is
//   fitted on its own when its prompts do not fit whole (shorter inputs for it alone; `alone`
//   says so); a long candidate whose uncut prompts fit takes them uncut and is not `alone`;
// - a prompt that cannot fit even with every input cut to the marker (a Definition + outputs
//   longer than the context) is left to the scorer's overflow policy, which reports it.
// The result is a pure function of the task's texts, the candidate, the tokenizer and the context
// length, so the same job gives the same prompts (and cache keys) on every run.
import type { Example, Instance } from '../types.js';
import { buildScoringPrefix } from './scoring-prompt.js';
import type { UitSetup } from './uit.js';

/** What stands for the cut-out middle of a shortened input. */
export const CUT_MARKER = ' ... ';

/** Tokens of Definition text the shared fit leaves room for (at most; a quarter of the context when smaller). */
export const DEFINITION_RESERVE = 128;

/** Room the shared fit leaves for tokens that merge differently across a Definition's edges. */
const SLACK = 4;

export interface FitContext {
  /** Token count of a text, as the scorer tokenizes a prefix or a target (no special tokens). */
  count(text: string): number;
  /** The scorer's context length, in positions. */
  maxPositions: number;
  /** A cheap upper bound on count() (token-bound.ts): when every prompt's bound fits, nothing is tokenized. */
  bound?: (text: string) => number;
  /** Tokens of Definition text the shared fit leaves room for (default min(DEFINITION_RESERVE, context / 4)). */
  reserve?: number;
}

export interface FitReport {
  /** Per candidate: the setup its prompts are built from (the task's setup when nothing was cut). */
  setups: UitSetup[];
  /** Per candidate, per scored instance (setup order): the prompt holds a shortened input. */
  shortened: boolean[][];
  /** Per candidate: inputs cut for it alone (its Definition is longer than the reserve, or did not fit the shared fit, and its uncut prompts do not fit). */
  alone: boolean[];
  /** Indices of the examples the shared fit shortened (empty when nothing was cut). */
  shortenedExamples: number[];
}

/** Leaves everything as it is (no context limit, or the scorer's policy is `error`). */
export function unfitted(setup: UitSetup, candidates: number): FitReport {
  const none = setup.instances.map(() => false);
  return {
    setups: Array.from({ length: candidates }, () => setup),
    shortened: Array.from({ length: candidates }, () => none),
    alone: Array.from({ length: candidates }, () => false),
    shortenedExamples: [],
  };
}

/**
 * The largest level w >= min such that sum(min(L_j, w)) <= budget; Infinity when everything fits
 * uncut; null when not even every input at `min` fits.
 */
export function waterLevel(lengths: readonly number[], budget: number, min: number): number | null {
  if (lengths.reduce((a, b) => a + b, 0) <= budget) return Infinity;
  const cost = (w: number) => lengths.reduce((a, l) => a + Math.min(l, w), 0);
  if (cost(min) > budget) return null;
  let lo = min; // cost(lo) <= budget
  let hi = Math.max(...lengths); // cost(hi) > budget (the sum does not fit)
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (cost(mid) <= budget) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * `text` cut in the middle so that it takes at most `maxTokens` tokens: its beginning and its end
 * (about half the budget each) joined by the marker. Both ends stay because instruction data puts
 * the question around the content ("<review> Did the reviewer enjoy the movie?", "Sentence: ...
 * Question: ..."). Each end is the longest run of characters (never half a surrogate pair) whose
 * tokens fit its share, found by bisection: deterministic for a given tokenizer.
 */
export function cutText(text: string, maxTokens: number, count: (s: string) => number): string {
  const markerTokens = count(CUT_MARKER);
  const join = (head: string, tail: string): string => {
    const h = head.replace(/\s+$/u, '');
    const t = tail.replace(/^\s+/u, '');
    return (h === '' ? '' : h + ' ') + BARE_MARKER + (t === '' ? '' : ' ' + t);
  };
  let rest = maxTokens - markerTokens;
  let tailShare = Math.floor(rest / 2);
  // (a share below zero cuts both ends to nothing: the bare marker, below)
  for (let round = 0; round < VERIFY_ROUNDS; round++) {
    const headShare = rest - tailShare;
    const headChars = longestFit(text.length, (c) => count(text.slice(0, wholeEnd(text, c))) <= headShare);
    const head = text.slice(0, wordEnd(text, wholeEnd(text, headChars)));
    // the tail comes from what the head left: the two ends never overlap
    const room = text.length - head.length;
    const tailChars = longestFit(room, (c) => count(text.slice(wholeStart(text, text.length - c))) <= tailShare);
    const tail = text.slice(wordStart(text, wholeStart(text, text.length - tailChars)));
    const out = join(head, tail);
    const excess = count(out) - maxTokens;
    if (excess <= 0) return out;
    // tokens merged differently across the joins: take the excess from the tail, then the head
    const fromTail = Math.min(tailShare, excess);
    tailShare -= fromTail;
    rest -= excess - fromTail;
  }
  return BARE_MARKER;
}

/** The marker alone, for an input cut to nothing. */
const BARE_MARKER = CUT_MARKER.trim();

/** The largest c in [0, n] with fits(c), for fits monotone enough (fits(0) is taken as true). */
function longestFit(n: number, fits: (c: number) => boolean): number {
  if (fits(n)) return n;
  let lo = 0;
  let hi = n;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** How far a cut moves to fall between words rather than inside one. */
const WORD_SLACK = 16;

/** `end` moved back to just after a whitespace when one is near, so the head keeps whole words. */
function wordEnd(text: string, end: number): number {
  if (end >= text.length || /\s/u.test(text[end])) return end;
  for (let i = end - 1; i > 0 && i >= end - WORD_SLACK; i--) if (/\s/u.test(text[i])) return i;
  return end;
}

/** `start` moved forward to a whitespace when one is near, so the tail starts with a whole word. */
function wordStart(text: string, start: number): number {
  if (start <= 0 || /\s/u.test(text[start - 1])) return start;
  const ahead = text.slice(start, start + WORD_SLACK + 1).search(/\s/u);
  return ahead === -1 ? start : start + ahead;
}

/** `end` moved back so that text.slice(0, end) does not end inside a surrogate pair (at 0 charCodeAt gives NaN: no move). */
function wholeEnd(text: string, end: number): number {
  return isHighSurrogate(text.charCodeAt(end - 1)) ? end - 1 : end;
}

/** `start` moved forward so that text.slice(start) does not begin inside a surrogate pair (at the end charCodeAt gives NaN: no move). */
function wholeStart(text: string, start: number): number {
  return isLowSurrogate(text.charCodeAt(start)) ? start + 1 : start;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

/** Attempts to re-fit one instance after its exact prompt came out longer than planned. */
const VERIFY_ROUNDS = 4;

interface Fitted {
  examples: Example[];
  inputs: string[];
}

/**
 * Shortens the inputs of a task's UIT prompts so that each candidate's prompts + gold outputs fit
 * `ctx.maxPositions` with its Definition whole (see the top of this file).
 */
export function fitUitSetup(setup: UitSetup, definitions: readonly string[], ctx: FitContext): FitReport {
  const max = ctx.maxPositions;
  const targets = setup.instances.map((x) => x.outputs[0] ?? '');
  // An empty gold output is scored null without a model call; its prompt does not matter.
  const scored = targets.map((t) => t !== '');
  if (definitions.length === 0) return unfitted(setup, 0);
  const reserve = ctx.reserve ?? Math.min(DEFINITION_RESERVE, Math.floor(max / 4));
  const same: Fitted = { examples: setup.examples, inputs: setup.instances.map((x) => x.input) };

  // Cheap: by the byte bound, every prompt certainly fits (most tasks). Decided per candidate, and
  // for the shared fit with the reserve, so the answer never depends on the other candidates.
  const b = ctx.bound;
  const fitsByBound = (defBound: number) =>
    b !== undefined && setup.instances.every((x, i) => !scored[i] || b(buildScoringPrefix('', setup.examples, x.input)) + defBound + b(targets[i]) <= max);
  const count = ctx.count;
  let targetTokens: number[] | undefined;
  const targetCount = () => (targetTokens ??= targets.map((t) => count(t)));

  const sharedFit = fitsByBound(reserve + SLACK) ? same : fitInputs(setup, same, (ex, input) => count(buildScoringPrefix('', ex, input)) + reserve + SLACK, ctx, scored, targetCount());
  const report: FitReport = { setups: [], shortened: [], alone: [], shortenedExamples: changedExamples(setup, sharedFit) };
  definitions.forEach((d) => {
    let fitted: Fitted | null = null;
    if (sharedFit === same && b !== undefined && fitsByBound(b(d))) fitted = same;
    // with nothing cut, any candidate whose prompts fit whole takes them whole, however long
    else if ((sharedFit === same || count(d) <= reserve) && fitsAll(d, sharedFit, count, max, scored, targetCount())) fitted = sharedFit;
    const alone = fitted === null;
    if (fitted === null) {
      const own = fitInputs(setup, same, (ex, input) => count(buildScoringPrefix(d, ex, input)), ctx, scored, targetCount());
      fitted = verified(setup, own, d, ctx, scored, targetCount());
    }
    report.setups.push(toSetup(setup, fitted));
    report.alone.push(alone);
    const exCut = fitted.examples.some((e, j) => e.input !== setup.examples[j].input);
    report.shortened.push(setup.instances.map((x, i) => scored[i] && (exCut || fitted.inputs[i] !== x.input)));
  });
  return report;
}

function toSetup(setup: UitSetup, f: Fitted): UitSetup {
  const instances: Instance[] = setup.instances.map((x, i) => (f.inputs[i] === x.input ? x : { ...x, input: f.inputs[i] }));
  const changed = f.examples !== setup.examples || instances.some((x, i) => x !== setup.instances[i]);
  return changed ? { ...setup, examples: f.examples, instances } : setup;
}

function changedExamples(setup: UitSetup, f: Fitted): number[] {
  return f.examples.flatMap((e, j) => (e.input !== setup.examples[j].input ? [j] : []));
}

/** Every prompt of candidate `d` on the fitted texts, tokenized whole, + its gold output fits. */
function fitsAll(d: string, f: Fitted, count: (s: string) => number, max: number, scored: boolean[], targetTokens: number[]): boolean {
  return f.inputs.every((input, i) => !scored[i] || targetTokens[i] >= max || count(buildScoringPrefix(d, f.examples, input)) + targetTokens[i] <= max);
}

/**
 * The water-filling fit of the inputs, for prompts whose token count `promptTokens(examples,
 * input)` gives (the gold output's tokens come on top); `uncut` itself when every prompt fits.
 */
function fitInputs(
  setup: UitSetup,
  uncut: Fitted,
  promptTokens: (examples: Example[], input: string) => number,
  ctx: FitContext,
  scored: boolean[],
  targetTokens: number[],
): Fitted {
  const { count, maxPositions: max } = ctx;
  const over = setup.instances.map((x, i) => (scored[i] ? promptTokens(setup.examples, x.input) + targetTokens[i] - max : 0));
  if (over.every((o) => o <= 0)) return uncut;

  const marker = count(CUT_MARKER);
  const exLen = setup.examples.map((e) => count(e.input));
  const exTotal = exLen.reduce((a, b) => a + b, 0);
  const xLen = setup.instances.map((x) => count(x.input));
  const unfit = setup.instances.map(() => false);
  const levels: number[] = [];
  setup.instances.forEach((_, i) => {
    if (over[i] <= 0) return; // an unscored instance is never over
    // a target that cannot fit with one token of context is the scorer's error to report
    if (targetTokens[i] >= max) return;
    const level = waterLevel([...exLen, xLen[i]], exTotal + xLen[i] - over[i], marker);
    if (level === null) unfit[i] = true;
    else levels.push(level);
  });
  // The examples are cut to the lowest level any instance needs; when no instance can fit at all,
  // to the marker, so that the overflow policy cuts as little of the Definition as it can.
  const exCap = levels.length ? Math.min(...levels) : unfit.some(Boolean) ? marker : Infinity;
  const examples = setup.examples.map((e, j) => (exLen[j] > exCap ? { ...e, input: cutText(e.input, exCap, count) } : e));
  const exNow = examples.reduce((a, e) => a + count(e.input), 0);
  const inputs = setup.instances.map((x, i) => {
    if (targetTokens[i] >= max) return x.input; // (an unscored instance is never over: its budget holds it whole)
    if (unfit[i]) return BARE_MARKER;
    // what the (maybe further cut) examples leave is this input's budget
    const budget = exTotal + xLen[i] - over[i] - exNow;
    return xLen[i] > budget ? cutText(x.input, budget, count) : x.input;
  });
  return { examples: examples.some((e, j) => e !== setup.examples[j]) ? examples : setup.examples, inputs };
}

/**
 * The exact check of a candidate fitted on its own: each prompt, tokenized whole, + its gold
 * output must fit; an instance whose prompt is still over (tokens merge differently across a cut)
 * has its input cut further, a few rounds at most, after which the overflow policy takes the rest.
 */
function verified(setup: UitSetup, f: Fitted, d: string, ctx: FitContext, scored: boolean[], targetTokens: number[]): Fitted {
  const { count, maxPositions: max } = ctx;
  const markerTokens = count(CUT_MARKER);
  const inputs = f.inputs.map((start, i) => {
    let input = start;
    if (!scored[i] || targetTokens[i] >= max) return input;
    for (let round = 0; round < VERIFY_ROUNDS; round++) {
      const excess = count(buildScoringPrefix(d, f.examples, input)) + targetTokens[i] - max;
      if (excess <= 0) break;
      const now = count(input);
      if (now <= markerTokens) break;
      input = cutText(setup.instances[i].input, Math.max(markerTokens, now - excess), count);
    }
    return input;
  });
  return { examples: f.examples, inputs };
}
