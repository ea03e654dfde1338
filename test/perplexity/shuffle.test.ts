// The instance shuffle is the documented Fisher-Yates over the caller's Rng: one nextFloat() per
// position from the last down to 1, so a caller that keeps drawing from the same Rng (the library
// exports both) sees the same stream on every version.
import { describe, expect, it } from 'vitest';
import { instanceRng, shuffled } from '../../src/perplexity/index.js';

describe('shuffled', () => {
  it('draws exactly one float per position from the last down to 1, swapping with floor(u * (i + 1))', () => {
    for (const n of [0, 1, 2, 7]) {
      const items = Array.from({ length: n }, (_, i) => `item${i}`);
      const rng = instanceRng(5, 'task_shuffle');
      const got = shuffled(items, rng);
      // the same algorithm written out, on a second Rng from the same seed
      const twin = instanceRng(5, 'task_shuffle');
      const want = [...items];
      for (let i = n - 1; i >= 1; i--) {
        const j = Math.floor(twin.nextFloat() * (i + 1));
        [want[i], want[j]] = [want[j], want[i]];
      }
      expect(got, `n = ${n}`).toEqual(want);
      // and not one draw more: both streams go on from the same state
      expect(rng.nextUint32(), `n = ${n}`).toBe(twin.nextUint32());
    }
  });

  it('returns a copy and leaves the input as it was', () => {
    const items = [1, 2, 3, 4, 5];
    const out = shuffled(items, instanceRng(0, 't'));
    expect(items).toEqual([1, 2, 3, 4, 5]);
    expect([...out].sort()).toEqual(items);
  });
});
