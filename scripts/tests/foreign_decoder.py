"""Decoder exports that do NOT come from export-gptj.py, to test the fast-graph
pass on graphs of other shapes (tests only).

- "llama": RMSNorm, rotate_half rotary (non-interleaved), grouped-query
  attention (present has fewer heads than the queries), SwiGLU MLP, lm_head
  without bias; written as OUT/onnx/model.onnx with one external data file PER
  TENSOR (the pass must gather them into model.onnx_data).
- "gpt2": learned position embeddings, fused qkv projection, tied lm_head
  (h @ wte.T: torch folds a transposed copy into a renamed initializer), no
  position_ids input; written as optimum-cli does, OUT/model.onnx at the top
  with the weights embedded.

Both follow optimum's names (input_ids, attention_mask, [position_ids],
past_key_values.{i}.key|value -> logits, present.{i}.key|value) and write
parity.json in export-gptj.py's format, so scripts/check-parity.mjs checks
them after the pass.
"""
from __future__ import annotations

import json
import math
import os
import sys

import onnx
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from export_gptj import compute_parity  # noqa: E402
from tokenizer_files import write_json  # noqa: E402


def _visible(mask, pos):
    key_pos = torch.cumsum(mask, dim=1) - 1
    return ((mask > 0).unsqueeze(1) & (key_pos.unsqueeze(1) <= pos.unsqueeze(2))).unsqueeze(1)


def _attend(q, k, v, visible):
    scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(q.size(3))
    scores = torch.where(visible, scores, torch.tensor(torch.finfo(torch.float32).min))
    return torch.matmul(torch.softmax(scores, dim=3), v)


class TinyLlama(nn.Module):
    # vocabularies hold the 257 ids of the byte-level tokenizer the JS tests borrow (uit refuses a
    # tokenizer whose ids the model has no row for)
    def __init__(self, vocab=263, d=32, heads=4, kv_heads=2, layers=2, ffn=64, max_pos=64):
        super().__init__()
        self.vocab, self.heads, self.kv_heads, self.hd, self.n_layer = vocab, heads, kv_heads, d // heads, layers
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList()
        for _ in range(layers):
            self.layers.append(nn.ModuleDict({
                "q": nn.Linear(d, d, bias=False), "k": nn.Linear(d, kv_heads * self.hd, bias=False),
                "v": nn.Linear(d, kv_heads * self.hd, bias=False), "o": nn.Linear(d, d, bias=False),
                "gate": nn.Linear(d, ffn, bias=False), "up": nn.Linear(d, ffn, bias=False), "down": nn.Linear(ffn, d, bias=False),
            }))
            self.layers[-1].n1 = nn.Parameter(1 + 0.1 * torch.randn(d))
            self.layers[-1].n2 = nn.Parameter(1 + 0.1 * torch.randn(d))
        self.norm = nn.Parameter(1 + 0.1 * torch.randn(d))
        self.lm_head = nn.Linear(d, vocab, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd))
        ang = torch.arange(max_pos).float().unsqueeze(1) * inv.unsqueeze(0)
        self.register_buffer("cos", torch.cat([ang.cos(), ang.cos()], dim=1), persistent=False)
        self.register_buffer("sin", torch.cat([ang.sin(), ang.sin()], dim=1), persistent=False)
        half = self.hd // 2
        rot = torch.zeros(self.hd, self.hd)  # x @ rot == rotate_half(x) = cat(-x2, x1)
        for i in range(half):
            rot[i + half, i] = -1.0
            rot[i, i + half] = 1.0
        self.register_buffer("rot", rot, persistent=False)

    @staticmethod
    def _rms(x, w):
        return x * torch.rsqrt(torch.mean(x * x, dim=2, keepdim=True) + 1e-6) * w

    def forward(self, input_ids, attention_mask, position_ids, past=None):
        b, s = input_ids.size(0), input_ids.size(1)
        h = self.embed(input_ids)
        vis = _visible(attention_mask, position_ids)
        pos = torch.clamp(position_ids, min=0)
        cos = nn.functional.embedding(pos, self.cos).unsqueeze(1)
        sin = nn.functional.embedding(pos, self.sin).unsqueeze(1)
        presents = []
        for i, L in enumerate(self.layers):
            x = self._rms(h, L.n1)
            q = L["q"](x).view(b, s, self.heads, self.hd).transpose(1, 2)
            k = L["k"](x).view(b, s, self.kv_heads, self.hd).transpose(1, 2)
            v = L["v"](x).view(b, s, self.kv_heads, self.hd).transpose(1, 2)
            q = q * cos + torch.matmul(q, self.rot) * sin
            k = k * cos + torch.matmul(k, self.rot) * sin
            if past is not None:
                k = torch.cat([past[i][0], k], dim=2)
                v = torch.cat([past[i][1], v], dim=2)
            presents.append((k, v))
            rep = self.heads // self.kv_heads
            # HF's repeat_kv (expand + reshape); torch 1.13 exports repeat_interleave badly.
            t = k.size(2)
            kk = k.unsqueeze(2).expand(b, self.kv_heads, rep, t, self.hd).reshape(b, self.heads, t, self.hd)
            vv = v.unsqueeze(2).expand(b, self.kv_heads, rep, t, self.hd).reshape(b, self.heads, t, self.hd)
            a = _attend(q, kk, vv, vis).transpose(1, 2).reshape(b, s, self.heads * self.hd)
            h = h + L["o"](a)
            x = self._rms(h, L.n2)
            h = h + L["down"](nn.functional.silu(L["gate"](x)) * L["up"](x))
        return self.lm_head(self._rms(h, self.norm)), presents


