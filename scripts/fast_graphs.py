"""Add the fast graph next to an optimum-style decoder export.

Given MODEL_DIR/onnx/model.onnx (optimum's text-generation-with-past contract:
inputs input_ids, attention_mask, [position_ids], past_key_values.{i}.key|value;
outputs logits, present.{i}.key|value), write onnx/model.fast.onnx: the same
inputs plus a scalar int64 `num_logprobs` n, and the outputs

- `logits_last` float32 [batch, vocab]: the last position's logits;
- `token_logprobs` float32 [batch, n]: token_logprobs[b, j] =
  log_softmax(logits[b, s-1-n+j])[input_ids[b, s-n+j]], the log-probability of
  each of the last n input tokens (n = 0 when generating, s-1 to score all);
- both computed from the logits times a new scalar float input
  `inv_temperature` (the engine feeds 1 unless it samples);
- `token_argmax` int64 [batch, n]: token_argmax[b, j] =
  argmax(logits[b, s-1-n+j]), the greedy choice at the positions token_logprobs
  reads; generation checks drafted tokens with it (prompt-lookup decoding:
  n drafts verified in one forward);
- `probs_last` float32 [batch, vocab] = softmax(logits_last): the sampling
  distribution at temperature 1/inv_temperature, so that sampling does not
  exponentiate the whole vocabulary in JavaScript (onnxruntime's Softmax is
  vectorised); a graph made before this (add_probs_output) computes
  softmax(logits_last * inv_temperature) with logits_last unscaled, the same
  thing where the engine feeds 1 for logits;
- `token_sampled` int64 [batch]: each row's token drawn from probs_last with
  its number u from a new float64 input `sample_uniform` [batch] (the id where
  the running sum of the probabilities passes u x their total; see
  add_sample_output), so that plain sampling fetches ids, not probabilities;
- `new_key_values.{i}.key|value` [batch, heads, seq, head_dim]: only the new
  positions (the second input of the Concat that makes present.{i}.*).

The LM head runs on the last n+1 positions only. One graph serves generation
and scoring, so a process that does both holds the weights once more, not
twice. Both graphs point at the same tensors of one onnx/model.onnx_data (the
pass moves embedded or scattered weights there first). Works on any such
export (GPT-2, GPT-J, Llama, Qwen); merged exports with `use_cache_branch` (an
If node) are refused with a clear message. scripts/export-gptj.py writes a
better model.fast.onnx for GPT-J (shared_key_values inputs, no KV Concat),
which this pass leaves alone.
"""
from __future__ import annotations

import math
import os
import re
from typing import Dict, List, Optional, Tuple

import onnx
from onnx import TensorProto, helper

import onnx_passes as P

PRESENT_RE = re.compile(r"^present\.(\d+)\.(key|value)$")
INT64_MAX = 2**63 - 1
DATA_NAME = "model.onnx_data"
FAST_NAME = "model.fast.onnx"
ARGMAX_NAME = "token_argmax"
PROBS_NAME = "probs_last"
INV_TEMPERATURE = "inv_temperature"
SAMPLED_NAME = "token_sampled"
SAMPLE_UNIFORM = "sample_uniform"


class GraphPassError(Exception):
    pass


def _producers(graph: onnx.GraphProto) -> Dict[str, onnx.NodeProto]:
    return {o: n for n in graph.node for o in n.output}


def _walk_back(name: str, producers: Dict[str, onnx.NodeProto], through=("Identity", "Cast")) -> str:
    while name in producers and producers[name].op_type in through:
        name = producers[name].input[0]
    return name


def find_new_kv(graph: onnx.GraphProto) -> List[Tuple[str, str]]:
    """[(present output name, tensor of the new positions' keys/values)]."""
    producers = _producers(graph)
    inputs = {i.name for i in graph.input}
    found = []
    for out in graph.output:
        m = PRESENT_RE.match(out.name)
        if not m:
            continue
        layer, kind = m.group(1), m.group(2)
        src = _walk_back(out.name, producers, through=("Identity",))
        node = producers.get(src)
        if node is None or node.op_type != "Concat" or len(node.input) != 2:
            raise GraphPassError(f"{out.name} is not made by a two-input Concat (found {node.op_type if node else 'a graph input'})")
        past = f"past_key_values.{layer}.{kind}"
        first = _walk_back(node.input[0], producers)
        if first != past or past not in inputs:
            raise GraphPassError(f"the Concat making {out.name} does not start from {past} (starts from {first})")
        found.append((out.name, node.input[1]))
    if not found:
        raise GraphPassError("no present.{i}.key|value outputs: not a decoder export with past key values")
    return found


