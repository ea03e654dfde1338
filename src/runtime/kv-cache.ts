// The engine's KV cache. onnxruntime-node copies every fetched output into a fresh JS buffer, so
// fetching the whole cache each step costs many times the step's compute. Instead the engine owns
// one buffer per layer for keys and one for values, shaped [rows, heads, capacity, headDim], passes
// the whole buffer as `past` (a zero-copy tensor over it; unused slots are masked with 0), fetches
// only the new positions' entries and writes them into the next slots.
//
// Rows are the outermost dimension, so the first r rows are a contiguous prefix: dropping finished
// rows means moving the survivors to the front and passing a shorter view.
//
// A cache may also have a `shared` part: a one-row cache (a prompt of N samples, a scored
// candidate's prefix) that every row attends to first. Graphs with shared_key_values inputs take it
// once, so it is never copied per row; the rows' own buffers then hold only what follows it.
import type { ForwardOutput, KvData, SharedKv } from './backend.js';
import type { KvDtype } from './graph-spec.js';

/**
 * Free slots cost every step (attention reads the whole buffer; the mask hides the free part),
 * and growing copies the cache. Growing by a quarter, at least 8 slots, keeps both small: at most
 * a fifth of the slots are free, and the copies add up to a few times the final size. (Fixed
 * 64-slot chunks made a 16-row, 64-token decode read twice the rows' cache it needed: 4% of the
 * step on the 102M bench model.)
 */
export const MIN_GROWTH = 8;

/** Slots to add to a full cache of `capacity` slots; `chunk` 1 means exactly one at a time. */
export function growthStep(capacity: number, chunk = MIN_GROWTH): number {
  return chunk <= 1 ? 1 : Math.max(chunk, Math.ceil(capacity / 4));
}

/**
 * Slots a new buffer has room for when a cache grows to `capacity`: two more default growth steps.
 * The next two growths then move the rows apart inside the same buffer instead of allocating and
 * zeroing a new one (allocations were 5x the final cache on a 64-token decode; 1.3 to 1.8% less
 * CPU on the 102M bench's 16 samples, alternated in one process). The price is memory: right after
 * a growth a buffer holds about 1.6x the capacity in use.
 */
export function reservedSlots(capacity: number): number {
  const next = capacity + growthStep(capacity);
  return next + growthStep(next);
}

/** float32 caches are Float32Array; float16 caches hold the raw IEEE half bits in a Uint16Array. */
export type KvArray = Float32Array | Uint16Array;

export interface KvShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  dtype: KvDtype;
}

export function allocKv(dtype: KvDtype, length: number): KvArray {
  return dtype === 'float16' ? new Uint16Array(length) : new Float32Array(length);
}

/** The first `length` elements of `a`'s buffer (which may be longer than `a`), as the same type. */
function kvView(a: KvArray, length: number): KvArray {
  return a instanceof Float32Array ? new Float32Array(a.buffer, a.byteOffset, length) : new Uint16Array(a.buffer, a.byteOffset, length);
}

/**
 * What every KV cache keeps beside its keys and values, wherever those live (JS buffers here, device
 * tensors in device-kv.ts): rows, slots, which slots hold real tokens, and the positions that
 * follow. Rows are the outermost dimension; slot j of row r is mask[r * capacity + j].
 */
export abstract class KvSlots {
  /** Rows in use (a prefix of the allocated rows). */
  rows: number;
  /** Slots per row in the buffers. */
  capacity: number;
  /** Slots filled so far, the same for every row (a row's padding slots count, masked). */
  used: number;
  /** 1 where a slot holds a real token, per row: [rows, capacity]. */
  mask: Uint8Array;
  /** The one-row prefix every row follows (its slots come first in the attention mask), if any. */
  readonly shared?: KvStore;
  /** Real tokens per row: the next token's position id. */
  validCount: Int32Array;
  /**
   * The fewest slots added when a full cache grows; it grows by a quarter of its capacity when
   * that is more. 1 grows it by exactly what is needed, keeping it free of unused slots, for graphs
   * that compute positions themselves (no position_ids input) and may count every past slot.
   */
  growthChunk = MIN_GROWTH;

  protected constructor(
    readonly shape: KvShape,
    rows: number,
    capacity: number,
    shared?: KvStore,
  ) {
    if (shared && (shared.rows !== 1 || shared.shared)) throw new RangeError('a shared prefix cache must be one row without a shared part of its own');
    this.shared = shared;
    this.rows = rows;
    this.capacity = capacity;
    this.used = 0;
    this.mask = new Uint8Array(rows * capacity);
    // Positions continue after the shared prefix's real tokens.
    this.validCount = new Int32Array(rows).fill(shared ? shared.validCount[0] : 0);
  }

