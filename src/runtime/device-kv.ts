// A KV cache that stays on the accelerator (WebGPU). Keys and values are onnxruntime tensors in
// device buffers: a step's new entries come out of the graph as device tensors and go back in as
// `past` without ever crossing to JavaScript. Only the slot bookkeeping (masks, positions) lives in
// JS, in the base class it shares with the host cache (kv-cache.ts).
//
// onnxruntime gives no way to write into an existing device buffer, so a device cache has no free
// slots: every step's entries are joined to the cache by a small helper graph (Slice + Concat on the
// device), and rows are selected by another (Gather). Both copy the cache once on the device, which
// is what the optimum decoder does inside its graph every step anyway. The work is deferred to
// `sync()`, just before the next forward, so that a rewind (refused drafts) only shortens the
// pending entries and a compaction (finished rows) only narrows the row list: each step costs at
// most one join and, when rows finished, one gather.
import ort from 'onnxruntime-node';
import { ModelError } from '../errors.js';
import type { ForwardOutput, KvData, SharedKv } from './backend.js';
import type { KvDtype } from './graph-spec.js';
import { KvSlots, type KvShape, type KvStore } from './kv-cache.js';
import { encodeOnnxModel, type OnnxNode, type OnnxValue } from './onnx-proto.js';

// ---- ownership of device tensors -----------------------------------------------------------

/** Device tensors uit holds now: released deterministically, never left to the garbage collector. */
const owned = new Set<ort.Tensor>();

/** The number of device tensors uit holds (a test checks that it returns to where it was). */
export function liveDeviceTensors(): number {
  return owned.size;
}

/** Takes ownership of a tensor that onnxruntime returned in a device buffer. */
export function own(t: ort.Tensor): ort.Tensor {
  if (t.location !== 'gpu-buffer') throw new Error(`expected a device tensor, got one on ${t.location}`);
  owned.add(t);
  return t;
}

/** Frees a device tensor this module owns (a no-op for anything else, and for a second call). */
export function release(t: ort.Tensor | undefined | null): void {
  if (t && owned.delete(t)) t.dispose();
}

export function isDeviceTensor(x: unknown): x is ort.Tensor {
  return x instanceof ort.Tensor && x.location === 'gpu-buffer';
}

// ---- helper graphs -------------------------------------------------------------------------

/**
 * The helper graphs, one session each on the model's device. Two work on all 2 x layers KV tensors
 * at once (one run per step, not one per tensor):
 * - join: out_i = Concat(base_i, Slice(new_i, 0, take, axis 2), axis 2);
 * - gather: out_i = Gather(base_i, rows, axis 0);
 * and one brings a device tensor to the CPU (Identity with a CPU output): the way the last logits
 * come back when a step needs them (getData() on a device tensor aborts the process).
 */
export class DeviceOps {
  private join?: Promise<ort.InferenceSession>;
  private pick?: Promise<ort.InferenceSession>;
  private readonly fetchers = new Map<string, Promise<ort.InferenceSession>>();

  constructor(
    readonly shape: KvShape,
    private readonly sessionOptions: ort.InferenceSession.SessionOptions,
  ) {}

  private get count(): number {
    return 2 * this.shape.numLayers;
  }

  private value(name: string, dims: (number | string)[]): OnnxValue {
    return { name, type: this.shape.dtype, dims };
  }

  private create(kind: 'join' | 'gather'): Promise<ort.InferenceSession> {
    const { numKvHeads: H, headDim: D } = this.shape;
    const inputs: OnnxValue[] = [];
    const outputs: OnnxValue[] = [];
    const nodes: OnnxNode[] = [];
    for (let i = 0; i < this.count; i++) {
      inputs.push(this.value(`base.${i}`, ['rows', H, 'slots', D]));
      if (kind === 'join') {
        inputs.push(this.value(`new.${i}`, ['rows', H, 'seq', D]));
        nodes.push({ op: 'Slice', inputs: [`new.${i}`, 'zero', 'take', 'axis2'], outputs: [`kept.${i}`] });
        nodes.push({ op: 'Concat', inputs: [`base.${i}`, `kept.${i}`], outputs: [`out.${i}`], attrs: { axis: 2 } });
        outputs.push(this.value(`out.${i}`, ['rows', H, 'joined', D]));
      } else {
        nodes.push({ op: 'Gather', inputs: [`base.${i}`, 'rows'], outputs: [`out.${i}`], attrs: { axis: 0 } });
        outputs.push(this.value(`out.${i}`, ['picked', H, 'slots', D]));
      }
    }
    if (kind === 'join') inputs.push({ name: 'take', type: 'int64', dims: [1] });
    else inputs.push({ name: 'rows', type: 'int64', dims: ['picked'] });
    const model = encodeOnnxModel({
      name: `uit_kv_${kind}`,
      inputs,
      outputs,
      nodes,
      constants: kind === 'join' ? [{ name: 'zero', int64: [0] }, { name: 'axis2', int64: [2] }] : [],
    });
    const preferredOutputLocation = Object.fromEntries(outputs.map((o) => [o.name, 'gpu-buffer' as const]));
    return ort.InferenceSession.create(model, { ...this.sessionOptions, preferredOutputLocation });
  }