def find_lm_head(graph: onnx.GraphProto, logits: str = "logits") -> Tuple[onnx.NodeProto, List[onnx.NodeProto]]:
    """The MatMul of the LM head and the nodes from it to `logits` (Add for a
    bias, Cast, Identity), in graph order."""
    producers = _producers(graph)
    inits = {t.name for t in graph.initializer}
    chain: List[onnx.NodeProto] = []
    name = logits
    while True:
        node = producers.get(name)
        if node is None:
            raise GraphPassError(f"could not find the LM head MatMul behind {logits}")
        if node.op_type == "MatMul":
            return node, list(reversed(chain))
        if node.op_type in ("Identity", "Cast"):
            chain.append(node)
            name = node.input[0]
        elif node.op_type == "Add":
            chain.append(node)
            a, b = node.input[0], node.input[1]
            a_main = a not in inits and a in producers and producers[a].op_type in ("MatMul", "Add", "Cast", "Identity")
            name = a if a_main else b
        else:
            raise GraphPassError(f"the LM head path from {logits} meets {node.op_type} ({node.name}); expected MatMul [+ Add] [+ Cast]")


def _axes_input(graph_nodes: List[onnx.NodeProto], opset: int, op: str, data: str, axis: int, out: str, prefix: str) -> None:
    if opset >= 13:
        axes = f"{prefix}/{op}_axes"
        graph_nodes.append(helper.make_node("Constant", [], [axes], value=helper.make_tensor(axes, TensorProto.INT64, [1], [axis]), name=f"{prefix}/{op}_axes_const"))
        graph_nodes.append(helper.make_node(op, [data, axes], [out], name=f"{prefix}/{op}"))
    else:
        graph_nodes.append(helper.make_node(op, [data], [out], axes=[axis], name=f"{prefix}/{op}"))


def _const_i64(nodes: List[onnx.NodeProto], name: str, values: List[int]) -> str:
    nodes.append(helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [len(values)], values), name=f"{name}_const"))
    return name


def _input_dims(graph: onnx.GraphProto, name: str) -> List[Optional[object]]:
    for vi in graph.input:
        if vi.name == name:
            return P.dims_of(vi)
    raise GraphPassError(f"graph has no input {name}")


def _output_vi(graph: onnx.GraphProto, name: str) -> onnx.ValueInfoProto:
    for vi in graph.output:
        if vi.name == name:
            return vi
    raise GraphPassError(f"graph has no output {name}")


def _fast_outputs_common(base: onnx.ModelProto) -> Tuple[onnx.ModelProto, List[onnx.ValueInfoProto]]:
    """A copy of base whose outputs are replaced by new_key_values.* (callers add theirs)."""
    m = onnx.ModelProto()
    m.CopyFrom(base)
    g = m.graph
    seq_dim = _input_dims(g, "input_ids")[1] or "sequence_length"
    outs = []
    for present, new in find_new_kv(g):
        pvi = _output_vi(g, present)
        dims = P.dims_of(pvi)
        name = present.replace("present.", "new_key_values.", 1)
        g.node.append(helper.make_node("Identity", [new], [name], name=f"uit_fast/{name}"))
        vi = onnx.ValueInfoProto()
        vi.name = name
        P.set_output_shape(vi, pvi.type.tensor_type.elem_type, [dims[0], dims[1], seq_dim, dims[3]])
        outs.append(vi)
    return m, outs


