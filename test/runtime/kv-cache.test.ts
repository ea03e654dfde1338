import { describe, expect, it } from 'vitest';
import { KvCache, MIN_GROWTH, float32ToHalf, growthStep, halfToFloat32, reservedSlots, type KvShape } from '../../src/runtime/index.js';

const shape: KvShape = { numLayers: 2, numKvHeads: 2, headDim: 3, dtype: 'float32' };

/** new entries [rows, heads, seq, dim] whose values encode (layer, row, head, t, d). */
function entries(rows: number, seq: number, layer: number, tag: number): Float32Array {
  const a = new Float32Array(rows * shape.numKvHeads * seq * shape.headDim);
  let i = 0;
  for (let r = 0; r < rows; r++)
    for (let h = 0; h < shape.numKvHeads; h++)
      for (let t = 0; t < seq; t++) for (let d = 0; d < shape.headDim; d++) a[i++] = tag * 10000 + layer * 1000 + r * 100 + h * 10 + t + d / 10;
  return a;
}

function at(c: KvCache, layer: number, row: number, head: number, slot: number): number {
  return c.keys[layer][((row * shape.numKvHeads + head) * c.capacity + slot) * shape.headDim];
}

describe('KvCache', () => {
  it('appends new entries into the next slots and tracks masks and positions', () => {
    const c = KvCache.create(shape, 2, 0);
    const valid = Uint8Array.from([0, 1, 1, 1, 1, 1]); // row 0 left-padded by one
    expect(Array.from(c.positionIds(3, valid))).toEqual([1, 0, 1, 0, 1, 2].map(BigInt));
    c.append([entries(2, 3, 0, 1), entries(2, 3, 1, 1)], [entries(2, 3, 0, 2), entries(2, 3, 1, 2)], 3, valid);
    expect(c.capacity).toBe(3);
    expect(c.used).toBe(3);
    expect(Array.from(c.validCount)).toEqual([2, 3]);
    expect(at(c, 1, 1, 1, 2)).toBe(10000 + 1000 + 100 + 10 + 2);
    expect(Array.from(c.attentionMask(1))).toEqual([0, 1, 1, 1, 1, 1, 1, 1].map(BigInt));
    expect(Array.from(c.positionIds(1))).toEqual([2n, 3n]);
  });

  it('gathers rows into a larger capacity (N copies of one prefilled row) and keeps free slots masked', () => {
    const src = KvCache.create(shape, 2, 0);
    src.append([entries(2, 2, 0, 1), entries(2, 2, 1, 1)], [entries(2, 2, 0, 2), entries(2, 2, 1, 2)], 2);
    const g = KvCache.gather(src, [1, 1, 0], 5);
    expect(g.rows).toBe(3);
    expect(g.capacity).toBe(5);
    expect(g.used).toBe(2);
    expect(at(g, 0, 0, 1, 1)).toBe(at(src, 0, 1, 1, 1));
    expect(at(g, 0, 1, 1, 1)).toBe(at(src, 0, 1, 1, 1));
    expect(at(g, 0, 2, 0, 0)).toBe(at(src, 0, 0, 0, 0));
    expect(Array.from(g.attentionMask(1).subarray(0, 6))).toEqual([1, 1, 0, 0, 0, 1].map(BigInt));
    // the next step writes slot 2 of every row
    g.append([entries(3, 1, 0, 3), entries(3, 1, 1, 3)], [entries(3, 1, 0, 4), entries(3, 1, 1, 4)], 1);
    expect(at(g, 0, 2, 1, 2)).toBe(30000 + 200 + 10);
    expect(g.pastKeys()[0].length).toBe(3 * 2 * 5 * 3);
  });

  it('compacts surviving rows to the front and passes a shorter view', () => {
    const c = KvCache.create(shape, 3, 0);
    c.append([entries(3, 2, 0, 1), entries(3, 2, 1, 1)], [entries(3, 2, 0, 2), entries(3, 2, 1, 2)], 2);
    const row2 = at(c, 1, 2, 1, 1);
    c.compact([2]);
    expect(c.rows).toBe(1);
    expect(at(c, 1, 0, 1, 1)).toBe(row2);
    expect(c.pastKeys()[1].length).toBe(1 * 2 * 2 * 3);
    expect(c.pastKeys()[1].byteOffset).toBe(0);
    expect(() => c.compact([0, 0])).toThrow(/ascending/);
  });

  it('grows in chunks and keeps what it held', () => {
    const c = KvCache.create(shape, 2, 0);
    c.append([entries(2, 2, 0, 1), entries(2, 2, 1, 1)], [entries(2, 2, 0, 2), entries(2, 2, 1, 2)], 2);
    const before = at(c, 0, 1, 1, 1);
    c.append([entries(2, 1, 0, 5), entries(2, 1, 1, 5)], [entries(2, 1, 0, 6), entries(2, 1, 1, 6)], 1);
    expect(c.capacity).toBe(2 + MIN_GROWTH);
    expect(at(c, 0, 1, 1, 1)).toBe(before);
    expect(at(c, 0, 1, 1, 2)).toBe(50000 + 100 + 10);
  });

  it('grows by a quarter of its capacity once that is more than the minimum chunk, and one slot with chunk 1', () => {
    expect(growthStep(2)).toBe(MIN_GROWTH);
    expect(growthStep(100)).toBe(25);
    expect(growthStep(101)).toBe(26);
    expect(growthStep(100, 1)).toBe(1);
    const c = KvCache.create(shape, 1, 0);
    c.ensureCapacity(100);
    expect(c.capacity).toBe(100); // a prefill gets exactly what it needs
    c.ensureCapacity(101);
    expect(c.capacity).toBe(125);
    c.growthChunk = 1;
    c.ensureCapacity(126);
    expect(c.capacity).toBe(126);
  });

  it('grows inside its buffer while the reserve lasts, moving every row and head, keys and values', () => {
    // One token per step for 3 rows, as decoding does; every entry ever written is checked after
    // every step, across the growths that move blocks in place and those that reallocate.
    const c = KvCache.create(shape, 3, 0);
    const value = (step: number, layer: number, r: number, h: number, kind: number) => kind * 1e6 + step * 1000 + layer * 100 + r * 10 + h;
    const step = (t: number, rows: number) => {
      const make = (kind: number) =>
        [0, 1].map((l) => {
          const a = new Float32Array(rows * shape.numKvHeads * shape.headDim);
          for (let r = 0; r < rows; r++) for (let h = 0; h < shape.numKvHeads; h++) a.fill(value(t, l, r, h, kind), (r * shape.numKvHeads + h) * shape.headDim, (r * shape.numKvHeads + h + 1) * shape.headDim);
          return a;
        });
      c.append(make(0), make(1), 1);
    };
    let buffer = c.keys[0].buffer;
    let inPlace = 0;
    let reallocated = 0;
    for (let t = 0; t < 60; t++) {
      const capacity = c.capacity;
      step(t, 3);
      if (c.capacity !== capacity && capacity > 0) {
        if (c.keys[0].buffer === buffer) inPlace++;
        else reallocated++;
      }
      buffer = c.keys[0].buffer;
      for (let s = 0; s <= t; s++)
        for (let l = 0; l < 2; l++)
          for (let r = 0; r < 3; r++)
            for (let h = 0; h < shape.numKvHeads; h++) {
              const o = ((r * shape.numKvHeads + h) * c.capacity + s) * shape.headDim;
              expect(c.keys[l][o]).toBe(value(s, l, r, h, 0));
              expect(c.values[l][o + shape.headDim - 1]).toBe(value(s, l, r, h, 1));
            }
      expect(c.pastKeys()[0].length).toBe(3 * shape.numKvHeads * c.capacity * shape.headDim);
      // Free slots hold zeros, as a new buffer's do, never a moved entry.
      for (let rh = 0; rh < 3 * shape.numKvHeads; rh++)
        for (let s = t + 1; s < c.capacity; s++)
          for (let d = 0; d < shape.headDim; d++) {
            expect(c.keys[1][(rh * c.capacity + s) * shape.headDim + d]).toBe(0);
            expect(c.values[0][(rh * c.capacity + s) * shape.headDim + d]).toBe(0);
          }
    }
    expect(inPlace).toBeGreaterThan(reallocated);
    expect(reallocated).toBeGreaterThan(0);
    expect(reservedSlots(9)).toBe(9 + 8 + 8);
    expect(reservedSlots(100)).toBe(100 + 25 + 32);
  });

  it('adopts the slow path present tensors', () => {
    const c = KvCache.create(shape, 1, 0);
    c.adopt([entries(1, 4, 0, 1), entries(1, 4, 1, 1)], [entries(1, 4, 0, 2), entries(1, 4, 1, 2)], 4);
    expect(c.capacity).toBe(4);
    expect(c.used).toBe(4);
    expect(at(c, 1, 0, 1, 3)).toBe(10000 + 1000 + 10 + 3);
    c.adopt([entries(1, 5, 0, 1), entries(1, 5, 1, 1)], [entries(1, 5, 0, 2), entries(1, 5, 1, 2)], 1);
    expect(c.capacity).toBe(5);
    expect(Array.from(c.validCount)).toEqual([5]);
  });
});

