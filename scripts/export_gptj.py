"""GPT-J checkpoint -> ONNX model folder (the logic behind scripts/export-gptj.py).

OUT/
  config.json, generation_config.json, tokenizer.json, tokenizer_config.json, ...
  onnx/model.onnx        optimum text-generation-with-past contract
  onnx/model.fast.onnx   logits_last + token_logprobs + token_argmax + new_key_values.*; takes
                         shared_key_values.* and num_logprobs too (_FastWrapper)
  onnx/model.onnx_data   the weights, once, shared by the two graphs
  onnx/parity.json       PyTorch reference outputs on fixed inputs

Steps, with memory that does not grow with the model (one weight at a time):
open the checkpoint lazily (scripts/checkpoints.py: every tensor is read when
it is written), or make random weights tensor by tensor (--random-init); trace
a skeleton of the PyTorch GPT-J (scripts/gptj.py) whose parameters are
zero-strided views of one number, in float32 (Debian's torch has no fp16 CPU
kernels, so fp16 is a graph pass: scripts/onnx_passes.py), once as the
optimum decoder and once through the module's fast path (three-part attention
over shared prefix, per-row past and new positions, no KV concatenation);
with --quantize, turn the linear layers into MatMulNBits / DynamicQuantizeMatMul
(scripts/quantize_model.py); write the weights of both graphs to one external
data file, reading, converting and quantizing each tensor as it is written;
run the PyTorch model on fixed inputs, layer by layer over all the inputs so
that one block's weights are in memory at a time (with the quantized weights
dequantized, when quantizing), and write parity.json.
(scripts/add-fast-graphs.py makes a fast graph without shared inputs for
exports this script did not make.)
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from typing import Dict, List, Optional

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fast_graphs  # noqa: E402
import onnx_passes as P  # noqa: E402
import quantize_model as Q  # noqa: E402
import tokenizer_files as T  # noqa: E402
from checkpoints import CheckpointError, materialize, open_checkpoint, random_weights  # noqa: E402
from gptj import GPTJConfig, GPTJForCausalLM, to_float32  # noqa: E402

DEFAULT_OPSET = 17  # LayerNormalization is one op from 17 (fp16-safe, and ORT runs it fused)
TOLERANCE = {"fp32": {"atol": 1e-4, "rtol": 1e-4}, "fp16": {"atol": 5e-2, "rtol": 2e-2}}
# Quantized graphs against PyTorch with the same dequantized weights: what is left is MatMulNBits'
# int8 activations at accuracy_level 4 and DynamicQuantizeMatMul's uint8 ones (measured on the
# fixtures: docs/export.md, "Checking a quantized export").
QUANT_TOLERANCE = {"atol": 0.25, "rtol": 0.05}


class ExportError(Exception):
    pass


class _ExportWrapper(torch.nn.Module):
    """Flat inputs/outputs in optimum's order for torch.onnx.export."""

    def __init__(self, model: GPTJForCausalLM):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        logits, presents = self.model(input_ids, attention_mask, position_ids, past)
        out = [logits]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


class _FastWrapper(torch.nn.Module):
    """The fast graph (model.fast.onnx): GPTJForCausalLM.forward_fast with
    shared_key_values.* after past_key_values.*, a scalar `num_logprobs` n and a
    scalar `inv_temperature`, and only what the engine needs out. The LM head
    runs on the last n+1 positions only, and its logits are times
    inv_temperature (the engine feeds 1 unless it samples): `logits_last`
    [b, vocab] is the last one's logits (n = 0 when generating), `probs_last`
    their softmax, `token_logprobs` [b, n] the log-probability of each of the
    last n input tokens given what precedes it:
        token_logprobs[:, j] = log_softmax(logits[:, s-1-n+j])[input_ids[:, s-n+j]]
    (n = s-1 scores every token but the first). Then new_key_values.* [b, H, s, D]."""

    def __init__(self, model: GPTJForCausalLM):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, num_logprobs, inv_temperature, *kv_flat):
        n = self.model.config.n_layer
        past = [(kv_flat[2 * i], kv_flat[2 * i + 1]) for i in range(n)]
        shared = [(kv_flat[2 * n + 2 * i], kv_flat[2 * n + 2 * i + 1]) for i in range(n)]
        h, news = self.model.forward_fast(input_ids, attention_mask, position_ids, past, shared)
        s = h.size(1)
        # Positions s-1-n .. s-1 (a Range of traced sizes, so n and s stay dynamic).
        tail = torch.arange(num_logprobs + 1, device=h.device) + (s - 1 - num_logprobs)
        logits = self.model.head_scaled(torch.index_select(h, 1, tail), inv_temperature)  # [b, n+1, vocab] float32
        t = logits.size(1)
        # select, not squeeze: torch exports squeeze of a dynamic dim as an If node.
        logits_last = logits.select(1, t - 1)
        probs_last = torch.softmax(logits_last, dim=1)
        logp = torch.log_softmax(logits[:, 0 : t - 1, :], dim=2)  # [b, n, vocab]
        targets = torch.index_select(input_ids, 1, tail[1:t])  # input_ids[:, s-n .. s-1]
        token_logprobs = torch.gather(logp, 2, targets.unsqueeze(2)).select(2, 0)
        out = [logits_last, probs_last, token_logprobs]
        for k, v in news:
            out += [k, v]
        return tuple(out)


