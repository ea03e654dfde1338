// The little of ONNX's protobuf format that the runtime needs without the onnx package: the output
// names of a graph file (read without loading its weights: WebGPU sessions must be told, when they
// are created, which outputs stay on the device), what a graph file says about its weights (types,
// shapes and bytes of its initializers, its nodes: memory.ts estimates the memory a model takes
// from them), and a writer for the small helper graphs that move KV tensors around on the device
// (device-kv.ts).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ModelError } from '../errors.js';

// ---- reading -------------------------------------------------------------------------------

/** Byte access by absolute offset: a whole buffer, or a file read a block at a time. */
type ByteAt = (pos: number) => number;

/** Reads a file a block at a time (a graph file can hold GBs of embedded weights). */
function fileBytes(fd: number, path: string): ByteAt {
  let block = Buffer.alloc(0);
  let start = 0;
  return (pos) => {
    if (pos < start || pos >= start + block.length) {
      const buf = Buffer.alloc(64 * 1024);
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) throw new ModelError(`${path}: unexpected end of the ONNX file at byte ${pos}`);
      block = buf.subarray(0, n);
      start = pos;
    }
    return block[pos - start];
  };
}

/** A varint at `pos`: its value and the position after it. */
function varint(at: ByteAt, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    const b = at(pos + i);
    value += (b & 0x7f) * scale;
    scale *= 128;
    if (b < 0x80) return [value, pos + i + 1];
  }
  throw new ModelError(`bad protobuf varint at byte ${pos} (not an ONNX file?)`);
}

/**
 * Calls `field` for each length-delimited field of the message in [pos, end), and `scalar` (when
 * given) for each varint field; skips the others.
 */
function walk(
  at: ByteAt,
  pos: number,
  end: number,
  field: (num: number, start: number, length: number) => void,
  scalar?: (num: number, value: number) => void,
): void {
  while (pos < end) {
    const [k, p] = varint(at, pos);
    const wire = k % 8;
    if (wire === 0) {
      const [v, q] = varint(at, p);
      scalar?.(Math.floor(k / 8), v);
      pos = q;
    } else if (wire === 1) pos = p + 8;
    else if (wire === 5) pos = p + 4;
    else if (wire === 2) {
      const [len, q] = varint(at, p);
      field(Math.floor(k / 8), q, len);
      pos = q + len;
    } else throw new ModelError(`unsupported protobuf wire type ${wire} at byte ${pos} (not an ONNX file?)`);
  }
  if (pos !== end) throw new ModelError('truncated protobuf message (not an ONNX file?)');
}

/**
 * The names of a graph's outputs, in order, read from the .onnx file: ModelProto.graph (field 7),
 * GraphProto.output (12), ValueInfoProto.name (1). Embedded weights are skipped, not read.
 */
export function readOnnxOutputNames(path: string): string[] {
  const names: string[] = [];
  walkGraphFile(path, (at, num, start, length) => {
    if (num !== 12) return;
    walk(at, start, start + length, (vnum, vstart, vlen) => {
      if (vnum === 1) names.push(text(at, vstart, vlen));
    });
  });
  return names;
}

/**
 * Calls `field` for each length-delimited field of the main graph (ModelProto.graph, field 7) of
 * the .onnx file at `path`, read a block at a time; errors name the file.
 */
function walkGraphFile(path: string, field: (at: ByteAt, num: number, start: number, length: number) => void): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new ModelError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const at = fileBytes(fd, path);
    walk(at, 0, fstatSync(fd).size, (num, start, length) => {
      if (num === 7) walk(at, start, start + length, (g, s, len) => field(at, g, s, len));
    });
  } catch (err) {
    if (err instanceof ModelError) throw new ModelError(`${path}: ${err.message}`, { cause: err });
    throw err;
  } finally {
    closeSync(fd);
  }
}

// ---- what a graph says about its weights ------------------------------------------------------

/** Bytes per element of TensorProto.DataType codes (float, uint8, int8, uint16, int16, int32, int64, ..., bfloat16). */
const ELEMENT_BYTES: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2 };

