// The machine's matrix-multiply limit through onnxruntime: MatMul-only ONNX graphs written here as
// protobuf bytes (no Python, no protobuf library), run with onnxruntime-node.
//
// Two graphs per model shape:
//   - "layers": x [m, d] through the model's per-layer weight shapes, chained: four [d, d]
//     (q, k, v, out) then [d, 4d] and [4d, d] (the MLP), for every layer: 12 d^2 weights per
//     layer, the same bytes as the model's non-embedding MatMul weights;
//   - "head": x [m, d] times [d, vocab] (the LM head).
// Weights are random with variance 1/fan_in, so activations stay near unit scale (no overflow,
// no denormals).
import ort from 'onnxruntime-node';

// ---- protobuf wire format: just what ModelProto needs
function varint(n) {
  const out = [];
  let v = BigInt(n);
  while (v >= 0x80n) {
    out.push(Number((v & 0x7fn) | 0x80n));
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}
const concat = (parts) => {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const tag = (field, wire) => varint((field << 3) | wire);
const fInt = (field, n) => concat([tag(field, 0), varint(n)]);
const fBytes = (field, bytes) => concat([tag(field, 2), varint(bytes.length), bytes]);
const fStr = (field, s) => fBytes(field, new TextEncoder().encode(s));
const fMsg = (field, parts) => fBytes(field, concat(parts));

const FLOAT = 1;
/** ValueInfoProto: a float tensor with these dims (numbers or symbolic names). */
function valueInfo(name, dims) {
  const shape = dims.map((d) => fMsg(1, [typeof d === 'number' ? fInt(1, d) : fStr(2, d)]));
  const tensorType = fMsg(1, [fInt(1, FLOAT), fMsg(2, shape)]);
  return [fStr(1, name), fMsg(2, [tensorType])];
}
/** TensorProto with raw float32 data. */
function tensor(name, dims, data) {
  return [...dims.map((d) => fInt(1, d)), fInt(2, FLOAT), fStr(8, name), fBytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength))];
}
function node(inputs, outputs, opType, name) {
  return [...inputs.map((i) => fStr(1, i)), ...outputs.map((o) => fStr(2, o)), fStr(3, name), fStr(4, opType)];
}

/** Deterministic uniform weights with variance 1/fanIn. */
function weights(rows, cols, seed) {
  const a = new Float32Array(rows * cols);
  const scale = Math.sqrt(3 / rows);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return a;
}

/** ModelProto bytes of a chain of MatMuls: x [m, shapes[0][0]] -> ... -> y. */
export function matmulChainModel(shapes) {
  const nodes = [];
  const inits = [];
  let prev = 'x';
  shapes.forEach(([k, n], i) => {
    const out = i === shapes.length - 1 ? 'y' : `h${i}`;
    inits.push(fMsg(5, tensor(`w${i}`, [k, n], weights(k, n, i + 1))));
    nodes.push(fMsg(1, node([prev, `w${i}`], [out], 'MatMul', `mm${i}`)));
    prev = out;
  });
  const graph = [
    ...nodes,
    fStr(2, 'matmul_chain'),
    ...inits,
    fMsg(11, valueInfo('x', ['m', shapes[0][0]])),
    fMsg(12, valueInfo('y', ['m', shapes[shapes.length - 1][1]])),
  ];
  return concat([fInt(1, 8), fStr(2, 'uit-bench'), fMsg(8, [fStr(1, ''), fInt(2, 17)]), fMsg(7, graph)]);
}

/** The per-layer MatMul shapes of a GPT-J block (q, k, v, out, fc_in, fc_out). */
export function layerShapes(d, inner, layers) {
  const one = [[d, d], [d, d], [d, d], [d, d], [d, inner], [inner, d]];
  return Array.from({ length: layers }, () => one).flat();
}

export const flopsOf = (shapes, m) => shapes.reduce((s, [k, n]) => s + 2 * m * k * n, 0);

/**
 * Measures GFLOP/s of the layer chain and the head at each row count in `rows`, median of `runs`
 * (after one warm-up run). Returns {layers: {m: {ms, gflops}}, head: {...}}.
 */
export async function measureMatmul({ d, inner, layers, vocab, rows, runs, threads, device = 'cpu', timed, median }) {
  const result = { layers: {}, head: {} };
  const graphs = { layers: layerShapes(d, inner, layers), head: [[d, vocab]] };
  for (const [name, shapes] of Object.entries(graphs)) {
    const session = await ort.InferenceSession.create(matmulChainModel(shapes), {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionProviders: [device === 'cuda' ? 'cuda' : 'cpu'],
    });
    for (const m of rows) {
      const x = new ort.Tensor('float32', weights(m, d, 99).map((v) => v * Math.sqrt(m)), [m, d]);
      // Warm up, then time enough repetitions per sample (at least 50 ms) that a sub-millisecond
      // call is not lost in the timer's and the scheduler's noise.
      const w = await timed(() => session.run({ x }));
      const reps = Math.max(1, Math.min(1000, Math.ceil(0.05 / Math.max(w.wall, 1e-5))));
      const ts = [];
      for (let r = 0; r < runs; r++) {
        const one = await timed(async () => {
          for (let i = 0; i < reps; i++) await session.run({ x });
        });
        ts.push({ wall: one.wall / reps, cpu: one.cpu / reps });
      }
      const wall = median(ts.map((t) => t.wall));
      const cpu = median(ts.map((t) => t.cpu));
      const flops = flopsOf(shapes, m);
      result[name][m] = { m, flops, repetitions_per_sample: reps, wall_s: wall, cpu_s: cpu, gflops_wall: flops / wall / 1e9, gflops_cpu: flops / cpu / 1e9 };
    }
    await session.release();
  }
  return result;
}
