// How much memory a model folder takes once onnxruntime's CPU provider has loaded it, known before
// loading it (from the graph file's initializers: onnx-proto.ts), and how much the machine has. One
// graph loads per process (the fast graph when the folder has it), so that is the one counted.
//
// What onnxruntime-node 1.30 holds per initializer on the CPU, measured on one GPT-J layer's weights
// (bench/quant-kernels.js, docs/export.md "Memory"):
//   - float32: its bytes;
//   - float16: twice its bytes (the CPU provider has no fp16 MatMul here: it widens the weights to
//     float32 when the session is made, so an fp16 folder takes the memory of an fp32 one);
//   - MatMulNBits at accuracy_level 4: the packed codes once, the scales 3.33 times (the int8 kernel
//     repacks them with per-block sums); at accuracy level 0: its bytes;
//   - DynamicQuantizeMatMul, GatherBlockQuantized and everything else: its bytes;
//   plus about 27 MiB per session and the Node process itself.
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { basename } from 'node:path';
import type { ModelFolder } from './model-folder.js';
import { configNumber } from './model-folder.js';
import { ONNX_TYPE, readGraphInfo, type GraphInfo } from './onnx-proto.js';

/** The Node process with onnxruntime-node and the tokenizer loaded, and one session's fixed cost (MiB). */
export const BASE_RSS_MIB = 110;
/** MatMulNBits' scales at accuracy_level 4 take this many times their bytes once repacked. */
export const NBITS_SCALE_FACTOR = 3.33;
const MIB = 2 ** 20;

export interface MemoryEstimate {
  /** The graph that loads (the fast graph when the folder has it). */
  graph: string;
  /** Bytes of that graph's weights as stored. */
  weightBytes: number;
  /** Bytes they take once loaded on the CPU. */
  loadedBytes: number;
  /** Expected resident memory of a process that has loaded the model, before any KV cache. */
  expectedRssBytes: number;
  /** KV cache bytes per cached token of one row (all layers, keys and values). */
  kvBytesPerToken: number;
  /** How the weights are stored, e.g. "float32", "float16 (widened to float32 on the CPU)", "int4 MatMulNBits block 32". */
  weights: string[];
}

function scheme(info: GraphInfo): {
  nbits: Map<string, { bits: number; block: number; level: number; role: 'B' | 'scales' | 'zero_points' }>;
  dqmm: Set<string>;
  gather: Map<string, number>;
} {
  const nbits = new Map<string, { bits: number; block: number; level: number; role: 'B' | 'scales' | 'zero_points' }>();
  const dqmm = new Set<string>();
  const gather = new Map<string, number>();
  for (const n of info.nodes) {
    if (n.domain !== 'com.microsoft') continue;
    if (n.opType === 'MatMulNBits') {
      const q = { bits: n.ints.bits ?? 4, block: n.ints.block_size ?? 32, level: n.ints.accuracy_level ?? 0 };
      (['B', 'scales', 'zero_points'] as const).forEach((role, k) => {
        const name = n.inputs[k + 1];
        if (name) nbits.set(name, { ...q, role });
      });
    } else if (n.opType === 'DynamicQuantizeMatMul') {
      for (const name of n.inputs.slice(1)) if (name) dqmm.add(name);
    } else if (n.opType === 'GatherBlockQuantized') {
      for (const k of [0, 2, 3]) if (n.inputs[k]) gather.set(n.inputs[k], n.ints.bits ?? 4);
    }
  }
  return { nbits, dqmm, gather };
}

/** Expected memory of a model folder on the CPU provider, from its graph file (nothing is loaded). */
export function estimateMemory(folder: ModelFolder, opts: { fastGraphs?: boolean } = {}): MemoryEstimate {
  const path = (opts.fastGraphs ?? true) && folder.files.fast ? folder.files.fast : (folder.files.decoder ?? folder.files.fast!);
  const info = readGraphInfo(path);
  const { nbits, dqmm, gather } = scheme(info);
  let weightBytes = 0;
  let loadedBytes = 0;
  const kinds = new Map<string, number>();
  const count = (what: string, bytes: number) => kinds.set(what, (kinds.get(what) ?? 0) + bytes);
  for (const t of info.initializers) {
    weightBytes += t.bytes;
    const q = nbits.get(t.name);
    if (q) {
      loadedBytes += q.role === 'scales' && q.level === 4 ? t.bytes * NBITS_SCALE_FACTOR : t.bytes;
      count(`int${q.bits} MatMulNBits block ${q.block}, accuracy_level ${q.level}`, t.bytes);
    } else if (dqmm.has(t.name)) {
      loadedBytes += t.bytes;
      count('int8 DynamicQuantizeMatMul', t.bytes);
    } else if (gather.has(t.name)) {
      loadedBytes += t.bytes;
      count(`int${gather.get(t.name)} GatherBlockQuantized (embedding)`, t.bytes);
    } else if (t.dataType === ONNX_TYPE.float16 && t.bytes >= 1024) {
      loadedBytes += 2 * t.bytes;
      count('float16 (widened to float32 on the CPU)', t.bytes);
    } else {
      loadedBytes += t.bytes;
      if (t.bytes >= 1024) count(t.dataType === ONNX_TYPE.float32 ? 'float32' : `type ${t.dataType}`, t.bytes);
    }
  }
  const weights = [...kinds.entries()].sort((a, b) => b[1] - a[1]).map(([k, b]) => `${k}: ${(b / MIB).toFixed(0)} MiB`);
  return {
    graph: basename(path),
    weightBytes,
    loadedBytes,
    expectedRssBytes: loadedBytes + BASE_RSS_MIB * MIB,
    kvBytesPerToken: kvBytesPerToken(folder, info),
    weights,
  };
}

function kvBytesPerToken(folder: ModelFolder, info: GraphInfo): number {
  const c = folder.config;
  const layers = configNumber(c, 'n_layer', 'num_hidden_layers') ?? 0;
  const hidden = configNumber(c, 'n_embd', 'hidden_size') ?? 0;
  const heads = configNumber(c, 'n_head', 'num_attention_heads') ?? 1;
  const kvHeads = configNumber(c, 'num_key_value_heads') ?? heads;
  const headDim = configNumber(c, 'head_dim') ?? hidden / heads;
  const elem = info.inputTypes['past_key_values.0.key'] === ONNX_TYPE.float16 ? 2 : 4;
  return layers * 2 * kvHeads * headDim * elem;
}

/** Memory the machine can give a new process now: MemAvailable from /proc/meminfo, else free memory. */
export function availableMemory(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return freemem();
}

/** A size in GiB (to `gibDigits` decimals) from 1 GiB up, else in whole MiB. */
export function formatBytes(n: number, gibDigits = 2): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(gibDigits)} GiB` : `${(n / MIB).toFixed(0)} MiB`;
}
