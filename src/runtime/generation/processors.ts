// Logits processors: small in-place steps applied to one row's next-token logits, in the order
// Hugging Face transformers applies them (repetition penalty, temperature, top-k, top-p), so the
// same parameters mean the same thing here as there. Removed tokens are set to -Infinity.

export interface ProcessContext {
  /** The tokens seen so far in this row: prompt followed by generated tokens. */
  readonly tokens: readonly number[];
}

export type LogitsProcessor = (logits: Float32Array, ctx: ProcessContext) => void;

/** CTRL's penalty: a seen token's logit is divided by `penalty` when positive, multiplied when negative. */
export function repetitionPenalty(penalty: number): LogitsProcessor {
  if (!(penalty > 0)) throw new RangeError(`repetition penalty must be > 0, got ${penalty}`);
  return (logits, ctx) => {
    // An id outside the vocabulary reads undefined from the typed array, and its write is dropped.
    for (const t of new Set(ctx.tokens)) {
      const v = logits[t];
      logits[t] = v < 0 ? v * penalty : v / penalty;
    }
  };
}

/**
 * Temperatures below this decode greedily: greedy decoding is the limit that sampling approaches
 * as the temperature goes to 0, and a tiny temperature cannot be computed (1/t and the scaled
 * logits overflow float32, in JS's Float32Array and in a fast graph's float32 inv_temperature, and
 * the text degenerates). vLLM draws the line at the same place (its _SAMPLING_EPS). Only near-ties
 * can tell: at t = 1e-5 a token more than 3.7e-4 below the top logit has odds under e^-37 (1e-16).
 */
export const MIN_SAMPLING_TEMPERATURE = 1e-5;

function checkTemperature(t: number): void {
  if (!(t > 0)) throw new RangeError(`temperature must be > 0 (use greedy decoding for 0), got ${t}`);
}

export function temperature(t: number): LogitsProcessor {
  checkTemperature(t);
  const inv = 1 / t;
  return (logits) => {
    for (let i = 0; i < logits.length; i++) logits[i] *= inv;
  };
}

/** The k-th largest value of `values` (k >= 1), by quickselect on a copy. */
export function kthLargest(values: Float32Array, k: number): number {
  const a = Float32Array.from(values);
  let lo = 0;
  let hi = a.length - 1;
  const target = k - 1; // index in descending order
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const tmp = a[i];
        a[i] = a[j];
        a[j] = tmp;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return a[target];
}

function checkTopK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`top-k must be a positive integer, got ${k}`);
}

/** Keeps the k most likely tokens (ties with the k-th are kept, as in transformers). */
export function topK(k: number): LogitsProcessor {
  checkTopK(k);
  return (logits) => {
    if (k >= logits.length) return;
    const threshold = kthLargest(logits, k);
    for (let i = 0; i < logits.length; i++) if (logits[i] < threshold) logits[i] = -Infinity;
  };
}

/**
 * Nucleus filtering: keeps the most likely tokens until their probabilities reach `p` (a token is
 * kept when the tokens ranked above it sum to less than `p`).
 */
export function topP(p: number): LogitsProcessor {
  checkTopP(p);
  return (logits) => {
    if (p >= 1) return;
    const keep = nucleus(softmax(logits), 1, p);
    for (let i = 0; i < logits.length; i++) if (!keep[i]) logits[i] = -Infinity;
  };
}

function checkTopP(p: number): void {
  if (!(p > 0 && p <= 1)) throw new RangeError(`top-p must be in (0, 1], got ${p}`);
}

/**
 * Which tokens form the nucleus of `weights` (probabilities times `total`, their sum). Only tokens
 * above a probability floor are sorted; the floor is lowered until the candidates alone reach `p`,
 * which proves that no token below it can belong to the nucleus.
 */
