"""Weight-only quantization (scripts/nbits.py, scripts/quantize_model.py, export-gptj.py --quantize),
the lazy checkpoint readers and the streamed export. The numbers of the quantized graphs are checked
from Node (test/export/quantize.test.ts: onnxruntime against a numpy dequantize-and-matmul
reference); here: the packing, the graph pass, the folder and the export."""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import nbits
import quantize_model as Q
from checkpoints import LazyTensor, open_weight_file, random_weights
from export_gptj import skeleton, streamed_forward_many
from gptj import GPTJConfig, GPTJForCausalLM

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(os.path.dirname(SCRIPTS), "test", "fixtures", "tiny-gptj")
CFG = {"model_type": "gptj", "vocab_size": 260, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 2,
       "rotary_dim": 8, "n_inner": 48, "bos_token_id": 256, "eos_token_id": 256}


def run(*args, ok=True):
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env={**os.environ, "UIT_TORCH_THREADS": "2"})
    if ok and r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}):\n{r.stderr}")
    return r


# ---------------------------------------------------------------- packing

def test_int4_packing_follows_the_layout():
    # One column (N=1), K=4 in one block of 16 (padded with zeros): codes land low nibble first.
    w = np.array([[-8.0], [7.0], [0.0], [1.0]], dtype=np.float32)  # largest magnitude -8: scale 1
    q = nbits.quantize(w, nbits.QuantSpec(4, 16, True))
    assert q.b.shape == (1, 1, 8) and q.scales.tolist() == [1.0] and q.zero_points is None
    codes = [c + 8 for c in (-8, 7, 0, 1)] + [8] * 12  # zero point 8
    assert q.b[0, 0].tolist() == [codes[2 * i] | (codes[2 * i + 1] << 4) for i in range(8)]
    assert nbits.dequantize(q)[:, 0].tolist() == [-8.0, 7.0, 0.0, 1.0]


def test_symmetric_blocks_map_the_largest_magnitude_to_code_zero_and_lose_half_a_step_at_most():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((96, 40)).astype(np.float32)  # K = 96: three blocks of 32
    for bits in (4, 8):
        q = nbits.quantize(w, nbits.QuantSpec(bits, 32, True))
        d = nbits.dequantize(q)
        step = np.repeat(q.scales.reshape(40, 3), 32, axis=1).T  # [K, N]
        err = np.abs(d - w) / np.abs(step)
        big = np.abs(w).reshape(3, 32, 40).max(axis=1)  # per block and column
        # the value of largest magnitude is exact (code 0); the opposite end may clamp by one step
        assert np.allclose(np.abs(d).reshape(3, 32, 40).max(axis=1), big, rtol=1e-6)
        assert err.max() <= 1 + 1e-6 and np.median(err) < 0.3


def test_asymmetric_blocks_keep_zero_exact_and_pack_zero_points_per_column():
    rng = np.random.default_rng(1)
    w = np.abs(rng.standard_normal((48, 5))).astype(np.float32) + 0.5  # all positive: the range starts at 0
    w[3, 2] = 0.0
    q = nbits.quantize(w, nbits.QuantSpec(4, 16, False))
    assert q.zero_points.shape == (5 * 2,)  # 3 blocks -> 2 bytes per column (the last nibble padding)
    d = nbits.dequantize(q)
    assert d[3, 2] == 0.0
    step = np.repeat(q.scales.reshape(5, 3), 16, axis=1).T
    assert (np.abs(d - w) <= step / 2 + 1e-6).all()


def test_int8_columns_for_dynamic_quantize_matmul():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((64, 10)).astype(np.float32)
    q, s = Q.quantize_int8_columns(w)
    assert q.dtype == np.int8 and s.shape == (10,) and np.abs(q).max() == 127
    assert np.abs(q.astype(np.float32) * s - w).max() <= s.max() / 2 + 1e-6


# ---------------------------------------------------------------- a folder

@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    out = {}
    for name, args in {"int4": ["--quantize", "int4"], "head": ["--quantize", "int4", "--lm-head", "--embeddings", "--block-size", "64"],
                       "int8": ["--quantize", "int8"]}.items():
        d = tmp_path_factory.mktemp("q") / name
        run(os.path.join(SCRIPTS, "quantize-model.py"), FIXTURE, str(d), *args)
        out[name] = d
    return out


def graph(folder, name):
    return onnx.load(str(folder / "onnx" / name), load_external_data=False)


def ext(t):
    return tuple(sorted((e.key, e.value) for e in t.external_data))


