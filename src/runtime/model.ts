// loadModel: a model folder turned into a tokenizer, a backend and the facts about both.
import { loadTokenizer, type UitTokenizer } from '../tokenizer/index.js';
import { OrtBackend, type Backend } from './backend.js';
import { checkModelConfig } from './config-check.js';
import type { KvDtype } from './graph-spec.js';
import { modelIdentity, type IdentityOptions } from './identity.js';
import { configNumber, inspectModelFolder, type ModelFolder } from './model-folder.js';
import type { Device, GraphOptimizationLevel, ResolvedDevice } from './session.js';
import { describeAdapter, type WebGpuAdapter } from './webgpu.js';

export interface LoadModelOptions {
  /**
   * `cpu` (default), `cuda`, `webgpu`, or `auto` (CUDA when it works, else WebGPU on a hardware
   * adapter, else the CPU).
   */
  device?: Device;
  /** Intra-op threads; default: onnxruntime's choice (the physical cores). */
  threads?: number;
  graphOptimizationLevel?: GraphOptimizationLevel;
  /** Use onnx/model.fast.onnx when present (default true). */
  fastGraphs?: boolean;
  /**
   * Pass a shared prefix (one prompt's N samples, a scored candidate's prefix) to the fast graphs
   * once when they take shared_key_values (default true); false copies it into every row instead.
   */
  sharedKv?: boolean;
  /**
   * Draw sampled tokens in the fast graph when it has token_sampled (default true); false fetches
   * the probabilities and draws in JavaScript, which gives the same tokens but for float32 rounding
   * at a token boundary (a few draws in a million).
   */
  graphSampling?: boolean;
}

export interface ModelInfo {
  dir: string;
  modelType: string;
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  kvDtype: KvDtype;
  hasPositionIds: boolean;
  /** Largest number of positions the model was built for (config.json), if it says. */
  maxPositions?: number;
  /** The graphs the model uses: model.onnx, and model.fast.onnx unless the fast graph is off. */
  graphs: { decoder?: string; fast?: string };
  /** Generation runs on model.fast.onnx (only logits_last and new KV entries leave the graph). */
  fastGeneration: boolean;
  /** Scoring runs on model.fast.onnx (only the needed token log-probs leave the graph). */
  fastScoring: boolean;
  /** The fast graph takes a shared prefix's KV once for all rows (no per-row copies). */
  sharedKv: boolean;
  /** Plain sampling draws its tokens in the fast graph (token_sampled). */
  graphSampling: boolean;
  device: ResolvedDevice;
  /** Why `auto` chose what it chose. */
  deviceNote?: string;
  /** On WebGPU: the adapter as Dawn reports it (absent when the optional `webgpu` package is missing). */
  adapter?: WebGpuAdapter;
}

/**
 * One line that says where a model runs, for every command's stderr: "models/uit-tiny runs on
 * webgpu: llvmpipe: Mesa 25.0.7 ... (mesa, software adapter, vulkan)", and why when `auto` chose.
 */
export function describeDevice(info: Pick<ModelInfo, 'dir' | 'device' | 'deviceNote' | 'adapter'>): string {
  const where = info.device === 'webgpu' ? `webgpu: ${info.adapter ? describeAdapter(info.adapter) : 'adapter not reported (the optional package "webgpu" is missing)'}` : info.device;
  return `${info.dir} runs on ${where}${info.deviceNote ? ` (${info.deviceNote})` : ''}`;
}

export class Model {
  private identityPromise?: Promise<string>;

  constructor(
    readonly folder: ModelFolder,
    readonly info: ModelInfo,
    readonly tokenizer: UitTokenizer,
    readonly backend: Backend,
  ) {}

  /** `sha256:<hex>` over the decoder graph, external data and tokenizer.json (memoised on disk). */
  identity(opts?: IdentityOptions): Promise<string> {
    if (opts) return modelIdentity(this.folder, opts);
    this.identityPromise ??= modelIdentity(this.folder);
    return this.identityPromise;
  }

  async dispose(): Promise<void> {
    await this.backend.dispose();
  }
}

export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<Model> {
  const folder = inspectModelFolder(dir);
  const tokenizer = loadTokenizer(folder.dir);
  const backend = await OrtBackend.open(folder, {
    device: opts.device ?? 'cpu',
    threads: opts.threads,
    graphOptimizationLevel: opts.graphOptimizationLevel,
    fastGraphs: opts.fastGraphs,
    sharedKv: opts.sharedKv,
    graphSampling: opts.graphSampling,
  });
  try {
    checkModelConfig(folder, (await backend.loadedSpecs())[0], tokenizer);
  } catch (err) {
    await backend.dispose();
    throw err;
  }
  const fast = opts.fastGraphs ?? true;
  const info: ModelInfo = {
    dir: folder.dir,
    modelType: folder.modelType,
    numLayers: backend.shape.numLayers,
    numKvHeads: backend.shape.numKvHeads,
    headDim: backend.shape.headDim,
    kvDtype: backend.shape.dtype,
    hasPositionIds: backend.hasPositionIds,
    maxPositions: configNumber(folder.config, 'n_positions', 'max_position_embeddings', 'n_ctx'),
    graphs: { decoder: folder.files.decoder, fast: fast ? folder.files.fast : undefined },
    fastGeneration: backend.fast.generation,
    fastScoring: backend.fast.scoring,
    sharedKv: backend.fast.sharedKv,
    graphSampling: backend.fast.sample,
    device: backend.device,
    deviceNote: backend.deviceNote,
    adapter: backend.adapter,
  };
  return new Model(folder, info, tokenizer, backend);
}