describe('half floats', () => {
  it('round-trip exactly representable values and round to nearest', () => {
    const values = [0, 1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8];
    const halves = Uint16Array.from(values.map(float32ToHalf));
    expect(Array.from(halfToFloat32(halves))).toEqual(values);
    expect(halfToFloat32(Uint16Array.of(float32ToHalf(1 + 1 / 4096)))[0]).toBe(1);
    expect(halfToFloat32(Uint16Array.of(float32ToHalf(1e6)))[0]).toBe(Infinity);
  });
});

describe('KvCache.rewind', () => {
  it('forgets the last slots: masks, positions and the next append follow the kept ones', () => {
    const c = KvCache.create(shape, 1, 8);
    c.append([entries(1, 2, 0, 1), entries(1, 2, 1, 1)], [entries(1, 2, 0, 2), entries(1, 2, 1, 2)], 2);
    c.append([entries(1, 4, 0, 3), entries(1, 4, 1, 3)], [entries(1, 4, 0, 4), entries(1, 4, 1, 4)], 4);
    expect(c.used).toBe(6);
    c.rewind(3); // kept: 2 + the first of the 4
    expect(c.used).toBe(3);
    expect(Array.from(c.validCount)).toEqual([3]);
    expect(Array.from(c.positionIds(1))).toEqual([3n]);
    expect(Array.from(c.attentionMask(1)).slice(0, 9)).toEqual([1, 1, 1, 0, 0, 0, 0, 0, 1].map(BigInt));
    // The rewound entries are zeroed, as free slots are (an additive mask needs finite keys there).
    for (let s = 3; s < 6; s++) expect([at(c, 0, 0, 0, s), at(c, 1, 0, 1, s), c.values[1][((0 * 2 + 1) * c.capacity + s) * 3 + 2]]).toEqual([0, 0, 0]);
    expect(at(c, 1, 0, 1, 2)).not.toBe(0);
    c.append([entries(1, 1, 0, 5), entries(1, 1, 1, 5)], [entries(1, 1, 0, 6), entries(1, 1, 1, 6)], 1);
    expect(at(c, 0, 0, 0, 2)).toBe(30000); // the kept draft slot
    expect(at(c, 0, 0, 0, 3)).toBe(50000); // the rewound slot, overwritten
    expect(c.used).toBe(4);
    expect(() => c.rewind(5)).toThrow(RangeError);
  });
});
