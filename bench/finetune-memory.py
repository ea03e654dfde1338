#!/usr/bin/env python3
"""Activation memory of scripts/finetune-gptj.py's training forward, measured at GPT-J 6B's width.

Counts the bytes of every tensor autograd saves for the backward pass (saved_tensors_hooks), weights left out, in one
forward of TargetLoss over one GPT-J 6B block (n_embd 4096, 16 heads, n_inner 16384, rotary 64),
for a sequence of --seq tokens, in fp32 and under bf16 autocast, with and without gradient
checkpointing; with checkpointing, also the saved bytes of one block's recomputation (what the
backward pass holds at its peak). docs/distill.md multiplies these by 28 layers. The vocabulary is
cut to 1024: the LM head runs on target positions only and is counted apart.

    /usr/bin/python3 bench/finetune-memory.py [--seq 512] [--layers 2] [--dtypes fp32,bf16]
"""
import argparse
import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))

import torch  # noqa: E402

import finetune_gptj as ft  # noqa: E402
from gptj import GPTJConfig, GPTJForCausalLM  # noqa: E402


def _storage(t):
    return t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()


def saved_bytes(fn, params=()) -> int:
    """Bytes of the tensors autograd saves while fn runs, weights (`params`) left out: a tensor
    saved twice is stored once, and views of one storage count it once."""
    weights = {_storage(p).data_ptr() for p in params}
    seen = {}

    def pack(t):
        key = _storage(t).data_ptr()
        if key not in weights:
            seen[key] = max(seen.get(key, 0), _storage(t).nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dtypes", default="fp32,bf16", help="bf16 matmuls are slow on a CPU without bf16 units")
    a = ap.parse_args()
    cfg = GPTJConfig(vocab_size=1024, n_positions=2048, n_embd=4096, n_layer=a.layers, n_head=16, rotary_dim=64)
    model = GPTJForCausalLM(cfg)
    prompt, target = a.seq // 2, a.seq - a.seq // 2
    pairs = [(list(range(1, prompt + 1)), list(range(1, target + 1)))]
    ids, mask, labels = ft.collate(pairs, [0], 0, "cpu")
    out = {"seq": a.seq, "layers": a.layers}
    for dtype in a.dtypes.split(","):
        ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if dtype == "bf16" else contextlib.nullcontext
        for ckpt in (False, True):
            loss_mod = ft.TargetLoss(model, checkpoint=ckpt).train()
            with ctx():
                total, loss = saved_bytes(lambda: loss_mod(ids, mask, labels), list(model.parameters()))
            out[f"{dtype}{'+ckpt' if ckpt else ''}"] = {"saved_bytes": total, "per_token_per_layer": total / a.seq / a.layers}
            del loss
        # one block recomputed during the backward pass of a checkpointed run
        tr = model.transformer
        positions = torch.clamp(torch.cumsum(mask, dim=1) - 1, min=0)
        with ctx():
            h, visible, sin, cos = tr._embed(ids, mask, positions)
            h = h.detach().requires_grad_(True)
            block, _ = saved_bytes(lambda: ft._block_hidden(tr.h[0], h, sin, cos, visible), list(model.parameters()))
        out[f"{dtype} one block"] = {"saved_bytes": block, "per_token": block / a.seq}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