def make_fast_graph(base: onnx.ModelProto) -> onnx.ModelProto:
    m, kv_outs = _fast_outputs_common(base)
    g = m.graph
    opset = P.default_opset(m)
    if opset < 11:
        raise GraphPassError(f"the graph uses opset {opset}; the fast graph needs 11 or newer (Range)")
    matmul, chain = find_lm_head(g)
    logits_vi = _output_vi(g, "logits")
    ldims = P.dims_of(logits_vi)
    nodes: List[onnx.NodeProto] = []

    def const(name: str, value: int, scalar: bool = True) -> str:
        nodes.append(helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [] if scalar else [1], [value]), name=f"{name}_const"))
        return name

    def node(op: str, ins: List[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    # tail = s-1-n .. s-1: the positions the LM head runs on.
    hidden = matmul.input[0]
    one, zero = const("uit_fast/one", 1), const("uit_fast/zero", 0)
    seq = node("Gather", [node("Shape", [hidden], "uit_fast/hidden_shape"), one], "uit_fast/seq", axis=0)
    count = node("Add", ["num_logprobs", one], "uit_fast/count")
    start = node("Sub", [node("Sub", [seq, one], "uit_fast/seq_minus_1"), "num_logprobs"], "uit_fast/start")
    tail = node("Add", [node("Range", [zero, count, one], "uit_fast/range"), start], "uit_fast/tail")
    cur = node("Gather", [hidden, tail], "uit_fast/hidden_tail", axis=1)
    cur = node("MatMul", [cur, matmul.input[1]], "uit_fast/lm_head_tail")
    prev_out = matmul.output[0]
    for k, n in enumerate(chain):
        new = onnx.NodeProto()
        new.CopyFrom(n)
        new.name = f"uit_fast/lm_head_{k}_{n.op_type}"
        ins = [cur if i == prev_out else i for i in n.input]
        del new.input[:]
        new.input.extend(ins)
        out = f"uit_fast/lm_head_{k}"
        del new.output[:]
        new.output.append(out)
        nodes.append(new)
        prev_out, cur = n.output[0], out
    if logits_vi.type.tensor_type.elem_type != TensorProto.FLOAT:
        cur = node("Cast", [cur], "uit_fast/logits_tail_f32", to=TensorProto.FLOAT)
    # Every logit the graph returns is times inv_temperature (fed 1 unless sampling).
    cur = node("Mul", [cur, INV_TEMPERATURE], "uit_fast/logits_tail_scaled")
    # logits_last: the tail's last row; probs_last its softmax.
    node("Gather", [cur, const("uit_fast/minus1", -1)], "logits_last", axis=1)
    node("Softmax", ["logits_last"], PROBS_NAME, axis=1)
    # token_logprobs: the tail's first n rows, log-softmaxed, at input_ids[:, s-n .. s-1].
    ax1 = const("uit_fast/axis1", 1, scalar=False)
    head = node("Slice", [cur, const("uit_fast/zero1", 0, scalar=False), const("uit_fast/minus1_1", -1, scalar=False), ax1], "uit_fast/logits_head")
    logp = node("LogSoftmax", [head], "uit_fast/logprobs", axis=2)
    idx = node("Slice", [tail, const("uit_fast/one1", 1, scalar=False), const("uit_fast/int64max", INT64_MAX, scalar=False), const("uit_fast/axis0", 0, scalar=False)], "uit_fast/target_index")
    targets = node("Gather", ["input_ids", idx], "uit_fast/targets", axis=1)
    _axes_input(nodes, opset, "Unsqueeze", targets, 2, "uit_fast/targets3", "uit_fast/targets")
    node("GatherElements", [logp, "uit_fast/targets3"], "uit_fast/gathered", axis=2)
    _axes_input(nodes, opset, "Squeeze", "uit_fast/gathered", 2, "token_logprobs", "uit_fast/gathered")
    g.node.extend(nodes)
    g.input.append(helper.make_tensor_value_info("num_logprobs", TensorProto.INT64, []))
    g.input.append(helper.make_tensor_value_info(INV_TEMPERATURE, TensorProto.FLOAT, []))
    last = onnx.ValueInfoProto()
    last.name = "logits_last"
    P.set_output_shape(last, TensorProto.FLOAT, [ldims[0], ldims[2]])
    probs = onnx.ValueInfoProto()
    probs.name = PROBS_NAME
    P.set_output_shape(probs, TensorProto.FLOAT, [ldims[0], ldims[2]])
    lps = onnx.ValueInfoProto()
    lps.name = "token_logprobs"
    P.set_output_shape(lps, TensorProto.FLOAT, [ldims[0], "num_logprobs"])
    del g.output[:]
    g.output.extend([last, probs, lps] + kv_outs)
    P.prune(g)
    add_argmax_output(m)
    add_sample_output(m)
    return m


def add_argmax_output(model: onnx.ModelProto) -> bool:
    """Adds `token_argmax` [batch, num_logprobs] int64 to a fast graph: ArgMax over the vocabulary of
    the logits that token_logprobs log-softmaxes. Only fetched outputs are computed, so generation
    pays for it only when it asks for it. Returns False when the graph already has it."""
    g = model.graph
    if any(o.name == ARGMAX_NAME for o in g.output):
        return False
    producers = _producers(g)
    name, node = "token_logprobs", None
    for _ in range(16):  # token_logprobs <- Squeeze/Gather <- GatherElements <- LogSoftmax
        node = producers.get(name)
        if node is None or node.op_type == "LogSoftmax":
            break
        name = node.input[0]
    if node is None or node.op_type != "LogSoftmax":
        raise GraphPassError("token_logprobs does not come from a LogSoftmax over the logits: not a uit fast graph")
    axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), -1)
    if axis not in (2, -1):
        raise GraphPassError(f"the fast graph's LogSoftmax is over axis {axis}, not the vocabulary (2)")
    g.node.append(helper.make_node("ArgMax", [node.input[0]], [ARGMAX_NAME], name="uit_fast/token_argmax", axis=2, keepdims=0))
    dims = P.dims_of(_output_vi(g, "token_logprobs"))
    vi = onnx.ValueInfoProto()
    vi.name = ARGMAX_NAME
    P.set_output_shape(vi, TensorProto.INT64, dims)
    # After token_logprobs, so outputs keep their order (logits_last, token_logprobs, ..., new KV).
    _insert_after(g.output, "token_logprobs", vi)
    return True