def io_names(n_layer: int):
    inputs = ["input_ids", "attention_mask", "position_ids"]
    outputs = ["logits"]
    for i in range(n_layer):
        for kv in ("key", "value"):
            inputs.append(f"past_key_values.{i}.{kv}")
            outputs.append(f"present.{i}.{kv}")
    return inputs, outputs


def fast_io_names(n_layer: int):
    inputs, _ = io_names(n_layer)
    inputs[3:3] = ["num_logprobs", "inv_temperature"]
    outputs = ["logits_last", "probs_last", "token_logprobs"]
    for i in range(n_layer):
        for kv in ("key", "value"):
            inputs.append(f"shared_key_values.{i}.{kv}")
    for i in range(n_layer):
        for kv in ("key", "value"):
            outputs.append(f"new_key_values.{i}.{kv}")
    return inputs, outputs


TOTAL = "past_sequence_length + sequence_length"
FAST_TOTAL = "shared_sequence_length + past_sequence_length + sequence_length"


def _trace(wrapper, args, inputs, outputs, dyn, opset: int, work_dir: str):
    """torch.onnx.export of wrapper to a graph-only ModelProto.

    export_params=False: the trace holds no weights; the weights are written later, tensor by
    tensor, straight from the checkpoint. No constant folding either, so the parameters keep their
    names (torch folds Transpose(W) into anonymous copies). Two things torch 1.13's exporter does
    with every parameter would cost the whole model's size in memory, so they are kept from it:
    the tracer clones every parameter before tracing (torch.jit._trace.ONNXTracedModule keeps the
    clones as "inputs", unused here: a full float32 copy of the weights), and ONNX shape inference
    is given the parameters' values, which it folds into constants (a transposed copy of every
    Linear weight). The parameters reach the tracer as themselves, and shape inference sees them as
    typed graph inputs (their shapes, not their values)."""
    raw_dir = tempfile.mkdtemp(prefix="trace-", dir=work_dir)
    raw = os.path.join(raw_dir, "model.onnx")
    extra = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        extra["dynamo"] = False  # newer torch defaults to the dynamo exporter; the markers need the TorchScript one
    params = {id(p) for p in wrapper.parameters()}
    clone = torch.Tensor.clone
    infer = torch._C._jit_pass_onnx_graph_shape_type_inference

    def clone_but_params(self, *a, **k):
        return self if id(self) in params else clone(self, *a, **k)

    def infer_without_values(graph, params_dict, opset_version):
        return infer(graph, {}, opset_version)

    try:
        torch.Tensor.clone = clone_but_params
        torch._C._jit_pass_onnx_graph_shape_type_inference = infer_without_values
        with torch.no_grad(), warnings.catch_warnings():
            # Known and harmless: the uit:: markers have no shape inference (the
            # pass removes them), torch.tensor(finfo.min) is a true constant, and
            # sizes read with .size() are traced as dynamic values.
            for msg in (r"The shape inference of", r".*_graph_op.* is deprecated", r"torch.tensor results are registered as constants",
                        r"Converting a tensor to a Python", r"Iterating over a tensor"):
                warnings.filterwarnings("ignore", message=msg)
            torch.onnx.export(
                wrapper, args, raw,
                input_names=inputs, output_names=outputs, dynamic_axes=dyn,
                opset_version=opset, do_constant_folding=False, export_params=False, custom_opsets={"uit": 1},
                **extra,
            )
        return P.load_graph_only(raw)
    finally:
        torch.Tensor.clone = clone
        torch._C._jit_pass_onnx_graph_shape_type_inference = infer
        shutil.rmtree(raw_dir, ignore_errors=True)