def test_quantized_graphs_keep_their_contract_and_share_the_quantized_weights(quantized):
    for g in ("model.onnx", "model.fast.onnx"):
        src = onnx.load(os.path.join(FIXTURE, "onnx", g), load_external_data=False)
        m = graph(quantized["int4"], g)
        assert [i.name for i in m.graph.input] == [i.name for i in src.graph.input]
        assert [o.name for o in m.graph.output] == [o.name for o in src.graph.output]
        nb = [n for n in m.graph.node if n.op_type == "MatMulNBits"]
        assert len(nb) == 2 * 6 and all(n.domain == "com.microsoft" for n in nb)
        attrs = {a.name: helper.get_attribute_value(a) for a in nb[0].attribute}
        assert attrs["bits"] == 4 and attrs["block_size"] == 32 and attrs["accuracy_level"] == 4
        # The LM head stays float32 by default; no float32 copy of a quantized weight is left behind.
        names = {t.name for t in m.graph.initializer}
        assert not any(n.input[1].rsplit(".", 1)[0] in names for n in nb)
        assert any(t.dims == [64, 257] and t.data_type == TensorProto.FLOAT for t in m.graph.initializer)
    # Both graphs point at the same bytes for every quantized tensor: stored once.
    main = {ext(t) for t in graph(quantized["int4"], "model.onnx").graph.initializer if t.name.endswith(".int4_B")}
    fast = {ext(t) for t in graph(quantized["int4"], "model.fast.onnx").graph.initializer if t.name.endswith(".int4_B")}
    assert main == fast and len(main) == 2 * 6 and () not in main  # the codes of 12 weights, in the data file
    size = os.path.getsize(quantized["int4"] / "onnx" / "model.onnx_data")
    assert size < 0.5 * os.path.getsize(os.path.join(FIXTURE, "onnx", "model.onnx_data"))


def test_lm_head_and_int8_options(quantized):
    m = graph(quantized["head"], "model.fast.onnx")
    nb = [n for n in m.graph.node if n.op_type == "MatMulNBits"]
    assert len(nb) == 2 * 6 + 1 and {n.input[3] != "" for n in nb if len(n.input) > 3} <= {True}
    assert any({a.name: helper.get_attribute_value(a) for a in n.attribute}["N"] == 257 for n in nb)
    gq = [n for n in m.graph.node if n.op_type == "GatherBlockQuantized"]
    assert len(gq) == 1 and gq[0].input[1] == "input_ids" and not any(n.op_type == "Gather" and n.input[1] == "input_ids" for n in m.graph.node)
    assert [t.dims for t in m.graph.initializer if t.name == gq[0].input[0]] == [[257, 32]]  # 64 values a row, 4 bits
    dq = [n for n in graph(quantized["int8"], "model.fast.onnx").graph.node if n.op_type == "DynamicQuantizeMatMul"]
    assert len(dq) == 2 * 6
    cfg = json.loads((quantized["head"] / "config.json").read_text())
    assert cfg["uit_quantization"] == {"scheme": "int4", "op": "MatMulNBits", "lm_head": True, "embeddings": True, "bits": 4, "block_size": 64,
                                       "symmetric": True, "accuracy_level": 4}
    parity = json.loads((quantized["int8"] / "onnx" / "parity.json").read_text())
    assert parity["quantization"]["reference"] == "unquantized" and parity["quantization"]["op"] == "DynamicQuantizeMatMul"
    assert sorted(os.listdir(quantized["int4"])) == sorted(os.listdir(FIXTURE))


def test_refusals(quantized, tmp_path):
    r = run(os.path.join(SCRIPTS, "quantize-model.py"), str(quantized["int4"]), str(tmp_path / "again"), "--quantize", "int4", ok=False)
    assert r.returncode == 2 and "quantized already" in r.stderr
    r = run(os.path.join(SCRIPTS, "quantize-model.py"), FIXTURE, FIXTURE, "--quantize", "int4", ok=False)
    assert r.returncode == 2 and "another folder" in r.stderr
    r = run(os.path.join(SCRIPTS, "quantize-model.py"), FIXTURE, str(quantized["int4"]), "--quantize", "int4", ok=False)
    assert r.returncode == 2 and "--force" in r.stderr
    r = run(os.path.join(SCRIPTS, "quantize-model.py"), FIXTURE, str(tmp_path / "b"), "--quantize", "int4", "--block-size", "24", ok=False)
    assert r.returncode == 2 and "power of two" in r.stderr and not (tmp_path / "b").exists()


def test_dynamic_int8_refuses_fp16_weights():
    m = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 256])], [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 256])],
        [helper.make_tensor("w", TensorProto.FLOAT16, [256, 256], np.zeros((256, 256), np.float16).tobytes(), raw=True)]))
    with pytest.raises(Q.QuantizeError, match="int8-op nbits"):
        Q.quantize_matmuls(m, Q.QuantOptions(scheme="int8"), {"w": lambda: np.zeros((256, 256), np.float32)}, {}, 256, 1000)
    plan = Q.quantize_matmuls(m, Q.QuantOptions(scheme="int8", int8_op="nbits"), {"w": lambda: np.zeros((256, 256), np.float32)}, {}, 256, 1000)
    assert plan.quantized == ["w"]
    assert {t.name: t.data_type for t in m.graph.initializer}["w.int8_scales"] == TensorProto.FLOAT16


# ---------------------------------------------------------------- export --quantize