export interface InitializerInfo {
  name: string;
  /** TensorProto.DataType (ONNX_TYPE has the common ones). */
  dataType: number;
  dims: number[];
  /** Bytes of the data, wherever it lies (embedded, or in an external data file). */
  bytes: number;
  external: boolean;
}

export interface NodeInfo {
  opType: string;
  domain: string;
  inputs: string[];
  /** Integer attributes (bits, block_size, accuracy_level, ...). */
  ints: Record<string, number>;
}

export interface GraphInfo {
  initializers: InitializerInfo[];
  nodes: NodeInfo[];
  /** Element type of each tensor input of the graph. */
  inputTypes: Record<string, number>;
}

function text(at: ByteAt, start: number, length: number): string {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = at(start + i);
  return b.toString('utf8');
}

/** TensorProto: dims 1 (packed or not), data_type 2, name 8, raw_data 9, external_data 13 (key 1, value 2), data_location 14, typed data 4-7, 10, 11. */
function tensorInfo(at: ByteAt, start: number, length: number): InitializerInfo {
  const t: InitializerInfo = { name: '', dataType: 0, dims: [], bytes: 0, external: false };
  let raw = -1;
  let typed = false;
  let externalLength = -1;
  walk(
    at,
    start,
    start + length,
    (num, s, len) => {
      if (num === 1) {
        for (let p = s; p < s + len; ) {
          const [d, q] = varint(at, p);
          t.dims.push(d);
          p = q;
        }
      } else if (num === 8) t.name = text(at, s, len);
      else if (num === 9) raw = len;
      else if (num === 13) {
        let k = '';
        let v = '';
        walk(at, s, s + len, (f, fs, fl) => {
          if (f === 1) k = text(at, fs, fl);
          else if (f === 2) v = text(at, fs, fl);
        });
        if (k === 'length') externalLength = Number(v);
      } else if ([4, 5, 6, 7, 10, 11].includes(num)) typed = true;
    },
    (num, v) => {
      if (num === 1) t.dims.push(v);
      else if (num === 2) t.dataType = v;
      else if (num === 14) t.external = v === 1;
    },
  );
  const computed = t.dims.reduce((n, d) => n * d, 1) * (ELEMENT_BYTES[t.dataType] ?? 4);
  t.bytes = t.external ? (externalLength >= 0 ? externalLength : computed) : raw >= 0 ? raw : typed ? computed : 0;
  return t;
}

/** NodeProto: input 1, op_type 4, domain 7, attribute 5 (AttributeProto name 1, i 3). */
function nodeInfo(at: ByteAt, start: number, length: number): NodeInfo {
  const node: NodeInfo = { opType: '', domain: '', inputs: [], ints: {} };
  walk(at, start, start + length, (num, s, len) => {
    if (num === 1) node.inputs.push(text(at, s, len));
    else if (num === 4) node.opType = text(at, s, len);
    else if (num === 7) node.domain = text(at, s, len);
    else if (num === 5) {
      let name = '';
      let value: number | undefined;
      walk(
        at,
        s,
        s + len,
        (f, fs, fl) => {
          if (f === 1) name = text(at, fs, fl);
        },
        (f, v) => {
          if (f === 3) value = v;
        },
      );
      if (value !== undefined) node.ints[name] = value;
    }
  });
  return node;
}

/** ValueInfoProto: name 1, type 2 > TypeProto.tensor_type 1 > elem_type 1. */
function inputType(at: ByteAt, start: number, length: number): [string, number] {
  let name = '';
  let elem = 0;
  walk(at, start, start + length, (num, s, len) => {
    if (num === 1) name = text(at, s, len);
    else if (num === 2)
      walk(at, s, s + len, (f, fs, fl) => {
        if (f === 1)
          walk(at, fs, fs + fl, () => {}, (e, v) => {
            if (e === 1) elem = v;
          });
      });
  });
  return [name, elem];
}

/**
 * The initializers (type, shape, bytes), nodes and input types of a graph file's main graph
 * (ModelProto.graph 7: node 1, initializer 5, input 11), read without its weights.
 */
