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

// The draw finds its block from per-block sums, then walks one block: walking token by token from
// id 0 took twice as long as summing (a dependent subtraction and a branch per id), about 1.2 ms of
// each 16-row step at GPT-J's vocabulary.
const BLOCK = 64;
let blockSums = new Float64Array(0);

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
  for (let i = 0; i < n; i++) weights[i] = Math.exp(logits[i] - max); // a removed token (-Infinity) gets exactly 0
  return draw(weights, n, u * sumBlocks(weights, n));
}

/**
 * Draws a token from probabilities (or any non-negative weights) with exactly one number from
 * `rng`, in index order like sampleMultinomial; all-zero weights give the first token.
 */
export function sampleFromProbs(probs: Float32Array, rng: Rng): number {
  return drawFromProbs(probs, rng.nextFloat());
}

/**
 * sampleFromProbs with its number u in [0, 1) given: the token where the running sum passes u x the
 * total. The fast graph's token_sampled computes the same, with float32 block sums
 * (scripts/fast_graphs.py), so the two can differ where u is within float32 rounding of a boundary.
 */
export function drawFromProbs(probs: Float32Array, u: number): number {
  const n = probs.length;
  const sum = sumBlocks(probs, n);
  if (!(sum > 0)) return 0;
  return draw(probs, n, u * sum);
}

/** Fills blockSums with the sums of BLOCK consecutive weights and returns their total. */
function sumBlocks(weights: Float32Array | Float64Array, n: number): number {
  const blocks = Math.ceil(n / BLOCK);
  if (blockSums.length < blocks) blockSums = new Float64Array(blocks);
  let total = 0;
  let i = 0;
  for (let b = 0; b < blocks; b++) {
    const end = Math.min(i + BLOCK, n);
    // Two running sums: one chain of dependent adds waits on each add's latency.
    let s0 = 0;
    let s1 = 0;
    for (; i + 1 < end; i += 2) {
      s0 += weights[i];
      s1 += weights[i + 1];
    }
    if (i < end) s0 += weights[i++];
    blockSums[b] = s0 + s1;
    total += s0 + s1;
  }
  return total;
}

/**
 * The token where the running sum of `weights` passes `target` (blockSums must hold their block
 * sums): whole blocks are skipped by their sums, then the block is walked token by token.
 */
function draw(weights: Float32Array | Float64Array, n: number, target: number): number {
  const blocks = Math.ceil(n / BLOCK);
  let b = 0;
  for (; b < blocks && !(target < blockSums[b]); b++) target -= blockSums[b];
  // Rounding may carry the walk past its block; it then goes on into the next ones. A removed
  // token (weight 0) leaves the target >= 0, so it is never the one returned.
  for (let i = Math.min(b, blocks - 1) * BLOCK; i < n; i++) {
    target -= weights[i];
    if (target < 0) return i;
  }
  for (let i = n - 1; i >= 0; i--) if (weights[i] !== 0) return i; // a sliver left: the last possible token
  return 0;
}
