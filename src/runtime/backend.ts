// The one place that talks to onnxruntime-node. The engine above it owns the KV cache and asks for
// "run these ids with this mask/positions/past, give me X and the new KV entries". On the CPU and
// CUDA the cache is in JS buffers (kv-cache.ts); on WebGPU it stays on the device (device-kv.ts),
// and the entries a step returns are device tensors that never cross to JavaScript.
import ort from 'onnxruntime-node';
import { ModelError } from '../errors.js';
import { DeviceKvCache, DeviceOps, isDeviceTensor, own } from './device-kv.js';
import { checkCompatible, readGraphSpec, type GraphKind, type GraphSpec } from './graph-spec.js';
import { allocKv, KvCache, type KvArray, type KvShape, type KvStore } from './kv-cache.js';
import type { ModelConfig, ModelFolder } from './model-folder.js';
import { createSession, webgpuSessionOptions, type ResolvedDevice, type SessionConfig } from './session.js';
import { halfToFloat32 } from './half.js';
import type { WebGpuAdapter } from './webgpu.js';

/** KV data as a forward takes and gives it: a JS buffer, or a tensor that stays on the device. */
export type KvData = KvArray | ort.Tensor;

export interface ForwardInput {
  rows: number;
  /** New positions per row. */
  seq: number;
  /** int64 [rows, seq] */
  inputIds: BigInt64Array;
  /** int64 [rows, sharedLength + pastLength + seq] */
  attentionMask: BigInt64Array;
  /** int64 [rows, seq] */
  positionIds: BigInt64Array;
  /** Slots per row in the past buffers (0 on a first step). */
  pastLength: number;
  /** Per layer, [rows, heads, pastLength, headDim]. */
  pastKeys: readonly KvData[];
  pastValues: readonly KvData[];
  /**
   * A prefix common to every row, stored once: per layer [1, heads, length, headDim]. Its slots come
   * first in `attentionMask`. Only for graphs with shared_key_values inputs (`fast.sharedKv`).
   */
  shared?: SharedKv;
  /**
   * With `logprobs`: only the last n input tokens' log-probs are wanted (1 <= n <= seq-1; default
   * seq-1, every token but the first). The fast graph then runs its LM head on n+1 positions only.
   */
  logprobsTail?: number;
  /**
   * With `last`: also the greedy choice after each of the positions before the last n input tokens
   * (1 <= n <= seq-1), which verifies n drafted tokens in one forward. Only when `fast.argmax`.
   */
  argmaxTail?: number;
  /**
   * With `last` on a graph with `fast.probs`: return `probs`, softmax(logits / temperature) over the
   * vocabulary computed in the graph, instead of `last`.
   */
  temperature?: number;
  /**
   * With `temperature` on a graph with `fast.sample`: one number in [0, 1) per row; return
   * `sampled`, each row's token drawn in the graph as drawFromProbs draws it with that number (but
   * for float32 rounding within a few billionths of a token boundary), instead of `probs`.
   */
  sampleUniform?: Float64Array;
}

export interface SharedKv {
  length: number;
  keys: readonly KvData[];
  values: readonly KvData[];
}

/**
 * - `last`: next-token logits at the last position, [rows, vocab] (generation);
 * - `logprobs`: log p(inputIds[r, t+1] | ..t) for t < seq-1, [rows, seq-1] (scoring); with
 *   `logprobsTail` n, only the last n: [rows, n], entry j for input token seq-n+j;
 * - `logits`: all logits, [rows, seq, vocab] (only the decoder graph has them).
 */
export type ForwardWant = 'last' | 'logprobs' | 'logits';

export interface ForwardOutput {
  vocabSize: number;
  last?: Float32Array;
  logprobs?: Float32Array;
  logits?: Float32Array;
  /**
   * With `argmaxTail` n: [rows, n], entry j the argmax of the logits that predict input token
   * seq-n+j (a draft is accepted while entry j equals that token).
   */
  argmax?: Int32Array;
  /** With `temperature`: the next-token distribution at the last position, [rows, vocab] (sums to 1). */
  probs?: Float32Array;
  /** With `sampleUniform`: the drawn token of each row, [rows]. */
  sampled?: Int32Array;
  /**
   * The KV entries, when asked for: `new` holds only the seq new positions [rows, heads, seq, headDim];
   * `present` holds past + new [rows, heads, pastLength + seq, headDim] (the optimum decoder).
   */
  kv?: { kind: 'new' | 'present'; keys: KvData[]; values: KvData[] };
}

