"""Read GPT-J checkpoints into a Hugging Face-named state dict, tensor by tensor.

open_checkpoint() gives LazyTensors: a name, a shape and a load() that reads that one tensor, so
an export holds one weight at a time, not the checkpoint (GPT-J 6B is 24 GB in float32).
load_checkpoint() loads them all.

Sources:
- a Hugging Face folder: config.json (model_type gptj) and model.safetensors,
  pytorch_model.bin, or shards listed in model.safetensors.index.json /
  pytorch_model.bin.index.json;
- a uit model folder (config.json and onnx/model.onnx with its external data,
  as export-gptj.py writes it): the weights are read back from the ONNX
  initializers, so an exported model such as models/uit-tiny can be trained on;
- a single file: .safetensors, or a torch state dict (.bin/.pt/.pth) with HF
  names or ModelCenter names (the UIT release format).

safetensors is parsed by hand (8-byte little-endian header length, JSON
header, raw little-endian data), since the package is not available. A torch
state dict in the zip format (torch.save since 1.6) is read lazily too: its
pickle is read with the storages left on disk (each tensor's storage is a
member of the zip), so a 12 GB pytorch_model.bin is never loaded whole. Only
the legacy (pre-zip) format is loaded whole.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from gptj import HF_IGNORED_SUFFIXES, GPTJConfig, expected_hf_names

StateDict = Dict[str, torch.Tensor]


class CheckpointError(Exception):
    pass


class LazyTensor:
    """A checkpoint tensor not read yet: its shape, and load() that reads it (every call reads again)."""

    __slots__ = ("shape", "dtype", "_load")

    def __init__(self, shape, dtype: torch.dtype, load: Callable[[], torch.Tensor]):
        self.shape = torch.Size(shape)
        self.dtype = dtype
        self._load = load

    def load(self) -> torch.Tensor:
        t = self._load()
        if t.shape != self.shape:
            raise CheckpointError(f"a tensor read with shape {list(t.shape)}, its header says {list(self.shape)}")
        return t

    def float(self) -> torch.Tensor:
        return self.load().float()


Weights = Mapping[str, Union[torch.Tensor, LazyTensor]]


def materialize(x: Union[torch.Tensor, LazyTensor]) -> torch.Tensor:
    return x.load() if isinstance(x, LazyTensor) else x


# ---------------------------------------------------------------- safetensors

_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


_TORCH_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.float32, "I64": torch.int64,
                 "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def open_safetensors(path: str) -> Dict[str, LazyTensor]:
    """The tensors of one .safetensors file, each read on load() (BF16 is widened to float32)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise CheckpointError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (n,) = struct.unpack("<Q", head)
        size = os.fstat(f.fileno()).st_size
        if n > size - 8:
            raise CheckpointError(f"{path}: header length {n} exceeds the file size")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: header is not JSON ({e})") from e
    base = 8 + n

    def reader(name: str, dtype: str, shape: List[int], begin: int, end: int) -> Callable[[], torch.Tensor]:
        def load() -> torch.Tensor:
            with open(path, "rb") as f:
                f.seek(base + begin)
                raw = f.read(end - begin)
            if len(raw) != end - begin:
                raise CheckpointError(f"{path}: tensor {name} runs past the end of the file")
            if dtype == "BF16":
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype=np.dtype(_ST_DTYPES[dtype]).newbyteorder("<"))
            expect = int(np.prod(shape)) if shape else 1
            if arr.size != expect:
                raise CheckpointError(f"{path}: tensor {name} holds {arr.size} values, shape {shape} needs {expect}")
            return torch.from_numpy(arr.reshape(shape).copy())
        return load

    out: Dict[str, LazyTensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _ST_DTYPES and dtype != "BF16":
            raise CheckpointError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        if not (0 <= begin <= end <= size - base):
            raise CheckpointError(f"{path}: tensor {name} lies outside the file (offsets {begin}..{end})")
        out[name] = LazyTensor(shape, _TORCH_DTYPES[dtype], reader(name, dtype, shape, begin, end))
    return out


def read_safetensors(path: str) -> StateDict:
    """All tensors of one .safetensors file (BF16 is widened to float32)."""
    return {k: v.load() for k, v in open_safetensors(path).items()}


def write_safetensors(path: str, tensors: StateDict, metadata: Optional[Dict[str, str]] = None) -> None:
    """Minimal writer (F32/F16/I64), for tests and fixtures."""
    names = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}
    header: Dict[str, object] = {}
    blobs = []
    pos = 0
    for name, t in tensors.items():
        b = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    if metadata:
        header["__metadata__"] = metadata
    hj = json.dumps(header).encode("utf-8")
    hj += b" " * ((-len(hj)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- files

class _StorageRef:
    """A storage of a zip-format torch checkpoint, left in the zip until a tensor on it is loaded."""

    def __init__(self, path: str, member: str, dtype: torch.dtype):
        self.path, self.member, self.dtype = path, member, dtype

    def read(self) -> torch.Tensor:
        with zipfile.ZipFile(self.path) as z:
            raw = bytearray(z.read(self.member))
        return torch.frombuffer(raw, dtype=self.dtype) if raw else torch.empty(0, dtype=self.dtype)


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _lazy_rebuild(storage: _StorageRef, offset: int, size, stride, *_rest) -> LazyTensor:
    def load() -> torch.Tensor:
        flat = storage.read()
        return torch.as_strided(flat, tuple(size), tuple(stride), offset).clone()
    return LazyTensor(tuple(size), storage.dtype, load)


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16, "DoubleStorage": torch.float64,
    "LongStorage": torch.int64, "IntStorage": torch.int32, "ShortStorage": torch.int16, "CharStorage": torch.int8,
    "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


def _open_torch_zip(path: str) -> Optional[dict]:
    """The state dict of a zip-format torch.save file with LazyTensors for tensors; None for other files."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            return None
        prefix = pkl[0][: -len("data.pkl")]
        data = z.read(pkl[0])

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return _lazy_rebuild
            if module == "torch" and name in _STORAGE_DTYPES:
                return _StorageType(_STORAGE_DTYPES[name])
            if module == "collections" and name == "OrderedDict":
                return OrderedDict
            if module.startswith("torch"):
                # Parameters, hooks and the like: not in a plain state dict; load the file whole.
                raise CheckpointError(f"unsupported object {module}.{name}")
            return super().find_class(module, name)

        def persistent_load(self, pid):
            kind, storage_type, key, _location, _numel = pid
            if kind != "storage":
                raise CheckpointError(f"unsupported persistent id {kind}")
            dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else getattr(storage_type, "dtype", None)
            if dtype is None:
                raise CheckpointError(f"unsupported storage type {storage_type}")
            return _StorageRef(path, f"{prefix}data/{key}", dtype)

    import io

    try:
        return Unpickler(io.BytesIO(data)).load()
    except (CheckpointError, pickle.UnpicklingError, AttributeError, ValueError, TypeError):
        return None


def _open_torch(path: str) -> Dict[str, Union[torch.Tensor, LazyTensor]]:
    obj = _open_torch_zip(path)
    if obj is None:
        obj = torch.load(path, map_location="cpu")  # the legacy format, or objects the lazy reader does not know: whole
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, (torch.Tensor, LazyTensor)) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return obj


def _load_torch(path: str) -> StateDict:
    return {k: materialize(v) for k, v in _open_torch(path).items()}


def open_weight_file(path: str) -> Dict[str, Union[torch.Tensor, LazyTensor]]:
    if path.endswith(".safetensors"):
        return open_safetensors(path)
    return _open_torch(path)


def load_weight_file(path: str) -> StateDict:
    return {k: materialize(v) for k, v in open_weight_file(path).items()}


def read_onnx_weights(folder: str) -> StateDict:
    """The state dict of a uit model folder (onnx/model.onnx and its external data), float32:
    parameters stored under their own names ("model.transformer.wte.weight") and Linear weights
    stored transposed by the exporter ("/model/transformer/h.0/attn/q_proj/Transpose_output_0").
    An fp16 export gives its fp16 values, widened."""
    import onnx
    from onnx import numpy_helper

    path = os.path.join(folder, "onnx", "model.onnx")
    try:
        m = onnx.load(path, load_external_data=True)
    except Exception as e:  # onnx raises several kinds for a damaged file or missing external data
        raise CheckpointError(f"{path}: cannot read the ONNX weights ({e})") from e
    sd: StateDict = {}
    for t in m.graph.initializer:
        if t.name.startswith("model."):
            sd[t.name[len("model."):]] = torch.from_numpy(numpy_helper.to_array(t).astype(np.float32))
        else:
            mt = re.fullmatch(r"/model/(.*)/Transpose_output_0", t.name)
            if mt:
                sd[mt.group(1).replace("/", ".") + ".weight"] = torch.from_numpy(numpy_helper.to_array(t).T.astype(np.float32))
    return sd


def is_uit_folder(folder: str) -> bool:
    """An exported model folder: onnx/model.onnx and no PyTorch or safetensors weights."""
    if not os.path.isfile(os.path.join(folder, "onnx", "model.onnx")):
        return False
    hf = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
    return not any(os.path.isfile(os.path.join(folder, n)) for n in hf)


def open_folder_weights(folder: str) -> Dict[str, Union[torch.Tensor, LazyTensor]]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        p = os.path.join(folder, index_name)
        if os.path.isfile(p):
            with open(p, encoding="utf-8") as f:
                weight_map = json.load(f).get("weight_map")
            if not isinstance(weight_map, dict):
                raise CheckpointError(f"{p}: no weight_map")
            sd: Dict[str, Union[torch.Tensor, LazyTensor]] = {}
            for shard in sorted(set(weight_map.values())):
                sd.update(open_weight_file(os.path.join(folder, shard)))
            missing = [k for k in weight_map if k not in sd]
            if missing:
                raise CheckpointError(f"{p}: tensors listed but not in their shard: {_names_list(missing)}")
            return sd
    for name in ("model.safetensors", "pytorch_model.bin"):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return open_weight_file(p)
    raise CheckpointError(f"{folder}: no model.safetensors, pytorch_model.bin or *.index.json")


def load_folder_weights(folder: str) -> StateDict:
    return {k: materialize(v) for k, v in open_folder_weights(folder).items()}


# ---------------------------------------------------------------- names

_MC_LAYER = re.compile(r"^(?:encoder|decoder)\.layers\.(\d+)\.(.+)$")
_MC_LAYER_MAP = {
    "self_att.layernorm_before_attention.weight": "ln_1.weight",
    "self_att.layernorm_before_attention.bias": "ln_1.bias",
    "self_att.self_attention.project_q.weight": "attn.q_proj.weight",
    "self_att.self_attention.project_k.weight": "attn.k_proj.weight",
    "self_att.self_attention.project_v.weight": "attn.v_proj.weight",
    "self_att.self_attention.attention_out.weight": "attn.out_proj.weight",
    "ffn.ffn.w_in.w.weight": "mlp.fc_in.weight",
    "ffn.ffn.w_in.w.bias": "mlp.fc_in.bias",
    "ffn.ffn.w_out.weight": "mlp.fc_out.weight",
    "ffn.ffn.w_out.bias": "mlp.fc_out.bias",
}
_MC_FFN_LN = {"ffn.layernorm_before_ffn.weight": "ln_1.weight", "ffn.layernorm_before_ffn.bias": "ln_1.bias"}
_MC_TOP = {
    "input_embedding.weight": "transformer.wte.weight",
    "output_projection.w.weight": "lm_head.weight",
    "output_projection.w.bias": "lm_head.bias",
    "encoder.output_layernorm.weight": "transformer.ln_f.weight",
    "encoder.output_layernorm.bias": "transformer.ln_f.bias",
    "decoder.output_layernorm.weight": "transformer.ln_f.weight",
    "decoder.output_layernorm.bias": "transformer.ln_f.bias",
}


def is_modelcenter(sd: Weights) -> bool:
    return "input_embedding.weight" in sd or any(_MC_LAYER.match(k) for k in sd)


def _names_list(names: Iterable[str], limit: int = 12) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def modelcenter_to_hf(sd: Weights) -> Dict[str, Union[torch.Tensor, LazyTensor]]:
    """Rename ModelCenter GPT-J tensors to HF names. Unknown names are an error
    (listed); the FFN LayerNorm must equal the attention one (GPT-J has one)."""
    out: Dict[str, Union[torch.Tensor, LazyTensor]] = {}
    unknown: List[str] = []
    ffn_ln: Dict[str, Tuple[str, Union[torch.Tensor, LazyTensor]]] = {}
    for k, v in sd.items():
        k0 = k[len("module."):] if k.startswith("module.") else k
        if k0 in _MC_TOP:
            out[_MC_TOP[k0]] = v
            continue
        m = _MC_LAYER.match(k0)
        if m and m.group(2) in _MC_LAYER_MAP:
            out[f"transformer.h.{m.group(1)}.{_MC_LAYER_MAP[m.group(2)]}"] = v
        elif m and m.group(2) in _MC_FFN_LN:
            ffn_ln[f"transformer.h.{m.group(1)}.{_MC_FFN_LN[m.group(2)]}"] = (k, v)
        else:
            unknown.append(k)
    if unknown:
        raise CheckpointError(
            f"unknown ModelCenter tensor names: {_names_list(unknown)}. Known per layer under "
            "{encoder|decoder}.layers.{i}.: " + ", ".join(list(_MC_LAYER_MAP) + list(_MC_FFN_LN))
            + "; top level: " + ", ".join(_MC_TOP)
        )
    for hf_name, (mc_name, v) in ffn_ln.items():
        if hf_name in out:
            if not torch.equal(materialize(out[hf_name]).float(), materialize(v).float()):
                raise CheckpointError(f"{mc_name} differs from the attention LayerNorm; GPT-J has one LayerNorm per block (ln_1)")
        else:
            out[hf_name] = v
    return out


def normalize_hf_names(sd: Weights, config: GPTJConfig) -> Dict[str, Union[torch.Tensor, LazyTensor]]:
    """Drop known non-weight buffers, add a missing `transformer.` prefix, and
    check the names against GPTJForCausalLM's: a clear error lists unknown and
    missing ones. The tensors are returned as they came (loaded or lazy)."""
    out: Dict[str, Union[torch.Tensor, LazyTensor]] = {}
    for k, v in sd.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k.endswith(HF_IGNORED_SUFFIXES):
            continue
        if not k.startswith(("transformer.", "lm_head.")):
            k = "transformer." + k
        out[k] = v
    expected = expected_hf_names(config)
    exp_set = set(expected)
    missing = [k for k in expected if k not in out]
    unknown = [k for k in out if k not in exp_set]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing: {_names_list(missing)}")
        if unknown:
            parts.append(f"unknown: {_names_list(unknown)}")
        raise CheckpointError("checkpoint does not match a GPT-J of this config; " + "; ".join(parts))
    return {k: out[k] for k in expected}


def infer_config(sd: Weights, base: Optional[dict] = None) -> GPTJConfig:
    """A GPTJConfig from HF-named tensor shapes. n_head and rotary_dim cannot be
    read from shapes: they come from `base`, or GPT-J 6B's (16, 64) when
    n_embd is 4096."""
    base = dict(base or {})
    try:
        vocab, n_embd = sd["transformer.wte.weight"].shape
        n_inner = sd["transformer.h.0.mlp.fc_in.weight"].shape[0]
    except KeyError as e:
        raise CheckpointError(f"cannot infer the shape: tensor {e.args[0]} is missing") from e
    n_layer = 1 + max(int(m.group(1)) for k in sd for m in [re.match(r"transformer\.h\.(\d+)\.", k)] if m)
    if "n_head" not in base:
        if n_embd != 4096:
            raise CheckpointError("cannot infer n_head and rotary_dim from the weights: pass --config with a GPT-J config.json")
        base.update(n_head=16, rotary_dim=64)
    base.update(vocab_size=int(vocab), n_embd=int(n_embd), n_inner=int(n_inner), n_layer=n_layer)
    base.setdefault("n_positions", 2048)
    return GPTJConfig.from_dict(base)


def modelcenter_config_to_hf(d: dict) -> dict:
    """Map ModelCenter GPTjConfig keys to HF GPTJConfig keys (unverified without a real config)."""
    if "dim_model" not in d:
        return d
    m = {"dim_model": "n_embd", "num_heads": "n_head", "num_layers": "n_layer", "dim_ff": "n_inner",
         "vocab_size": "vocab_size", "pos_rotary_dim": "rotary_dim", "norm_eps": "layer_norm_epsilon"}
    out = {hf: d[mc] for mc, hf in m.items() if mc in d}
    out["model_type"] = "gptj"
    return out


def open_checkpoint(src: str, config_path: Optional[str] = None) -> Tuple[Dict[str, Union[torch.Tensor, LazyTensor]], GPTJConfig, str]:
    """(HF-named tensors, each a LazyTensor where the format allows, config, kind) from a folder or a file."""
    cfg_dict: Optional[dict] = None
    if config_path:
        with open(config_path, encoding="utf-8") as f:
            cfg_dict = modelcenter_config_to_hf(json.load(f))
    if os.path.isdir(src):
        cp = os.path.join(src, "config.json")
        if cfg_dict is None:
            if not os.path.isfile(cp):
                raise CheckpointError(f"{src}: no config.json (pass --config)")
            with open(cp, encoding="utf-8") as f:
                cfg_dict = json.load(f)
        if cfg_dict.get("model_type") != "gptj":
            raise CheckpointError(f"{src}: config.json model_type is {cfg_dict.get('model_type')!r}, expected 'gptj'")
        if is_uit_folder(src):
            sd, kind = read_onnx_weights(src), "uit-folder"  # an exported folder, read back whole
        else:
            sd, kind = open_folder_weights(src), "hf-folder"
    elif os.path.isfile(src):
        sd = open_weight_file(src)
        kind = "file"
    else:
        raise CheckpointError(f"{src}: no such file or folder")
    if is_modelcenter(sd):
        sd = modelcenter_to_hf(sd)
        kind = "modelcenter"
    if cfg_dict is None or "n_embd" not in cfg_dict:
        config = infer_config(normalize_prefix(sd), cfg_dict)
    else:
        config = GPTJConfig.from_dict(cfg_dict)
    return normalize_hf_names(sd, config), config, kind


def load_checkpoint(src: str, config_path: Optional[str] = None) -> Tuple[StateDict, GPTJConfig, str]:
    """(HF-named state dict, config, kind) from a folder or a file, every tensor loaded."""
    sd, config, kind = open_checkpoint(src, config_path)
    return {k: materialize(v) for k, v in sd.items()}, config, kind


def random_weights(config: GPTJConfig, seed: int, std: Optional[float] = None) -> Dict[str, LazyTensor]:
    """A random GPT-J, one tensor at a time: GPTJForCausalLM.init_weights(randomize_all=True)'s
    distributions (matrices N(0, std), biases N(0, std), LayerNorm weight 1 + N(0, 0.1) and bias
    N(0, 0.1)), each tensor drawn from its own generator seeded by (seed, name), so any tensor can be
    made alone and in any order, and a 6B model never exists in memory whole."""
    std = config.initializer_range if std is None else std
    from gptj import GPTJForCausalLM

    shapes = {n: tuple(p.shape) for n, p in GPTJForCausalLM(config, device=torch.device("meta")).named_parameters()}

    def maker(name: str, shape) -> Callable[[], torch.Tensor]:
        def load() -> torch.Tensor:
            digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
            g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
            is_ln = ".ln_" in name or name.startswith("transformer.ln_f")
            noise = torch.randn(shape, generator=g)
            if is_ln and name.endswith("weight"):
                return noise.mul_(0.1).add_(1.0)
            return noise.mul_(0.1 if is_ln else std)
        return load

    return {n: LazyTensor(s, torch.float32, maker(n, s)) for n, s in shapes.items()}


def normalize_prefix(sd: Weights) -> Weights:
    return {(k if k.startswith(("transformer.", "lm_head.")) else "transformer." + k): v for k, v in sd.items()}
