// Seeded randomness for sampling. Every (seed, sample index) pair gets its own stream, and a row
// draws exactly one number per sampled token, so a sample's text does not depend on which other
// rows share its batch, on the batch size, or on its position in the request list. That is also
// what makes a generation cacheable by (model, prompt, parameters, seed, sample index).

/** murmur3's 32-bit finaliser: a cheap, well-mixed hash step. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** xoshiro128**: small state, fast, good statistical quality for sampling. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(words: readonly [number, number, number, number]) {
    [this.s0, this.s1, this.s2, this.s3] = words.map((w) => w >>> 0) as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 0x9e3779b9;
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * The stream of sample `sampleIndex` under `seed` (any safe integer). `salt` separates streams that
 * must differ for the same (seed, sample), e.g. a caller-chosen request key; 0 by default.
 */
export function sampleRng(seed: number, sampleIndex: number, salt = 0): Rng {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  let h = fmix32(lo ^ 0x243f6a88);
  h = fmix32(h ^ hi ^ 0x85a308d3);
  h = fmix32(h ^ (sampleIndex >>> 0) ^ 0x13198a2e);
  h = fmix32(h ^ (salt >>> 0) ^ 0x03707344);
  // Expand the 32-bit digest to 128 bits of state with a splitmix-style counter.
  const word = () => fmix32((h = (h + 0x9e3779b9) >>> 0));
  return new Rng([word(), word(), word(), word()]);
}
