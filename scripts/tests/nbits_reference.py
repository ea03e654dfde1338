"""A numpy reference for every quantized MatMul of a folder (used by test/export/quantize.test.ts).

For each MatMulNBits node of MODEL_DIR's model.fast.onnx: its B, scales and zero points are read
from the folder and unpacked here, written from onnxruntime's operator spec and independent of
scripts/nbits.py (per column n and block j: element 2i of a byte row in the low nibble, 2i+1 in the
high one; zero point 2^(bits-1) without zero_points, else packed per column like B); W = (q - zp) *
scale. W is compared with the unquantized weight of ORIGINAL_DIR's graph (the error of each element
in steps of its block's scale: at most half a step where nothing was clamped), so the codes mean the
original weights. X is a seeded Gaussian [3, K]; Y = X @ W in float64. Each node also becomes a
one-node model (its weights embedded) at accuracy_level 0 (float32 compute: Y exactly) and at the
folder's own level. Writes CASES_DIR/case{i}_acc{level}.onnx and CASES_DIR/cases.json.

    /usr/bin/python3 scripts/tests/nbits_reference.py MODEL_DIR ORIGINAL_DIR CASES_DIR
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def unpack_codes(b: np.ndarray, bits: int, n_blocks: int, block: int) -> np.ndarray:
    """uint8 B [N, n_blocks, block * bits / 8] -> codes [N, n_blocks * block]."""
    N = b.shape[0]
    codes = np.zeros((N, n_blocks * block), dtype=np.int64)
    for n in range(N):
        for j in range(n_blocks):
            row = b[n, j]
            for i in range(block):
                if bits == 8:
                    codes[n, j * block + i] = row[i]
                else:
                    byte = int(row[i // 2])
                    codes[n, j * block + i] = (byte & 0x0F) if i % 2 == 0 else (byte >> 4)
    return codes


def unpack_zero_points(zp, bits: int, N: int, n_blocks: int) -> np.ndarray:
    if zp is None:
        return np.full((N, n_blocks), 1 << (bits - 1), dtype=np.int64)
    per_col = -(-n_blocks * bits // 8)
    zp = zp.reshape(N, per_col)
    out = np.zeros((N, n_blocks), dtype=np.int64)
    for n in range(N):
        for j in range(n_blocks):
            if bits == 8:
                out[n, j] = zp[n, j]
            else:
                byte = int(zp[n, j // 2])
                out[n, j] = (byte & 0x0F) if j % 2 == 0 else (byte >> 4)
    return out


def load(folder: str):
    onnx_dir = os.path.join(folder, "onnx")
    m = onnx.load(os.path.join(onnx_dir, "model.fast.onnx"), load_external_data=False)
    onnx.load_external_data_for_model(m, onnx_dir)
    return m, {t.name: t for t in m.graph.initializer}


def main(model_dir: str, original_dir: str, cases_dir: str) -> int:
    m, inits = load(model_dir)
    _, originals = load(original_dir)
    os.makedirs(cases_dir, exist_ok=True)
    rng = np.random.default_rng(7)
    cases = []
    for i, node in enumerate(n for n in m.graph.node if n.op_type == "MatMulNBits"):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        K, N, bits, block = attrs["K"], attrs["N"], attrs.get("bits", 4), attrs["block_size"]
        n_blocks = -(-K // block)
        b = numpy_helper.to_array(inits[node.input[1]])
        scales = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64).reshape(N, n_blocks)
        zp = numpy_helper.to_array(inits[node.input[3]]) if len(node.input) > 3 and node.input[3] else None
        codes = unpack_codes(b, bits, n_blocks, block)
        zps = unpack_zero_points(zp, bits, N, n_blocks)
        w = ((codes.reshape(N, n_blocks, block) - zps[..., None]) * scales[..., None]).reshape(N, n_blocks * block)[:, :K].T  # [K, N]
        # The quantized weight is named after the original one ("<name>.int4_B").
        original = numpy_helper.to_array(originals[node.input[1].rsplit(".", 1)[0]]).astype(np.float64)
        step = np.repeat(scales, block, axis=1)[:, :K].T
        steps = np.abs(w - original) / np.where(step == 0, 1, step)
        x = rng.standard_normal((3, K)).astype(np.float32)
        y = x.astype(np.float64) @ w
        for level in sorted({0, attrs.get("accuracy_level", 0)}):
            ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, K])]
            weights = [numpy_helper.from_array(b, "B"), numpy_helper.from_array(numpy_helper.to_array(inits[node.input[2]]), "scales")]
            names = ["x", "B", "scales"]
            if zp is not None:
                weights.append(numpy_helper.from_array(zp, "zero_points"))
                names.append("zero_points")
            one = helper.make_node("MatMulNBits", names, ["y"], domain="com.microsoft", K=K, N=N, bits=bits, block_size=block, accuracy_level=level)
            g = helper.make_graph([one], "nbits", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, N])], weights)
            mm = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
            mm.ir_version = 8
            path = os.path.join(cases_dir, f"case{i}_acc{level}.onnx")
            onnx.save(mm, path)
            cases.append({"file": path, "weight": node.input[1], "K": K, "N": N, "bits": bits, "block": block, "accuracy_level": level,
                          "asymmetric": zp is not None, "max_error_steps": float(steps.max()), "mean_error_steps": float(steps.mean()),
                          "x": x.reshape(-1).tolist(), "y": y.reshape(-1).tolist()})
    with open(os.path.join(cases_dir, "cases.json"), "w") as f:
        json.dump(cases, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3]))
