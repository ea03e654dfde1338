// What a graph file says about its weights, read from the ONNX protobuf without loading it into
// onnxruntime: each initializer's type, shape and bytes (embedded or in external data), and the
// nodes' op types and inputs. Only the fields this needs are decoded (onnx.proto3: ModelProto.graph
// 7; GraphProto.node 1, initializer 5; NodeProto input 1, op_type 4, domain 7, attribute 5;
// AttributeProto name 1, i 3; TensorProto dims 1, data_type 2, name 8, raw_data 9,
// external_data 13, data_location 14 and the typed data fields).
import { readFileSync } from 'node:fs';

export const ONNX_TYPE = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, DOUBLE: 11, BFLOAT16: 16 } as const;

const ELEMENT_BYTES: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2 };

export interface InitializerInfo {
  name: string;
  dataType: number;
  dims: number[];
  /** Bytes of the data, wherever it lies. */
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
  /** Element type of each graph input (tensor inputs only). */
  inputTypes: Record<string, number>;
}

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }
  varint(): number {
    let result = 0;
    let shift = 1;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * shift;
      if (b < 0x80) return result;
      shift *= 128;
    }
  }
  /** Field number and wire type of the next key. */
  key(): [number, number] {
    const k = this.varint();
    return [Math.floor(k / 8), k & 7];
  }
  /** The bounds of a length-delimited field. */
  span(): [number, number] {
    const n = this.varint();
    const start = this.pos;
    this.pos += n;
    if (this.pos > this.end) throw new Error('truncated field');
    return [start, this.pos];
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.span();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
  string([a, b]: [number, number]): string {
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + a, b - a).toString('utf8');
  }
}

function tensorInfo(buf: Uint8Array, [start, end]: [number, number]): InitializerInfo {
  const r = new Reader(buf, start, end);
  const info: InitializerInfo = { name: '', dataType: 0, dims: [], bytes: 0, external: false };
  let rawBytes = -1;
  let typedBytes = 0;
  let externalLength = -1;
  while (r.pos < end) {
    const [field, wire] = r.key();
    if (field === 1) {
      if (wire === 2) {
        const [a, b] = r.span();
        const p = new Reader(buf, a, b);
        while (p.pos < b) info.dims.push(p.varint());
      } else info.dims.push(r.varint());
    } else if (field === 2 && wire === 0) info.dataType = r.varint();
    else if (field === 8 && wire === 2) info.name = r.string(r.span());
    else if (field === 9 && wire === 2) {
      const [a, b] = r.span();
      rawBytes = b - a;
    } else if (field === 13 && wire === 2) {
      const [a, b] = r.span();
      const e = new Reader(buf, a, b);
      let k = '';
      let v = '';
      while (e.pos < b) {
        const [f, w] = e.key();
        if (f === 1 && w === 2) k = e.string(e.span());
        else if (f === 2 && w === 2) v = e.string(e.span());
        else e.skip(w);
      }
      if (k === 'length') externalLength = Number(v);
    } else if (field === 14 && wire === 0) info.external = r.varint() === 1;
    else if (wire === 2 && [4, 5, 6, 7, 10, 11].includes(field)) {
      const [a, b] = r.span(); // packed typed data (float_data, int32_data, ...): its size is enough
      typedBytes += b - a;
    } else r.skip(wire);
  }
  const elements = info.dims.reduce((n, d) => n * d, 1);
  const computed = elements * (ELEMENT_BYTES[info.dataType] ?? 4);
  info.bytes = info.external ? (externalLength >= 0 ? externalLength : computed) : rawBytes >= 0 ? rawBytes : typedBytes > 0 ? computed : 0;
  return info;
}

function nodeInfo(buf: Uint8Array, [start, end]: [number, number]): NodeInfo {
  const r = new Reader(buf, start, end);
  const node: NodeInfo = { opType: '', domain: '', inputs: [], ints: {} };
  while (r.pos < end) {
    const [field, wire] = r.key();
    if (field === 1 && wire === 2) node.inputs.push(r.string(r.span()));
    else if (field === 4 && wire === 2) node.opType = r.string(r.span());
    else if (field === 7 && wire === 2) node.domain = r.string(r.span());
    else if (field === 5 && wire === 2) {
      const [a, b] = r.span();
      const at = new Reader(buf, a, b);
      let name = '';
      let value: number | undefined;
      while (at.pos < b) {
        const [f, w] = at.key();
        if (f === 1 && w === 2) name = at.string(at.span());
        else if (f === 3 && w === 0) value = at.varint();
        else at.skip(w);
      }
      if (value !== undefined) node.ints[name] = value;
    } else r.skip(wire);
  }
  return node;
}

/** A ValueInfoProto's name and tensor element type (name 1, type 2 > tensor_type 1 > elem_type 1). */
function valueInfo(buf: Uint8Array, [start, end]: [number, number]): [string, number] {
  const r = new Reader(buf, start, end);
  let name = '';
  let elem = 0;
  while (r.pos < end) {
    const [f, w] = r.key();
    if (f === 1 && w === 2) name = r.string(r.span());
    else if (f === 2 && w === 2) {
      const [a, b] = r.span();
      const t = new Reader(buf, a, b);
      while (t.pos < b) {
        const [tf, tw] = t.key();
        if (tf === 1 && tw === 2) {
          const [c, d] = t.span();
          const tt = new Reader(buf, c, d);
          while (tt.pos < d) {
            const [ef, ew] = tt.key();
            if (ef === 1 && ew === 0) elem = tt.varint();
            else tt.skip(ew);
          }
        } else t.skip(tw);
      }
    } else r.skip(w);
  }
  return [name, elem];
}

/** The initializers, nodes and input types of a graph file (its main graph; subgraphs are not read). */
export function readGraphInfo(path: string): GraphInfo {
  const buf = readFileSync(path);
  const top = new Reader(buf);
  const out: GraphInfo = { initializers: [], nodes: [], inputTypes: {} };
  while (top.pos < buf.length) {
    const [field, wire] = top.key();
    if (field !== 7 || wire !== 2) {
      top.skip(wire);
      continue;
    }
    const [a, b] = top.span();
    const g = new Reader(buf, a, b);
    while (g.pos < b) {
      const [f, w] = g.key();
      if (f === 1 && w === 2) out.nodes.push(nodeInfo(buf, g.span()));
      else if (f === 5 && w === 2) out.initializers.push(tensorInfo(buf, g.span()));
      else if (f === 11 && w === 2) {
        const [name, elem] = valueInfo(buf, g.span());
        out.inputTypes[name] = elem;
      } else g.skip(w);
    }
  }
  return out;
}