export function readGraphInfo(path: string): GraphInfo {
  const out: GraphInfo = { initializers: [], nodes: [], inputTypes: {} };
  walkGraphFile(path, (at, g, s, len) => {
    if (g === 1) out.nodes.push(nodeInfo(at, s, len));
    else if (g === 5) out.initializers.push(tensorInfo(at, s, len));
    else if (g === 11) {
      const [name, elem] = inputType(at, s, len);
      out.inputTypes[name] = elem;
    }
  });
  return out;
}

// ---- writing -------------------------------------------------------------------------------

type Chunk = Uint8Array;

function varintBytes(n: number): number[] {
  if (!Number.isSafeInteger(n)) throw new RangeError(`varint ${n}`);
  const out: number[] = [];
  // Negative int64 values are ten bytes of two's complement.
  let v = n < 0 ? BigInt.asUintN(64, BigInt(n)) : BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

function concat(chunks: Chunk[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

const enc = new TextEncoder();
const key = (num: number, wire: number) => Uint8Array.from(varintBytes(num * 8 + wire));
const int = (num: number, v: number): Chunk => concat([key(num, 0), Uint8Array.from(varintBytes(v))]);
const bytes = (num: number, b: Uint8Array): Chunk => concat([key(num, 2), Uint8Array.from(varintBytes(b.length)), b]);
const str = (num: number, s: string): Chunk => bytes(num, enc.encode(s));
const msg = (num: number, parts: Chunk[]): Chunk => bytes(num, concat(parts));

/** ONNX TensorProto.DataType codes of the element types the helper graphs use. */
export const ONNX_TYPE = { float32: 1, int64: 7, float16: 10 } as const;
export type OnnxElem = keyof typeof ONNX_TYPE;

export interface OnnxValue {
  name: string;
  type: OnnxElem;
  /** Numbers are fixed sizes, strings symbolic. */
  dims: (number | string)[];
}

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  /** Integer and integer-list attributes. */
  attrs?: Record<string, number | number[]>;
}

export interface OnnxConstant {
  name: string;
  /** int64 values of a 1-D tensor. */
  int64: number[];
}

function valueInfo(num: number, v: OnnxValue): Chunk {
  const dims = v.dims.map((d) => msg(1, [typeof d === 'number' ? int(1, d) : str(2, d)]));
  const tensorType = msg(1, [int(1, ONNX_TYPE[v.type]), msg(2, dims)]);
  return msg(num, [str(1, v.name), msg(2, [tensorType])]);
}

function attribute(name: string, value: number | number[]): Chunk {
  // AttributeProto: name 1, i 3, ints 8, type 20 (INT 2, INTS 7).
  if (typeof value === 'number') return msg(5, [str(1, name), int(3, value), int(20, 2)]);
  return msg(5, [str(1, name), ...value.map((v) => int(8, v)), int(20, 7)]);
}

/** A ModelProto (IR 8, default opset 17) with the given graph, as bytes for InferenceSession.create. */
export function encodeOnnxModel(graph: { name: string; inputs: OnnxValue[]; outputs: OnnxValue[]; nodes: OnnxNode[]; constants?: OnnxConstant[] }): Uint8Array {
  const nodes = graph.nodes.map((n, i) =>
    msg(1, [
      ...n.inputs.map((x) => str(1, x)),
      ...n.outputs.map((x) => str(2, x)),
      str(3, `${n.op}_${i}`),
      str(4, n.op),
      ...Object.entries(n.attrs ?? {}).map(([k, v]) => attribute(k, v)),
    ]),
  );
  // TensorProto: dims 1, data_type 2, int64_data 7, name 8.
  const constants = (graph.constants ?? []).map((c) => msg(5, [int(1, c.int64.length), int(2, ONNX_TYPE.int64), ...c.int64.map((v) => int(7, v)), str(8, c.name)]));
  const g = msg(7, [
    ...nodes,
    str(2, graph.name),
    ...constants,
    ...graph.inputs.map((v) => valueInfo(11, v)),
    ...graph.outputs.map((v) => valueInfo(12, v)),
  ]);
  return concat([int(1, 8), str(2, 'uit'), g, msg(8, [str(1, ''), int(2, 17)])]);
}