  /**
   * The attention mask for a step that adds `seq` positions: the shared prefix's slot mask (if
   * any), this cache's slot mask, then `newValid` ([rows, seq], 1 for real tokens), as int64
   * [rows, sharedCapacity + capacity + seq].
   */
  attentionMask(seq: number, newValid?: Uint8Array): BigInt64Array {
    const s = this.shared;
    const off = s ? s.capacity : 0;
    const width = off + this.capacity + seq;
    const out = new BigInt64Array(this.rows * width);
    for (let r = 0; r < this.rows; r++) {
      const base = r * width;
      if (s) for (let j = 0; j < s.used; j++) if (s.mask[j]) out[base + j] = 1n;
      const m = r * this.capacity;
      for (let j = 0; j < this.used; j++) if (this.mask[m + j]) out[base + off + j] = 1n;
      for (let t = 0; t < seq; t++) out[base + off + this.capacity + t] = newValid ? BigInt(newValid[r * seq + t]) : 1n;
    }
    return out;
  }

  /**
   * Position ids of `seq` new positions: each real token gets its row's count of real tokens before
   * it; padding gets 1 (as transformers does), so a padding query never sees an empty key set.
   */
  positionIds(seq: number, newValid?: Uint8Array): BigInt64Array {
    const out = new BigInt64Array(this.rows * seq);
    for (let r = 0; r < this.rows; r++) {
      let p = this.validCount[r];
      for (let t = 0; t < seq; t++) {
        if (!newValid || newValid[r * seq + t]) out[r * seq + t] = BigInt(p++);
        else out[r * seq + t] = 1n;
      }
    }
    return out;
  }

  /** The mask laid out for `capacity` slots per row over `rows` rows (slots past `used` are 0). */
  protected relayoutMask(capacity: number, rows = this.rows): void {
    const mask = new Uint8Array(rows * capacity);
    const span = Math.min(this.used, capacity);
    for (let r = 0; r < this.rows; r++) mask.set(this.mask.subarray(r * this.capacity, r * this.capacity + span), r * capacity);
    this.mask = mask;
  }

  /** Copies `src`'s slot marks and positions of rows `rowIndex` into this cache's rows. */
  protected copyRows(src: KvSlots, rowIndex: readonly number[]): void {
    rowIndex.forEach((s, i) => {
      this.mask.set(src.mask.subarray(s * src.capacity, s * src.capacity + src.used), i * this.capacity);
      this.validCount[i] = src.validCount[s];
    });
    this.used = src.used;
  }

  protected markNew(seq: number, newValid?: Uint8Array): void {
    for (let r = 0; r < this.rows; r++) {
      for (let t = 0; t < seq; t++) {
        const ok = newValid ? newValid[r * seq + t] : 1;
        this.mask[r * this.capacity + this.used + t] = ok;
        this.validCount[r] += ok;
      }
    }
    this.used += seq;
  }

  /** Forgets the marks of the last `count` slots. */
  protected forgetSlots(count: number): void {
    if (!Number.isInteger(count) || count < 0 || count > this.used) throw new RangeError(`rewind: ${count} of ${this.used} slots`);
    for (let r = 0; r < this.rows; r++) {
      for (let j = this.used - count; j < this.used; j++) {
        this.validCount[r] -= this.mask[r * this.capacity + j];
        this.mask[r * this.capacity + j] = 0;
      }
    }
    this.used -= count;
  }

  /** Checks that `keep` lists rows in ascending order. */
  protected static checkKeep(keep: readonly number[]): void {
    keep.forEach((src, dst) => {
      if (dst > src || (dst > 0 && src <= keep[dst - 1])) throw new RangeError('compact: rows must be ascending');
    });
  }

  /** Moves the slot marks and positions of the `keep` rows to the front. */
  protected compactSlots(keep: readonly number[]): void {
    keep.forEach((src, dst) => {
      if (src === dst) return;
      this.mask.copyWithin(dst * this.capacity, src * this.capacity, (src + 1) * this.capacity);
      this.validCount[dst] = this.validCount[src];
    });
    this.rows = keep.length;
  }
}

/**
 * What the engine (forward.ts, generation) asks of a KV cache; `KvCache` keeps it in JS buffers,
 * `DeviceKvCache` (device-kv.ts) on the accelerator. Create one with `Backend.createKv`.
 */