  private session(kind: 'join' | 'gather'): Promise<ort.InferenceSession> {
    if (kind === 'join') return (this.join ??= this.create('join'));
    return (this.pick ??= this.create('gather'));
  }

  private async run(kind: 'join' | 'gather', feeds: Record<string, ort.Tensor>): Promise<ort.Tensor[]> {
    const session = await this.session(kind);
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await session.run(feeds);
    } catch (err) {
      throw new ModelError(`the device KV cache's ${kind} graph failed: ${(err as Error).message.split('\n')[0]}`, { cause: err });
    }
    return Array.from({ length: this.count }, (_, i) => own(out[`out.${i}`]));
  }

  /** base (keys then values, [rows, H, slots, D]) joined with the first `take` slots of `added`. */
  joinSlots(base: readonly ort.Tensor[], added: readonly ort.Tensor[], take: number): Promise<ort.Tensor[]> {
    const feeds: Record<string, ort.Tensor> = { take: new ort.Tensor('int64', BigInt64Array.of(BigInt(take)), [1]) };
    base.forEach((t, i) => (feeds[`base.${i}`] = t));
    added.forEach((t, i) => (feeds[`new.${i}`] = t));
    return this.run('join', feeds);
  }

  /** Rows `rows` of each tensor (keys then values), in that order; rows may repeat. */
  gatherRows(base: readonly ort.Tensor[], rows: readonly number[]): Promise<ort.Tensor[]> {
    const feeds: Record<string, ort.Tensor> = { rows: new ort.Tensor('int64', BigInt64Array.from(rows, BigInt), [rows.length]) };
    base.forEach((t, i) => (feeds[`base.${i}`] = t));
    return this.run('gather', feeds);
  }

  /** A copy of a device tensor in JS memory. */
  async download(t: ort.Tensor): Promise<ort.Tensor> {
    const type = t.type as 'float32' | 'float16' | 'int64';
    const key = `${type}/${t.dims.length}`;
    let session = this.fetchers.get(key);
    if (!session) {
      const dims = t.dims.map((_, i) => `d${i}`);
      const model = encodeOnnxModel({
        name: 'uit_download',
        inputs: [{ name: 'x', type, dims }],
        outputs: [{ name: 'y', type, dims }],
        nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
      });
      session = ort.InferenceSession.create(model, this.sessionOptions);
      this.fetchers.set(key, session);
    }
    try {
      return (await (await session).run({ x: t })).y;
    } catch (err) {
      throw new ModelError(`cannot bring a ${type} tensor from the device: ${(err as Error).message.split('\n')[0]}`, { cause: err });
    }
  }

  async dispose(): Promise<void> {
    const sessions = [this.join, this.pick, ...this.fetchers.values()];
    this.fetchers.clear();
    this.join = this.pick = undefined;
    for (const s of sessions) {
      try {
        await (await s)?.release();
      } catch {
        // a graph that failed to build has nothing to release
      }
    }
  }
}

// ---- the cache -----------------------------------------------------------------------------

function emptyKv(dtype: KvDtype, dims: number[]): ort.Tensor {
  return new ort.Tensor(dtype, dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0), dims);
}

/**
 * A KV cache in device tensors, [storeRows, heads, slots, headDim] per layer for keys and values.
 * `capacity` always equals `used` once synced: there are no free slots. Entries of the last step
 * wait in `pending` and row selections in `rowSel` until `sync()` applies them.
 */
export class DeviceKvCache extends KvSlots implements KvStore {
  /** Keys then values, 2 x layers tensors; empty while the cache has no slots of its own. */
  private store: ort.Tensor[] = [];
  /** The rows dimension of `store` and `pending`. */
  private storeRows: number;
  /** The last step's new entries (keys then values), of which the first `take` slots are kept. */
  private pending?: { kv: ort.Tensor[]; take: number };
  /** Which stored rows are this cache's rows, in order, after a compaction not yet applied. */
  private rowSel?: number[];
  private disposed = false;

  private constructor(
    private readonly ops: DeviceOps,
    rows: number,
    shared?: KvStore,
  ) {
    super(ops.shape, rows, 0, shared);
    this.storeRows = rows;
  }

