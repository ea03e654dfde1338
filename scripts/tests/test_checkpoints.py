"""Checkpoint reading: HF folders (bin, safetensors, shards), ModelCenter names, clear errors."""
import json
import os
import struct

import numpy as np
import pytest
import torch

from checkpoints import CheckpointError, load_checkpoint, read_safetensors, write_safetensors
from gptj import GPTJConfig, GPTJForCausalLM

CFG = {"model_type": "gptj", "vocab_size": 64, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 2,
       "rotary_dim": 8, "n_inner": 48, "bos_token_id": 63, "eos_token_id": 63}


def hf_state_dict(seed=0):
    m = GPTJForCausalLM(GPTJConfig.from_dict(CFG))
    m.init_weights(std=0.1, randomize_all=True, generator=torch.Generator().manual_seed(seed))
    return m.state_dict()


def folder(tmp_path, name="ckpt"):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(CFG))
    return d


def assert_same(a, b):
    assert list(a.keys()) == list(b.keys())
    for k in a:
        assert torch.equal(a[k].float(), b[k].float()), k


def test_safetensors_reader_follows_the_format(tmp_path):
    # Built byte by byte from the spec, independent of write_safetensors.
    f16 = np.array([[1.5, -2.0]], dtype="<f2").tobytes()
    bf16 = struct.pack("<HH", 0x3FC0, 0xC040)  # 1.5, -3.0 in bfloat16
    i64 = np.array([7], dtype="<i8").tobytes()
    header = {"a": {"dtype": "F16", "shape": [1, 2], "data_offsets": [0, 4]},
              "b": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]},
              "c": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]},
              "__metadata__": {"format": "pt"}}
    hj = json.dumps(header).encode()
    p = tmp_path / "x.safetensors"
    p.write_bytes(struct.pack("<Q", len(hj)) + hj + f16 + bf16 + i64)
    t = read_safetensors(str(p))
    assert t["a"].dtype == torch.float16 and t["a"].tolist() == [[1.5, -2.0]]
    assert t["b"].dtype == torch.float32 and t["b"].tolist() == [1.5, -3.0]
    assert t["c"].tolist() == [7]
    p.write_bytes(struct.pack("<Q", 10_000) + hj)
    with pytest.raises(CheckpointError, match="header length"):
        read_safetensors(str(p))


