"""Graph passes on ONNX decoder exports, with the `onnx` package only.

- prune: drop nodes, initializers and value_info that no graph output needs.
- resolve_dtype_markers: turn scripts/gptj.py's uit::ToFloat32 / uit::CastLike
  markers into Casts, and (for fp16) retype the float32 trace to float16 with
  PyTorch-like promotion, so fp16 exports need no fp16 kernels in PyTorch.
- constants_to_initializers: large Constant nodes become initializers (so they
  go to the shared external data file too).
- ExternalDataWriter / consolidate_external_data: every initializer of at
  least `min_bytes`, of one graph or several, goes to ONE external data file,
  read tensor by tensor (a 6B model is never in memory twice), deduplicated by
  content hash (and by source key, so shared weights are not hashed again),
  offsets aligned.

Models are handled loaded WITHOUT their external data (onnx.load(...,
load_external_data=False)): the proto then stays small whatever the model size.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT
FLOAT16 = TensorProto.FLOAT16
INT64 = TensorProto.INT64
FLOAT_TYPES = (FLOAT, FLOAT16)
MARKER_DOMAIN = "uit"


def load_graph_only(path: str) -> onnx.ModelProto:
    return onnx.load(path, load_external_data=False)


def save_proto_atomic(model: onnx.ModelProto, path: str) -> None:
    """Serialize the proto as is (external data references untouched)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, path)


@contextmanager
def staged_folder(out: str) -> Iterator[str]:
    """A temporary folder beside `out` to write a model folder into: renamed to `out` (replacing it)
    when the block ends, removed if it raises, so `out` is never half written."""
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    os.chmod(work, 0o755)
    try:
        yield work
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def default_opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    raise ValueError("model has no default-domain opset")


def _subgraph_inputs(node: onnx.NodeProto) -> Set[str]:
    """Names a node's subgraphs (If/Loop/Scan) read from the outer scope (over-approximated)."""
    names: Set[str] = set()
    for attr in node.attribute:
        graphs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
        for g in graphs:
            for n in g.node:
                names.update(i for i in n.input if i)
                names.update(_subgraph_inputs(n))
    return names


