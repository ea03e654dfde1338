"""export-gptj.py end to end on a tiny HF-named checkpoint, and the fast-graph pass.

Numerics of the ONNX graphs are checked from Node (test/export/*.test.ts, onnxruntime-node),
since Python onnxruntime is not available; here: the contract, the weights, the sharing."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import fast_graphs
import onnx_passes as P
from export_gptj import compute_parity
from gptj import GPTJConfig, GPTJForCausalLM
from tokenizer_files import tokenizer_json_from_gpt2_files, write_byte_tokenizer

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = {"model_type": "gptj", "vocab_size": 260, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 2,
       "rotary_dim": 8, "n_inner": 48, "bos_token_id": 256, "eos_token_id": 256}


def run(*args, ok=True):
    env = {**os.environ, "UIT_TORCH_THREADS": "2"}
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    if ok and r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}):\n{r.stderr}")
    return r


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf")
    (d / "config.json").write_text(json.dumps(CFG))
    m = GPTJForCausalLM(GPTJConfig.from_dict(CFG))
    m.init_weights(std=0.2, randomize_all=True, generator=torch.Generator().manual_seed(5))
    torch.save(m.state_dict(), d / "pytorch_model.bin")
    write_byte_tokenizer(str(d), 64)
    return d, m.eval()


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "fp32"
    run(os.path.join(SCRIPTS, "export-gptj.py"), str(ckpt[0]), str(out))
    return out


@pytest.fixture(scope="module")
def exported16(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "fp16"
    run(os.path.join(SCRIPTS, "export-gptj.py"), str(ckpt[0]), str(out), "--dtype", "fp16", "--max-seq", "128")
    return out


def graphs(out):
    return {k: onnx.load(str(out / "onnx" / f), load_external_data=False) for k, f in (("main", "model.onnx"), ("fast", "model.fast.onnx"))}


def ext(t):
    return tuple(sorted((e.key, e.value) for e in t.external_data))


def test_folder_layout_and_configs(exported, ckpt):
    names = sorted(os.listdir(exported))
    assert names == ["config.json", "generation_config.json", "onnx", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    assert sorted(os.listdir(exported / "onnx")) == ["model.fast.onnx", "model.onnx", "model.onnx_data", "parity.json"]
    cfg = json.loads((exported / "config.json").read_text())
    assert cfg["model_type"] == "gptj" and cfg["n_embd"] == 32 and cfg["transformers.js_config"] == {"use_external_data_format": True}
    assert json.loads((exported / "generation_config.json").read_text()) == {"bos_token_id": 256, "eos_token_id": 256}
    assert (exported / "tokenizer.json").read_bytes() == (ckpt[0] / "tokenizer.json").read_bytes()


def test_checkers_pass_and_io_contract(exported):
    for f in ("model.onnx", "model.fast.onnx"):
        onnx.checker.check_model(str(exported / "onnx" / f))  # path form: reads external data too
    g = graphs(exported)
    ins = [i.name for i in g["main"].graph.input]
    assert ins == ["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value",
                   "past_key_values.1.key", "past_key_values.1.value"]
    assert [o.name for o in g["main"].graph.output] == ["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"]
    assert [o.name for o in g["fast"].graph.output] == ["logits_last", "probs_last", "token_sampled", "token_logprobs", "token_argmax",
                                                        "new_key_values.0.key", "new_key_values.0.value", "new_key_values.1.key",
                                                        "new_key_values.1.value"]
    shared = ["shared_key_values.0.key", "shared_key_values.0.value", "shared_key_values.1.key", "shared_key_values.1.value"]
    assert [i.name for i in g["fast"].graph.input] == ins[:3] + ["num_logprobs", "inv_temperature", "sample_uniform"] + ins[3:] + shared
    assert P.dims_of(g["main"].graph.input[3]) == ["batch_size", 2, "past_sequence_length", 16]
    fast_in = {i.name: i for i in g["fast"].graph.input}
    assert P.dims_of(fast_in["past_key_values.0.key"]) == ["batch_size", 2, "past_sequence_length", 16]
    assert P.dims_of(fast_in["shared_key_values.1.value"]) == [1, 2, "shared_sequence_length", 16]
    assert P.dims_of(fast_in["num_logprobs"]) == [] and fast_in["num_logprobs"].type.tensor_type.elem_type == TensorProto.INT64
    assert P.dims_of(fast_in["inv_temperature"]) == [] and fast_in["inv_temperature"].type.tensor_type.elem_type == TensorProto.FLOAT
    assert P.dims_of(fast_in["sample_uniform"]) == ["batch_size"] and fast_in["sample_uniform"].type.tensor_type.elem_type == TensorProto.DOUBLE
    assert P.dims_of(fast_in["attention_mask"]) == ["batch_size", "shared_sequence_length + past_sequence_length + sequence_length"]
    out = {o.name: o for o in g["fast"].graph.output}
    assert P.dims_of(out["logits_last"]) == ["batch_size", 260]
    assert P.dims_of(out["probs_last"]) == ["batch_size", 260] and out["probs_last"].type.tensor_type.elem_type == TensorProto.FLOAT
    assert P.dims_of(out["token_logprobs"]) == ["batch_size", "num_logprobs"]
    assert P.dims_of(out["token_argmax"]) == ["batch_size", "num_logprobs"]
    assert out["token_argmax"].type.tensor_type.elem_type == TensorProto.INT64
    assert P.dims_of(out["token_sampled"]) == ["batch_size"] and out["token_sampled"].type.tensor_type.elem_type == TensorProto.INT64
    assert P.dims_of(out["new_key_values.1.key"]) == ["batch_size", 2, "sequence_length", 16]
    assert not any(n.domain == "uit" for m in g.values() for n in m.graph.node)  # markers resolved


def test_weights_stored_once_and_shared(exported):
    g = graphs(exported)
    main_ext = {t.name: ext(t) for t in g["main"].graph.initializer if t.data_location == TensorProto.EXTERNAL}
    assert len(main_ext) >= 2 * 6 + 3
    assert len(set(main_ext.values())) == len(main_ext)  # no tensor twice
    places = set(main_ext.values())
    # The fast graph is traced separately (its tensor names differ) but points at the same bytes.
    n = 0
    for t in g["fast"].graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            assert ext(t) in places, t.name
            n += 1
        else:
            assert len(t.raw_data) < 1024
    assert n >= 2 * 6 + 2  # 6 matrices a layer, the embedding, the LM head
    ends = [int(dict(e)["offset"]) + int(dict(e)["length"]) for e in main_ext.values()]
    assert os.path.getsize(exported / "onnx" / "model.onnx_data") == max(ends)


def test_every_checkpoint_weight_is_in_the_data_file(exported, ckpt):
    data_dir = str(exported / "onnx")
    stored = set()
    for t in graphs(exported)["main"].graph.initializer:
        stored.add(hashlib.sha256(P.read_tensor_bytes(t, data_dir)).hexdigest())
    for name, w in ckpt[1].state_dict().items():
        arr = w.numpy().astype("<f4")
        cands = {hashlib.sha256(arr.tobytes()).hexdigest()}
        if arr.ndim == 2:
            cands.add(hashlib.sha256(np.ascontiguousarray(arr.T).tobytes()).hexdigest())
        assert cands & stored, name


def _lm_head_matmuls(m):
    # The LM head weight is the only [n_embd, vocab] initializer (vocab 260 here).
    w = [t.name for t in m.graph.initializer if list(t.dims) == [32, 260]]
    assert len(w) == 1
    return [n for n in m.graph.node if w[0] in n.input]


def test_fast_graph_drops_the_full_vocab_work(exported):
    g = graphs(exported)
    prod = {o: n for n in g["fast"].graph.node for o in n.output}
    users = _lm_head_matmuls(g["fast"])
    # One MatMul on the hidden states times inv_temperature, plus the bias times inv_temperature:
    # the [rows, vocab] logits are never scaled themselves.
    assert [n.op_type for n in users] == ["MatMul"]
    users_of = lambda name: [n for n in g["fast"].graph.node if name in n.input]
    add = users_of(users[0].output[0])[0]
    assert add.op_type == "Add"
    bias = prod[next(i for i in add.input if i != users[0].output[0])]
    assert bias.op_type == "Mul" and "inv_temperature" in bias.input
    scaled = prod[users[0].input[0]]
    assert scaled.op_type == "Mul" and "inv_temperature" in scaled.input
    # The LM head runs on a Gather of the last num_logprobs+1 positions (a Range), not on all of them.
    gather = next(prod[i] for i in scaled.input if i in prod)
    assert gather.op_type == "Gather"
    index_ops = set()
    todo = [gather.input[1]]
    while todo:
        x = todo.pop()
        if x in prod:
            index_ops.add(prod[x].op_type)
            todo.extend(prod[x].input)
        elif x == "num_logprobs":
            index_ops.add("num_logprobs")
    assert {"Range", "num_logprobs"} <= index_ops
    assert "logits" not in {o.name for o in g["fast"].graph.output}
    ops = {n.op_type for n in g["fast"].graph.node}
    assert {"LogSoftmax", "GatherElements"} <= ops


def test_fast_graphs_never_concatenate_the_kv_cache(exported):
    # The point of the fast graphs: past and shared KV are read where they are, never copied into
    # a concatenation (model.onnx does concatenate: its `present` outputs are made that way).
    for kind, expect_concat in (("main", True), ("fast", False)):
        m = graphs(exported)[kind]
        prod = {o: n for n in m.graph.node for o in n.output}

        def source(name):
            while name in prod and prod[name].op_type in ("Cast", "Identity", "Transpose", "Reshape"):
                name = prod[name].input[0]
            return name

        kv_concats = [n.name for n in m.graph.node if n.op_type == "Concat"
                      and any(source(i).startswith(("past_key_values.", "shared_key_values.")) for i in n.input)]
        assert bool(kv_concats) == expect_concat, (kind, kv_concats)


def test_parity_record_is_the_checkpoint_model(exported, ckpt):
    parity = json.loads((exported / "onnx" / "parity.json").read_text())
    meta = {"n_layer": 2, "n_head": 2, "head_dim": 16, "vocab_size": 260}
    want = compute_parity(ckpt[1], meta, "fp32", 256, "cpu")
    assert parity["steps"] == want["steps"] and parity["tolerance"] == {"atol": 1e-4, "rtol": 1e-4}
    assert parity["shared"] == want["shared"]
    sh = parity["shared"]
    assert len(sh["shared_ids"]) == 1 and len(sh["shared_ids"][0]) == 5
    assert [len(s["attention_mask"][0]) for s in sh["steps"]] == [5 + 3, 5 + 3 + 2]  # shared + past + new
    assert sh["steps"][0]["attention_mask"][1][5] == 0 and sh["steps"][0]["expected"]["token_logprobs"][1][0] is None
    st = parity["steps"]
    assert [s["past"] for s in st] == ["none", "previous", "previous", "previous"]
    assert st[0]["attention_mask"][1][:3] == [0, 0, 0]  # the left-padded row
    assert st[0]["expected"]["token_logprobs"][1][:3] == [None, None, None]


def test_fp16_export(exported16, exported):
    for f in ("model.onnx", "model.fast.onnx"):
        onnx.checker.check_model(str(exported16 / "onnx" / f))
    g = graphs(exported16)
    big = [t for t in g["main"].graph.initializer if t.data_location == TensorProto.EXTERNAL]
    assert big and all(t.data_type in (TensorProto.FLOAT16, TensorProto.FLOAT) for t in big)
    weights16 = [t for t in big if t.data_type == TensorProto.FLOAT16]
    assert len(weights16) >= 2 * 6 + 2  # 6 matrices a layer, wte, lm_head (small vectors stay inline)
    types = {vi.name: vi.type.tensor_type.elem_type for m in g.values() for vi in list(m.graph.input) + list(m.graph.output)}
    assert types["past_key_values.0.key"] == TensorProto.FLOAT16 and types["present.1.value"] == TensorProto.FLOAT16
    assert types["new_key_values.0.key"] == TensorProto.FLOAT16 and types["shared_key_values.1.value"] == TensorProto.FLOAT16
    assert types["logits"] == types["logits_last"] == types["probs_last"] == types["token_logprobs"] == TensorProto.FLOAT
    assert types["token_argmax"] == TensorProto.INT64
    parity = json.loads((exported16 / "onnx" / "parity.json").read_text())
    assert parity["dtype"] == "fp16" and parity["tolerance"]["atol"] > 1e-3
    assert json.loads((exported16 / "config.json").read_text())["n_positions"] == 128
    s16 = os.path.getsize(exported16 / "onnx" / "model.onnx_data")
    s32 = os.path.getsize(exported / "onnx" / "model.onnx_data")
    assert s16 < 0.6 * s32


def test_missing_tensor_fails_clearly_and_writes_nothing(ckpt, tmp_path):
    d = tmp_path / "broken"
    d.mkdir()
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (d / f).write_bytes((ckpt[0] / f).read_bytes())
    sd = dict(ckpt[1].state_dict())
    del sd["transformer.h.0.mlp.fc_in.bias"]
    torch.save(sd, d / "pytorch_model.bin")
    out = tmp_path / "never"
    r = run(os.path.join(SCRIPTS, "export-gptj.py"), str(d), str(out), ok=False)
    assert r.returncode == 2
    assert "missing: transformer.h.0.mlp.fc_in.bias" in r.stderr
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".never")]


def test_refuses_a_non_empty_out(exported, ckpt):
    r = run(os.path.join(SCRIPTS, "export-gptj.py"), str(ckpt[0]), str(exported), ok=False)
    assert r.returncode == 2 and "--force" in r.stderr


def test_pass_keeps_the_exporters_fast_graph(exported):
    # The pass would write a fast graph without shared_key_values inputs: on an export-gptj.py
    # folder it leaves the better one alone.
    before = {f: (exported / "onnx" / f).read_bytes() for f in ("model.onnx", "model.fast.onnx", "model.onnx_data")}
    r = run(os.path.join(SCRIPTS, "add-fast-graphs.py"), str(exported))
    assert "moving weights" not in r.stdout and "shared_key_values" in r.stdout
    for f, b in before.items():
        assert (exported / "onnx" / f).read_bytes() == b, f


def _drop_io(graph, names):
    """Removes the graph inputs and outputs named in `names` (the nodes stay until a prune)."""
    for field in (graph.input, graph.output):
        keep = [v for v in field if v.name not in names]
        del field[:]
        field.extend(keep)


def _older_export(exported, tmp_path, names):
    """A copy of the export whose fast graph lacks the inputs and outputs `names` (as from an older
    uit), pruned and saved: (folder, fast graph path, the graph as saved)."""
    d = tmp_path / "older"
    shutil.copytree(exported, d)
    path = d / "onnx" / "model.fast.onnx"
    m = P.load_graph_only(str(path))
    _drop_io(m.graph, names)
    P.prune(m.graph)
    P.save_proto_atomic(m, str(path))
    return d, path, m


def test_pass_adds_token_argmax_to_an_older_export(exported, tmp_path):
    # A folder exported before token_argmax existed: the pass adds that one output (its ArgMax reads
    # the logits token_logprobs log-softmaxes) and touches nothing else.
    d, path, m = _older_export(exported, tmp_path, {"token_argmax"})
    assert not any(n.op_type == "ArgMax" for n in m.graph.node)
    data = (d / "onnx" / "model.onnx_data").read_bytes()
    main = (d / "onnx" / "model.onnx").read_bytes()
    r = run(os.path.join(SCRIPTS, "add-fast-graphs.py"), str(d))
    assert "added token_argmax" in r.stdout and "probs_last" not in r.stdout.split("added")[1]
    m2 = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(str(path))
    outs = [o.name for o in m2.graph.output]
    assert outs[:5] == ["logits_last", "probs_last", "token_sampled", "token_logprobs", "token_argmax"]
    (argmax,) = [n for n in m2.graph.node if n.op_type == "ArgMax"]
    producers = {o: n for n in m2.graph.node for o in n.output}
    (logsoftmax,) = [n for n in m2.graph.node if n.op_type == "LogSoftmax"]
    assert argmax.input[0] == logsoftmax.input[0] and producers[argmax.input[0]] is not None
    assert {a.name: helper.get_attribute_value(a) for a in argmax.attribute} == {"axis": 2, "keepdims": 0}
    assert (d / "onnx" / "model.onnx_data").read_bytes() == data and (d / "onnx" / "model.onnx").read_bytes() == main
    # Run again: nothing to add.
    before = path.read_bytes()
    r = run(os.path.join(SCRIPTS, "add-fast-graphs.py"), str(d))
    assert "has token_argmax, probs_last and token_sampled: left as it is" in r.stdout and path.read_bytes() == before


def test_pass_adds_probs_last_to_an_older_export(exported, tmp_path):
    # A folder exported before probs_last existed: the pass adds the input inv_temperature and the
    # output softmax(logits_last * inv_temperature), and touches neither the weights nor model.onnx.
    # (token_sampled, which came later, draws from probs_last: that export had neither.)
    d, path, m = _older_export(exported, tmp_path, {"probs_last", "inv_temperature", "token_sampled", "sample_uniform"})
    assert not any(n.op_type == "Softmax" and n.output[0] == "probs_last" for n in m.graph.node)
    data = (d / "onnx" / "model.onnx_data").read_bytes()
    main = (d / "onnx" / "model.onnx").read_bytes()
    r = run(os.path.join(SCRIPTS, "add-fast-graphs.py"), str(d))
    assert "added probs_last and token_sampled" in r.stdout
    onnx.checker.check_model(str(path))
    m2 = onnx.load(str(path), load_external_data=False)
    assert [o.name for o in m2.graph.output][:2] == ["logits_last", "probs_last"]
    assert [i.name for i in m2.graph.input][3:5] == ["num_logprobs", "inv_temperature"]
    producers = {o: n for n in m2.graph.node for o in n.output}
    softmax = producers["probs_last"]
    assert softmax.op_type == "Softmax" and {a.name: helper.get_attribute_value(a) for a in softmax.attribute} == {"axis": 1}
    scale = producers[softmax.input[0]]
    assert scale.op_type == "Mul" and list(scale.input) == ["logits_last", "inv_temperature"]
    assert (d / "onnx" / "model.onnx_data").read_bytes() == data and (d / "onnx" / "model.onnx").read_bytes() == main


def test_pass_adds_token_sampled_to_an_older_export(exported, tmp_path):
    # A folder exported before token_sampled existed: the pass adds the input sample_uniform and the
    # draw from probs_last, and touches neither the weights nor model.onnx; the result is the graph
    # the exporter writes itself.
    exported_fast = (exported / "onnx" / "model.fast.onnx").read_bytes()
    d, path, m = _older_export(exported, tmp_path, {"token_sampled", "sample_uniform"})
    assert not any(n.name.startswith("uit_fast/sample/") for n in m.graph.node)
    data = (d / "onnx" / "model.onnx_data").read_bytes()
    main = (d / "onnx" / "model.onnx").read_bytes()
    r = run(os.path.join(SCRIPTS, "add-fast-graphs.py"), str(d))
    assert "added token_sampled" in r.stdout
    onnx.checker.check_model(str(path))
    assert path.read_bytes() == exported_fast
    m2 = onnx.load(str(path), load_external_data=False)
    assert [o.name for o in m2.graph.output][1:3] == ["probs_last", "token_sampled"]
    assert [i.name for i in m2.graph.input][3:6] == ["num_logprobs", "inv_temperature", "sample_uniform"]
    ops = [n.op_type for n in m2.graph.node if n.name.startswith("uit_fast/sample/")]
    # 260 ids: 20 blocks of 13, no padding; float32 block sums, float64 running sums.
    assert "Pad" not in ops and ops.count("CumSum") == 3 and "Softmax" not in ops
    consts = {n.output[0]: helper.get_attribute_value(n.attribute[0]) for n in m2.graph.node if n.op_type == "Constant"}
    assert list(onnx.numpy_helper.to_array(consts["uit_fast/sample/grid_shape"])) == [-1, 20, 13]
    assert (d / "onnx" / "model.onnx_data").read_bytes() == data and (d / "onnx" / "model.onnx").read_bytes() == main


@pytest.mark.parametrize("vocab,expected", [(50400, (224, 225)), (4096, (64, 64)), (260, (13, 20)), (257, (17, 16)),
                                            (50257, (225, 224)), (1, (1, 1)), (7, (1, 7))])
def test_sample_blocks(vocab, expected):
    size, blocks = fast_graphs.sample_blocks(vocab)
    assert (size, blocks) == expected
    assert size * blocks >= vocab and size * (blocks - 1) < vocab  # enough blocks, none all padding


def test_sample_pass_skips_a_graph_whose_vocabulary_is_not_fixed(exported):
    # No fixed vocabulary, no draw in the graph: the engine then draws in JavaScript.
    m = P.load_graph_only(str(exported / "onnx" / "model.fast.onnx"))
    _drop_io(m.graph, {"token_sampled", "sample_uniform"})
    P.prune(m.graph)
    out = next(o for o in m.graph.output if o.name == "probs_last")
    out.type.tensor_type.shape.dim[1].dim_param = "vocab"
    assert fast_graphs.add_sample_output(m) is False
    assert "token_sampled" not in [o.name for o in m.graph.output]
    _drop_io(m.graph, {"probs_last"})
    with pytest.raises(fast_graphs.GraphPassError, match="no probs_last"):
        fast_graphs.add_sample_output(m)


def test_probs_pass_refuses_a_half_made_graph(exported):
    m = P.load_graph_only(str(exported / "onnx" / "model.fast.onnx"))
    _drop_io(m.graph, {"probs_last"})
    with pytest.raises(fast_graphs.GraphPassError, match="only one of inv_temperature and probs_last"):
        fast_graphs.add_probs_output(m)


def test_argmax_pass_refuses_a_graph_without_token_logprobs():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])
    y = helper.make_tensor_value_info("token_logprobs", TensorProto.FLOAT, [1, 2])
    g = helper.make_graph([helper.make_node("ReduceMax", ["x"], ["token_logprobs"], axes=[2], keepdims=0)], "g", [x], [y])
    with pytest.raises(fast_graphs.GraphPassError, match="not a uit fast graph"):
        fast_graphs.add_argmax_output(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))


def test_pass_refuses_merged_exports(tmp_path):
    x = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    m = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "t"])
    u = helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Cast", ["input_ids"], ["logits"], to=TensorProto.FLOAT)], "g", [x, m, u], [y])
    (tmp_path / "onnx").mkdir()
    onnx.save(helper.make_model(g), str(tmp_path / "onnx" / "model.onnx"))
    with pytest.raises(fast_graphs.GraphPassError, match="merged export"):
        fast_graphs.add_fast_graphs(str(tmp_path), log=lambda *_: None)
    r = run(os.path.join(SCRIPTS, "add-fast-graphs.py"), str(tmp_path), ok=False)
    assert r.returncode == 2 and "merged export" in r.stderr


def test_tokenizer_json_from_vocab_and_merges(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\n")
    tj = tokenizer_json_from_gpt2_files(str(tmp_path))
    assert tj["model"]["merges"] == ["a b"] and tj["model"]["vocab"]["ab"] == 2
    assert tj["added_tokens"][0]["content"] == "<|endoftext|>" and tj["added_tokens"][0]["id"] == 3
    assert tj["pre_tokenizer"]["type"] == "ByteLevel"