function nucleus(weights: ArrayLike<number>, total: number, p: number): Uint8Array {
  let floor = 1e-3;
  let candidates: number[] = [];
  for (;;) {
    candidates = [];
    let mass = 0;
    const min = floor * total;
    for (let i = 0; i < weights.length; i++) {
      if (weights[i] >= min && weights[i] > 0) {
        candidates.push(i);
        mass += weights[i];
      }
    }
    if (mass >= p * total || floor === 0) break;
    floor = floor < 1e-12 ? 0 : floor / 64;
  }
  candidates.sort((a, b) => weights[b] - weights[a] || a - b);
  const keep = new Uint8Array(weights.length);
  let before = 0;
  const limit = p * total;
  for (const i of candidates) {
    if (before >= limit) break;
    keep[i] = 1;
    before += weights[i];
  }
  return keep;
}

/**
 * A sampling warper on the next-token distribution instead of the logits, for graphs that compute
 * softmax(logits / temperature) themselves (`probs_last`): in place, a removed token gets 0. The
 * weights need not sum to 1 (a warper before it may have removed tokens).
 */
export type ProbsWarper = (probs: Float32Array) => void;

/** top-k on probabilities: the same tokens as on logits, since softmax keeps the order. */
export function topKProbs(k: number): ProbsWarper {
  checkTopK(k);
  return (probs) => {
    if (k >= probs.length) return;
    const threshold = kthLargest(probs, k);
    for (let i = 0; i < probs.length; i++) if (probs[i] < threshold) probs[i] = 0;
  };
}

/** top-p on probabilities, renormalised over the tokens still there (as on logits after top-k). */
export function topPProbs(p: number): ProbsWarper {
  checkTopP(p);
  return (probs) => {
    if (p >= 1) return;
    let total = 0;
    for (let i = 0; i < probs.length; i++) total += probs[i];
    if (!(total > 0)) return;
    const keep = nucleus(probs, total, p);
    for (let i = 0; i < probs.length; i++) if (!keep[i]) probs[i] = 0;
  };
}

/** Softmax into a fresh array (max-shifted; -Infinity entries get probability 0). */
export function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const out = new Float64Array(logits.length);
  if (max === -Infinity) return out;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp(logits[i] - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

export interface SamplingParams {
  /** Argmax decoding; temperature, top-k and top-p are then ignored. */
  greedy?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
}

/** The processor chain for a set of sampling parameters, in transformers' order. */
export function buildProcessors(params: SamplingParams): LogitsProcessor[] {
  // A value that changes nothing adds no step: no penalty at 1, temperature 1, top-k 0, top-p 1.
  const { repetitionPenalty: penalty = 1, temperature: t = 1, topK: k = 0, topP: p = 1 } = params;
  const chain: LogitsProcessor[] = [];
  if (penalty !== 1) chain.push(repetitionPenalty(penalty));
  if (isGreedy(params)) return chain;
  if (t !== 1) chain.push(temperature(t));
  if (k > 0) chain.push(topK(k));
  if (p < 1) chain.push(topP(p));
  return chain;
}

/**
 * The same chain on probabilities, for a graph that applies the temperature and the softmax
 * (`probs_last`); undefined when a step needs the logits (the repetition penalty) or for greedy.
 */
export function buildProbsWarpers(params: SamplingParams): ProbsWarper[] | undefined {
  const { repetitionPenalty: penalty = 1, temperature: t = 1, topK: k = 0, topP: p = 1 } = params;
  if (isGreedy(params) || penalty !== 1) return undefined;
  checkTemperature(t); // the graph applies it
  const chain: ProbsWarper[] = [];
  if (k > 0) chain.push(topKProbs(k));
  if (p < 1) chain.push(topPProbs(p));
  return chain;
}

/**
 * Argmax decoding: asked for, or a temperature in [0, MIN_SAMPLING_TEMPERATURE). Every decoding
 * path (generate's JS chain and its graph sampling, serve, transfer, the API backend) asks here.
 */
export function isGreedy(params: SamplingParams): boolean {
  const t = params.temperature ?? 1;
  return params.greedy === true || (t >= 0 && t < MIN_SAMPLING_TEMPERATURE);
}