def _finish(m, model: GPTJForCausalLM, weights, inputs: List[str], fp16: bool, kv_inputs: List[str], source_keys: Dict[str, object]):
    """Weights as placeholder initializers (their data read from `weights` when written), dtype
    markers resolved, pruned. Returns (to_fp16, sources)."""
    params = dict(model.named_parameters(prefix="model"))
    arrays = {n: (lambda k: (lambda: materialize(weights[k]).float().numpy()))(n[len("model."):]) for n in params}
    sources = P.params_to_initializers(m, arrays, {n: list(p.shape) for n, p in params.items()})
    for n in params:
        source_keys[n] = n
    P.fold_initializer_transposes(m, sources, source_keys)
    to_fp16 = P.resolve_dtype_markers(m, fp16=fp16, fp16_inputs=kv_inputs)
    P.constants_to_initializers(m.graph)
    P.prune(m.graph)
    leftover = [i.name for i in m.graph.input if i.name not in inputs]
    if leftover:
        raise ExportError(f"the trace has unexpected inputs {leftover}")
    return to_fp16, sources


def skeleton(cfg: GPTJConfig) -> GPTJForCausalLM:
    """The module to trace: every parameter a zero-strided view of one float32 number, so the trace
    sees the real shapes and no weight is in memory (a 6B model's skeleton takes kilobytes; each
    Linear makes a transient copy of its weight while it runs, one at a time). Each parameter gets
    another number: torch.onnx merges parameters of equal shape and values into one."""
    model = GPTJForCausalLM(cfg, device=torch.device("meta"))
    for i, (name, p) in enumerate(list(model.named_parameters())):
        module_name, _, leaf = name.rpartition(".")
        value = torch.full((), (i + 1) * 1e-6, dtype=torch.float32)
        model.get_submodule(module_name)._parameters[leaf] = torch.nn.Parameter(value.expand(p.shape), requires_grad=False)
    return model.eval()


def export_onnx(model: GPTJForCausalLM, weights, onnx_dir: str, opset: int, fp16: bool, quant: Optional[Q.QuantOptions] = None, log=print) -> List[str]:
    """Trace model.onnx (optimum's contract) and the fast graph model.fast.onnx
    (shared_key_values and num_logprobs inputs, only what the engine needs out)
    into onnx_dir, both pointing at the same tensors of onnx_dir/model.onnx_data.
    `model` is traced (a skeleton will do), `weights` (HF name -> tensor or
    LazyTensor) gives the data. Returns the HF names of the weights quantized."""
    cfg = model.config
    H, D, L = cfg.n_head, cfg.head_dim, cfg.n_layer
    b, s, past, shared = 2, 3, 2, 2  # non-empty past and shared, so every part is traced
    device = "cpu"
    ids = torch.zeros(b, s, dtype=torch.int64, device=device)
    kv = [torch.zeros(b, H, past, D, device=device) for _ in range(2 * L)]
    graphs = []  # (file name, proto, to_fp16, sources)
    source_keys: Dict[str, object] = {}
    quantizer = Q._Quantizer(quant) if quant else None
    quantized: List[str] = []
    t0 = time.time()

    def quantize(m, to_fp16, sources, what: str) -> None:
        if not quant:
            return
        plan = Q.quantize_matmuls(m, quant, sources, source_keys, cfg.n_embd, cfg.vocab_size, to_fp16, quantizer)
        log(f"{what}: {len(plan.quantized)} weights to {quant.op} {quant.scheme}")
        for name in plan.quantized:
            key = source_keys[name]
            param = key[0] if isinstance(key, tuple) else key
            if param[len("model."):] not in quantized:
                quantized.append(param[len("model."):])

    inputs, outputs = io_names(L)
    dyn: Dict[str, Dict[int, str]] = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: TOTAL},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    for name in inputs[3:]:
        dyn[name] = {0: "batch_size", 2: "past_sequence_length"}
    for name in outputs[1:]:
        dyn[name] = {0: "batch_size", 2: TOTAL}
    mask = torch.ones(b, past + s, dtype=torch.int64, device=device)
    pos = torch.arange(past, past + s, dtype=torch.int64, device=device).unsqueeze(0).repeat(b, 1)
    m = _trace(_ExportWrapper(model), (ids, mask, pos, *kv), inputs, outputs, dyn, opset, onnx_dir)
    to_fp16, sources = _finish(m, model, weights, inputs, fp16, inputs[3:], source_keys)
    _set_io_shapes(m, cfg, fp16)
    quantize(m, to_fp16, sources, "model.onnx")
    graphs.append(("model.onnx", m, to_fp16, sources))

    inputs, outputs = fast_io_names(L)
    dyn = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: FAST_TOTAL},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits_last": {0: "batch_size"},
        "probs_last": {0: "batch_size"},
        "token_logprobs": {0: "batch_size", 1: "num_logprobs"},
    }
    kv_inputs = [n for n in inputs if "_key_values." in n]
    for name in kv_inputs:
        dyn[name] = {0: "batch_size", 2: "past_sequence_length"} if name.startswith("past_") else {2: "shared_sequence_length"}
    for name in outputs[3:]:
        dyn[name] = {0: "batch_size", 2: "sequence_length"}
    mask = torch.ones(b, shared + past + s, dtype=torch.int64, device=device)
    pos = torch.arange(shared + past, shared + past + s, dtype=torch.int64, device=device).unsqueeze(0).repeat(b, 1)
    n = torch.tensor(1, dtype=torch.int64, device=device)  # 0 < n < s-1, so no size is special-cased
    inv_t = torch.tensor(1.0, device=device)
    shared_kv = [torch.zeros(1, H, shared, D, device=device) for _ in range(2 * L)]
    m = _trace(_FastWrapper(model), (ids, mask, pos, n, inv_t, *kv, *shared_kv), inputs, outputs, dyn, opset, onnx_dir)
    to_fp16, sources = _finish(m, model, weights, inputs, fp16, kv_inputs, source_keys)
    _set_fast_io_shapes(m, cfg, fp16)
    fast_graphs.add_argmax_output(m)  # the trace has probs_last and inv_temperature already
    fast_graphs.add_sample_output(m)
    quantize(m, to_fp16, sources, fast_graphs.FAST_NAME)
    graphs.append((fast_graphs.FAST_NAME, m, to_fp16, sources))
    log(f"traced in {time.time() - t0:.1f}s")

    t0 = time.time()
    writer = P.ExternalDataWriter(onnx_dir, fast_graphs.DATA_NAME, progress=P.tenths(log, "writing the weights"))
    try:
        for _, m, to_fp16, sources in graphs:
            writer.add(m, to_fp16, sources, source_keys)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    log(f"wrote the weights in {time.time() - t0:.1f}s")
    for name, m, _, _ in graphs:
        m.producer_name = "uit scripts/export-gptj.py"
        path = os.path.join(onnx_dir, name)
        P.save_proto_atomic(m, path)
        if name != "model.onnx":
            log(f"wrote {path} ({len(m.graph.node)} nodes; outputs logits_last, probs_last, token_sampled, token_logprobs, token_argmax, new_key_values.*; "
                f"inputs add num_logprobs, inv_temperature, sample_uniform, shared_key_values.*)")
    return quantized