export interface KvStore extends KvSlots {
  /** Past keys per layer for a forward over the rows in use ([rows, heads, capacity, headDim]). */
  pastKeys(): KvData[];
  pastValues(): KvData[];
  /** The shared prefix as a forward input, if any. */
  sharedInput(): SharedKv | undefined;
  /** Brings the storage up to date before a forward reads it (device caches apply deferred work). */
  sync(): Promise<void>;
  /** Adds a step's KV entries (`ForwardOutput.kv`) as `seq` new slots. */
  write(kv: NonNullable<ForwardOutput['kv']>, seq: number, newValid?: Uint8Array): void;
  /** Grows every row to at least `minCapacity` slots. */
  ensureCapacity(minCapacity: number, chunk?: number): void;
  /** Forgets the last `count` slots (written by the last step): rejected draft tokens. */
  rewind(count: number): void;
  /** Keeps only the listed rows (ascending), moved to the front in that order. */
  compact(keep: readonly number[]): void;
  /** A new cache whose row i is a copy of row `rowIndex[i]`, with room for `capacity` slots. */
  gather(rowIndex: readonly number[], capacity?: number): Promise<KvStore>;
  /** Releases the storage now (device memory); the cache is unusable afterwards. */
  dispose(): void;
}

export class KvCache extends KvSlots implements KvStore {
  keys: KvArray[];
  values: KvArray[];
  /** Rows the buffers have room for (rows in use can be fewer after compaction). */
  private allocatedRows: number;

  private constructor(shape: KvShape, rows: number, capacity: number, shared?: KvStore) {
    super(shape, rows, capacity, shared);
    this.allocatedRows = rows;
    const n = rows * shape.numKvHeads * capacity * shape.headDim;
    this.keys = Array.from({ length: shape.numLayers }, () => allocKv(shape.dtype, n));
    this.values = Array.from({ length: shape.numLayers }, () => allocKv(shape.dtype, n));
  }

  /**
   * An empty cache of `rows` rows with room for `capacity` positions each; with `shared`, every
   * row continues that one-row cache (which is referenced, not copied, and must not change while
   * this cache uses it).
   */
  static create(shape: KvShape, rows: number, capacity: number, shared?: KvStore): KvCache {
    return new KvCache(shape, rows, capacity, shared);
  }

  /**
   * A new cache whose row i is a copy of `src` row `rowIndex[i]` (rows may repeat: N samples of one
   * prefilled prompt), with room for `capacity` positions (at least `src.used`).
   */
  static gather(src: KvCache, rowIndex: readonly number[], capacity = src.used): KvCache {
    if (capacity < src.used) throw new RangeError(`capacity ${capacity} < used ${src.used}`);
    const dst = new KvCache(src.shape, rowIndex.length, capacity, src.shared);
    const { numKvHeads: H, headDim: D } = src.shape;
    const span = src.used * D;
    for (let l = 0; l < src.shape.numLayers; l++) {
      for (const [from, to] of [
        [src.keys[l], dst.keys[l]],
        [src.values[l], dst.values[l]],
      ] as const) {
        rowIndex.forEach((s, i) => {
          if (capacity === src.capacity) {
            const rowSize = H * capacity * D;
            to.set(from.subarray(s * rowSize, (s + 1) * rowSize), i * rowSize);
            return;
          }
          for (let h = 0; h < H; h++) {
            const so = (s * H + h) * src.capacity * D;
            to.set(from.subarray(so, so + span), (i * H + h) * capacity * D);
          }
        });
      }
    }
    dst.copyRows(src, rowIndex);
    return dst;
  }

  gather(rowIndex: readonly number[], capacity?: number): Promise<KvStore> {
    return Promise.resolve(KvCache.gather(this, rowIndex, capacity));
  }

  /** Elements per row in the buffers. */
  private get rowSize(): number {
    return this.shape.numKvHeads * this.capacity * this.shape.headDim;
  }

  /** The past tensors' data for the rows in use: [rows, heads, capacity, headDim] per layer. */
  pastKeys(): KvArray[] {
    const n = this.rows * this.rowSize;
    return this.keys.map((k) => (k.length === n ? k : k.subarray(0, n)));
  }

  pastValues(): KvArray[] {
    const n = this.rows * this.rowSize;
    return this.values.map((v) => (v.length === n ? v : v.subarray(0, n)));
  }

  /** The shared prefix as a forward input ([1, heads, its capacity, headDim] per layer), if any. */
  sharedInput(): SharedKv | undefined {
    const s = this.shared;
    return s ? { length: s.capacity, keys: s.pastKeys(), values: s.pastValues() } : undefined;
  }

  sync(): Promise<void> {
    return Promise.resolve();
  }

  write(kv: NonNullable<ForwardOutput['kv']>, seq: number, newValid?: Uint8Array): void {
    if (kv.kind === 'new') this.append(kv.keys as KvArray[], kv.values as KvArray[], seq, newValid);
    else this.adopt(kv.keys as KvArray[], kv.values as KvArray[], seq, newValid);
  }