  /** An empty cache of `rows` rows; with `shared`, every row continues that one-row cache. */
  static create(ops: DeviceOps, rows: number, shared?: KvStore): DeviceKvCache {
    return new DeviceKvCache(ops, rows, shared);
  }

  private check(): void {
    if (this.disposed) throw new Error('the device KV cache was disposed');
  }

  private dims(slots: number, rows = this.rows): number[] {
    return [rows, this.shape.numKvHeads, slots, this.shape.headDim];
  }

  /** Slots in `store`. */
  private get storeSlots(): number {
    return this.used - (this.pending?.take ?? 0);
  }

  async sync(): Promise<void> {
    this.check();
    if (this.shared) await this.shared.sync();
    const p = this.pending;
    if (p) {
      this.pending = undefined;
      const seq = p.kv[0].dims[2];
      let joined: ort.Tensor[];
      if (this.store.length === 0 && p.take === seq) joined = p.kv; // a prefill: the entries are the cache
      else {
        const base = this.store.length ? this.store : p.kv.map(() => emptyKv(this.shape.dtype, this.dims(0, this.storeRows)));
        joined = p.take === 0 ? this.store : await this.ops.joinSlots(base, p.kv, p.take);
        p.kv.forEach(release);
      }
      if (joined !== this.store) this.store.forEach(release);
      this.store = joined;
    }
    const sel = this.rowSel;
    if (sel) {
      this.rowSel = undefined;
      if (this.store.length) {
        const picked = await this.ops.gatherRows(this.store, sel);
        this.store.forEach(release);
        this.store = picked;
      }
      this.storeRows = sel.length;
    }
    if (this.store.length === 0 && this.used > 0) throw new Error('device KV cache: slots without storage');
  }

  private assertSynced(): void {
    this.check();
    if (this.pending || this.rowSel) throw new Error('device KV cache read before sync()');
  }

  pastKeys(): KvData[] {
    return this.pastHalf(0);
  }

  pastValues(): KvData[] {
    return this.pastHalf(this.shape.numLayers);
  }

  private pastHalf(from: number): KvData[] {
    this.assertSynced();
    const L = this.shape.numLayers;
    if (this.store.length === 0) return Array.from({ length: L }, () => emptyKv(this.shape.dtype, this.dims(0)));
    return this.store.slice(from, from + L);
  }

  sharedInput(): SharedKv | undefined {
    const s = this.shared;
    return s ? { length: s.capacity, keys: s.pastKeys(), values: s.pastValues() } : undefined;
  }

  write(kv: NonNullable<ForwardOutput['kv']>, seq: number, newValid?: Uint8Array): void {
    this.assertSynced();
    const tensors = [...kv.keys, ...kv.values];
    if (!tensors.every(isDeviceTensor)) throw new Error('device KV cache: the step returned KV entries off the device');
    const oldC = this.capacity;
    this.relayoutMask(oldC + seq);
    this.capacity = oldC + seq;
    if (kv.kind === 'new') this.pending = { kv: tensors, take: seq };
    else {
      // The decoder's present: past + new, the whole cache.
      this.store.forEach(release);
      this.store = tensors;
    }
    this.markNew(seq, newValid);
  }

  /** No free slots on the device: the cache grows by exactly each step's entries. */
  ensureCapacity(): void {}

  /** Forgets the last `count` slots, which must all come from the last step (refused drafts). */
  rewind(count: number): void {
    this.check();
    const p = this.pending;
    if (count > 0 && (!p || count > p.take)) throw new RangeError(`rewind: ${count} slots reach past the last step's entries on the device`);
    this.forgetSlots(count);
    if (p) p.take -= count;
    this.relayoutMask(this.used);
    this.capacity = this.used;
  }

  compact(keep: readonly number[]): void {
    this.check();
    KvSlots.checkKeep(keep);
    const prev = this.rowSel;
    const sel = keep.map((r) => (prev ? prev[r] : r));
    const identity = sel.length === this.storeRows && sel.every((r, i) => r === i);
    this.rowSel = identity ? undefined : sel;
    this.compactSlots(keep);
    // A pending join still sees the stored rows; the selection applies after it.
  }

  async gather(rowIndex: readonly number[]): Promise<KvStore> {
    await this.sync();
    const dst = new DeviceKvCache(this.ops, rowIndex.length, this.shared);
    dst.capacity = this.used;
    dst.mask = new Uint8Array(rowIndex.length * this.used);
    dst.copyRows(this, rowIndex);
    if (this.store.length) dst.store = await this.ops.gatherRows(this.store, rowIndex);
    return dst;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.store.forEach(release);
    this.pending?.kv.forEach(release);
    this.store = [];
    this.pending = undefined;
  }
}