def _set_io_shapes(m, cfg: GPTJConfig, fp16: bool) -> None:
    kv_type = P.FLOAT16 if fp16 else P.FLOAT
    for vi in m.graph.output:
        if vi.name == "logits":
            P.set_output_shape(vi, P.FLOAT, ["batch_size", "sequence_length", cfg.vocab_size])
        else:
            P.set_output_shape(vi, kv_type, ["batch_size", cfg.n_head, TOTAL, cfg.head_dim])


def _set_fast_io_shapes(m, cfg: GPTJConfig, fp16: bool) -> None:
    kv_type = P.FLOAT16 if fp16 else P.FLOAT
    for vi in m.graph.input:
        if vi.name.startswith("shared_key_values."):
            P.set_output_shape(vi, kv_type, [1, cfg.n_head, "shared_sequence_length", cfg.head_dim])
        elif vi.name == "num_logprobs":
            P.set_output_shape(vi, P.INT64, [])
        elif vi.name == "inv_temperature":
            P.set_output_shape(vi, P.FLOAT, [])
    for vi in m.graph.output:
        if vi.name in ("logits_last", "probs_last"):
            P.set_output_shape(vi, P.FLOAT, ["batch_size", cfg.vocab_size])
        elif vi.name == "token_logprobs":
            P.set_output_shape(vi, P.FLOAT, ["batch_size", "num_logprobs"])
        else:
            P.set_output_shape(vi, kv_type, ["batch_size", cfg.n_head, "sequence_length", cfg.head_dim])


# ---------------------------------------------------------------- parity

def parity_inputs(vocab_size: int, pad_id: int, seed: int = 1234) -> List[dict]:
    """Prefill of batch 2 (row 1 left-padded by 3), two cached decode steps,
    then a cached 3-token chunk (how the scorer extends a cached prefix)."""
    g = torch.Generator().manual_seed(seed)
    high = min(vocab_size, 50257)
    steps = []
    prefill = torch.randint(0, high, (2, 7), generator=g)
    mask = torch.ones(2, 7, dtype=torch.int64)
    prefill[1, :3] = pad_id
    mask[1, :3] = 0
    chunks = [prefill, torch.randint(0, high, (2, 1), generator=g), torch.randint(0, high, (2, 1), generator=g), torch.randint(0, high, (2, 3), generator=g)]
    for i, ids in enumerate(chunks):
        if i > 0:
            mask = torch.cat([mask, torch.ones(2, ids.size(1), dtype=torch.int64)], dim=1)
        # HF's convention: cumsum(mask) - 1, padding slots filled with 1.
        pos_all = torch.cumsum(mask, dim=1) - 1
        pos_all = pos_all.masked_fill(mask == 0, 1)
        pos = pos_all[:, mask.size(1) - ids.size(1):]
        steps.append({"input_ids": ids, "attention_mask": mask.clone(), "position_ids": pos, "past": "none" if i == 0 else "previous"})
    return steps


