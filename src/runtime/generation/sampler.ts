// Picking the next token from processed logits.
import type { Rng } from './prng.js';

/** Index of the largest logit; the lowest index wins a tie, so greedy decoding is deterministic. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > bestValue) {
      bestValue = logits[i];
      best = i;
    }
  }
  return best;
}

/**
 * Draws a token from softmax(logits) with exactly one number from `rng`, walking the vocabulary in
 * index order (so the result depends only on the logits and the draw).
 */
export function sampleMultinomial(logits: Float32Array, rng: Rng): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const u = rng.nextFloat();
  if (max === -Infinity) return argmax(logits);
  const weights = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const w = logits[i] === -Infinity ? 0 : Math.exp(logits[i] - max);
    weights[i] = w;
    sum += w;
  }
  let target = u * sum;
  let last = -1;
  for (let i = 0; i < weights.length; i++) {
    if (weights[i] === 0) continue;
    last = i;
    target -= weights[i];
    if (target < 0) return i;
  }
  return last; // rounding left a sliver: the last possible token
}
