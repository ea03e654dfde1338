#!/usr/bin/env python3
"""Graphs for bench/quant-kernels.js: one GPT-J layer's weight MatMuls, chained, in every weight
format uit could ship on the CPU (docs/export.md, "Which int8").

x [M, d] -> q [d, d] -> k -> v -> out -> fc_in [d, 4d] -> fc_out [4d, d] -> y [M, d]: the same
bytes as one transformer block's linear layers (GPT-J 6B: d = 4096, 201M weights, 805 MB in
float32). Each graph goes to OUT/<variant>/model.onnx with its weights in model.onnx_data. Weights
are Gaussian with variance 1/fan_in, so activations stay near unit scale.

    /usr/bin/python3 bench/quant-kernels.py OUT [--d 4096]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import nbits  # noqa: E402

MS = "com.microsoft"


def shapes(d: int):
    return [(d, d)] * 4 + [(d, 4 * d), (4 * d, d)]


def weights(d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for K, N in shapes(d):
        yield (rng.standard_normal((K, N), dtype=np.float32) / np.sqrt(K)).astype(np.float32)


def build(variant: str, d: int):
    nodes, inits = [], []
    x = "x"
    elem = TensorProto.FLOAT
    if variant == "fp16":  # the whole chain in float16, as an fp16 export computes
        nodes.append(helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16))
        x = "x16"
    for i, w in enumerate(weights(d)):
        K, N = w.shape
        y = f"h{i}"
        if variant == "fp32":
            inits.append(numpy_helper.from_array(w, f"w{i}"))
            nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [y]))
        elif variant == "fp16":
            inits.append(numpy_helper.from_array(w.astype(np.float16), f"w{i}"))
            nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [y]))
        elif variant.startswith("nbits"):
            # nbits{bits}_b{block}_{sym|asym}_acc{level}
            bits_s, block_s, sym_s, acc_s = variant[5:].split("_")
            spec = nbits.QuantSpec(int(bits_s), int(block_s[1:]), sym_s == "sym")
            q = nbits.quantize(w, spec)
            inits += [numpy_helper.from_array(q.b, f"w{i}_q"), numpy_helper.from_array(q.scales, f"w{i}_s")]
            ins = [x, f"w{i}_q", f"w{i}_s"]
            if q.zero_points is not None:
                inits.append(numpy_helper.from_array(q.zero_points, f"w{i}_zp"))
                ins.append(f"w{i}_zp")
            nodes.append(helper.make_node("MatMulNBits", ins, [y], domain=MS, K=K, N=N, bits=spec.bits, block_size=spec.block, accuracy_level=int(acc_s[3:])))
        elif variant in ("dq8", "dqmm8"):
            # int8, one symmetric scale per output column
            scale = (np.abs(w).max(axis=0) / 127).astype(np.float32)
            q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
            inits += [numpy_helper.from_array(q, f"w{i}_q"), numpy_helper.from_array(scale, f"w{i}_s")]
            if variant == "dq8":
                nodes.append(helper.make_node("DequantizeLinear", [f"w{i}_q", f"w{i}_s"], [f"w{i}_f"], axis=1))
                nodes.append(helper.make_node("MatMul", [x, f"w{i}_f"], [y]))
            else:
                inits.append(numpy_helper.from_array(np.zeros(N, dtype=np.int8), f"w{i}_zp"))
                nodes.append(helper.make_node("DynamicQuantizeMatMul", [x, f"w{i}_q", f"w{i}_s", f"w{i}_zp"], [y], domain=MS))
        else:
            raise ValueError(variant)
        x = y
    if variant == "fp16":
        nodes.append(helper.make_node("Cast", [x], ["y"], to=TensorProto.FLOAT))
    else:
        nodes.append(helper.make_node("Identity", [x], ["y"]))
    g = helper.make_graph(nodes, variant, [helper.make_tensor_value_info("x", elem, ["M", d])], [helper.make_tensor_value_info("y", elem, ["M", d])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    m.ir_version = 8
    return m


VARIANTS = [
    "fp32", "fp16",
    "nbits4_b32_sym_acc4", "nbits4_b32_asym_acc4", "nbits4_b64_sym_acc4", "nbits4_b128_sym_acc4", "nbits4_b32_sym_acc0",
    "nbits8_b32_sym_acc4", "nbits8_b32_sym_acc0", "nbits8_b128_sym_acc4",
    "dq8", "dqmm8",
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--d", type=int, default=4096)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    a = ap.parse_args()
    made = []
    for v in a.variants.split(","):
        d = os.path.join(a.out, v)
        if os.path.isfile(os.path.join(d, "model.onnx")):
            made.append(v)
            continue
        os.makedirs(d, exist_ok=True)
        m = build(v, a.d)
        onnx.save_model(m, os.path.join(d, "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx_data", size_threshold=1024)
        made.append(v)
        print(f"wrote {d}", file=sys.stderr)
    json.dump({"d": a.d, "variants": made}, open(os.path.join(a.out, "variants.json"), "w"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
