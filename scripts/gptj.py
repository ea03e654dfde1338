"""A small GPT-J in PyTorch with Hugging Face's parameter names.

No `transformers` needed: this module is what export-gptj.py traces to ONNX and
what the embedded-model trainer trains. Parameter names match
`GPTJForCausalLM.state_dict()`, so HF checkpoints load with `load_state_dict`.

Architecture (GPT-J): token embedding, n_layer blocks of parallel attention and
MLP on one LayerNorm (h = h + attn(ln_1(h)) + mlp(ln_1(h))), final LayerNorm,
lm_head with bias. Rotary position embedding on the first `rotary_dim` dims of
each query/key head, with GPT-J's interleaved pairs (rotate_every_two).

Export rules (Debian's torch 1.13 ONNX exporter mishandles negative dims and
`...` slicing, and tracing freezes Python ints into constants): every dim below
is explicit and non-negative, shapes come from tensor.size() at run time, and
the attention mask is built from `position_ids` and `attention_mask` only:
  key position   = cumsum(attention_mask over past+new) - 1
  query position = position_ids
  a key is visible iff attention_mask == 1 and key position <= query position.
That handles left padding and a past buffer with unused (masked) slots.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

PastKV = List[Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class GPTJConfig:
    """The fields of Hugging Face's GPTJConfig that the architecture uses."""

    vocab_size: int = 50400
    n_positions: int = 2048
    n_embd: int = 4096
    n_layer: int = 28
    n_head: int = 16
    rotary_dim: Optional[int] = 64
    n_inner: Optional[int] = None
    activation_function: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    bos_token_id: int = 50256
    eos_token_id: int = 50256
    tie_word_embeddings: bool = False
    extra: dict = field(default_factory=dict)  # other keys of config.json, kept verbatim

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        hd = self.head_dim
        if self.rotary_dim is not None and (self.rotary_dim > hd or self.rotary_dim % 2 != 0):
            raise ValueError(f"rotary_dim ({self.rotary_dim}) must be even and <= head_dim ({hd})")
        if self.activation_function not in ("gelu_new", "gelu"):
            raise ValueError(f"unsupported activation_function {self.activation_function!r}")
        if self.tie_word_embeddings:
            raise ValueError("tie_word_embeddings=true is not GPT-J; this module keeps lm_head separate")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def rot_dim(self) -> int:
        # HF treats rotary_dim=None as "rotate the whole head".
        return self.rotary_dim if self.rotary_dim is not None else self.head_dim

    @property
    def inner_dim(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @classmethod
    def from_dict(cls, d: dict) -> "GPTJConfig":
        if d.get("model_type", "gptj") != "gptj":
            raise ValueError(f"config model_type is {d.get('model_type')!r}, expected 'gptj'")
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        return cls(**known, extra=extra)

    @classmethod
    def from_json_file(cls, path: str) -> "GPTJConfig":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_hf_dict(self) -> dict:
        """config.json content in Hugging Face's GPTJConfig layout."""
        d = asdict(self)
        extra = d.pop("extra")
        out = dict(extra)
        out.update(d)
        out["model_type"] = "gptj"
        out.setdefault("architectures", ["GPTJForCausalLM"])
        out.setdefault("torch_dtype", "float32")
        return out


class _CastLike(torch.autograd.Function):
    """x cast to like's dtype, exported as the marker op uit::CastLike.

    Tracing runs in float32, where a cast to float32 is a no-op that the tracer
    drops; the marker keeps the place in the graph, so the fp16 pass
    (scripts/onnx_passes.py) knows where the model returns to the compute
    dtype. The pass always removes the markers."""

    @staticmethod
    def forward(ctx, x, like):  # type: ignore[override]
        return x.to(like.dtype) if x.dtype != like.dtype else x.clone()

    @staticmethod
    def symbolic(g, x, like):
        out = g.op("uit::CastLike", x, like)
        out.setType(x.type())
        return out


class _ToFloat32(torch.autograd.Function):
    """x.float(), exported as the marker op uit::ToFloat32 (see _CastLike)."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.float() if x.dtype != torch.float32 else x.clone()

    @staticmethod
    def symbolic(g, x):
        out = g.op("uit::ToFloat32", x)
        out.setType(x.type())
        return out


class _Reshape(torch.autograd.Function):
    """x reshaped to `shape`, a 1-D int64 tensor in ONNX's Reshape convention (0 copies the
    input's dim at that index, -1 is inferred), exported as ONE Reshape on that tensor. A view()
    with traced sizes exports as Shape, Gather, Unsqueeze and Concat nodes for every use, which
    onnxruntime runs on every step (it cannot fold dynamic shapes): with constant shapes, or shapes
    computed once per forward (FastShapes), a small model's decode step has far fewer nodes."""

    @staticmethod
    def forward(ctx, x, shape):  # type: ignore[override]
        return x.reshape([x.size(i) if d == 0 else d for i, d in enumerate(shape.tolist())]).clone()

    @staticmethod
    def symbolic(g, x, shape):
        # Through an Identity (removed after export): torch 1.13's exporter asserts on a constant
        # Reshape shape with a 0 and no -1, although ONNX allows it.
        return g.op("Reshape", x, g.op("Identity", shape))


class _Split3(torch.autograd.Function):
    """x cut in three along `axis` at the traced sizes (an int64 [3] tensor): one ONNX Split
    where three Slices would each be a node of their own."""

    @staticmethod
    def forward(ctx, x, sizes, axis: int):  # type: ignore[override]
        return tuple(t.clone() for t in torch.split(x, [int(v) for v in sizes], dim=axis))

    @staticmethod
    def symbolic(g, x, sizes, axis):
        return g.op("Split", x, sizes, axis_i=axis, outputs=3)


class FastShapes:
    """The shapes and split sizes of GPTJAttention.forward_fast, made once per forward from the
    inputs' sizes (b rows, s new positions, P past, S shared). Zeros in a shape copy that dim of
    the tensor being reshaped (ONNX's convention), which is how S, which may be 0, gets in."""

    def __init__(self, input_ids: torch.Tensor, past_k: torch.Tensor, shared_k: torch.Tensor, n_head: int, head_dim: int):
        i64 = dict(dtype=torch.int64, device=input_ids.device)
        bs = torch._shape_as_tensor(input_ids).to(input_ids.device)
        b, s = bs[0:1], bs[1:2]
        S = torch._shape_as_tensor(shared_k).to(input_ids.device)[2:3]
        P = torch._shape_as_tensor(past_k).to(input_ids.device)[2:3]
        zero = torch.zeros(1, **i64)
        self.heads = torch.tensor([0, 0, n_head, head_dim], **i64)  # [b, s, E] -> [b, s, H, D]
        self.merged = torch.tensor([0, 0, n_head * head_dim], **i64)  # [b, s, H, D] -> [b, s, E]
        self.rows = torch.tensor([1, n_head, -1, head_dim], **i64)  # [H, b, s, D] -> [1, H, b*s, D]
        self.rows_copy = torch.cat([torch.tensor([1, n_head], **i64), b * s, zero])  # [H, b, s, X] -> [1, H, b*s, X]
        self.split = torch.cat([torch.tensor([n_head], **i64), b, s, zero])  # [1, H, b*s, X] -> [H, b, s, X]
        self.parts = torch.cat([S, P, s])  # shared | past | new along the keys


def cast_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if torch.onnx.is_in_onnx_export():
        return _CastLike.apply(x, like)
    return x.to(like.dtype)


def to_float32(x: torch.Tensor) -> torch.Tensor:
    if torch.onnx.is_in_onnx_export():
        return _ToFloat32.apply(x)
    return x.float()


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    # Same formula as HF's NewGELUActivation (tanh approximation).
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def rotary_tables(n_positions: int, rot_dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """sin and cos tables [n_positions, rot_dim], each frequency repeated twice
    (s0, s0, s1, s1, ...) as GPT-J's interleaved convention uses them."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, rot_dim, 2, dtype=torch.int64) / rot_dim))
    sinusoid = torch.einsum("i,j->ij", torch.arange(n_positions, dtype=torch.int64).float(), inv_freq).float()
    sin = torch.repeat_interleave(torch.sin(sinusoid), 2, dim=1)
    cos = torch.repeat_interleave(torch.cos(sinusoid), 2, dim=1)
    return sin, cos


def rotate_every_two_matrix(rot_dim: int) -> torch.Tensor:
    """R such that x @ R == rotate_every_two(x): out[2i] = -x[2i+1], out[2i+1] = x[2i].
    A MatMul exports cleanly (no strided slices, stack or negative dims)."""
    r = torch.zeros(rot_dim, rot_dim)
    for i in range(0, rot_dim, 2):
        r[i + 1, i] = -1.0
        r[i, i + 1] = 1.0
    return r


def build_attention_bias(attention_mask: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """Boolean visibility [batch, 1, seq, past+seq] from the mask and positions."""
    mask = attention_mask > 0  # [b, T]
    key_pos = torch.cumsum(attention_mask, dim=1) - 1  # [b, T]
    visible = mask.unsqueeze(1) & (key_pos.unsqueeze(1) <= position_ids.unsqueeze(2))  # [b, s, T]
    return visible.unsqueeze(1)


class GPTJAttention(nn.Module):
    def __init__(self, config: GPTJConfig, device: Optional[torch.device] = None):
        super().__init__()
        self.n_head = config.n_head
        self.head_dim = config.head_dim
        self.rot_dim = config.rot_dim
        e = config.n_embd
        self.q_proj = nn.Linear(e, e, bias=False, device=device)
        self.k_proj = nn.Linear(e, e, bias=False, device=device)
        self.v_proj = nn.Linear(e, e, bias=False, device=device)
        self.out_proj = nn.Linear(e, e, bias=False, device=device)
        self.register_buffer("rot_matrix", rotate_every_two_matrix(self.rot_dim), persistent=False)
        self.scale = math.sqrt(self.head_dim)

    def _rotary(self, x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor, back_to_dtype: bool) -> torch.Tensor:
        # x [b, s, H, D]; sin/cos [b, s, 1, rot_dim] float32. The rotation runs
        # in float32 as in HF (its float32 tables promote fp16 q/k); keys go
        # back to the compute dtype for the cache, queries stay float32 for the
        # float32 scores.
        if self.rot_dim == self.head_dim:
            xr = to_float32(x)
            out = xr * cos + torch.matmul(xr, self.rot_matrix) * sin
            return cast_like(out, x) if back_to_dtype else out
        x_rot = to_float32(x[:, :, :, : self.rot_dim])
        x_pass = x[:, :, :, self.rot_dim :]
        x_rot = x_rot * cos + torch.matmul(x_rot, self.rot_matrix) * sin
        if back_to_dtype:
            return torch.cat([cast_like(x_rot, x), x_pass], dim=3)
        return torch.cat([x_rot, to_float32(x_pass)], dim=3)

    def forward(
        self,
        h: torch.Tensor,
        sin: torch.Tensor,
        cos: torch.Tensor,
        visible: torch.Tensor,
        past: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        b = h.size(0)
        s = h.size(1)
        q = self.q_proj(h).view(b, s, self.n_head, self.head_dim)
        k = self.k_proj(h).view(b, s, self.n_head, self.head_dim)
        v = self.v_proj(h).view(b, s, self.n_head, self.head_dim)
        q = self._rotary(q, sin, cos, back_to_dtype=False).transpose(1, 2)  # [b, H, s, D] float32
        k = self._rotary(k, sin, cos, back_to_dtype=True).transpose(1, 2)
        v = v.transpose(1, 2)
        if past is not None:
            # present = Concat(past, new) on axis 2: the graph pass relies on this shape.
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        # Scores and softmax in float32 (HF GPT-J upcasts query and key too).
        scores = torch.matmul(q, to_float32(k).transpose(2, 3)) / self.scale  # [b, H, s, T]
        scores = torch.where(visible, scores, torch.tensor(torch.finfo(torch.float32).min, dtype=torch.float32))
        probs = cast_like(torch.softmax(scores, dim=3), v)
        out = torch.matmul(probs, v)  # [b, H, s, D]
        out = out.transpose(1, 2).reshape(b, s, self.n_head * self.head_dim)
        return self.out_proj(out), present

    def forward_fast(
        self,
        h: torch.Tensor,
        sin: torch.Tensor,
        cos: torch.Tensor,
        bias: torch.Tensor,
        past: Tuple[torch.Tensor, torch.Tensor],
        shared: Tuple[torch.Tensor, torch.Tensor],
        shapes: FastShapes,
    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Attention over three key/value parts without concatenating any of them:
        `shared` [1, H, S, D], a prefix common to every row and stored once; `past`
        [b, H, P, D], each row's own cache; and the s new positions. `bias` (float32,
        0 or the lowest float, [b, 1, s, S + P + s]) masks the keys in that order.
        Only the small score tensors are concatenated (one softmax over all keys);
        the three probs @ V products are summed. The shared part is ONE matmul per
        head for all rows: queries [1, H, b*s, D] against shared keys [1, H, D, S]. S
        and P may be 0. Returns the output and the new positions' (key, value), [b, H, s, D]."""
        q = _Reshape.apply(self.q_proj(h), shapes.heads)  # [b, s, H, D]
        k = _Reshape.apply(self.k_proj(h), shapes.heads)
        v = _Reshape.apply(self.v_proj(h), shapes.heads)
        # The 1/sqrt(D) scale goes on the queries (s x D values), not on the scores (s x keys).
        q = self._rotary(q, sin, cos, back_to_dtype=False).transpose(1, 2) * (1.0 / self.scale)  # [b, H, s, D] float32
        k = self._rotary(k, sin, cos, back_to_dtype=True).transpose(1, 2)
        v = v.transpose(1, 2)
        past_k, past_v = past
        shared_k, shared_v = shared
        q_rows = _Reshape.apply(q.transpose(0, 1), shapes.rows)  # [1, H, b*s, D]: every row's queries, per head
        s_shared = torch.matmul(q_rows, to_float32(shared_k).transpose(2, 3))  # [1, H, b*s, S]
        s_shared = _Reshape.apply(s_shared, shapes.split).transpose(0, 1)  # [b, H, s, S]
        s_past = torch.matmul(q, to_float32(past_k).transpose(2, 3))  # [b, H, s, P]
        s_new = torch.matmul(q, to_float32(k).transpose(2, 3))  # [b, H, s, s]
        scores = torch.cat([s_shared, s_past, s_new], dim=3) + bias
        probs = cast_like(torch.softmax(scores, dim=3), v)
        p_shared, p_past, p_new = _Split3.apply(probs, shapes.parts, 3)
        o_shared = torch.matmul(_Reshape.apply(p_shared.transpose(0, 1), shapes.rows_copy), shared_v)  # [1, H, b*s, D]
        out = _Reshape.apply(o_shared, shapes.split).transpose(0, 1) + torch.matmul(p_past, past_v) + torch.matmul(p_new, v)
        out = _Reshape.apply(out.transpose(1, 2), shapes.merged)  # [b, s, E]
        return self.out_proj(out), (k, v)


class GPTJMLP(nn.Module):
    def __init__(self, config: GPTJConfig, device: Optional[torch.device] = None):
        super().__init__()
        self.fc_in = nn.Linear(config.n_embd, config.inner_dim, device=device)
        self.fc_out = nn.Linear(config.inner_dim, config.n_embd, device=device)
        self.act = gelu_new if config.activation_function == "gelu_new" else F.gelu

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.act(self.fc_in(h)))


class GPTJBlock(nn.Module):
    def __init__(self, config: GPTJConfig, device: Optional[torch.device] = None):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, device=device)
        self.attn = GPTJAttention(config, device)
        self.mlp = GPTJMLP(config, device)

    def forward(self, h, sin, cos, visible, past=None):
        x = self.ln_1(h)
        attn_out, present = self.attn(x, sin, cos, visible, past)
        return h + attn_out + self.mlp(x), present

    def forward_fast(self, h, sin, cos, bias, past, shared, shapes):
        x = self.ln_1(h)
        attn_out, new_kv = self.attn.forward_fast(x, sin, cos, bias, past, shared, shapes)
        return h + attn_out + self.mlp(x), new_kv