def prune(graph: onnx.GraphProto) -> None:
    """Remove what no graph output depends on. Graph inputs stay (the contract fixes them)."""
    needed = {o.name for o in graph.output}
    kept: List[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
            needed.update(_subgraph_inputs(node))
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    produced = {o for n in graph.node for o in n.output}
    vis = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(vis)


def remove_identities(graph: onnx.GraphProto) -> None:
    """Bypass Identity nodes whose output is not a graph output."""
    outputs = {o.name for o in graph.output}
    alias: Dict[str, str] = {}
    kept = []
    for node in graph.node:
        node_inputs = [alias.get(i, i) for i in node.input]
        del node.input[:]
        node.input.extend(node_inputs)
        if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and node.output[0] not in outputs:
            alias[node.output[0]] = node.input[0]
            continue
        kept.append(node)
    for node in kept:
        for attr in node.attribute:
            for g in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                _rename_in_subgraph(g, alias)
    del graph.node[:]
    graph.node.extend(kept)


def _rename_in_subgraph(g: onnx.GraphProto, alias: Dict[str, str]) -> None:
    for n in g.node:
        new = [alias.get(i, i) for i in n.input]
        del n.input[:]
        n.input.extend(new)


def _float_types_fp32(model: onnx.ModelProto) -> Dict[str, int]:
    """elem_type of every tensor in the float32 trace (markers read as Identity)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for node in m.graph.node:
        if node.domain == MARKER_DOMAIN:
            del node.input[1:]
            node.op_type = "Identity"
            node.domain = ""
    del m.opset_import[:]
    m.opset_import.extend([o for o in model.opset_import if o.domain != MARKER_DOMAIN])
    inferred = onnx.shape_inference.infer_shapes(m)
    types: Dict[str, int] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    for t in inferred.graph.initializer:
        types[t.name] = t.data_type
    return types


def resolve_dtype_markers(model: onnx.ModelProto, fp16: bool, fp16_inputs: Iterable[str] = ()) -> Set[str]:
    """Replace the uit:: markers and, if fp16, retype the graph to float16.

    fp16 rules, PyTorch's type promotion: float initializers become float16;
    the named graph inputs become float16; Constant outputs are "weak" (like
    Python scalars: they take the type of the strong operand, or stay float32
    with none, e.g. the rotary tables); an op mixing float16 and float32 strong
    inputs computes in float32 (Casts inserted); uit::ToFloat32 gives float32;
    uit::CastLike(x, like) gives like's type. Returns the names of initializers
    whose data must be converted to float16 (see consolidate_external_data).
    """
    g = model.graph
    if not fp16:
        for node in g.node:
            if node.domain == MARKER_DOMAIN:
                del node.input[1:]
                node.op_type, node.domain = "Identity", ""
        _drop_marker_opset(model)
        remove_identities(g)
        return set()

    fp32_types = _float_types_fp32(model)
    ty: Dict[str, int] = {}
    weak: Set[str] = set()
    to_convert: Set[str] = set()
    fp16_inputs = set(fp16_inputs)
    for vi in g.input:
        et = vi.type.tensor_type.elem_type
        if vi.name in fp16_inputs and et == FLOAT:
            vi.type.tensor_type.elem_type = FLOAT16
            et = FLOAT16
        ty[vi.name] = et
    for t in g.initializer:
        if t.data_type == FLOAT:
            to_convert.add(t.name)
            ty[t.name] = FLOAT16
        else:
            ty[t.name] = t.data_type

    new_nodes: List[onnx.NodeProto] = []
    counter = [0]

    def cast(name: str, to: int) -> str:
        counter[0] += 1
        out = f"{name}/uit_cast_{counter[0]}"
        new_nodes.append(helper.make_node("Cast", [name], [out], to=to, name=f"uit_fp16/Cast_{counter[0]}"))
        ty[out] = to
        return out

    for node in g.node:
        if node.domain == MARKER_DOMAIN:
            src = node.input[0]
            target = FLOAT if node.op_type == "ToFloat32" else ty.get(node.input[1], FLOAT)
            if ty.get(src) == target:
                new_nodes.append(helper.make_node("Identity", [src], [node.output[0]], name=node.name))
            else:
                new_nodes.append(helper.make_node("Cast", [src], [node.output[0]], to=target, name=node.name))
            ty[node.output[0]] = target
            continue
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == FLOAT:
                    weak.add(node.output[0])
            ty[node.output[0]] = next((a.t.data_type for a in node.attribute if a.name == "value"), fp32_types.get(node.output[0], FLOAT))
            new_nodes.append(node)
            continue
        if node.op_type == "Cast":
            to = next(a.i for a in node.attribute if a.name == "to")
            ty[node.output[0]] = to
            new_nodes.append(node)
            continue
        float_ins = [i for i in node.input if i and ty.get(i) in FLOAT_TYPES]
        strong = [i for i in float_ins if i not in weak]
        if strong:
            target = FLOAT if any(ty[i] == FLOAT for i in strong) else FLOAT16
            all_weak = False
        else:
            target = FLOAT
            all_weak = bool(float_ins)
        # Float inputs of one op share one type (ONNX's T): cast the odd ones.
        new_inputs = []
        for i in node.input:
            if i and i in float_ins and ty[i] != target:
                i = cast(i, target)
            new_inputs.append(i)
        del node.input[:]
        node.input.extend(new_inputs)
        for o in node.output:
            orig = fp32_types.get(o)
            if orig is None or orig == FLOAT:
                ty[o] = target if float_ins else (orig or FLOAT)
                if all_weak:
                    weak.add(o)
            else:
                ty[o] = orig
        new_nodes.append(node)

    del g.node[:]
    g.node.extend(new_nodes)
    for vi in g.output:
        if vi.name in ty:
            vi.type.tensor_type.elem_type = ty[vi.name]
    del g.value_info[:]
    _drop_marker_opset(model)
    remove_identities(g)
    return to_convert


def _drop_marker_opset(model: onnx.ModelProto) -> None:
    keep = [o for o in model.opset_import if o.domain != MARKER_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def constants_to_initializers(graph: onnx.GraphProto, min_bytes: int = 1024) -> None:
    """Constant nodes holding at least min_bytes become initializers."""
    kept = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            t = node.attribute[0].t
            arr = numpy_helper.to_array(t)
            if arr.nbytes >= min_bytes:
                init = numpy_helper.from_array(arr, node.output[0])
                graph.initializer.append(init)
                continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def params_to_initializers(model: onnx.ModelProto, arrays: Dict[str, Callable[[], np.ndarray]], shapes: Dict[str, List[int]]) -> Dict[str, Callable[[], np.ndarray]]:
    """Graph inputs that are model parameters (a trace with export_params=False)
    become data-less float32 initializers; their data comes later from `arrays`
    (consolidate_external_data's sources), so the exporter never holds a
    serialized copy of the weights. Returns the sources."""
    g = model.graph
    keep = []
    for vi in g.input:
        if vi.name in arrays:
            t = g.initializer.add()
            t.name = vi.name
            t.data_type = FLOAT
            t.dims.extend(shapes[vi.name])
        else:
            keep.append(vi)
    del g.input[:]
    g.input.extend(keep)
    return dict(arrays)


def fold_initializer_transposes(
    model: onnx.ModelProto,
    sources: Dict[str, Callable[[], np.ndarray]],
    source_keys: Optional[Dict[str, object]] = None,
) -> None:
    """Transpose(initializer) -> a transposed initializer (torch exports
    Linear as MatMul(x, Transpose(W)) when it does not constant-fold). With
    source_keys, the new tensor's key is (the source's key, perm)."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    alias: Dict[str, str] = {}
    kept = []
    for node in g.node:
        if node.op_type == "Transpose" and node.input[0] in sources and node.input[0] in inits:
            src = node.input[0]
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            base = inits[src]
            perm = perm or list(reversed(range(len(base.dims))))
            name = node.output[0]
            t = g.initializer.add()
            t.name = name
            t.data_type = base.data_type
            t.dims.extend([base.dims[i] for i in perm])
            sources[name] = (lambda f, p: (lambda: np.transpose(f(), p)))(sources[src], perm)
            if source_keys is not None and src in source_keys:
                source_keys[name] = (source_keys[src], tuple(perm))
            continue
        kept.append(node)
    del g.node[:]
    g.node.extend(kept)


def _external_info(t: onnx.TensorProto) -> Dict[str, str]:
    return {e.key: e.value for e in t.external_data}


def read_tensor_bytes(t: onnx.TensorProto, base_dir: str) -> bytes:
    """The tensor's little-endian bytes, whether embedded or external."""
    if t.data_location == TensorProto.EXTERNAL:
        info = _external_info(t)
        path = os.path.join(base_dir, info["location"])
        offset = int(info.get("offset", 0))
        with open(path, "rb") as f:
            f.seek(offset)
            if "length" in info:
                data = f.read(int(info["length"]))
            else:
                data = f.read()
        return data
    if t.HasField("raw_data"):
        return t.raw_data
    arr = numpy_helper.to_array(t)
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def tenths(log: Callable[[str], None], what: str) -> Callable[[int, int], None]:
    """An ExternalDataWriter progress callback that logs each tenth of the first graph's tensors once
    (a later graph's tensors are mostly written already, and say nothing)."""
    said: Set[int] = set()

    def report(done: int, total: int) -> None:
        tenth = 10 * done // max(1, total)
        if total >= 50 and 0 < tenth < 10 and not said.intersection(range(tenth, 10)):
            said.add(tenth)
            log(f"{what}: {done}/{total} tensors")

    return report


class ExternalDataWriter:
    """Writes the initializers of one or more graphs into ONE external data
    file (base_dir/data_name) and points each proto at it. Identical tensors
    (same type and bytes) are stored once, across all graphs given: the three
    graphs of an export share every weight. A tensor whose data comes from
    `sources` (see params_to_initializers) may carry a key in `source_keys`
    (e.g. the parameter name and a transpose); a key seen before reuses that
    tensor's place without computing, converting or hashing its data again.
    Offsets are aligned to 4096 bytes for large tensors (page aligned, mmap
    friendly) and 64 for small ones; tensors under min_bytes stay embedded.
    The file appears (renamed into place) on close()."""

    def __init__(self, base_dir: str, data_name: str = "model.onnx_data", min_bytes: int = 1024,
                 progress: Optional[Callable[[int, int], None]] = None):
        """progress(done, total): called after each initializer of a graph given to add()."""
        self.base_dir = base_dir
        self.data_name = data_name
        self.min_bytes = min_bytes
        self.progress = progress
        self.tmp_path = os.path.join(base_dir, f"{data_name}.tmp-{os.getpid()}")
        self.out = open(self.tmp_path, "wb")
        self.pos = 0
        self.seen: Dict[bytes, tuple] = {}
        self.seen_keys: Dict[object, tuple] = {}
        self.old_files: Set[str] = set()

    def add(
        self,
        model: onnx.ModelProto,
        to_fp16: Iterable[str] = (),
        sources: Optional[Dict[str, Callable[[], np.ndarray]]] = None,
        source_keys: Optional[Dict[str, object]] = None,
    ) -> None:
        to_fp16 = set(to_fp16)
        sources = sources or {}
        source_keys = source_keys or {}
        total = len(model.graph.initializer)
        for done, t in enumerate(model.graph.initializer, 1):
            if self.progress:
                self.progress(done - 1, total)
            if t.data_location == TensorProto.EXTERNAL:
                self.old_files.add(_external_info(t)["location"])
            fp16 = t.name in to_fp16 and t.data_type == FLOAT
            skey = (source_keys[t.name], fp16) if t.name in sources and t.name in source_keys else None
            if skey is not None and skey in self.seen_keys:
                data_type, raw, place = self.seen_keys[skey]
                _clear_data(t)
                t.data_type = data_type
                if raw is not None:
                    t.raw_data = raw
                else:
                    self._point(t, *place)
                continue
            if t.name in sources:
                arr = sources[t.name]()
                if list(arr.shape) != list(t.dims):
                    raise ValueError(f"source of {t.name} has shape {list(arr.shape)}, the graph says {list(t.dims)}")
                # A little-endian contiguous view, no copy where there is nothing to change: a
                # weight's bytes are hashed and written from the array itself.
                data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).reshape(-1).view(np.uint8)
            else:
                data = np.frombuffer(read_tensor_bytes(t, self.base_dir), dtype=np.uint8)
            if fp16:
                data = data.view("<f4").astype("<f2").view(np.uint8)
                t.data_type = FLOAT16
            _clear_data(t)
            if len(data) < self.min_bytes:
                t.raw_data = data.tobytes()
                if skey is not None:
                    self.seen_keys[skey] = (t.data_type, t.raw_data, None)
                continue
            h = hashlib.sha256(bytes([t.data_type]))
            h.update(memoryview(data))
            key = h.digest()
            if key not in self.seen:
                align = 4096 if len(data) >= 65536 else 64
                pad = (-self.pos) % align
                if pad:
                    self.out.write(b"\0" * pad)
                    self.pos += pad
                self.seen[key] = (self.pos, len(data))
                self.out.write(memoryview(data))
                self.pos += len(data)
            self._point(t, *self.seen[key])
            if skey is not None:
                self.seen_keys[skey] = (t.data_type, None, self.seen[key])

    def _point(self, t: onnx.TensorProto, offset: int, length: int) -> None:
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", self.data_name), ("offset", str(offset)), ("length", str(length))):
            e = t.external_data.add()
            e.key, e.value = k, v

    def close(self) -> Set[str]:
        """Renames the file into place; returns the other external files the graphs referenced before."""
        self.out.close()
        os.replace(self.tmp_path, os.path.join(self.base_dir, self.data_name))
        self.old_files.discard(self.data_name)
        return self.old_files

    def abort(self) -> None:
        self.out.close()
        if os.path.exists(self.tmp_path):
            os.remove(self.tmp_path)


