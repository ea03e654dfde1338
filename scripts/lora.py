"""LoRA (Hu et al. 2021) for scripts/gptj.py, in plain PyTorch (no peft).

A wrapped Linear computes W x + b + (alpha / r) * B (A x): A [r, in] starts Kaiming-uniform, B [out, r]
at zero, so training starts from the base model exactly. Only A and B train; W and b are frozen
(and may be stored in bf16 to halve the memory of a large base). merged_state_dict() folds
W + (alpha / r) B A back into plain weights with the base model's (Hugging Face) names, in
float32, so the result exports and runs like any GPT-J.
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional

import torch
from torch import nn

# GPT-J's attention and MLP projections, by the last part of their module names.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        dev = base.weight.device
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=torch.float32, device=dev))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=torch.float32, device=dev))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = torch.nn.functional.linear(torch.nn.functional.linear(self.dropout(x), self.lora_a.to(x.dtype)), self.lora_b.to(x.dtype))
        return self.base(x) + delta * self.scale


def add_lora(model: nn.Module, rank: int, alpha: float, dropout: float = 0.0, targets: Iterable[str] = DEFAULT_TARGETS) -> List[str]:
    """Replaces every nn.Linear whose name ends in one of `targets` by a LoRALinear around it, and
    freezes every other parameter. Returns the wrapped modules' names."""
    targets = tuple(targets)
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets:
            parent_name, _, leaf = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, leaf, LoRALinear(module, rank, alpha, dropout))
            wrapped.append(name)
    if not wrapped:
        raise ValueError(f"no Linear named {', '.join(targets)} to put LoRA on")
    return wrapped


@torch.no_grad()
def merged_state_dict(model: nn.Module, base: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
    """The model's weights with every LoRALinear folded in, under the names the model had before
    add_lora (`...q_proj.weight`, not `...q_proj.base.weight`), float32, on the CPU. `base`, the
    original weights by those names, replaces the frozen ones held in the model: a base stored in
    bf16 for training is merged at its full precision. Its tensors are updated in place (a 6B
    model's weights are not copied twice)."""
    out: Dict[str, torch.Tensor] = {}
    lora = {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}
    for name, p in model.named_parameters():
        owner = next((n for n in lora if name.startswith(n + ".")), None)
        plain = name if owner is None else name.replace(".base.", ".", 1)
        if owner is not None and name not in (owner + ".base.weight", owner + ".base.bias"):
            continue  # lora_a / lora_b are folded into the weight
        if base is not None and plain in base:
            w = base[plain].detach().float().cpu()  # the caller's copy: changed in place, no second one
        else:
            w = p.detach().float().cpu().clone()
        if owner is not None and name == owner + ".base.weight":
            m = lora[owner]
            w += m.scale * (m.lora_b.detach().float().cpu() @ m.lora_a.detach().float().cpu())
        out[plain] = w
    return out
