"""Weight-only quantization of a decoder's linear layers (the logic behind scripts/quantize-model.py,
also called by scripts/export_gptj.py with --quantize).

Every MatMul whose second input is a constant 2-D weight of a linear layer (one of its sides the
model's hidden size: q, k, v, out, fc_in, fc_out; the LM head only with lm_head=True) becomes

- int4: MatMulNBits (com.microsoft) bits 4, block-wise scales (scripts/nbits.py), symmetric or
  with zero points; accuracy_level 4 lets onnxruntime's CPU kernel quantize the activations to
  int8 per block, which is what makes batch-1 decode fast on the CPU (DESIGN.md);
- int8 with op "dynamic" (the CPU default): DynamicQuantizeMatMul (com.microsoft), int8 weights
  with one scale per output column, activations quantized to uint8 per call; onnxruntime's
  MatMulNBits bits=8 has no fast CPU kernel (docs/export.md, "Which int8");
- int8 with op "nbits": MatMulNBits bits 8, block-wise, for providers that run it well
  (WebGPU, unmeasured here).

With embeddings=True the token embedding (a Gather from a constant [vocab, hidden] table) becomes
GatherBlockQuantized (com.microsoft) with the same bits and blocks along the hidden size: the rows
a step reads are dequantized, the table stays small (GPT-J 6B's is 825 MB in float32).

Both graphs of a folder (model.onnx and model.fast.onnx) point at the same quantized tensors of
one model.onnx_data, as before. Other initializers are copied tensor by tensor; nothing holds more
than one weight (and its quantized form) at a time.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Set, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper

import nbits
import onnx_passes as P
import tokenizer_files as T

MS_DOMAIN = "com.microsoft"
SCHEMES = ("int4", "int8")
INT8_OPS = ("dynamic", "nbits")
NP_TYPES = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.UINT8: np.uint8,
            TensorProto.INT8: np.int8, TensorProto.INT64: np.int64, TensorProto.INT32: np.int32,
            TensorProto.BOOL: np.bool_, TensorProto.DOUBLE: np.float64}


class QuantizeError(Exception):
    pass


@dataclass(frozen=True)
class QuantOptions:
    """What --quantize and its options ask for."""

    scheme: str = "int4"
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4
    lm_head: bool = False
    int8_op: str = "dynamic"
    embeddings: bool = False

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise QuantizeError(f"--quantize must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        if self.int8_op not in INT8_OPS:
            raise QuantizeError(f"--int8-op must be one of {', '.join(INT8_OPS)}, not {self.int8_op!r}")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise QuantizeError(f"--accuracy-level must be 0 to 4, not {self.accuracy_level}")
        try:
            self.spec
        except ValueError as e:
            raise QuantizeError(f"--block-size: {e}") from e

    @property
    def op(self) -> str:
        return "DynamicQuantizeMatMul" if self.scheme == "int8" and self.int8_op == "dynamic" else "MatMulNBits"

    @property
    def spec(self) -> nbits.QuantSpec:
        return nbits.QuantSpec(bits=4 if self.scheme == "int4" else 8, block=self.block_size, symmetric=self.symmetric)

    @property
    def embedding_spec(self) -> nbits.QuantSpec:
        """The token embedding's blocks: always block-wise (GatherBlockQuantized), even for int8 as
        DynamicQuantizeMatMul."""
        return self.spec

    def record(self) -> dict:
        """What config.json (`uit_quantization`) and parity.json record."""
        d = {"scheme": self.scheme, "op": self.op, "lm_head": self.lm_head, "embeddings": self.embeddings}
        if self.op == "MatMulNBits":
            d.update(bits=self.spec.bits, block_size=self.block_size, symmetric=self.symmetric, accuracy_level=self.accuracy_level)
        else:
            d.update(bits=8, per="output column", symmetric=True)
        return d

    def key(self) -> tuple:
        return tuple(sorted(asdict(self).items()))


# ---------------------------------------------------------------- per-column int8 (DynamicQuantizeMatMul)

def quantize_int8_columns(w: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """w [K, N] -> (int8 [K, N], float32 scales [N]): symmetric, one scale per output column, codes
    in -127..127 (onnxruntime's DynamicQuantizeMatMul with a zero point of 0)."""
    amax = np.abs(w).max(axis=0).astype(np.float32)
    scale = (amax / 127).astype(np.float32)
    inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale != 0)
    q = np.empty(w.shape, dtype=np.int8)
    step = max(1, nbits.CHUNK_VALUES // max(1, w.shape[1]))
    for k0 in range(0, w.shape[0], step):
        q[k0 : k0 + step] = np.clip(np.rint(w[k0 : k0 + step].astype(np.float32) * inv), -127, 127)
    return q, scale


def fake_quantize_embedding(w: np.ndarray, opts: QuantOptions) -> np.ndarray:
    """float32 embedding table w [vocab, hidden] as GatherBlockQuantized sees it."""
    return nbits.fake_quantize(np.ascontiguousarray(w.T), opts.embedding_spec).T


def fake_quantize(w: np.ndarray, opts: QuantOptions) -> np.ndarray:
    """float32 w [K, N] as the quantized graph sees it (quantized, then dequantized)."""
    if opts.op == "DynamicQuantizeMatMul":
        q, s = quantize_int8_columns(w)
        return q.astype(np.float32) * s
    return nbits.fake_quantize(w, opts.spec)


# ---------------------------------------------------------------- the graph pass

def hidden_size(config: dict, model: Optional[onnx.ModelProto] = None) -> Optional[int]:
    """config.json's hidden size, else the width of the graph's token embedding (a Gather of
    input_ids from a constant [vocab_size, hidden] table)."""
    for k in ("n_embd", "hidden_size", "d_model"):
        if isinstance(config.get(k), int):
            return config[k]
    if model is not None:
        inits = {t.name: t for t in model.graph.initializer}
        vocab = config.get("vocab_size")
        for n in model.graph.node:
            t = inits.get(n.input[0]) if n.op_type == "Gather" and len(n.input) == 2 else None
            if t is not None and len(t.dims) == 2 and n.input[1] == "input_ids" and (vocab is None or t.dims[0] == vocab):
                return int(t.dims[1])
    return None


@dataclass
class Plan:
    """What quantize_matmuls did to one graph."""

    quantized: List[str]  # weight initializer names
    skipped: List[str]  # constant-weight MatMuls left alone, with why


class _Quantizer:
    """Quantizes each weight once (by source key) and hands out its parts; keeps one result."""

    def __init__(self, opts: QuantOptions):
        self.opts = opts
        self.last_key: object = None
        self.last: Optional[dict] = None

    def parts(self, key: object, load: Callable[[], np.ndarray], scale_type: int, embedding: bool = False) -> dict:
        if key != self.last_key or self.last is None:
            w = load()
            if embedding:
                # [vocab, hidden], blocks along hidden: nbits' [K, N] layout with K = hidden, N = vocab.
                qw = nbits.quantize(w.T, self.opts.embedding_spec)
                V, nb = qw.N, qw.blocks
                self.last = {"data": qw.b.reshape(V, -1), "scales": qw.scales.reshape(V, nb),
                             "zero_points": None if qw.zero_points is None else qw.zero_points.reshape(V, -1)}
            elif self.opts.op == "DynamicQuantizeMatMul":
                q, s = quantize_int8_columns(w)
                self.last = {"B": q, "scales": s, "zero_points": np.zeros(q.shape[1], dtype=np.int8)}
            else:
                qw = nbits.quantize(w, self.opts.spec)
                self.last = {"B": qw.b, "scales": qw.scales, "zero_points": qw.zero_points}
            if scale_type == TensorProto.FLOAT16:
                self.last["scales"] = self.last["scales"].astype(np.float16)
            self.last_key = key
        return self.last


def quantize_matmuls(
    model: onnx.ModelProto,
    opts: QuantOptions,
    sources: Dict[str, Callable[[], np.ndarray]],
    source_keys: Dict[str, object],
    hidden: Optional[int],
    vocab: Optional[int],
    fp16_weights: Set[str] = frozenset(),
    quantizer: Optional[_Quantizer] = None,
) -> Plan:
    """Replace the linear layers' MatMuls of `model` (graph only, weights as data-less or external
    initializers) by quantized ops. `sources[name]()` gives an initializer's float array; the new
    initializers get sources too (quantized on first use, once per source key), so
    P.ExternalDataWriter writes them like any weight. fp16_weights: float32 initializers that the
    writer turns to float16 (the exporter's --dtype fp16): their scales are float16 too."""
    g = model.graph
    if opts.op == "DynamicQuantizeMatMul" and (fp16_weights or any(t.data_type == TensorProto.FLOAT16 for t in g.initializer)):
        raise QuantizeError("int8 with --int8-op dynamic needs a float32 model (DynamicQuantizeMatMul takes float32 activations); "
                            "for an fp16 model use --int8-op nbits")
    inits = {t.name: t for t in g.initializer}
    quantizer = quantizer or _Quantizer(opts)
    spec = opts.spec
    done: Dict[str, List[str]] = {}
    plan = Plan([], [])
    new_nodes = []
    for node in g.node:
        if opts.embeddings and node.op_type == "Gather" and node.domain in ("", "ai.onnx"):
            q = _quantize_gather(g, node, inits, opts, sources, source_keys, hidden, fp16_weights, quantizer, done, plan)
            if q is not None:
                new_nodes.append(q)
                continue
        w = node.input[1] if node.op_type == "MatMul" and node.domain in ("", "ai.onnx") and len(node.input) == 2 else None
        t = inits.get(w) if w else None
        if t is None or len(t.dims) != 2 or t.data_type not in (TensorProto.FLOAT, TensorProto.FLOAT16):
            new_nodes.append(node)
            continue
        K, N = int(t.dims[0]), int(t.dims[1])
        is_head = vocab is not None and N == vocab
        why = None
        if is_head and not opts.lm_head:
            why = "the LM head (quantized only with --lm-head)"
        elif not is_head and hidden is not None and hidden not in (K, N):
            why = f"[{K}, {N}] is not a linear layer of a hidden size of {hidden}"
        elif hidden is None and min(K, N) < 128:
            why = f"[{K}, {N}] is small (no hidden size in config.json to tell a linear layer)"
        if why:
            plan.skipped.append(f"{w}: {why}")
            new_nodes.append(node)
            continue
        if w not in done:
            key = (source_keys.get(w, ("initializer", w)), opts.key())
            scale_type = TensorProto.FLOAT16 if (t.data_type == TensorProto.FLOAT16 or w in fp16_weights) else TensorProto.FLOAT
            load = (lambda f: (lambda: np.asarray(f(), dtype=np.float32)))(sources[w])
            names = []
            if opts.op == "DynamicQuantizeMatMul":
                shapes = {"B": ([K, N], TensorProto.INT8), "scales": ([N], TensorProto.FLOAT), "zero_points": ([N], TensorProto.INT8)}
            else:
                nb = nbits.n_blocks(K, spec.block)
                shapes = {"B": ([N, nb, spec.block * spec.bits // 8], TensorProto.UINT8), "scales": ([N * nb], scale_type)}
                if not spec.symmetric:
                    shapes["zero_points"] = ([N * (-(-nb * spec.bits // 8))], TensorProto.UINT8)
            for part, (dims, dtype) in shapes.items():
                name = f"{w}.{opts.scheme}_{part}"
                init = g.initializer.add()
                init.name, init.data_type = name, dtype
                init.dims.extend(dims)
                sources[name] = (lambda k, ld, st, p: (lambda: quantizer.parts(k, ld, st)[p]))(key, load, scale_type, part)
                source_keys[name] = (key, part)
                names.append(name)
            done[w] = names
            plan.quantized.append(w)
        out = node.output[0]
        if opts.op == "DynamicQuantizeMatMul":
            new_nodes.append(helper.make_node("DynamicQuantizeMatMul", [node.input[0], *done[w]], [out], name=node.name, domain=MS_DOMAIN))
        else:
            new_nodes.append(helper.make_node("MatMulNBits", [node.input[0], *done[w]], [out], name=node.name, domain=MS_DOMAIN,
                                              K=K, N=N, bits=spec.bits, block_size=spec.block, accuracy_level=opts.accuracy_level))
    del g.node[:]
    g.node.extend(new_nodes)
    if plan.quantized and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    P.prune(g)
    return plan


def _quantize_gather(g, node, inits, opts: QuantOptions, sources, source_keys, hidden, fp16_weights, quantizer, done, plan):
    """GatherBlockQuantized for a Gather of rows from a constant [vocab, hidden] table, or None."""
    w = node.input[0]
    t = inits.get(w)
    axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
    if t is None or len(t.dims) != 2 or axis != 0 or t.data_type not in (TensorProto.FLOAT, TensorProto.FLOAT16):
        return None
    V, E = int(t.dims[0]), int(t.dims[1])
    if hidden is not None and E != hidden:
        return None
    if any(w in n.input for n in g.node if n is not node):
        plan.skipped.append(f"{w}: the embedding table is read by other nodes too (a tied LM head?): a quantized copy would add to it")
        return None
    spec = opts.embedding_spec
    if w not in done:
        key = (source_keys.get(w, ("initializer", w)), opts.key(), "embedding")
        scale_type = TensorProto.FLOAT16 if (t.data_type == TensorProto.FLOAT16 or w in fp16_weights) else TensorProto.FLOAT
        load = (lambda f: (lambda: np.asarray(f(), dtype=np.float32)))(sources[w])
        nb = nbits.n_blocks(E, spec.block)
        shapes = {"data": ([V, nb * spec.block * spec.bits // 8], TensorProto.UINT8), "scales": ([V, nb], scale_type)}
        if not spec.symmetric:
            shapes["zero_points"] = ([V, -(-nb * spec.bits // 8)], TensorProto.UINT8)
        names = []
        for part, (dims, dtype) in shapes.items():
            name = f"{w}.{opts.scheme}_{part}"
            init = g.initializer.add()
            init.name, init.data_type = name, dtype
            init.dims.extend(dims)
            sources[name] = (lambda k, ld, st, p: (lambda: quantizer.parts(k, ld, st, embedding=True)[p]))(key, load, scale_type, part)
            source_keys[name] = (key, part)
            names.append(name)
        done[w] = names
        plan.quantized.append(w)
    data, scales, *zp = done[w]
    return helper.make_node("GatherBlockQuantized", [data, node.input[1], scales, *zp], [node.output[0]], name=node.name, domain=MS_DOMAIN,
                            bits=spec.bits, block_size=spec.block, gather_axis=0, quantize_axis=1)


def is_quantized(model: onnx.ModelProto) -> bool:
    return any(n.domain == MS_DOMAIN and n.op_type in ("MatMulNBits", "DynamicQuantizeMatMul", "GatherBlockQuantized") for n in model.graph.node)


# ---------------------------------------------------------------- a folder

def tensor_array(t: onnx.TensorProto, base_dir: str) -> np.ndarray:
    if t.data_type not in NP_TYPES:
        raise QuantizeError(f"initializer {t.name} has an unsupported data type {t.data_type}")
    data = P.read_tensor_bytes(t, base_dir)
    return np.frombuffer(data, dtype=np.dtype(NP_TYPES[t.data_type]).newbyteorder("<")).reshape(list(t.dims))


def _external_key(t: onnx.TensorProto) -> Optional[tuple]:
    if t.data_location != TensorProto.EXTERNAL:
        return None
    info = {e.key: e.value for e in t.external_data}
    return ("external", info.get("location"), info.get("offset", "0"), info.get("length"))


GRAPHS = ("model.onnx", "model.fast.onnx")


def quantize_folder(src: str, out: str, opts: QuantOptions, force: bool = False, log=print) -> str:
    """Write OUT: SRC's model folder with its linear layers quantized (both graphs, one data file)."""
    import fast_graphs

    src_onnx = fast_graphs.onnx_dir_of(src)
    names = [n for n in GRAPHS if os.path.isfile(os.path.join(src_onnx, n))]
    cfg_path = os.path.join(src, "config.json")
    if not os.path.isfile(cfg_path):
        raise QuantizeError(f"{src}: config.json is missing (not a model folder)")
    with open(cfg_path, encoding="utf-8") as f:
        config = json.load(f)
    if "uit_quantization" in config:
        raise QuantizeError(f"{src} is quantized already ({config['uit_quantization'].get('scheme')}); quantize the unquantized folder")
    out = os.path.abspath(out)
    if os.path.abspath(src) == out:
        raise QuantizeError("OUT must be another folder than SRC")
    if os.path.exists(out) and os.listdir(out) and not force:
        raise QuantizeError(f"{out} exists and is not empty (use --force to replace it)")
    with P.staged_folder(out) as work:
        onnx_out = os.path.join(work, "onnx")
        os.makedirs(onnx_out)
        # Everything but the graphs and their data: config, tokenizer, generation config, docs.
        for entry in sorted(os.listdir(src)):
            p = os.path.join(src, entry)
            # (parity.json of optimum's layout, next to model.onnx, goes to onnx/ below, marked)
            if os.path.isfile(p) and not entry.endswith((".onnx", ".onnx_data")) and "onnx_data" not in entry and entry != "parity.json":
                shutil.copy2(p, os.path.join(work, entry))
        vocab = config.get("vocab_size")
        quantizer = _Quantizer(opts)
        writer = P.ExternalDataWriter(onnx_out, fast_graphs.DATA_NAME, progress=P.tenths(log, "writing the weights"))
        protos = []
        try:
            for name in names:
                m = P.load_graph_only(os.path.join(src_onnx, name))
                if is_quantized(m):
                    raise QuantizeError(f"{os.path.join(src_onnx, name)} is quantized already")
                sources: Dict[str, Callable[[], np.ndarray]] = {}
                keys: Dict[str, object] = {}
                for t in m.graph.initializer:
                    sources[t.name] = (lambda tt: (lambda: tensor_array(tt, src_onnx)))(onnx.TensorProto.FromString(t.SerializeToString()))
                    k = _external_key(t)
                    if k is not None:
                        keys[t.name] = k
                plan = quantize_matmuls(m, opts, sources, keys, hidden_size(config, m), vocab, quantizer=quantizer)
                if not plan.quantized:
                    raise QuantizeError(f"{name}: no MatMul with a constant linear-layer weight to quantize" + (f" (skipped: {'; '.join(plan.skipped[:4])})" if plan.skipped else ""))
                log(f"{name}: {len(plan.quantized)} weights to {opts.op} {opts.scheme}" + (f"; left as they were: {len(plan.skipped)} ({plan.skipped[0]}{', ...' if len(plan.skipped) > 1 else ''})" if plan.skipped else ""))
                writer.add(m, (), sources, keys)
                protos.append((name, m))
        except BaseException:
            writer.abort()
            raise
        writer.close()
        for name, m in protos:
            m.producer_name = "uit scripts/quantize-model.py"
            P.save_proto_atomic(m, os.path.join(onnx_out, name))
        config["uit_quantization"] = opts.record()
        T.write_json(os.path.join(work, "config.json"), config)
        parity = os.path.join(src_onnx, "parity.json")
        if os.path.isfile(parity):
            with open(parity, encoding="utf-8") as f:
                record = json.load(f)
            mark_parity_unquantized_reference(record, opts)
            T.write_json(os.path.join(onnx_out, "parity.json"), record)
    log(f"wrote {out}")
    return out


def mark_parity_unquantized_reference(record: dict, opts: QuantOptions) -> None:
    """parity.json of a folder quantized after export: its PyTorch outputs are the unquantized
    model's, so check-parity reports the distance to them without failing on it (the graphs are
    still checked against each other)."""
    record["quantization"] = {**opts.record(), "reference": "unquantized"}


def add_arguments(ap, with_scheme_required: bool) -> None:
    """The quantization options, shared by export-gptj.py and quantize-model.py."""
    ap.add_argument("--quantize", choices=SCHEMES, required=with_scheme_required, default=None,
                    help="weight-only quantization of the linear layers: int4 (MatMulNBits) or int8 (see --int8-op)")
    ap.add_argument("--block-size", type=int, default=32, help="values per scale along K (MatMulNBits; default 32)")
    ap.add_argument("--asym", action="store_true", help="asymmetric blocks with zero points (default: symmetric)")
    ap.add_argument("--accuracy-level", type=int, default=4,
                    help="MatMulNBits accuracy_level: 4 quantizes activations to int8 per block (fast on the CPU; default), 0 computes in float32")
    ap.add_argument("--lm-head", action="store_true", help="quantize the LM head too (default: it stays in the model's dtype)")
    ap.add_argument("--embeddings", action="store_true", help="quantize the token embedding too (GatherBlockQuantized, same bits and blocks)")
    ap.add_argument("--int8-op", choices=INT8_OPS, default="dynamic",
                    help="int8 as DynamicQuantizeMatMul (dynamic: fast on the CPU; default) or MatMulNBits bits 8 (nbits: for WebGPU)")


def options_from_args(args) -> Optional[QuantOptions]:
    if not args.quantize:
        return None
    return QuantOptions(scheme=args.quantize, block_size=args.block_size, symmetric=not args.asym,
                        accuracy_level=args.accuracy_level, lm_head=args.lm_head, int8_op=args.int8_op, embeddings=args.embeddings)


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="quantize-model.py",
        description="Quantize the linear layers of an exported model folder (scripts/export-gptj.py, or optimum with or without "
        "scripts/add-fast-graphs.py) to int4 or int8 weights, into a new folder. Both graphs keep their inputs and outputs and "
        "share one model.onnx_data. Needs the onnx and numpy packages only.",
        epilog="examples:\n"
        "  /usr/bin/python3 scripts/quantize-model.py out/gpt-j-6b-onnx out/gpt-j-6b-int4 --quantize int4\n"
        "  /usr/bin/python3 scripts/quantize-model.py models/uit-tiny /tmp/uit-tiny-int8 --quantize int8\n"
        "  /usr/bin/python3 scripts/quantize-model.py gptj-fp16 gptj-fp16-int4 --quantize int4 --block-size 128 --asym   # for a GPU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("src", help="model folder (config.json, tokenizer.json, onnx/model.onnx [+ model.fast.onnx])")
    ap.add_argument("out", help="the quantized model folder to write")
    add_arguments(ap, with_scheme_required=True)
    ap.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = ap.parse_args(argv)
    import fast_graphs

    try:
        quantize_folder(args.src, args.out, options_from_args(args), force=args.force)
    except (QuantizeError, fast_graphs.GraphPassError, FileNotFoundError) as e:
        print(f"quantize-model: error: {e}", file=sys.stderr)
        return 2
    return 0
