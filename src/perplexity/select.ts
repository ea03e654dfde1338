// Candidate selection from scores: rank by mean cross-entropy (lower is better; perplexity is its
// exponent, so the order is the same), then keep the best, the ones under a perplexity threshold,
// or the k best. Candidates without a score (every gold output empty) are never kept.

export interface Selection {
  /** Drop candidates whose perplexity is above this. */
  threshold?: number;
  /** Keep the k best (after the threshold). Default: 1 when no threshold is given, else all. */
  topK?: number;
}

export interface Ranked {
  /** 1 = best; null for a candidate without a score. */
  rank: number | null;
  kept: boolean;
}

/**
 * Ranks `meanCes` (null = no score) and decides which are kept. Ties keep input order, so the
 * earlier candidate wins.
 */
export function rankAndSelect(meanCes: readonly (number | null)[], sel: Selection = {}): Ranked[] {
  if (sel.threshold !== undefined && !(sel.threshold > 0)) throw new RangeError(`threshold must be a perplexity > 0, got ${sel.threshold}`);
  if (sel.topK !== undefined && !(Number.isInteger(sel.topK) && sel.topK >= 1)) throw new RangeError(`topK must be an integer >= 1, got ${sel.topK}`);
  const scored = meanCes
    .map((ce, i) => ({ ce, i }))
    .filter((x): x is { ce: number; i: number } => x.ce !== null)
    .sort((a, b) => a.ce - b.ce); // sort is stable (ES2019): ties stay in input order
  const out: Ranked[] = meanCes.map(() => ({ rank: null, kept: false }));
  const topK = sel.topK ?? (sel.threshold === undefined ? 1 : Infinity);
  const maxCe = sel.threshold === undefined ? Infinity : Math.log(sel.threshold);
  let kept = 0;
  scored.forEach(({ ce, i }, r) => {
    out[i].rank = r + 1;
    if (ce <= maxCe && kept < topK) {
      out[i].kept = true;
      kept++;
    }
  });
  return out;
}