def add_probs_output(model: onnx.ModelProto) -> bool:
    """Adds the scalar float input `inv_temperature` and the output `probs_last` [batch, vocab] =
    softmax(logits_last * inv_temperature) (float32) to a fast graph made before they existed; its
    logits_last stays unscaled, which the engine cannot tell apart (it feeds 1 unless it samples,
    and then fetches probs_last alone). Returns False when the graph already has them."""
    g = model.graph
    has_out = any(o.name == PROBS_NAME for o in g.output)
    has_in = any(i.name == INV_TEMPERATURE for i in g.input)
    if has_out and has_in:
        return False
    if has_out or has_in:
        raise GraphPassError(f"the fast graph has only one of {INV_TEMPERATURE} and {PROBS_NAME}: not a graph this pass wrote")
    last = _output_vi(g, "logits_last")
    logits = "logits_last"
    if last.type.tensor_type.elem_type != TensorProto.FLOAT:
        g.node.append(helper.make_node("Cast", [logits], ["uit_fast/logits_last_f32"], name="uit_fast/probs_cast", to=TensorProto.FLOAT))
        logits = "uit_fast/logits_last_f32"
    g.node.append(helper.make_node("Mul", [logits, INV_TEMPERATURE], ["uit_fast/scaled_logits"], name="uit_fast/probs_scale"))
    g.node.append(helper.make_node("Softmax", ["uit_fast/scaled_logits"], [PROBS_NAME], name="uit_fast/probs_last", axis=1))
    # After the other scalar input (num_logprobs), before the KV inputs, for a readable signature.
    # A required input: onnxruntime-node ignores feeds for an input with a default (an initializer
    # of the same name), so the temperature could not be set.
    _insert_after(g.input, "num_logprobs", helper.make_tensor_value_info(INV_TEMPERATURE, TensorProto.FLOAT, []))
    vi = onnx.ValueInfoProto()
    vi.name = PROBS_NAME
    P.set_output_shape(vi, TensorProto.FLOAT, P.dims_of(last))
    _insert_after(g.output, "logits_last", vi)
    return True


