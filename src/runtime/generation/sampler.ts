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

// One buffer for every draw: a fresh [vocab] Float64Array per token (400 KB for GPT-J's 50,400
// ids, 16 rows x 64 steps in a typical call) costs allocation, zeroing and GC. JS is
// single-threaded, so no two draws use it at once.
let scratch = new Float64Array(0);

/**
 * Draws a token from softmax(logits) with exactly one number from `rng`, walking the vocabulary in
 * index order (so the result depends only on the logits and the draw).
 */
export function sampleMultinomial(logits: Float32Array, rng: Rng): number {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  const u = rng.nextFloat();
  if (max === -Infinity) return argmax(logits);
  if (scratch.length < n) scratch = new Float64Array(n);
  const weights = scratch;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const w = Math.exp(logits[i] - max); // a removed token (-Infinity) gets exactly 0
    weights[i] = w;
    sum += w;
  }
  return draw(weights, n, u * sum);
}

/**
 * Draws a token from probabilities (or any non-negative weights) with exactly one number from
 * `rng`, in index order like sampleMultinomial; all-zero weights give the first token.
 */
export function sampleFromProbs(probs: Float32Array, rng: Rng): number {
  const n = probs.length;
  const u = rng.nextFloat();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += probs[i];
  if (!(sum > 0)) return 0;
  return draw(probs, n, u * sum);
}

/** The token where the running sum of `weights` passes `target`. */
function draw(weights: Float32Array | Float64Array, n: number, target: number): number {
  let last = -1;
  for (let i = 0; i < n; i++) {
    const w = weights[i];
    if (w === 0) continue;
    last = i;
    target -= w;
    if (target < 0) return i;
  }
  return last; // rounding left a sliver: the last possible token
}
