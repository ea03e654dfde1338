// Text-similarity metrics between two instructions, written here (no Python dependency) and
// pinned to the behaviour of the reference tools so numbers compare with the literature:
// - ROUGE-L follows Google's rouge-score defaults (RougeScorer(['rougeL']), use_stemmer=False):
//   lowercase, every run of characters outside [a-z0-9] becomes a space, split on spaces; no
//   stemming. F-measure of LCS precision and recall (beta = 1), symmetric in its arguments.
// - BLEU follows sacrebleu's sentence_bleu defaults: 13a tokenization, case-sensitive, n-grams
//   up to 4, "exp" smoothing (the NIST geometric sequence: the k-th zero precision becomes
//   1 / (2^k * total)), effective order (orders the hypothesis is too short for are left out of
//   the geometric mean) and the usual brevity penalty. Scaled to [0, 1], not sacrebleu's 0-100.

/** rouge-score's default tokenizer (tokenize.py without a stemmer). */
export function rougeTokens(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .split(' ')
    .filter((t) => t.length > 0);
}

/** Length of the longest common subsequence, O(n*m) time, O(m) memory. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  return lcsRow(a, b)[b.length];
}

/** Entry j: the LCS length of all of `a` and the first j items of `b` (the last row of the LCS table). */
export function lcsRow(a: readonly string[], b: readonly string[]): Uint32Array {
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = ai === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    [prev, cur] = [cur, prev];
  }
  return prev;
}

export interface PRF {
  precision: number;
  recall: number;
  fmeasure: number;
}

/**
 * ROUGE-L of `prediction` against `target`. As in rouge-score, an empty side (no tokens after
 * tokenization) scores 0, even when both are empty.
 */
export function rougeL(target: string, prediction: string): PRF {
  const t = rougeTokens(target);
  const p = rougeTokens(prediction);
  if (t.length === 0 || p.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const lcs = lcsLength(t, p);
  const precision = lcs / p.length;
  const recall = lcs / t.length;
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, fmeasure };
}