def sample_blocks(vocab: int) -> Tuple[int, int]:
    """(block size, blocks) for the in-graph draw: a divisor of vocab near its square root when there
    is one (GPT-J's 50,400 = 224 x 225), else blocks of ceil(sqrt(vocab)) with zeros padded on."""
    root = math.isqrt(vocab)
    for size in sorted(range(max(1, root // 2), 2 * root + 2), key=lambda d: (abs(d - root), d)):
        if vocab % size == 0:
            return size, vocab // size
    size = root if root * root == vocab else root + 1
    return size, -(-vocab // size)


def add_sample_output(model: onnx.ModelProto) -> bool:
    """Adds the input `sample_uniform` float64 [batch] and the output `token_sampled` int64 [batch]:
    per row, the token where the running sum of probs_last, in id order, passes u x its total (u in
    [0, 1) from the engine's seeded generator). It is sampler.ts's draw, done in the graph so that a
    plain sampling step fetches [batch] ids instead of [batch, vocab] probabilities: that copy, the
    JavaScript walk over 50k ids per row and the garbage collections the 3 MB buffers cause cost
    about 6% of a 16-row step on the bench's 102M model. The draw goes by blocks: block sums, their
    running sum (float64) to find the block, then the running sum within it (float64). The block
    sums are float32 ReduceSums: summing in float64 needs a float64 copy of every probability, and
    that Cast cost 4% of the run more than this. Their rounding (about 1e-7 of a block's weight)
    moves the boundaries by a few billionths of the total for GPT-J's vocabulary, so the graph and
    sampler.ts pick the same token unless u falls that close to a boundary: a few draws in a
    million; the tests found none in thousands. A token of probability 0 is never picked: if
    rounding carries the target past the end, the last token of nonzero probability is (as in
    sampler.ts). Returns False when the graph has the output already, or when its vocabulary size is
    not a fixed number or its opset is below 13 (the engine then draws in JavaScript)."""
    g = model.graph
    if any(o.name == SAMPLED_NAME for o in g.output):
        return False
    if not any(o.name == PROBS_NAME for o in g.output):
        raise GraphPassError(f"the fast graph has no {PROBS_NAME} to sample from")
    dims = P.dims_of(_output_vi(g, PROBS_NAME))
    vocab = dims[1] if len(dims) == 2 else None
    if not isinstance(vocab, int) or vocab < 1 or P.default_opset(model) < 13:
        return False
    size, blocks = sample_blocks(vocab)
    pre = "uit_fast/sample"
    nodes: List[onnx.NodeProto] = []

    def node(op: str, inputs: List[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=f"{pre}/{out.rsplit('/', 1)[-1]}", **attrs))
        return out

    def const(name: str, values: List[int], shape: Optional[List[int]] = None) -> str:
        t = helper.make_tensor(f"{pre}/{name}", TensorProto.INT64, [len(values)] if shape is None else shape, values)
        return node("Constant", [], f"{pre}/{name}", value=t)

    def count(flags: str, axes: str, out: str) -> str:
        return node("ReduceSum", [node("Cast", [flags], f"{out}_i64", to=TensorProto.INT64), axes], out, keepdims=0)

    ax1, ax2, ax12 = const("ax1", [1]), const("ax2", [2]), const("ax12", [1, 2])
    one = const("one", [1], [])
    probs = PROBS_NAME
    if size * blocks != vocab:
        probs = node("Pad", [probs, const("pads", [0, 0, 0, size * blocks - vocab])], f"{pre}/padded")
    grid = node("Reshape", [probs, const("grid_shape", [-1, blocks, size])], f"{pre}/grid")  # [b, blocks, size]
    sums = node("Cast", [node("ReduceSum", [grid, ax2], f"{pre}/block_sums32", keepdims=0)], f"{pre}/block_sums", to=TensorProto.DOUBLE)  # [b, blocks]
    upto = node("CumSum", [sums, one], f"{pre}/upto")  # running sum, inclusive
    before = node("CumSum", [sums, one], f"{pre}/before", exclusive=1)  # the same sums, one block behind
    total = node("Gather", [upto, const("last_block", [blocks - 1], [])], f"{pre}/total", axis=1)  # [b]
    target = node("Unsqueeze", [node("Mul", [SAMPLE_UNIFORM, total], f"{pre}/target1"), ax1], f"{pre}/target")  # [b, 1]
    # The block: how many running sums are <= the target, i.e. the blocks passed whole; at most the
    # last block with weight (the first whose running sum is the total).
    passed = count(node("LessOrEqual", [upto, target], f"{pre}/passed_flags"), ax1, f"{pre}/passed")
    last = count(node("Less", [upto, node("Unsqueeze", [total, ax1], f"{pre}/total2")], f"{pre}/last_flags"), ax1, f"{pre}/last")
    block = node("Min", [passed, last], f"{pre}/block")  # [b]
    block2 = node("Unsqueeze", [block, ax1], f"{pre}/block2")  # [b, 1]
    rest = node("Sub", [target, node("GatherElements", [before, block2], f"{pre}/base", axis=1)], f"{pre}/rest")  # [b, 1]
    index = node("Expand", [node("Unsqueeze", [block2, ax2], f"{pre}/block3"), const("row_shape", [1, 1, size])], f"{pre}/index")
    row = node("Cast", [node("GatherElements", [grid, index], f"{pre}/row32", axis=1)], f"{pre}/row", to=TensorProto.DOUBLE)
    run = node("CumSum", [row, const("two", [2], [])], f"{pre}/run")  # [b, 1, size]
    # Within it, likewise: the first id whose running sum passes what is left of the target, at most
    # the block's last id with weight.
    pick = count(node("LessOrEqual", [run, node("Unsqueeze", [rest, ax2], f"{pre}/rest3")], f"{pre}/pick_flags"), ax12, f"{pre}/pick")
    end = node("Gather", [run, const("last_index", [size - 1], [])], f"{pre}/end", axis=2)  # [b, 1]
    last_id = count(node("Less", [run, node("Unsqueeze", [end, ax2], f"{pre}/end3")], f"{pre}/last_id_flags"), ax12, f"{pre}/last_id")
    offset = node("Mul", [block, const("size", [size], [])], f"{pre}/offset")
    node("Add", [offset, node("Min", [pick, last_id], f"{pre}/in_block")], SAMPLED_NAME)
    g.node.extend(nodes)
    after = INV_TEMPERATURE if any(i.name == INV_TEMPERATURE for i in g.input) else "num_logprobs"
    _insert_after(g.input, after, helper.make_tensor_value_info(SAMPLE_UNIFORM, TensorProto.DOUBLE, [dims[0]]))
    vi = onnx.ValueInfoProto()
    vi.name = SAMPLED_NAME
    P.set_output_shape(vi, TensorProto.INT64, [dims[0]])
    _insert_after(g.output, PROBS_NAME, vi)
    return True


def _insert_after(values, after: str, vi: onnx.ValueInfoProto) -> None:
    """Puts `vi` right after the graph input or output named `after` (at the end when there is none)."""
    items = list(values)
    at = next((k + 1 for k, v in enumerate(items) if v.name == after), len(items))
    del values[:]
    values.extend(items[:at] + [vi] + items[at:])


def _check_supported(model: onnx.ModelProto) -> None:
    names = {i.name for i in model.graph.input}
    if "use_cache_branch" in names or any(n.op_type == "If" for n in model.graph.node):
        raise GraphPassError(
            "this is a merged export (use_cache_branch / If node); export without merging "
            "(optimum-cli ... --no-post-process, or task text-generation-with-past) and run the pass on that"
        )
    for required in ("input_ids", "attention_mask"):
        if required not in names:
            raise GraphPassError(f"graph has no input {required}")
    if "logits" not in {o.name for o in model.graph.output}:
        raise GraphPassError("graph has no output logits")


def onnx_dir_of(model_dir: str) -> str:
    d = os.path.join(model_dir, "onnx")
    if os.path.isfile(os.path.join(d, "model.onnx")):
        return d
    if os.path.isfile(os.path.join(model_dir, "model.onnx")):
        return model_dir
    raise GraphPassError(f"no onnx/model.onnx under {model_dir}")


def has_shared_fast_graph(onnx_dir: str) -> bool:
    """True when model.fast.onnx exists and takes shared_key_values.* (export-gptj.py writes that
    one; this pass cannot: it has no model to trace the three-part attention from)."""
    path = os.path.join(onnx_dir, FAST_NAME)
    return os.path.isfile(path) and any(i.name.startswith("shared_key_values.") for i in P.load_graph_only(path).graph.input)


def add_fast_graphs(model_dir: str, delete_old_data: bool = True, log=print) -> Dict[str, str]:
    """Run the pass on MODEL_DIR; returns the paths written (none when the folder already has a
    fast graph with shared_key_values inputs, which is better than what the pass makes)."""
    onnx_dir = onnx_dir_of(model_dir)
    if has_shared_fast_graph(onnx_dir):
        path = os.path.join(onnx_dir, FAST_NAME)
        fast = P.load_graph_only(path)
        added = [name for name, add in ((ARGMAX_NAME, add_argmax_output), (PROBS_NAME, add_probs_output), (SAMPLED_NAME, add_sample_output)) if add(fast)]
        if not added:
            log(f"{path} already takes shared_key_values inputs (from export-gptj.py) and has {ARGMAX_NAME}, {PROBS_NAME} and {SAMPLED_NAME}: left as it is")
            return {}
        # An export from before these outputs: the graph gains them, nothing else changes (the weights
        # and model.onnx are untouched, so the model's identity and caches stay valid).
        P.save_proto_atomic(fast, path)
        log(f"{path} (from export-gptj.py): added {' and '.join(added)}")
        return {"fast": path}
    main_path = os.path.join(onnx_dir, "model.onnx")
    model = P.load_graph_only(main_path)
    _check_supported(model)
    if P.needs_consolidation(model, DATA_NAME):
        log(f"moving weights to {os.path.join(onnx_dir, DATA_NAME)}")
        old = P.consolidate_external_data(model, onnx_dir, DATA_NAME)
        P.save_proto_atomic(model, main_path)
        if delete_old_data:
            for f in old:
                p = os.path.join(onnx_dir, f)
                if os.path.isfile(p):
                    os.remove(p)
    fast = make_fast_graph(model)
    path = os.path.join(onnx_dir, FAST_NAME)
    P.save_proto_atomic(fast, path)
    log(f"wrote {path} ({len(fast.graph.node)} nodes; outputs logits_last, probs_last, token_sampled, token_logprobs, token_argmax, new_key_values.*; inputs num_logprobs, inv_temperature and sample_uniform added)")
    stale = [f for f in ("model.gen.onnx", "model.score.onnx") if os.path.isfile(os.path.join(onnx_dir, f))]
    if stale:
        log(f"{' and '.join(stale)} (from an older uit) are no longer used; you may delete them")
    return {"model": main_path, "fast": path}


def main(argv: Optional[List[str]] = None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(
        prog="add-fast-graphs.py",
        description="Add model.fast.onnx (last-position logits and sampling probabilities, the last n tokens' log-probs, new KV entries only; "
        "one graph for generation and scoring) to an optimum decoder export, sharing onnx/model.onnx_data.",
        epilog="example: /usr/bin/python3 scripts/add-fast-graphs.py ./gpt2-onnx   (a folder from: optimum-cli export onnx --model gpt2 --task text-generation-with-past ./gpt2-onnx)",
    )
    ap.add_argument("model_dir", help="model folder with onnx/model.onnx (or model.onnx at its top)")
    ap.add_argument("--keep-old-data", action="store_true", help="do not delete external data files the weights were moved out of")
    args = ap.parse_args(argv)
    try:
        add_fast_graphs(args.model_dir, delete_old_data=not args.keep_old_data)
    except GraphPassError as e:
        print(f"add-fast-graphs: {e}", file=sys.stderr)
        return 2
    return 0