export interface Backend {
  readonly shape: KvShape;
  readonly hasPositionIds: boolean;
  /**
   * Which outputs come from the fast graph (only what is needed leaves the graph), and whether it
   * takes a shared prefix KV (`ForwardInput.shared`) instead of per-row copies, and whether it
   * returns per-position argmax (`ForwardInput.argmaxTail`, for verifying drafts), and whether it
   * computes the sampling distribution (`ForwardInput.temperature`) and draws from it
   * (`ForwardInput.sampleUniform`).
   */
  readonly fast: { generation: boolean; scoring: boolean; sharedKv?: boolean; argmax?: boolean; probs?: boolean; sample?: boolean };
  readonly device: ResolvedDevice;
  /**
   * An empty KV cache of `rows` rows with room for `capacity` slots, for this backend's forwards:
   * JS buffers, or device tensors on WebGPU (which ignore `capacity`: they have no free slots).
   */
  createKv(rows: number, capacity: number, shared?: KvStore): KvStore;
  forward(input: ForwardInput, want: ForwardWant, fetchKv: boolean): Promise<ForwardOutput>;
  dispose(): Promise<void>;
}

interface Graph {
  spec: GraphSpec;
  session: ort.InferenceSession;
}

export interface OrtBackendOptions extends SessionConfig {
  /** Use model.fast.onnx when the folder has it (default true). */
  fastGraphs?: boolean;
  /**
   * Pass shared prefixes once when the fast graph takes shared_key_values (default true); false
   * makes the engine copy them into every row (the path for graphs without those inputs).
   */
  sharedKv?: boolean;
  /**
   * Draw sampled tokens in the graph when it has token_sampled (default true); false fetches the
   * probabilities and draws in JavaScript (the same tokens but for float32 rounding at a token
   * boundary: a check and a fallback).
   */
  graphSampling?: boolean;
}

/**
 * Backend over onnxruntime-node sessions. The fast graph (model.fast.onnx) serves generation and
 * scoring in one session, so the weights are loaded once; model.onnx (full logits, or the only
 * graph) loads on first use.
 */
export class OrtBackend implements Backend {
  readonly shape: KvShape;
  readonly hasPositionIds: boolean;
  readonly fast: { generation: boolean; scoring: boolean; sharedKv: boolean; argmax: boolean; probs: boolean; sample: boolean };
  device: ResolvedDevice;
  deviceNote?: string;
  /** The WebGPU adapter (as Dawn reports it), when the device is webgpu. */
  adapter?: WebGpuAdapter;
  /** The device's helper graphs (KV join and gather, downloads): WebGPU only. */
  private ops?: DeviceOps;
  private readonly graphs = new Map<GraphKind, Promise<Graph>>();
  private disposed = false;
  private readonly paths: Partial<Record<GraphKind, string>>;

  private constructor(
    private readonly folder: ModelFolder,
    private readonly options: OrtBackendOptions,
    primary: Graph,
  ) {
    const s = primary.spec;
    this.shape = { numLayers: s.numLayers, numKvHeads: s.numKvHeads, headDim: s.headDim, dtype: s.kvDtype };
    this.hasPositionIds = s.hasPositionIds;
    const fast = options.fastGraphs ?? true;
    this.paths = { decoder: folder.files.decoder, fast: fast ? folder.files.fast : undefined };
    const sharedKv = primary.spec.kind === 'fast' && primary.spec.hasSharedKv && (options.sharedKv ?? true);
    const argmax = primary.spec.kind === 'fast' && primary.spec.argmaxOutput !== undefined;
    const probs = primary.spec.kind === 'fast' && primary.spec.probsOutput !== undefined;
    const sample = primary.spec.kind === 'fast' && primary.spec.sampledOutput !== undefined && (options.graphSampling ?? true);
    this.fast = { generation: this.paths.fast !== undefined, scoring: this.paths.fast !== undefined, sharedKv, argmax, probs, sample };
    this.graphs.set(primary.spec.kind, Promise.resolve(primary));
    this.device = 'cpu';
  }