// sacrebleu's Tokenizer13a: the mteval-v13a.pl rules, applied in this order.
const TOK13A_RULES: [RegExp, string][] = [
  // Punctuation and symbols get spaces around them ({|}~ [\]^_` space!"#$%& ()*+ :;<=>?@ /).
  [/([{-~[-` -&(-+:-@/])/g, ' $1 '],
  // Period and comma, unless preceded by a digit...
  [/([^0-9])([.,])/g, '$1 $2 '],
  // ...unless followed by a digit.
  [/([.,])([^0-9])/g, ' $1 $2'],
  // A dash preceded by a digit.
  [/([0-9])(-)/g, '$1 $2 '],
];

export function tokenize13a(text: string): string[] {
  // sacrebleu right-strips each segment before tokenizing.
  let line = text.trimEnd().replaceAll('<skipped>', '').replaceAll('-\n', '').replaceAll('\n', ' ');
  if (line.includes('&')) {
    line = line
      .replaceAll('&quot;', '"')
      .replaceAll('&amp;', '&')
      .replaceAll('&lt;', '<')
      .replaceAll('&gt;', '>');
  }
  line = ` ${line} `;
  for (const [re, repl] of TOK13A_RULES) line = line.replace(re, repl);
  return line.split(/\s+/).filter((t) => t.length > 0);
}

export const BLEU_MAX_ORDER = 4;

/** The sufficient statistics of BLEU; they add up over sentences for corpus BLEU. */
export interface BleuStats {
  hypLen: number;
  refLen: number;
  /** Clipped n-gram matches for n = 1..4. */
  matches: number[];
  /** Hypothesis n-grams for n = 1..4. */
  totals: number[];
}

function ngramCounts(tokens: readonly string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  // \u0001 cannot occur inside a 13a token (tokens are split on whitespace only, but control
  // characters never appear in instructions we compare); it keeps n-gram keys unambiguous.
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join('\u0001');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

export function bleuStats(hypothesis: string, reference: string): BleuStats {
  const hyp = tokenize13a(hypothesis);
  const ref = tokenize13a(reference);
  const matches: number[] = [];
  const totals: number[] = [];
  for (let n = 1; n <= BLEU_MAX_ORDER; n++) {
    const h = ngramCounts(hyp, n);
    const r = ngramCounts(ref, n);
    let m = 0;
    for (const [gram, c] of h) m += Math.min(c, r.get(gram) ?? 0);
    matches.push(m);
    totals.push(Math.max(0, hyp.length - n + 1));
  }
  return { hypLen: hyp.length, refLen: ref.length, matches, totals };
}

export function addBleuStats(a: BleuStats, b: BleuStats): BleuStats {
  return {
    hypLen: a.hypLen + b.hypLen,
    refLen: a.refLen + b.refLen,
    matches: a.matches.map((m, i) => m + b.matches[i]),
    totals: a.totals.map((t, i) => t + b.totals[i]),
  };
}

export function brevityPenalty(hypLen: number, refLen: number): number {
  if (hypLen >= refLen) return 1;
  return hypLen > 0 ? Math.exp(1 - refLen / hypLen) : 0;
}

/**
 * BLEU in [0, 1] from statistics, as sacrebleu's compute_bleu with smooth_method='exp'.
 * `effectiveOrder` is sacrebleu's sentence-level default; its corpus_bleu leaves it off.
 */
export function bleuFromStats(s: BleuStats, effectiveOrder = true): number {
  if (s.hypLen === 0) return 0;
  // sacrebleu >= 2.0 stops early when nothing matches at all: 0, not a smoothed small number.
  if (s.matches.every((m) => m === 0)) return 0;
  const logPrecisions: number[] = [];
  let smooth = 1;
  let order = BLEU_MAX_ORDER;
  for (let n = 1; n <= BLEU_MAX_ORDER; n++) {
    const total = s.totals[n - 1];
    if (total === 0) {
      // No n-grams of this order in the hypothesis: sacrebleu stops here; without effective
      // order the remaining precisions stay 0 and the score is 0.
      if (!effectiveOrder) return 0;
      break;
    }
    if (effectiveOrder) order = n;
    const m = s.matches[n - 1];
    if (m === 0) {
      smooth *= 2;
      logPrecisions.push(Math.log(1 / (smooth * total)));
    } else {
      logPrecisions.push(Math.log(m / total));
    }
  }
  const sum = logPrecisions.slice(0, order).reduce((a, b) => a + b, 0);
  const score = brevityPenalty(s.hypLen, s.refLen) * Math.exp(sum / order);
  return Math.min(1, Math.max(0, score));
}

/** Sentence BLEU of `hypothesis` against one `reference`, in [0, 1]. */
export function sentenceBleu(hypothesis: string, reference: string): number {
  return bleuFromStats(bleuStats(hypothesis, reference), true);
}

/** Corpus BLEU (statistics summed over pairs, no effective order), in [0, 1]. */
export function corpusBleu(pairs: readonly { hypothesis: string; reference: string }[]): number {
  if (pairs.length === 0) return 0;
  const total = pairs
    .map((p) => bleuStats(p.hypothesis, p.reference))
    .reduce((a, b) => addBleuStats(a, b));
  return bleuFromStats(total, false);
}

/** Whitespace normalization for exact match: trim, and every run of whitespace becomes one space. Case and punctuation count. */
export function normalizeWhitespace(text: string): string {
  return text.trim().replace(/\s+/g, ' ');
}

export function exactMatch(a: string, b: string): boolean {
  return normalizeWhitespace(a) === normalizeWhitespace(b);
}

export interface TextLength {
  /** Whitespace-separated words. */
  words: number;
  /** Unicode code points of the text as given. */
  chars: number;
}

export function textLength(text: string): TextLength {
  const trimmed = text.trim();
  return {
    words: trimmed.length === 0 ? 0 : trimmed.split(/\s+/).length,
    chars: Array.from(text).length,
  };
}