def _round(x: float) -> float:
    return float(f"{x:.7g}")


def shared_parity_inputs(vocab_size: int, pad_id: int, seed: int = 4321) -> dict:
    """The fast graphs' shared prefix: 5 tokens common to both rows (run once,
    batch 1), then a 3-token chunk per row on top of it (row 1's first position
    is padding: a hole right after the shared part), then a cached 2-token chunk.
    Masks and positions cover shared + per-row past + new."""
    g = torch.Generator().manual_seed(seed)
    high = min(vocab_size, 50257)
    shared = torch.randint(0, high, (1, 5), generator=g)
    chunks = [torch.randint(0, high, (2, 3), generator=g), torch.randint(0, high, (2, 2), generator=g)]
    chunks[0][1, 0] = pad_id
    mask = torch.ones(2, shared.size(1), dtype=torch.int64)
    steps = []
    for i, ids in enumerate(chunks):
        new_mask = torch.ones(2, ids.size(1), dtype=torch.int64)
        if i == 0:
            new_mask[1, 0] = 0
        mask = torch.cat([mask, new_mask], dim=1)
        pos_all = (torch.cumsum(mask, dim=1) - 1).masked_fill(mask == 0, 1)
        pos = pos_all[:, mask.size(1) - ids.size(1):]
        steps.append({"input_ids": ids, "attention_mask": mask.clone(), "position_ids": pos, "past": "none" if i == 0 else "previous"})
    return {"shared_ids": shared, "steps": steps}


def _expected(logits: torch.Tensor, ids: torch.Tensor, new_mask: torch.Tensor, probe_ids: List[int]) -> dict:
    """What parity.json records for one chunk: logits [2, s, vocab] (float64) of its positions."""
    s = ids.size(1)
    logp = torch.log_softmax(logits, dim=2)
    last = logits[:, s - 1, :]
    token_lp = []
    probe = []
    for b in range(2):
        row = []
        for t in range(s - 1):
            ok = bool(new_mask[b, t]) and bool(new_mask[b, t + 1])
            row.append(_round(logp[b, t, int(ids[b, t + 1])].item()) if ok else None)
        token_lp.append(row)
        probe.append([[_round(logits[b, t, v].item()) for v in probe_ids] if new_mask[b, t] else None for t in range(s)])
    return {
        "logits_last_head": [[_round(v) for v in last[b, :32].tolist()] for b in range(2)],
        "argmax_last": [int(last[b].argmax()) for b in range(2)],
        "logsumexp_last": [_round(torch.logsumexp(last[b], 0).item()) for b in range(2)],
        "token_logprobs": token_lp,
        "logits_probe_ids": probe_ids,
        "logits_probe": probe,
    }