  /** Opens the fast graph when present (else model.onnx) and reads the model's facts from it. */
  static async open(folder: ModelFolder, options: OrtBackendOptions): Promise<OrtBackend> {
    const fast = options.fastGraphs ?? true;
    const kind: GraphKind = fast && folder.files.fast ? 'fast' : 'decoder';
    const path = kind === 'fast' ? folder.files.fast : folder.files.decoder;
    if (!path) throw new ModelError(`${folder.dir}: onnx/model.onnx is missing (needed when the fast graphs are off)`);
    const created = await createSession(path, options);
    const spec = readGraphSpec(kind, path, created.session, folder.config);
    const backend = new OrtBackend(folder, options, { spec, session: created.session });
    backend.device = created.device;
    backend.deviceNote = created.note;
    backend.adapter = created.adapter;
    if (created.device === 'webgpu') backend.ops = new DeviceOps(backend.shape, webgpuSessionOptions(options));
    return backend;
  }

  createKv(rows: number, capacity: number, shared?: KvStore): KvStore {
    return this.ops ? DeviceKvCache.create(this.ops, rows, shared) : KvCache.create(this.shape, rows, capacity, shared);
  }

  /** The session for a graph kind, loading it (and checking it against the primary graph) if needed. */
  graph(kind: GraphKind): Promise<Graph> {
    if (this.disposed) return Promise.reject(new ModelError(`${this.folder.dir}: the model was disposed`));
    let g = this.graphs.get(kind);
    if (!g) {
      const path = this.paths[kind];
      if (!path) return Promise.reject(new ModelError(`${this.folder.dir}: no ${kind} graph`));
      g = (async () => {
        const created = await createSession(path, { ...this.options, device: this.device });
        const spec = readGraphSpec(kind, path, created.session, this.folder.config as ModelConfig);
        const primary = await this.graphs.values().next().value!;
        checkCompatible(primary.spec, spec);
        return { spec, session: created.session };
      })();
      this.graphs.set(kind, g);
      g.catch(() => this.graphs.delete(kind));
    }
    return g;
  }

  /** Specs of the graphs loaded so far. */
  async loadedSpecs(): Promise<GraphSpec[]> {
    return Promise.all([...this.graphs.values()].map(async (g) => (await g).spec));
  }

  async forward(input: ForwardInput, want: ForwardWant, fetchKv: boolean): Promise<ForwardOutput> {
    const tail = input.logprobsTail;
    if (want === 'logprobs' && tail !== undefined && !(Number.isInteger(tail) && tail >= 1 && tail <= input.seq - 1)) {
      throw new RangeError(`logprobsTail ${tail} is not in 1..${input.seq - 1}`);
    }
    const am = input.argmaxTail;
    if (am !== undefined) {
      if (want !== 'last' || !this.fast.argmax) throw new RangeError('argmaxTail needs want "last" and a fast graph with token_argmax');
      if (!(Number.isInteger(am) && am >= 1 && am <= input.seq - 1)) throw new RangeError(`argmaxTail ${am} is not in 1..${input.seq - 1}`);
    }
    const t = input.temperature;
    if (t !== undefined) {
      if (want !== 'last' || !this.fast.probs) throw new RangeError('temperature needs want "last" and a fast graph with probs_last');
      // inv_temperature is float32: 1/t must be finite there, not only in a double.
      if (!(t > 0 && Number.isFinite(Math.fround(1 / t)))) throw new RangeError(`temperature ${t} is not > 0 or its inverse overflows float32`);
    }
    const u = input.sampleUniform;
    if (u !== undefined) {
      if (t === undefined || input.argmaxTail !== undefined || !this.fast.sample) {
        throw new RangeError('sampleUniform needs a temperature, no argmaxTail and a fast graph with token_sampled');
      }
      if (u.length !== input.rows) throw new RangeError(`sampleUniform has ${u.length} numbers for ${input.rows} rows`);
      for (const x of u) if (!(x >= 0 && x < 1)) throw new RangeError(`sampleUniform ${x} is not in [0, 1)`);
    }
    if (want !== 'logits' && this.paths.fast) return this.runFast(input, want, fetchKv);
    if (!this.paths.decoder) throw new ModelError(`${this.folder.dir}: full logits need onnx/model.onnx`);
    return this.runDecoder(input, want, fetchKv);
  }