def test_export_quantizes_on_the_fly_with_a_dequantized_reference(tmp_path):
    cfg = tmp_path / "shape.json"
    cfg.write_text(json.dumps(CFG))
    out = tmp_path / "int4"
    run(os.path.join(SCRIPTS, "export-gptj.py"), "--random-init", str(cfg), str(out), "--quantize", "int4", "--block-size", "16", "--accuracy-level", "0")
    parity = json.loads((out / "onnx" / "parity.json").read_text())
    assert parity["quantization"]["reference"] == "dequantized" and "dequantized" in parity["reference"]
    assert parity["tolerance"] == {"atol": 1e-4, "rtol": 1e-4}  # level 0 computes in float32: the unquantized tolerance holds
    fast = graph(out, "model.fast.onnx")
    assert sum(n.op_type == "MatMulNBits" for n in fast.graph.node) == 2 * 6
    assert json.loads((out / "config.json").read_text())["uit_quantization"]["block_size"] == 16
    # The reference is the model with its quantized weights dequantized: not the float32 model.
    plain = tmp_path / "fp32"
    run(os.path.join(SCRIPTS, "export-gptj.py"), "--random-init", str(cfg), str(plain))
    ref = json.loads((plain / "onnx" / "parity.json").read_text())
    a = np.array(parity["steps"][0]["expected"]["logits_last_head"])
    b = np.array(ref["steps"][0]["expected"]["logits_last_head"])
    assert 1e-3 < np.abs(a - b).max() < 1.0


def test_streamed_reference_equals_the_module(tmp_path):
    cfg = GPTJConfig.from_dict(CFG)
    weights = random_weights(cfg, seed=3, std=0.2)
    model = GPTJForCausalLM.from_state_dict(cfg, {k: v.load() for k, v in weights.items()}).eval()
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    mask = torch.ones(2, 3, dtype=torch.int64)
    pos = torch.arange(3).repeat(2, 1)
    calls = [(ids, mask, pos, None), (ids[:, :1], torch.ones(2, 4, dtype=torch.int64), torch.full((2, 1), 3), 0)]
    got = streamed_forward_many(cfg, weights, "cpu")(calls)
    with torch.no_grad():
        want0 = model(ids, mask, pos)
        want1 = model(*calls[1][:3], want0[1])
    assert torch.allclose(got[0][0], want0[0], atol=1e-5) and torch.allclose(got[1][0], want1[0], atol=1e-5)
    # With quantized weights named, those are fake-quantized: the logits move.
    q = Q.QuantOptions(scheme="int4", block_size=16)
    moved = streamed_forward_many(cfg, weights, "cpu", q, ["transformer.h.0.mlp.fc_in.weight"])(calls[:1])
    assert 1e-4 < (moved[0][0] - want0[0]).abs().max().item() < 1.0


def test_skeleton_holds_no_weights():
    cfg = GPTJConfig.from_dict({**CFG, "n_embd": 256, "n_inner": 1024, "vocab_size": 5000, "n_head": 4})
    m = skeleton(cfg)
    n = sum(p.numel() for p in m.parameters())
    stored = sum(p.storage().size() for p in m.parameters())
    assert n > 3_000_000 and stored == len(list(m.parameters()))  # one number per parameter
    assert len({p.data_ptr() for p in m.parameters()}) == len(list(m.parameters()))


# ---------------------------------------------------------------- lazy checkpoints

def test_zip_torch_checkpoints_open_lazily(tmp_path):
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd = {"a": base, "b": base[1:, 2:], "c": torch.ones(5, dtype=torch.float16), "d": base.t()}
    torch.save(sd, tmp_path / "w.pt")
    opened = open_weight_file(str(tmp_path / "w.pt"))
    assert all(isinstance(v, LazyTensor) for v in opened.values())
    assert opened["b"].shape == torch.Size([2, 2]) and opened["c"].dtype == torch.float16
    for k, v in sd.items():
        assert torch.equal(opened[k].load(), v), k


def test_random_weights_are_per_tensor_and_reproducible():
    cfg = GPTJConfig.from_dict(CFG)
    a = random_weights(cfg, seed=1, std=0.2)
    b = random_weights(cfg, seed=1, std=0.2)
    names = list(a)
    for n in reversed(names):  # any order gives the same tensors
        assert torch.equal(a[n].load(), b[n].load())
    assert not torch.equal(random_weights(cfg, seed=2, std=0.2)[names[2]].load(), a[names[2]].load())
    # each tensor draws its own numbers, not a copy of another of its shape
    assert not torch.equal(a["transformer.h.0.attn.q_proj.weight"].load(), a["transformer.h.0.attn.k_proj.weight"].load())
    assert not torch.equal(a["transformer.h.0.attn.q_proj.weight"].load(), a["transformer.h.1.attn.q_proj.weight"].load())
    w = a["transformer.h.0.mlp.fc_in.weight"].load()
    assert w.shape == (48, 32) and 0.15 < w.std().item() < 0.25
    ln = a["transformer.h.1.ln_1.weight"].load()
    assert abs(ln.mean().item() - 1) < 0.1