def consolidate_external_data(
    model: onnx.ModelProto,
    base_dir: str,
    data_name: str = "model.onnx_data",
    to_fp16: Iterable[str] = (),
    min_bytes: int = 1024,
    sources: Optional[Dict[str, Callable[[], np.ndarray]]] = None,
) -> Set[str]:
    """ExternalDataWriter for one graph: every initializer of >= min_bytes
    goes to base_dir/data_name, deduplicated. Returns the other external files
    the model referenced before (the caller may delete them)."""
    w = ExternalDataWriter(base_dir, data_name, min_bytes)
    try:
        w.add(model, to_fp16, sources)
    except BaseException:
        w.abort()
        raise
    return w.close()


def _clear_data(t: onnx.TensorProto) -> None:
    for f in ("raw_data", "float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data"):
        t.ClearField(f)
    del t.external_data[:]
    t.data_location = TensorProto.DEFAULT


def needs_consolidation(model: onnx.ModelProto, data_name: str = "model.onnx_data", min_bytes: int = 1024) -> bool:
    """True when some large initializer is embedded or lives in another file."""
    for t in model.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            if _external_info(t).get("location") != data_name:
                return True
        else:
            n = len(t.raw_data) if t.HasField("raw_data") else numpy_helper.to_array(t).nbytes
            if n >= min_bytes:
                return True
    return False


def set_output_shape(vi: onnx.ValueInfoProto, elem_type: int, dims: List[object]) -> None:
    vi.type.tensor_type.elem_type = elem_type
    shape = vi.type.tensor_type.shape
    shape.ClearField("dim")
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, int):
            dim.dim_value = d
        elif d is not None:
            dim.dim_param = str(d)


def dims_of(vi: onnx.ValueInfoProto) -> List[Optional[object]]:
    out: List[Optional[object]] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(d.dim_value)
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out