class GPTJModel(nn.Module):
    def __init__(self, config: GPTJConfig, device: Optional[torch.device] = None):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd, device=device)
        self.h = nn.ModuleList([GPTJBlock(config, device) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, device=device)
        sin, cos = rotary_tables(config.n_positions, config.rot_dim)
        self.register_buffer("rot_sin", sin, persistent=False)
        self.register_buffer("rot_cos", cos, persistent=False)

    def _embed(self, input_ids, attention_mask, position_ids):
        h = self.wte(input_ids)
        visible = build_attention_bias(attention_mask, position_ids)
        # Padding slots may carry position -1: clamp for the table lookup only
        # (the mask already hides them).
        pos = torch.clamp(position_ids, min=0)
        sin = F.embedding(pos, self.rot_sin).unsqueeze(2)  # [b, s, 1, rot]
        cos = F.embedding(pos, self.rot_cos).unsqueeze(2)
        return h, visible, sin, cos

    def forward_fast(self, input_ids, attention_mask, position_ids, past_key_values: PastKV, shared_key_values: PastKV):
        """The fast graphs' path (GPTJAttention.forward_fast): attention_mask covers
        [shared + past + new]. Returns the final hidden states and the new
        positions' (key, value) per layer."""
        h, visible, sin, cos = self._embed(input_ids, attention_mask, position_ids)
        shapes = FastShapes(input_ids, past_key_values[0][0], shared_key_values[0][0], self.config.n_head, self.config.head_dim)
        # The mask as an additive bias, made once: an Add per layer instead of a Where (half the time).
        f32 = dict(dtype=torch.float32, device=visible.device)
        bias = torch.where(visible, torch.zeros((), **f32), torch.full((), torch.finfo(torch.float32).min, **f32))
        news = []
        for i, block in enumerate(self.h):
            h, new_kv = block.forward_fast(h, sin, cos, bias, past_key_values[i], shared_key_values[i], shapes)
            news.append(new_kv)
        return self.ln_f(h), news

    def forward(self, input_ids, attention_mask, position_ids, past_key_values: Optional[PastKV] = None):
        h, visible, sin, cos = self._embed(input_ids, attention_mask, position_ids)
        presents = []
        for i, block in enumerate(self.h):
            past = past_key_values[i] if past_key_values is not None else None
            h, present = block(h, sin, cos, visible, past)
            presents.append(present)
        return self.ln_f(h), presents


class GPTJForCausalLM(nn.Module):
    """state_dict() names equal Hugging Face's GPTJForCausalLM."""

    def __init__(self, config: GPTJConfig, device: Optional[torch.device] = None):
        super().__init__()
        self.config = config
        self.transformer = GPTJModel(config, device)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, device=device)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        past_key_values: Optional[PastKV] = None,
    ) -> Tuple[torch.Tensor, PastKV]:
        """Returns (logits float32 [b, s, vocab], presents [(key, value)] per layer,
        each [b, n_head, past+s, head_dim]). Without a mask every position is
        visible; without positions they follow from the mask (left padding works)."""
        if attention_mask is None:
            past_len = past_key_values[0][0].size(2) if past_key_values is not None else 0
            attention_mask = torch.ones(input_ids.size(0), past_len + input_ids.size(1), dtype=torch.int64, device=input_ids.device)
        if position_ids is None:
            position_ids = positions_from_mask(attention_mask, input_ids.size(1))
        h, presents = self.transformer(input_ids, attention_mask, position_ids, past_key_values)
        return to_float32(self.lm_head(h)), presents

    def forward_fast(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past_key_values: PastKV,
        shared_key_values: PastKV,
    ) -> Tuple[torch.Tensor, PastKV]:
        """The fast graphs' forward: (hidden states after ln_f [b, s, n_embd], new
        positions' (key, value) per layer [b, n_head, s, head_dim]). Keys come in
        three parts: shared_key_values [1, n_head, S, head_dim] (one prefix common
        to all rows, not copied per row), past_key_values [b, n_head, P, head_dim]
        and the new positions; attention_mask is [b, S + P + s]. The LM head is
        left to the caller (only the positions it needs)."""
        return self.transformer.forward_fast(input_ids, attention_mask, position_ids, past_key_values, shared_key_values)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """float32 logits of hidden states."""
        return to_float32(self.lm_head(h))

    def head_scaled(self, h: torch.Tensor, inv_temperature: torch.Tensor) -> torch.Tensor:
        """float32 logits times `inv_temperature` (a scalar) of hidden states, as the fast graph
        computes them: (h * s) @ W + bias * s. Scaling h and the bias ([b, t, E] and [vocab]
        values) instead of the logits spares a pass over [b, t, vocab] (0.4 ms of a 16-row step
        at a 50,400 vocabulary). (A Gemm adding the bias was slower than MatMul then Add here.)"""
        s = cast_like(inv_temperature, h)
        return to_float32(F.linear(h * s, self.lm_head.weight, self.lm_head.bias * s))

    @classmethod
    def from_state_dict(cls, config: GPTJConfig, state_dict: Dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> "GPTJForCausalLM":
        """Build the model around the checkpoint's tensors without a random
        init and without a second copy: parameters are made on the meta device
        and then take the tensors (cast to dtype), popped from state_dict one by
        one, so a 24 GB checkpoint needs about 24 GB, not 48."""
        model = cls(config, device=torch.device("meta"))
        expected = dict(model.named_parameters())
        missing = [n for n in expected if n not in state_dict]
        unknown = [n for n in state_dict if n not in expected]
        if missing or unknown:
            raise ValueError(f"state dict does not match: missing {missing[:8]}, unknown {unknown[:8]}")
        bad = [f"{n} {list(state_dict[n].shape)} != {list(p.shape)}" for n, p in expected.items() if state_dict[n].shape != p.shape]
        if bad:
            raise ValueError("tensor shapes do not match the config: " + "; ".join(bad[:8]))
        for name in list(expected):
            module_name, _, leaf = name.rpartition(".")
            module = model.get_submodule(module_name)
            t = state_dict.pop(name).to(dtype)
            module._parameters[leaf] = nn.Parameter(t, requires_grad=False)
        return model

    def init_weights(self, std: Optional[float] = None, randomize_all: bool = False, generator: Optional[torch.Generator] = None) -> None:
        """HF's init (normal(0, initializer_range) for matrices, zero biases,
        LayerNorm 1/0). randomize_all also draws biases and LayerNorm params, so
        tests notice a dropped or misnamed bias."""
        std = self.config.initializer_range if std is None else std
        with torch.no_grad():
            for name, p in self.named_parameters():
                is_ln = ".ln_" in name or name.startswith("transformer.ln_f")
                if is_ln and name.endswith("weight"):
                    p.fill_(1.0)
                    if randomize_all:
                        p.add_(torch.randn(p.shape, generator=generator) * 0.1)
                elif name.endswith("bias"):
                    p.zero_()
                    if randomize_all:
                        p.add_(torch.randn(p.shape, generator=generator) * (0.1 if is_ln else std))
                else:
                    p.copy_(torch.randn(p.shape, generator=generator) * std)


def positions_from_mask(attention_mask: torch.Tensor, seq_len: int) -> torch.Tensor:
    """position_ids of the last seq_len slots: cumsum(mask) - 1, padding clamped to 0."""
    pos = torch.cumsum(attention_mask, dim=1) - 1
    pos = torch.clamp(pos, min=0)
    return pos[:, pos.size(1) - seq_len :]


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean next-token cross-entropy: logits[:, t] predicts labels[:, t+1]
    (labels = input_ids, with ignore_index where no loss is wanted)."""
    v = logits.size(2)
    shift_logits = logits[:, : logits.size(1) - 1, :].reshape(-1, v)
    shift_labels = labels[:, 1:].reshape(-1)
    return F.cross_entropy(shift_logits.float(), shift_labels, ignore_index=ignore_index)


# Buffers that HF GPT-J checkpoints may carry; they are not weights.
HF_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".attn.embed_positions")


def expected_hf_names(config: GPTJConfig) -> List[str]:
    """The weight names of GPTJForCausalLM, in state_dict order."""
    names = ["transformer.wte.weight"]
    for i in range(config.n_layer):
        p = f"transformer.h.{i}."
        names += [p + "ln_1.weight", p + "ln_1.bias"]
        names += [p + f"attn.{x}_proj.weight" for x in ("q", "k", "v", "out")]
        names += [p + "mlp.fc_in.weight", p + "mlp.fc_in.bias", p + "mlp.fc_out.weight", p + "mlp.fc_out.bias"]
    names += ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight", "lm_head.bias"]
    return names