@pytest.mark.parametrize("layout", ["bin", "safetensors", "sharded-safetensors", "sharded-bin"])
def test_hf_folder_layouts_load_the_same_weights(tmp_path, layout):
    sd = hf_state_dict()
    d = folder(tmp_path)
    if layout == "bin":
        torch.save(sd, d / "pytorch_model.bin")
    elif layout == "safetensors":
        write_safetensors(str(d / "model.safetensors"), {k: v.half() if "mlp" in k else v for k, v in sd.items()})
    else:
        names = list(sd)
        parts = [names[: len(names) // 2], names[len(names) // 2:]]
        ext = "safetensors" if layout == "sharded-safetensors" else "bin"
        stem = "model" if ext == "safetensors" else "pytorch_model"
        weight_map = {}
        for i, part in enumerate(parts):
            fname = f"{stem}-{i + 1:05d}-of-00002.{ext}"
            chunk = {k: sd[k] for k in part}
            if ext == "safetensors":
                write_safetensors(str(d / fname), chunk)
            else:
                torch.save(chunk, d / fname)
            weight_map.update({k: fname for k in part})
        (d / f"{stem}.{ext}.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    loaded, cfg, kind = load_checkpoint(str(d))
    assert kind == "hf-folder" and cfg.n_layer == 2
    if layout == "safetensors":
        sd = {k: v.half().float() if "mlp" in k else v for k, v in sd.items()}
    assert_same(loaded, sd)
    if layout == "safetensors":
        assert loaded["transformer.h.0.mlp.fc_in.weight"].dtype == torch.float16  # kept until the model casts it


def test_hf_buffers_are_ignored_and_prefixless_names_accepted(tmp_path):
    sd = hf_state_dict()
    extra = dict(sd)
    extra["transformer.h.0.attn.bias"] = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    extra["transformer.h.0.attn.masked_bias"] = torch.tensor(-1e9)
    p = tmp_path / "w.bin"
    torch.save(extra, p)
    loaded, _, _ = load_checkpoint(str(p), config_path=str(folder(tmp_path) / "config.json"))
    assert_same(loaded, sd)


def to_modelcenter(sd, prefix):
    mc = {"input_embedding.weight": sd["transformer.wte.weight"],
          "output_projection.w.weight": sd["lm_head.weight"], "output_projection.w.bias": sd["lm_head.bias"],
          f"{prefix}.output_layernorm.weight": sd["transformer.ln_f.weight"],
          f"{prefix}.output_layernorm.bias": sd["transformer.ln_f.bias"]}
    for i in range(CFG["n_layer"]):
        h, L = f"transformer.h.{i}.", f"{prefix}.layers.{i}."
        for wb in ("weight", "bias"):
            mc[L + f"self_att.layernorm_before_attention.{wb}"] = sd[h + f"ln_1.{wb}"]
            mc[L + f"ffn.layernorm_before_ffn.{wb}"] = sd[h + f"ln_1.{wb}"].clone()
            mc[L + f"ffn.ffn.w_in.w.{wb}"] = sd[h + f"mlp.fc_in.{wb}"]
            mc[L + f"ffn.ffn.w_out.{wb}"] = sd[h + f"mlp.fc_out.{wb}"]
        for mcn, hfn in (("project_q", "q_proj"), ("project_k", "k_proj"), ("project_v", "v_proj"), ("attention_out", "out_proj")):
            mc[L + f"self_att.self_attention.{mcn}.weight"] = sd[h + f"attn.{hfn}.weight"]
    return mc


@pytest.mark.parametrize("prefix", ["encoder", "decoder"])
def test_modelcenter_names_map_to_hf(tmp_path, prefix):
    sd = hf_state_dict()
    p = tmp_path / "uit.pt"
    torch.save(to_modelcenter(sd, prefix), p)
    cfg_path = folder(tmp_path) / "config.json"
    loaded, cfg, kind = load_checkpoint(str(p), config_path=str(cfg_path))
    assert kind == "modelcenter"
    assert_same(loaded, sd)


def test_modelcenter_errors_list_the_names(tmp_path):
    sd = hf_state_dict()
    cfg_path = str(folder(tmp_path) / "config.json")
    mc = to_modelcenter(sd, "encoder")
    mc["encoder.layers.0.self_att.self_attention.project_q.bias"] = torch.zeros(32)
    torch.save(mc, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r"unknown ModelCenter tensor names: encoder\.layers\.0\.self_att\.self_attention\.project_q\.bias"):
        load_checkpoint(str(tmp_path / "a.pt"), config_path=cfg_path)
    mc = to_modelcenter(sd, "encoder")
    mc["encoder.layers.1.ffn.layernorm_before_ffn.weight"] = mc["encoder.layers.1.ffn.layernorm_before_ffn.weight"] + 1
    torch.save(mc, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="differs from the attention LayerNorm"):
        load_checkpoint(str(tmp_path / "b.pt"), config_path=cfg_path)
    mc = to_modelcenter(sd, "decoder")
    del mc["decoder.layers.1.ffn.ffn.w_out.bias"]
    torch.save(mc, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"missing: transformer\.h\.1\.mlp\.fc_out\.bias"):
        load_checkpoint(str(tmp_path / "c.pt"), config_path=cfg_path)


def test_missing_and_unknown_tensors_are_listed(tmp_path):
    sd = hf_state_dict()
    del sd["transformer.h.1.attn.v_proj.weight"]
    sd["transformer.h.0.attn.q_proj.bias"] = torch.zeros(32)
    d = folder(tmp_path)
    torch.save(sd, d / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(str(d))
    msg = str(e.value)
    assert "missing: transformer.h.1.attn.v_proj.weight" in msg
    assert "unknown: transformer.h.0.attn.q_proj.bias" in msg


def test_shape_inference_without_config(tmp_path):
    sd = hf_state_dict()
    torch.save(sd, tmp_path / "w.bin")
    with pytest.raises(CheckpointError, match="pass --config"):
        load_checkpoint(str(tmp_path / "w.bin"))
    (tmp_path / "heads.json").write_text(json.dumps({"model_type": "gptj", "n_head": 2, "rotary_dim": 8}))
    loaded, cfg, _ = load_checkpoint(str(tmp_path / "w.bin"), config_path=str(tmp_path / "heads.json"))
    assert (cfg.n_embd, cfg.n_layer, cfg.n_inner, cfg.vocab_size, cfg.n_head) == (32, 2, 48, 64, 2)


def test_model_takes_the_checkpoint_tensors_without_copies():
    sd = hf_state_dict()
    ptr = sd["transformer.h.1.attn.q_proj.weight"].data_ptr()
    half = {k: v.half() if k.endswith("fc_in.weight") else v for k, v in sd.items()}
    m = GPTJForCausalLM.from_state_dict(GPTJConfig.from_dict(CFG), dict(half))
    assert m.transformer.h[1].attn.q_proj.weight.data_ptr() == ptr  # float32 in, no copy
    assert m.transformer.h[0].mlp.fc_in.weight.dtype == torch.float32
    assert_same(m.state_dict(), {k: v.float() for k, v in half.items()})
    bad = dict(sd)
    bad["lm_head.bias"] = torch.zeros(7)
    with pytest.raises(ValueError, match=r"lm_head.bias \[7\] != \[64\]"):
        GPTJForCausalLM.from_state_dict(GPTJConfig.from_dict(CFG), bad)