def compute_parity(forward, meta: dict, dtype: str, pad_id: int, device: str, forward_many=None, tolerance: Optional[dict] = None,
                   reference: Optional[str] = None) -> dict:
    """Run forward(ids, mask, positions, past) -> (logits, presents) on the
    parity inputs; meta holds vocab_size, n_layer, n_head, head_dim. The
    `shared` steps are computed by one plain forward over shared + chunks, so
    they check the fast graphs' three-part attention against the plain model.
    forward_many (instead of forward) takes every call at once, as
    (ids, mask, positions, index of the call whose presents are the past, or
    None), and returns their (logits, presents): streamed_forward_many runs them
    layer by layer."""
    vocab = meta["vocab_size"]
    steps = parity_inputs(vocab, pad_id)
    probe_ids = sorted({0, 1, vocab // 2, vocab - 1})
    sh = shared_parity_inputs(vocab, pad_id)
    last = sh["steps"][-1]
    S = sh["shared_ids"].size(1)
    full_ids = torch.cat([sh["shared_ids"].repeat(2, 1)] + [st["input_ids"] for st in sh["steps"]], dim=1)
    full_mask = last["attention_mask"]
    full_pos = (torch.cumsum(full_mask, dim=1) - 1).masked_fill(full_mask == 0, 1)
    calls = [(st["input_ids"], st["attention_mask"], st["position_ids"], None if k == 0 else k - 1) for k, st in enumerate(steps)]
    calls.append((full_ids, full_mask, full_pos, None))
    calls = [(ids.to(device), mask.to(device), pos.to(device), prev) for ids, mask, pos, prev in calls]
    if forward_many is None:
        def forward_many(cs):
            outs = []
            with torch.no_grad():
                for ids, mask, pos, prev in cs:
                    outs.append(forward(ids, mask, pos, None if prev is None else outs[prev][1]))
            return outs
    results = forward_many(calls)

    out_steps = []
    for k, st in enumerate(steps):
        logits = results[k][0]
        s = st["input_ids"].size(1)
        new_mask = st["attention_mask"][:, st["attention_mask"].size(1) - s:]
        out_steps.append({
            "input_ids": st["input_ids"].tolist(),
            "attention_mask": st["attention_mask"].tolist(),
            "position_ids": st["position_ids"].tolist(),
            "past": st["past"],
            "expected": _expected(logits.double().cpu(), st["input_ids"], new_mask, probe_ids),
        })

    logits = results[-1][0].double().cpu()
    shared_steps = []
    start = S
    for st in sh["steps"]:
        s = st["input_ids"].size(1)
        new_mask = full_mask[:, start : start + s]
        shared_steps.append({
            "input_ids": st["input_ids"].tolist(),
            "attention_mask": st["attention_mask"].tolist(),
            "position_ids": st["position_ids"].tolist(),
            "past": st["past"],
            "expected": _expected(logits[:, start : start + s, :], st["input_ids"], new_mask, probe_ids),
        })
        start += s
    return {
        "format": 2,
        "dtype": dtype,
        "tolerance": tolerance or TOLERANCE[dtype],
        "reference": reference or f"PyTorch {torch.__version__} in float32 on {device}",
        "model": meta,
        "pad_token_id": pad_id,
        "steps": out_steps,
        # Fast graphs with shared_key_values inputs: run shared_ids once (batch 1) as the
        # shared prefix, then the steps on top of it (attention_mask covers shared + past + new).
        "shared": {"shared_ids": sh["shared_ids"].tolist(), "steps": shared_steps},
    }


def streamed_forward_many(cfg: GPTJConfig, weights, device: str, quant: Optional[Q.QuantOptions] = None, quantized=(), log=None):
    """forward_many for compute_parity that holds one block's weights at a time: every call is
    embedded, then each layer's weights are loaded and run over every call (a call's past is an
    earlier call's presents of the same layer, so layer-major order gives the same numbers), then
    the final LayerNorm and the LM head. The weights named in `quantized` are quantized and
    dequantized first (quant), so the reference computes with what the graphs hold."""
    model = GPTJForCausalLM(cfg, device=torch.device("meta"))
    for mod in model.modules():  # the rotary tables and matrices (made on the CPU) to the device
        for k, buf in list(mod._buffers.items()):
            if buf is not None and buf.device.type != "meta":
                mod._buffers[k] = buf.to(device)
    tr = model.transformer
    quantized = set(quantized)

    def load(module: torch.nn.Module, prefix: str) -> None:
        for name, p in list(module.named_parameters()):
            full = prefix + name
            t = materialize(weights[full]).float()
            if full in quantized and full == "transformer.wte.weight":
                t = torch.from_numpy(np.ascontiguousarray(Q.fake_quantize_embedding(t.numpy(), quant)))  # rows as GatherBlockQuantized reads them
            elif full in quantized:
                # The graph holds W^T [in, out], quantized along `in` per output column.
                t = torch.from_numpy(Q.fake_quantize(t.t().contiguous().numpy(), quant)).t()
            mod_name, _, leaf = name.rpartition(".")
            sub = module.get_submodule(mod_name) if mod_name else module
            sub._parameters[leaf] = torch.nn.Parameter(t.contiguous().to(device), requires_grad=False)

    def unload(module: torch.nn.Module) -> None:
        for name, p in list(module.named_parameters()):
            mod_name, _, leaf = name.rpartition(".")
            sub = module.get_submodule(mod_name) if mod_name else module
            sub._parameters[leaf] = torch.nn.Parameter(torch.empty(p.shape, device="meta"), requires_grad=False)

    def run(calls):
        with torch.no_grad():
            load(tr.wte, "transformer.wte.")
            states = [list(tr._embed(ids, mask, pos)) for ids, mask, pos, _ in calls]  # [h, visible, sin, cos]
            unload(tr.wte)
            presents = [[] for _ in calls]
            for i, block in enumerate(tr.h):
                load(block, f"transformer.h.{i}.")
                for c, (_, _, _, prev) in enumerate(calls):
                    h, visible, sin, cos = states[c]
                    states[c][0], present = block(h, sin, cos, visible, None if prev is None else presents[prev][i])
                    presents[c].append(present)
                unload(block)
                if log and (i + 1) % 8 == 0:
                    log(f"parity reference: {i + 1}/{len(tr.h)} layers")
            load(tr.ln_f, "transformer.ln_f.")
            load(model.lm_head, "lm_head.")
            return [(to_float32(model.lm_head(tr.ln_f(st[0]))), presents[c]) for c, st in enumerate(states)]

    return run


def check_hf(model: GPTJForCausalLM, cfg: GPTJConfig, parity: dict, device: str) -> dict:
    """Compare our module with transformers' GPTJForCausalLM on the parity prefill."""
    try:
        import transformers  # noqa: F401
        from transformers import GPTJConfig as HFConfig
        from transformers import GPTJForCausalLM as HFModel
    except ImportError:
        raise ExportError("--check-hf needs the transformers package, which is not importable here")
    hf_cfg = HFConfig(**{k: v for k, v in cfg.to_hf_dict().items() if k not in ("architectures", "torch_dtype", "model_type")})
    hf = HFModel(hf_cfg)
    missing, unexpected = hf.load_state_dict(model.state_dict(), strict=False)
    real_missing = [k for k in missing if not k.endswith(("attn.bias", "attn.masked_bias"))]
    if real_missing or unexpected:
        raise ExportError(f"--check-hf: name mismatch with transformers (missing {real_missing}, unexpected {unexpected})")
    hf.to(device).eval()
    st = parity["steps"][0]
    ids = torch.tensor(st["input_ids"], device=device)
    mask = torch.tensor(st["attention_mask"], device=device)
    pos = torch.tensor(st["position_ids"], device=device)
    with torch.no_grad():
        ours, _ = model(ids, mask, pos)
        theirs = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
    valid = mask.bool()
    diff = (ours - theirs).abs()[valid].max().item()
    return {"transformers": transformers.__version__, "max_abs_diff_prefill_logits": diff}


# ---------------------------------------------------------------- main

def open_weights(args) -> tuple:
    """(HF name -> tensor or LazyTensor, config, kind): nothing is read yet where the format allows."""
    if args.random_init:
        cfg = GPTJConfig.from_json_file(args.random_init)
        return random_weights(cfg, args.seed, args.init_std), cfg, "random-init"
    weights, cfg, kind = open_checkpoint(args.src, args.config)
    return weights, cfg, kind


def export(args, log=print) -> str:
    if args.random_init and args.src:
        raise ExportError("give either SRC or --random-init, not both")
    if not args.random_init and not args.src:
        raise ExportError("give SRC (a GPT-J folder or checkpoint file) or --random-init CONFIG_JSON")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ExportError("--device cuda: torch sees no CUDA device")
    quant = Q.options_from_args(args)
    out = os.path.abspath(args.out)
    if os.path.exists(out) and os.listdir(out) and not args.force:
        raise ExportError(f"{out} exists and is not empty (use --force to replace it)")
    weights, cfg, kind = open_weights(args)
    if args.max_seq:
        cfg.n_positions = args.max_seq  # rotary tables follow n_positions; no weight depends on it
    model = skeleton(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"GPT-J ({kind}): {cfg.n_layer} layers, n_embd {cfg.n_embd}, {cfg.n_head} heads, rotary_dim {cfg.rot_dim}, "
        f"vocab {cfg.vocab_size}, {n_params / 1e6:.2f}M parameters" + (f"; weights to {quant.scheme}" if quant else ""))

    with P.staged_folder(out) as work:
        onnx_dir = os.path.join(work, "onnx")
        os.makedirs(onnx_dir)
        # Tokenizer first: it gives eos and the pad id for the parity inputs.
        tok_src = args.tokenizer or (args.src if args.src and os.path.isdir(args.src) else None)
        if tok_src:
            T.copy_tokenizer(tok_src, work, cfg.n_positions)
        elif args.random_init:
            T.write_byte_tokenizer(work, cfg.n_positions)
        else:
            raise ExportError("the checkpoint is a single file: pass --tokenizer DIR (a folder with tokenizer.json, or vocab.json + merges.txt)")
        top = T.max_token_id(work)
        if top >= cfg.vocab_size:
            log(f"warning: the tokenizer has ids up to {top}, the model's vocab_size is {cfg.vocab_size}: a mismatched tokenizer?")
        eos = T.eos_from_tokenizer(work)
        if args.random_init and eos is not None:
            cfg.bos_token_id = cfg.eos_token_id = eos
        fp16 = args.dtype == "fp16"
        quantized = export_onnx(model, weights, onnx_dir, args.opset, fp16, quant, lambda msg: log(msg.replace(work, out)))
        pad_id = cfg.eos_token_id if 0 <= cfg.eos_token_id < cfg.vocab_size else 0
        meta = {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "head_dim": cfg.head_dim, "vocab_size": cfg.vocab_size}
        t0 = time.time()
        forward_many = streamed_forward_many(cfg, weights, args.device, quant, quantized, log if cfg.n_layer >= 16 else None)
        reference = f"PyTorch {torch.__version__} in float32 on {args.device}"
        tolerance = None
        if quant:
            reference += f", with the {quant.scheme} weights dequantized"
            # MatMulNBits at accuracy_level 0 computes in float32 with the dequantized weights: the
            # unquantized tolerance holds; int8 activations (level 4, DynamicQuantizeMatMul) need more.
            exact = quant.op == "MatMulNBits" and quant.accuracy_level == 0
            if not exact:
                tolerance = QUANT_TOLERANCE if not fp16 else {k: max(v, TOLERANCE["fp16"][k]) for k, v in QUANT_TOLERANCE.items()}
        parity = compute_parity(None, meta, args.dtype, pad_id, args.device, forward_many=forward_many, tolerance=tolerance, reference=reference)
        if quant:
            parity["quantization"] = {**quant.record(), "reference": "dequantized"}
        log(f"computed the parity reference in {time.time() - t0:.1f}s")
        if args.check_hf:
            full = GPTJForCausalLM.from_state_dict(cfg, {k: materialize(v) for k, v in weights.items()}).eval().to(args.device)
            parity["hf_check"] = check_hf(full, cfg, parity, args.device)
            del full
            log(f"--check-hf: {parity['hf_check']}")
        T.write_json(os.path.join(onnx_dir, "parity.json"), parity)
        hf_cfg = cfg.to_hf_dict()
        hf_cfg["torch_dtype"] = "float16" if fp16 else "float32"
        # No "dtype" here even for fp16: transformers.js would then look for
        # onnx/model_fp16.onnx; the graph's own input types say fp16.
        hf_cfg["transformers.js_config"] = {"use_external_data_format": True}
        if quant:
            hf_cfg["uit_quantization"] = quant.record()
        T.write_json(os.path.join(work, "config.json"), hf_cfg)
        T.write_json(os.path.join(work, "generation_config.json"), {"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id})
    log(f"wrote {out}")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="export-gptj.py",
        description="Export a GPT-J checkpoint (Hugging Face folder, safetensors, sharded, or a ModelCenter .pt state dict) "
        "to an ONNX model folder with past key values, fast generation/scoring graphs and a PyTorch parity record. "
        "Needs torch and onnx only (no network, no transformers).",
        epilog="examples:\n"
        "  /usr/bin/python3 scripts/export-gptj.py ~/models/gpt-j-6b out/gpt-j-6b-onnx --dtype fp16\n"
        "  /usr/bin/python3 scripts/export-gptj.py uit-gptj.pt out/uit-gptj --tokenizer ~/models/gpt-j-6b --config gptj-config.json\n"
        "  /usr/bin/python3 scripts/export-gptj.py --random-init tiny.json out/tiny\n"
        "  /usr/bin/python3 scripts/export-gptj.py ~/models/gpt-j-6b out/gpt-j-6b-int4 --quantize int4   # for the CPU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("src", nargs="?", help="GPT-J folder (config.json + weights + tokenizer) or a weights file")
    ap.add_argument("out", nargs="?", help="output model folder")
    ap.add_argument("--random-init", metavar="CONFIG_JSON", help="random weights for a GPT-J of this config (fixtures, benchmarks); then only OUT is given")
    ap.add_argument("--seed", type=int, default=0, help="seed of --random-init (default 0)")
    ap.add_argument("--init-std", type=float, default=None, help="std of --random-init weights (default: config initializer_range)")
    ap.add_argument("--config", help="config.json for a checkpoint file (HF GPTJConfig, or ModelCenter keys)")
    ap.add_argument("--tokenizer", help="folder with the tokenizer files (default: SRC when it is a folder)")
    ap.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32",
                    help="weights and KV cache type (logits stay float32); fp16 for GPUs: on the CPU onnxruntime widens fp16 weights to float32 when it loads them")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device for tracing and the parity reference")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET}; 14 to 17 work)")
    ap.add_argument("--max-seq", type=int, default=None, help="longest sequence (sets n_positions, the rotary table size)")
    ap.add_argument("--check-hf", action="store_true", help="also compare with transformers' GPTJForCausalLM (needs transformers)")
    Q.add_arguments(ap, with_scheme_required=False)
    ap.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = ap.parse_args(argv)
    if args.random_init and args.out is None:
        args.out, args.src = args.src, None
    if args.out is None:
        ap.error("OUT is required")
    torch.set_num_threads(min(torch.get_num_threads(), int(os.environ.get("UIT_TORCH_THREADS", torch.get_num_threads()))))
    try:
        export(args)
    except (ExportError, CheckpointError, fast_graphs.GraphPassError, Q.QuantizeError, FileNotFoundError, ValueError) as e:
        print(f"export-gptj: error: {e}", file=sys.stderr)
        return 2
    return 0
