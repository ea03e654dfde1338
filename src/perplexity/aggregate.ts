// One number per candidate from its instances' scores, in the two scoring modes (docs/scoring.md):
//
// - uit: the token-weighted mean CE over the scored instances (sum of CE / sum of tokens); an
//   instance with an empty gold output has no score and is left out.
// - reference: as main_ppl_annotation.py does it. The scored instances, in order, are cut into the
//   slices [0:8], [8:16], [16:24] and [24:] (so with M > 32 the last one holds the rest); each
//   slice's CE is token-weighted (FusedCrossEntropy's mean over the slice's target tokens), and the
//   score is the plain mean of the 4 slice values, however many instances each holds. The
//   reference returns None (no score) when any slice fails: an empty slice (24 instances or
//   fewer: torch.stack of nothing raises) or a sequence longer than its max_decoder_length (the
//   tensor copy raises). Both happen inside its `try`, so the candidate is just unscored.
import type { PairScore } from './scorer.js';
import type { ScoringMode } from './defaults.js';

/** The reference's slice size and count: test_mean_ppl on [:8], [8:16], [16:24], [24:]. */
export const REFERENCE_CHUNK = 8;
export const REFERENCE_CHUNKS = 4;
/** Fewest instances the reference scores a candidate on (its last slice must not be empty). */
export const REFERENCE_MIN_INSTANCES = REFERENCE_CHUNK * (REFERENCE_CHUNKS - 1) + 1;

/** Why a candidate has no score. */
export type UnscoredReason =
  /** every gold output is empty (uit mode) */
  | 'no-gold-output'
  /** reference mode: fewer than 25 instances, so the reference's last slice is empty */
  | 'too-few-instances'
  /** reference mode: a prompt + target longer than the scorer's context (the reference fails the candidate) */
  | 'prompt-over-context';

export interface Aggregate {
  /** The candidate's score (uit: token-weighted mean CE; reference: the mean of 4 slice CEs); null when it has none (`unscored` says why). */
  meanCe: number | null;
  unscored: UnscoredReason | null;
  /** CE and tokens summed over every scored instance. */
  sumCe: number;
  tokens: number;
  /** Instances in the score (reference mode: every one, empty gold outputs scored as "null"). */
  instances: number;
  /** Instances whose gold output is empty. */
  emptyInstances: number;
  /** Instances whose prompt lost tokens on the left to fit the context. */
  truncatedInstances: number;
  /** Per scored instance, in order: its mean CE (null for an empty output in uit mode). */
  instanceMeanCe: (number | null)[];
  /** Reference mode: the 4 slice values (null for an empty slice); null in uit mode. */
  chunkMeanCe: (number | null)[] | null;
}

/** The reference's slices of n instances, as [start, end) pairs. */
export function referenceChunks(n: number): [number, number][] {
  return Array.from({ length: REFERENCE_CHUNKS }, (_, i) => {
    const start = Math.min(n, i * REFERENCE_CHUNK);
    const end = i === REFERENCE_CHUNKS - 1 ? n : Math.min(n, (i + 1) * REFERENCE_CHUNK);
    return [start, end];
  });
}

/**
 * Aggregates one candidate's pair scores (in instance order); `goldEmpty[i]` says whether
 * instance i's gold output is empty (in reference mode its target was "null").
 */
export function aggregate(scores: readonly PairScore[], goldEmpty: readonly boolean[], scoring: ScoringMode): Aggregate {
  let sumCe = 0;
  let tokens = 0;
  let counted = 0;
  let truncated = 0;
  for (const s of scores) {
    if (s.truncatedPrefixTokens > 0) truncated++;
    if (s.tokens === 0) continue;
    sumCe += s.sumCe;
    tokens += s.tokens;
    counted++;
  }
  const base = {
    sumCe,
    tokens,
    instances: counted,
    emptyInstances: goldEmpty.filter(Boolean).length,
    truncatedInstances: truncated,
    instanceMeanCe: scores.map((s) => s.meanCe),
  };
  if (scoring === 'uit') {
    const meanCe = tokens > 0 ? sumCe / tokens : null;
    return { ...base, meanCe, unscored: meanCe === null ? 'no-gold-output' : null, chunkMeanCe: null };
  }
  const chunkMeanCe = referenceChunks(scores.length).map(([start, end]) => {
    let sum = 0;
    let n = 0;
    for (const s of scores.slice(start, end)) {
      sum += s.sumCe;
      n += s.tokens;
    }
    return n > 0 ? sum / n : null;
  });
  const unscored: UnscoredReason | null =
    truncated > 0 ? 'prompt-over-context' : chunkMeanCe.some((c) => c === null) ? 'too-few-instances' : null;
  // Python's sum() adds left to right from 0, as reduce does here
  const meanCe = unscored === null ? (chunkMeanCe as number[]).reduce((a, c) => a + c, 0) / REFERENCE_CHUNKS : null;
  return { ...base, meanCe, unscored, chunkMeanCe };
}

/** The aggregate of a candidate whose pairs were not scored at all (`reason` says why). */
export function unscoredAggregate(reason: UnscoredReason, goldEmpty: readonly boolean[]): Aggregate {
  return {
    meanCe: null,
    unscored: reason,
    sumCe: 0,
    tokens: 0,
    instances: 0,
    emptyInstances: goldEmpty.filter(Boolean).length,
    truncatedInstances: 0,
    instanceMeanCe: goldEmpty.map(() => null),
    chunkMeanCe: null,
  };
}

/** A sentence for an unscored candidate, for tables and errors. */
export function unscoredText(reason: UnscoredReason, instances: number): string {
  switch (reason) {
    case 'no-gold-output':
      return `no instance with a non-empty output to score the candidates on (${instances} instances looked at)`;
    case 'too-few-instances':
      return (
        `reference scoring needs at least ${REFERENCE_MIN_INSTANCES} instances (the reference scores slices ` +
        `[0:8], [8:16], [16:24], [24:] and gives no score when one is empty); this task has ${instances} to score: use --scoring uit`
      );
    case 'prompt-over-context':
      return "a prompt and its gold output are longer than the scorer's context; the reference gives no score to such a candidate (--scoring uit shortens long inputs instead)";
  }
}