  /** Grows every row to at least `minCapacity` slots (geometrically, so growth is rare). */
  ensureCapacity(minCapacity: number, chunk = this.growthChunk): void {
    if (minCapacity <= this.capacity) return;
    // An empty cache (a prefill) gets exactly what it needs; a full one grows by a chunk.
    const capacity = this.capacity === 0 ? minCapacity : Math.max(minCapacity, this.capacity + growthStep(this.capacity, chunk));
    const { numKvHeads: H, headDim: D } = this.shape;
    const n = this.allocatedRows;
    const size = n * H * capacity * D;
    const [oldC, span, blocks] = [this.capacity, this.used * D, this.rows * H];
    const regrow = (old: KvArray): KvArray => {
      const room = old.buffer.byteLength / old.BYTES_PER_ELEMENT - old.byteOffset / old.BYTES_PER_ELEMENT;
      if (room >= size) {
        // In place: each (row, head) block moves to its new offset, the last first (every block
        // moves forward, so none is overwritten before it has moved). The free slots are zeroed as
        // a new buffer's are: the mask gives them zero weight, but 0 x Inf is NaN, and a stale
        // entry may be another row's (an fp16 cache can hold an overflow).
        const next = kvView(old, size);
        for (let rh = blocks - 1; rh >= 0; rh--) {
          if (rh > 0) next.copyWithin(rh * capacity * D, rh * oldC * D, rh * oldC * D + span);
          next.fill(0, rh * capacity * D + span, (rh + 1) * capacity * D);
        }
        return next;
      }
      // A prefill gets exactly its size (a prompt's cache may never grow); a growing cache, room ahead.
      const next = kvView(allocKv(this.shape.dtype, oldC === 0 ? size : n * H * reservedSlots(capacity) * D), size);
      for (let rh = 0; rh < blocks; rh++) next.set(old.subarray(rh * oldC * D, rh * oldC * D + span), rh * capacity * D);
      return next;
    };
    this.keys = this.keys.map(regrow);
    this.values = this.values.map(regrow);
    this.relayoutMask(capacity, n);
    this.capacity = capacity;
  }

  /**
   * Writes a step's new entries ([rows, heads, seq, headDim] per layer) into slots
   * `used .. used+seq` and marks them valid where `newValid` says so.
   */
  append(newKeys: readonly KvArray[], newValues: readonly KvArray[], seq: number, newValid?: Uint8Array): void {
    this.ensureCapacity(this.used + seq);
    const { numKvHeads: H, headDim: D } = this.shape;
    const C = this.capacity;
    const span = seq * D;
    for (let l = 0; l < this.shape.numLayers; l++) {
      const k = this.keys[l];
      const v = this.values[l];
      const nk = newKeys[l];
      const nv = newValues[l];
      if (nk.length !== this.rows * H * span || nv.length !== nk.length) {
        throw new Error(`layer ${l}: got ${nk.length} new KV elements, expected ${this.rows * H * span}`);
      }
      for (let rh = 0; rh < this.rows * H; rh++) {
        const dst = (rh * C + this.used) * D;
        k.set(nk.subarray(rh * span, rh * span + span), dst);
        v.set(nv.subarray(rh * span, rh * span + span), dst);
      }
    }
    this.markNew(seq, newValid);
  }

  /**
   * Slow path: the graph returned `present` = past (this cache's `capacity` slots) + `seq` new
   * positions; it becomes the cache's buffers as is (it is already a fresh JS copy).
   */
  adopt(presentKeys: KvArray[], presentValues: KvArray[], seq: number, newValid?: Uint8Array): void {
    const oldC = this.capacity;
    const capacity = oldC + seq;
    this.relayoutMask(capacity);
    this.keys = presentKeys;
    this.values = presentValues;
    this.allocatedRows = this.rows;
    this.capacity = capacity;
    this.used = oldC; // holes between used and oldC stay masked
    this.markNew(seq, newValid);
  }

  /**
   * Forgets the last `count` slots (written by the last step): rejected draft tokens. Their entries
   * are zeroed, as free slots are everywhere: the graphs mask with an additive bias, which gives a
   * free slot zero weight only while its key is finite (an fp16 overflow would make it NaN).
   */
  rewind(count: number): void {
    this.forgetSlots(count);
    const { numKvHeads: H, headDim: D } = this.shape;
    for (const arr of [...this.keys, ...this.values]) {
      for (let rh = 0; rh < this.rows * H; rh++) arr.fill(0, (rh * this.capacity + this.used) * D, (rh * this.capacity + this.used + count) * D);
    }
  }

  /** Keeps only the listed rows (ascending), moved to the front in that order. */
  compact(keep: readonly number[]): void {
    KvSlots.checkKeep(keep);
    const rowSize = this.rowSize;
    keep.forEach((src, dst) => {
      if (src !== dst) for (const arr of [...this.keys, ...this.values]) arr.copyWithin(dst * rowSize, src * rowSize, (src + 1) * rowSize);
    });
    this.compactSlots(keep);
  }

  /** JS buffers are garbage-collected: this only drops them. */
  dispose(): void {
    this.keys = [];
    this.values = [];
  }
}