class TinyGPT2(nn.Module):
    def __init__(self, vocab=269, d=32, heads=4, layers=2, max_pos=64):
        super().__init__()
        self.vocab, self.heads, self.kv_heads, self.hd, self.n_layer, self.d = vocab, heads, heads, d // heads, layers, d
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(max_pos, d)
        self.blocks = nn.ModuleList([nn.ModuleDict({
            "ln_1": nn.LayerNorm(d), "c_attn": nn.Linear(d, 3 * d), "c_proj": nn.Linear(d, d),
            "ln_2": nn.LayerNorm(d), "fc": nn.Linear(d, 4 * d), "proj": nn.Linear(4 * d, d),
        }) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)

    def forward(self, input_ids, attention_mask, position_ids=None, past=None):
        b, s = input_ids.size(0), input_ids.size(1)
        pos_all = torch.clamp(torch.cumsum(attention_mask, dim=1) - 1, min=0)
        pos = pos_all[:, attention_mask.size(1) - s:]
        vis = _visible(attention_mask, pos)
        h = self.wte(input_ids) + self.wpe(pos)
        presents = []
        for i, B in enumerate(self.blocks):
            qkv = B["c_attn"](B["ln_1"](h))
            q = qkv[:, :, 0:self.d].reshape(b, s, self.heads, self.hd).transpose(1, 2)
            k = qkv[:, :, self.d:2 * self.d].reshape(b, s, self.heads, self.hd).transpose(1, 2)
            v = qkv[:, :, 2 * self.d:3 * self.d].reshape(b, s, self.heads, self.hd).transpose(1, 2)
            if past is not None:
                k = torch.cat([past[i][0], k], dim=2)
                v = torch.cat([past[i][1], v], dim=2)
            presents.append((k, v))
            a = _attend(q, k, v, vis).transpose(1, 2).reshape(b, s, self.d)
            h = h + B["c_proj"](a)
            h = h + B["proj"](nn.functional.gelu(B["fc"](B["ln_2"](h))))
        logits = torch.matmul(self.ln_f(h), self.wte.weight.t())
        return logits, presents


class _Wrap(nn.Module):
    def __init__(self, m, with_pos):
        super().__init__()
        self.m, self.with_pos = m, with_pos

    def forward(self, *args):
        if self.with_pos:
            ids, mask, pos, *flat = args
        else:
            (ids, mask, *flat), pos = args, None
        past = [(flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2)]
        logits, presents = self.m(ids, mask, pos, past)
        return (logits, *[t for kv in presents for t in kv])


def build(kind: str, out_dir: str, seed: int = 3) -> str:
    """Export a foreign decoder into out_dir; returns the folder holding model.onnx."""
    torch.manual_seed(seed)
    m = TinyLlama() if kind == "llama" else TinyGPT2()
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    m.eval()
    with_pos = kind == "llama"
    onnx_dir = os.path.join(out_dir, "onnx") if kind == "llama" else out_dir
    os.makedirs(onnx_dir, exist_ok=True)
    names_in = ["input_ids", "attention_mask"] + (["position_ids"] if with_pos else [])
    names_out = ["logits"]
    dyn = {"input_ids": {0: "batch_size", 1: "sequence_length"}, "attention_mask": {0: "batch_size", 1: "past_sequence_length + 1"},
           "logits": {0: "batch_size", 1: "sequence_length"}}
    if with_pos:
        dyn["position_ids"] = {0: "batch_size", 1: "sequence_length"}
    b, s, pl = 2, 3, 2
    args = [torch.zeros(b, s, dtype=torch.int64), torch.ones(b, pl + s, dtype=torch.int64)]
    if with_pos:
        args.append(torch.arange(pl, pl + s).unsqueeze(0).repeat(b, 1))
    for i in range(m.n_layer):
        for kv in ("key", "value"):
            names_in.append(f"past_key_values.{i}.{kv}")
            names_out.append(f"present.{i}.{kv}")
            dyn[names_in[-1]] = {0: "batch_size", 2: "past_sequence_length"}
            dyn[names_out[-1]] = {0: "batch_size", 2: "past_sequence_length + 1"}
            args.append(torch.zeros(b, m.kv_heads, pl, m.hd))
    path = os.path.join(onnx_dir, "model.onnx")
    with torch.no_grad():
        torch.onnx.export(_Wrap(m, with_pos), tuple(args), path, input_names=names_in, output_names=names_out,
                          dynamic_axes=dyn, opset_version=14, do_constant_folding=True)
    if kind == "llama":
        model = onnx.load(path)
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=256)
    meta = {"vocab_size": m.vocab, "n_layer": m.n_layer, "n_head": m.kv_heads, "head_dim": m.hd}
    parity = compute_parity(lambda ids, mask, pos, past: m(ids, mask, pos, past), meta, "fp32", pad_id=0, device="cpu")
    write_json(os.path.join(onnx_dir, "parity.json"), parity)
    write_json(os.path.join(out_dir, "config.json"), {"model_type": kind, "vocab_size": m.vocab})
    return onnx_dir


if __name__ == "__main__":
    torch.set_num_threads(2)
    print(build(sys.argv[1], sys.argv[2]))