  private feeds(spec: GraphSpec, input: ForwardInput): Record<string, ort.Tensor> {
    if (this.ops && spec.kind === 'fast' && spec.hasSharedKv && spec.hasPositionIds && (input.pastLength === 0 || !input.shared?.length)) {
      input = withPlaceholderSlots(input, this.shape);
    }
    const { rows, seq, pastLength, shared } = input;
    const { numKvHeads: H, headDim: D, dtype } = this.shape;
    if (shared && !spec.hasSharedKv) throw new Error(`${spec.path} takes no shared_key_values: the engine must copy the prefix into the rows`);
    const sharedLength = shared?.length ?? 0;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', input.inputIds, [rows, seq]),
      attention_mask: new ort.Tensor('int64', input.attentionMask, [rows, sharedLength + pastLength + seq]),
    };
    if (spec.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', input.positionIds, [rows, seq]);
    if (spec.hasUseCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', new Uint8Array([pastLength > 0 ? 1 : 0]), [1]);
    const dims = [rows, H, pastLength, D];
    for (let l = 0; l < spec.numLayers; l++) {
      feeds[spec.pastKeys[l]] = kvTensor(dtype, input.pastKeys[l], dims);
      feeds[spec.pastValues[l]] = kvTensor(dtype, input.pastValues[l], dims);
    }
    if (spec.hasSharedKv) {
      // Without a shared prefix the graph still gets its inputs, zero-length.
      const sdims = [1, H, sharedLength, D];
      const none = allocKv(dtype, 0);
      for (let l = 0; l < spec.numLayers; l++) {
        feeds[spec.sharedKeys[l]] = kvTensor(dtype, shared ? shared.keys[l] : none, sdims);
        feeds[spec.sharedValues[l]] = kvTensor(dtype, shared ? shared.values[l] : none, sdims);
      }
    }
    return feeds;
  }

  private async runFast(input: ForwardInput, want: 'last' | 'logprobs', fetchKv: boolean): Promise<ForwardOutput> {
    const { spec, session } = await this.graph('fast');
    // The LM head runs on the last n+1 positions: n = 0 for the next token, the tail when scoring.
    // (and on the drafts' positions too when verifying them; forward() allows that with `last` only).
    const argmaxTail = input.argmaxTail;
    const n = want === 'last' ? (argmaxTail ?? 0) : (input.logprobsTail ?? input.seq - 1);
    const feeds = this.feeds(spec, input);
    feeds.num_logprobs = new ort.Tensor('int64', BigInt64Array.of(BigInt(n)), []);
    // A graph that has the input always takes it, used or not. It scales every logit the graph
    // returns (the export's graphs scale the LM head's input, sparing a pass over the logits), so it
    // is 1 unless the step fetches the sampling distribution.
    const probs = input.temperature !== undefined; // forward() allows it with `last` only
    if (spec.probsOutput) feeds.inv_temperature = new ort.Tensor('float32', Float32Array.of(probs ? 1 / input.temperature! : 1), []);
    // Required like inv_temperature; read only when token_sampled is fetched.
    const uniform = input.sampleUniform;
    if (spec.sampledOutput) feeds.sample_uniform = new ort.Tensor('float64', uniform ?? new Float64Array(input.rows), [input.rows]);
    // With sampleUniform, ids only: no [rows, vocab] copy out of the graph.
    const name = uniform ? spec.sampledOutput! : want === 'logprobs' ? spec.logprobsOutput! : probs ? spec.probsOutput! : spec.mainOutput;
    const fetches = [name, ...(argmaxTail ? [spec.argmaxOutput!] : []), ...(fetchKv ? [...spec.outKeys, ...spec.outValues] : [])];
    const out = await this.fetch(spec, session, feeds, fetches);
    let result: ForwardOutput;
    if (uniform) result = { vocabSize: spec.vocabSize ?? 0, sampled: Int32Array.from(out[name].data as BigInt64Array, Number) };
    else {
      const data = toFloat32(out[name]);
      result = {
        vocabSize: want === 'last' ? data.length / input.rows : (spec.vocabSize ?? 0),
        ...(want === 'logprobs' ? { logprobs: data } : probs ? { probs: data } : { last: data }),
      };
    }
    if (argmaxTail) result.argmax = Int32Array.from(out[spec.argmaxOutput!].data as BigInt64Array, Number);
    if (fetchKv) {
      result.kv = {
        kind: 'new',
        keys: spec.outKeys.map((n) => kvData(out[n])),
        values: spec.outValues.map((n) => kvData(out[n])),
      };
    }
    return result;
  }

  private async runDecoder(input: ForwardInput, want: ForwardWant, fetchKv: boolean): Promise<ForwardOutput> {
    const { spec, session } = await this.graph('decoder');
    const fetches = [spec.mainOutput, ...(fetchKv ? [...spec.outKeys, ...spec.outValues] : [])];
    const out = await this.fetch(spec, session, this.feeds(spec, input), fetches);
    const logits = toFloat32(out[spec.mainOutput]);
    const { rows, seq } = input;
    const vocabSize = logits.length / (rows * seq);
    const result: ForwardOutput = { vocabSize };
    if (want === 'logits') result.logits = logits;
    else if (want === 'last') {
      const last = new Float32Array(rows * vocabSize);
      for (let r = 0; r < rows; r++) {
        last.set(logits.subarray(((r + 1) * seq - 1) * vocabSize, (r + 1) * seq * vocabSize), r * vocabSize);
      }
      result.last = last;
    } else result.logprobs = gatherLogprobs(logits, input.inputIds, rows, seq, vocabSize, input.logprobsTail);
    if (fetchKv) {
      result.kv = {
        kind: 'present',
        keys: spec.outKeys.map((n) => kvData(out[n])),
        values: spec.outValues.map((n) => kvData(out[n])),
      };
    }
    return result;
  }

  /**
   * Runs a graph and returns `fetches`. On the CPU that is run() with the fetch list. On a device,
   * onnxruntime-node 1.30 binds outputs by name and never unbinds them, so a session must fetch
   * the same outputs on every run: all of them. KV entries stay on the device; the other outputs
   * that stay there (last logits, probabilities) are brought back only when fetched, and the rest
   * are freed at once.
   */
  private async fetch(spec: GraphSpec, session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, fetches: string[]): Promise<ort.InferenceSession.ReturnType> {
    if (!this.ops) return run(spec, session, feeds, fetches);
    const all = await run(spec, session, feeds, [...session.outputNames]);
    const wanted = new Set(fetches);
    const kv = new Set([...spec.outKeys, ...spec.outValues]);
    const out: Record<string, ort.Tensor> = {};
    try {
      for (const name of session.outputNames) {
        const t = all[name] as ort.Tensor;
        if (!wanted.has(name) || t.location !== 'gpu-buffer' || kv.has(name)) out[name] = t;
        else {
          out[name] = await this.ops.download(t);
          t.dispose();
        }
      }
    } catch (err) {
      for (const t of Object.values(all) as ort.Tensor[]) if (t.location === 'gpu-buffer') t.dispose();
      throw err;
    }
    for (const name of session.outputNames) if (!wanted.has(name) && out[name].location === 'gpu-buffer') out[name].dispose();
    return out;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await this.ops?.dispose();
    const graphs = [...this.graphs.values()];
    this.graphs.clear();
    for (const g of graphs) {
      try {
        await (await g).session.release();
      } catch {
        // a graph that failed to load has nothing to release
      }
    }
  }
}

/**
 * The WebGPU provider crashes the process on the zero-length attention inputs of a fast graph with
 * shared_key_values (an empty shared prefix, or no past yet). Those get one zero slot instead,
 * masked out: a masked slot with a finite key weighs exactly zero.
 */
function withPlaceholderSlots(input: ForwardInput, shape: KvShape): ForwardInput {
  const { rows, seq, pastLength } = input;
  const sharedLength = input.shared?.length ?? 0;
  const padShared = sharedLength === 0 ? 1 : 0;
  const padPast = pastLength === 0 ? 1 : 0;
  const width = sharedLength + pastLength + seq;
  const mask = new BigInt64Array(rows * (width + padShared + padPast));
  for (let r = 0; r < rows; r++) {
    const src = input.attentionMask.subarray(r * width, (r + 1) * width);
    const dst = r * (width + padShared + padPast) + padShared;
    mask.set(src.subarray(0, sharedLength), dst);
    mask.set(src.subarray(sharedLength), dst + sharedLength + padPast);
  }
  const { numKvHeads: H, headDim: D, dtype } = shape;
  const zeros = (n: number) => Array.from({ length: shape.numLayers }, () => allocKv(dtype, n * H * D));
  return {
    ...input,
    attentionMask: mask,
    pastLength: pastLength + padPast,
    pastKeys: padPast ? zeros(rows) : input.pastKeys,
    pastValues: padPast ? zeros(rows) : input.pastValues,
    shared: padShared ? { length: 1, keys: zeros(1), values: zeros(1) } : input.shared,
  };
}

/** session.run with only `fetches` copied out; onnxruntime failures become ModelErrors naming the graph. */
async function run(
  spec: GraphSpec,
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  fetches: string[],
): Promise<ort.InferenceSession.ReturnType> {
  try {
    return await session.run(feeds, fetches);
  } catch (err) {
    const shape = (feeds.input_ids as ort.Tensor).dims.join('x');
    throw new ModelError(`${spec.path}: onnxruntime failed on input_ids ${shape}: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
}

/**
 * log p(ids[r, t+1] | logits[r, t]) for t < seq-1, computed in float64 for a stable log-sum-exp:
 * [rows, seq-1]; with `tail` n only the last n (t >= seq-1-n): [rows, n].
 */
export function gatherLogprobs(logits: Float32Array, ids: BigInt64Array, rows: number, seq: number, vocab: number, tail = seq - 1): Float32Array {
  const n = Math.max(0, tail);
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      const t = seq - 1 - n + j;
      const base = (r * seq + t) * vocab;
      out[r * n + j] = logSoftmaxAt(logits, base, vocab, Number(ids[r * seq + t + 1]));
    }
  }
  return out;
}

/** log softmax(logits[base .. base+vocab])[index]. */
export function logSoftmaxAt(logits: Float32Array, base: number, vocab: number, index: number): number {
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) if (logits[base + i] > max) max = logits[base + i];
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[base + i] - max);
  return logits[base + index] - max - Math.log(sum);
}

function toFloat32(t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  if (t.type === 'float16') return halfToFloat32(rawHalf(t.data));
  throw new ModelError(`unexpected output type ${t.type}`);
}

function rawHalf(data: ort.Tensor['data']): Uint16Array {
  if (data instanceof Uint16Array) return data;
  const view = data as ArrayBufferView; // Float16Array where the platform has it
  return new Uint16Array(view.buffer, view.byteOffset, view.byteLength / 2);
}

/** A KV output: device tensors stay on the device (owned, released by the cache); others become JS data. */
function kvData(t: ort.Tensor): KvData {
  if (t.location === 'gpu-buffer') return own(t);
  if (t.type === 'float32') return t.data as Float32Array;
  return rawHalf(t.data);
}

/** A KV input: a device tensor as it is (its shape checked), JS data wrapped without a copy. */
function kvTensor(dtype: 'float32' | 'float16', data: KvData, dims: number[]): ort.Tensor {
  if (!isDeviceTensor(data) && !(data instanceof ort.Tensor)) return new ort.Tensor(dtype, data, dims);
  if (data.dims.length !== dims.length || data.dims.some((d, i) => d !== dims[i])) {
    throw new Error(`KV tensor has shape [${data.dims.join(', ')}], expected [${dims.join(', ')}]`);
  }
  return data;
}
