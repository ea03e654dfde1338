"""scripts/finetune-gptj.py: loss on targets only, LoRA and its merge, resume after a kill, two DDP
processes against one, the three kinds of base, and the distilled uit-tiny loading in uit and
scoring its own training pairs better than before."""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

import finetune_gptj as ft
import lora
from checkpoints import load_checkpoint, write_safetensors
from gptj import GPTJConfig, GPTJForCausalLM
from test_checkpoints import to_modelcenter
from tokenizer_files import write_byte_tokenizer

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(SCRIPTS)
SCRIPT = os.path.join(SCRIPTS, "finetune-gptj.py")
CFG = {"model_type": "gptj", "vocab_size": 260, "n_positions": 128, "n_embd": 64, "n_layer": 2, "n_head": 4, "rotary_dim": 8,
       "n_inner": 128, "bos_token_id": 256, "eos_token_id": 256}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def tiny_model(seed=1) -> GPTJForCausalLM:
    m = GPTJForCausalLM(GPTJConfig.from_dict(CFG))
    m.init_weights(std=0.1, randomize_all=True, generator=torch.Generator().manual_seed(seed))
    return m


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small random GPT-J as a Hugging Face folder (safetensors, byte tokenizer) with pairs made for it."""
    d = tmp_path_factory.mktemp("base")
    (d / "config.json").write_text(json.dumps(CFG))
    write_safetensors(str(d / "model.safetensors"), tiny_model().state_dict())
    write_byte_tokenizer(str(d), CFG["n_positions"])
    digest = hashlib.sha256((d / "tokenizer.json").read_bytes()).hexdigest()
    rng = random.Random(0)
    for split, n in (("train", 24), ("dev", 6)):
        with open(d / f"{split}.jsonl", "w") as f:
            for _ in range(n):
                p = [rng.randrange(256) for _ in range(rng.randrange(5, 30))]
                t = [rng.randrange(40, 60) for _ in range(rng.randrange(3, 15))] + [256]
                f.write(json.dumps({"prompt_ids": p, "target_ids": t, "tokenizer": digest}) + "\n")
    return d


def args_for(base, work, *extra):
    return ["--base", str(base), "--train", str(base / "train.jsonl"), "--dev", str(base / "dev.jsonl"), "--work", str(work),
            "--threads", "1", *extra]


def run(argv, env=ENV, check=True):
    r = subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"finetune-gptj.py exited {r.returncode}:\n{r.stderr}")
    return r


def log_of(work):
    with open(os.path.join(work, "log.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in f if line.strip()]


# ---------------------------------------------------------------- in process

def test_loss_is_the_cross_entropy_of_the_target_tokens_only():
    torch.manual_seed(0)
    m = tiny_model()
    pairs = [([1, 2, 3, 4], [50, 51, 256]), ([9, 8], [40, 256]), ([7, 7, 7, 7, 7, 7], [45, 46, 47, 256])]
    ids, mask, labels = ft.collate(pairs, [0, 1, 2], 256, "cpu")
    got = ft.TargetLoss(m)(ids, mask, labels)
    want = 0.0
    for p, t in pairs:  # each pair alone, unpadded: -log p(target | prompt)
        logits, _ = m(torch.tensor([p + t]))
        lp = F.log_softmax(logits[0, len(p) - 1:-1], dim=1)
        want += -lp.gather(1, torch.tensor(t).unsqueeze(1)).sum().item()
    assert got.item() == pytest.approx(want, rel=1e-5)
    # the prompt tokens are context, not targets: changing a prompt token changes the loss only
    # through the context, and labels are -100 on every prompt and padding position
    assert labels[0].tolist() == [-100] * 4 + [50, 51, 256] + [-100] * 3


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    pairs = [([1, 2, 3], [50, 256]), ([4, 5, 6, 7], [51, 52, 256])]
    ids, mask, labels = ft.collate(pairs, [0, 1], 256, "cpu")
    grads = []
    for ckpt in (False, True):
        m = tiny_model()
        loss = ft.TargetLoss(m, checkpoint=ckpt)(ids, mask, labels)
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in m.parameters()]))
    assert grads[0][0] == grads[1][0]
    for a, b in zip(grads[0][1], grads[1][1]):
        assert torch.allclose(a, b, atol=1e-7)


def test_lora_starts_at_the_base_and_merges_into_plain_weights():
    m = tiny_model()
    ref = {k: v.clone() for k, v in m.state_dict().items()}
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    before, _ = m(ids)
    wrapped = lora.add_lora(m, rank=4, alpha=8)
    assert len(wrapped) == 6 * CFG["n_layer"]
    assert {n for n, p in m.named_parameters() if p.requires_grad} == {f"{w}.lora_{x}" for w in wrapped for x in "ab"}
    assert torch.equal(m(ids)[0], before)  # B starts at zero
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, lora.LoRALinear):
                mod.lora_b.normal_(0, 0.05)
    trained, _ = m(ids)
    merged = lora.merged_state_dict(m)
    assert set(merged) == set(ref)
    assert torch.equal(merged["transformer.ln_f.weight"], ref["transformer.ln_f.weight"])
    assert not torch.equal(merged["transformer.h.0.attn.q_proj.weight"], ref["transformer.h.0.attn.q_proj.weight"])
    plain = GPTJForCausalLM.from_state_dict(GPTJConfig.from_dict(CFG), dict(merged))
    assert torch.allclose(plain(ids)[0], trained, atol=1e-5)
    # a base given apart (the full-precision one of a bf16 run) is what the deltas are added to
    shifted = {k: v + 1 for k, v in ref.items()}
    again = lora.merged_state_dict(m, shifted)
    assert torch.allclose(again["transformer.h.0.attn.q_proj.weight"] - merged["transformer.h.0.attn.q_proj.weight"], torch.ones(64, 64))


def test_the_batch_of_a_step_depends_on_the_step_alone():
    pairs = [([i], [i + 1, 256]) for i in range(20)]
    a, b = ft.Batches(pairs, 8, seed=3), ft.Batches(pairs, 8, seed=3)
    steps = [a.indices(k) for k in range(6)]
    assert [b.indices(k) for k in reversed(range(6))] == list(reversed(steps))
    assert sorted(sum(steps[:2], [])) == sorted(set(sum(steps[:2], [])))  # an epoch has no repeats
    assert steps[2] != steps[0]  # the next epoch is reshuffled


# ---------------------------------------------------------------- the script

def test_a_killed_run_resumes_with_the_same_loss_curve(base, tmp_path):
    argv = ["--lr", "1e-3", "--steps", "60", "--batch-size", "8", "--micro-batch", "4", "--ckpt-every", "5", "--eval-every", "10"]
    run(args_for(base, tmp_path / "whole", *argv))
    whole = log_of(tmp_path / "whole")
    assert [r["step"] for r in whole] == list(range(61))

    work = tmp_path / "killed"
    p = subprocess.Popen([sys.executable, SCRIPT, *args_for(base, work, *argv)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    log = work / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if log.exists() and sum(1 for _ in open(log)) >= 13:  # step 12 logged: the step-10 checkpoint is on disk
            break
        time.sleep(0.005)
    assert p.poll() is None, "the run ended before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    cut = len(log_of(work)) - 1
    assert 12 <= cut < 60
    # without --resume a checkpoint is not overwritten
    refused = run(args_for(base, work, *argv), check=False)
    assert refused.returncode == 2 and "pass --resume" in refused.stderr
    # other settings are refused, naming them
    other = run(args_for(base, work, *argv[:-2], "--eval-every", "10", "--resume", "--lr", "2e-3"), check=False)
    assert other.returncode == 2 and "lr: 0.001 then, 0.002 now" in other.stderr
    r = run(args_for(base, work, *argv, "--resume"))
    assert "resumed at step" in r.stdout
    assert log_of(work) == whole
    a = torch.load(tmp_path / "whole" / "final" / "pytorch_model.bin")
    b = torch.load(work / "final" / "pytorch_model.bin")
    assert all(torch.equal(a[k], b[k]) for k in a)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ddp_processes_reach_the_loss_of_one(base, tmp_path):
    """DistributedDataParallel on gloo, each process started by hand as torchrun would start it
    (Debian's torchrun cannot parse its own arguments on Python 3.11, DESIGN.md). The global batch
    is the same, split over two processes with two micro-batches each instead of four in one:
    only the order of float sums differs."""
    argv = ["--lr", "1e-3", "--steps", "9", "--batch-size", "8", "--micro-batch", "2", "--ckpt-every", "3", "--eval-every", "3"]
    run(args_for(base, tmp_path / "one", *argv))
    port = str(_free_port())
    procs = [
        subprocess.Popen([sys.executable, SCRIPT, *args_for(base, tmp_path / "two", *argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r)})
        for r in (0, 1)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1].decode() + outs[1][1].decode()
    assert "2 processes x 2 micro-batches" in outs[0][0].decode()
    one, two = log_of(tmp_path / "one"), log_of(tmp_path / "two")
    assert [r["step"] for r in two] == [r["step"] for r in one]
    for a, b in zip(one, two):
        for k in ("loss", "dev_loss"):
            if k in a:
                assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), (a, b)
        assert a.get("tokens") == b.get("tokens")
    w1 = torch.load(tmp_path / "one" / "final" / "pytorch_model.bin")
    w2 = torch.load(tmp_path / "two" / "final" / "pytorch_model.bin")
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-4


def test_the_three_kinds_of_base(base, tmp_path):
    """A Hugging Face folder (the fixture), a ModelCenter .pt with --config and --tokenizer, and a
    uit model folder (export-gptj.py's output, read back from the ONNX initializers) train alike."""
    argv = ["--lr", "1e-3", "--steps", "2", "--batch-size", "4"]
    run(args_for(base, tmp_path / "hf", *argv))
    sd = load_checkpoint(str(base))[0]
    torch.save(to_modelcenter(sd, "encoder"), tmp_path / "mc.pt")
    mc = ["--base", str(tmp_path / "mc.pt"), "--config", str(base / "config.json"), "--tokenizer", str(base)]
    run([*mc, *args_for(base, tmp_path / "mc", *argv)[2:]])
    no_tok = run([*mc[:4], *args_for(base, tmp_path / "mc2", *argv)[2:]], check=False)
    assert no_tok.returncode == 2 and "pass --tokenizer DIR" in no_tok.stderr
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "export-gptj.py"), str(base), str(tmp_path / "uit")], check=True, capture_output=True, env=ENV)
    run(["--base", str(tmp_path / "uit"), *args_for(base, tmp_path / "uit-w", *argv)[2:]])
    logs = [log_of(tmp_path / w) for w in ("hf", "mc", "uit-w")]
    assert logs[0] == logs[1]
    for a, b in zip(logs[0], logs[2]):  # ONNX initializers hold the same float32 weights
        assert b == pytest.approx(a, rel=1e-6)


def test_bf16_lora_and_the_refusals(base, tmp_path):
    r = run(args_for(base, tmp_path / "lora", "--method", "lora", "--lr", "1e-2", "--steps", "3", "--batch-size", "4", "--dtype", "bf16", "--grad-checkpoint"))
    assert "trained (lora, 12 LoRA modules), bf16" in r.stdout
    log = log_of(tmp_path / "lora")
    assert all(x == x and x < 10 for x in (rec.get("loss", 0) for rec in log))
    # the base of a LoRA run is its own weights plus the merged update, at full precision
    merged = torch.load(tmp_path / "lora" / "final" / "pytorch_model.bin")
    assert torch.equal(merged["transformer.ln_f.bias"], load_checkpoint(str(base))[0]["transformer.ln_f.bias"])
    fsdp = run(args_for(base, tmp_path / "fsdp", "--fsdp", "--steps", "1"), check=False)
    assert fsdp.returncode == 2 and "--fsdp needs PyTorch 2.2 or later" in fsdp.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "Instruction: x\nDefinition:", "target": " y"}) + "\n")
    nope = run(["--base", str(base), "--train", str(bad), "--work", str(tmp_path / "bad")], check=False)
    assert nope.returncode == 2 and f"{bad}:1: prompt_ids/target_ids: missing" in nope.stderr


# ---------------------------------------------------------------- uit-tiny, distilled, in uit

def _uit(*argv):
    if not os.path.exists(os.path.join(REPO, "dist", "cli.js")):
        subprocess.run(["npx", "tsc", "-p", "tsconfig.build.json"], cwd=REPO, check=True)
    r = subprocess.run(["node", os.path.join(REPO, "bin", "uit.js"), *argv], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _mean_ce(model: str, pairs_file: str) -> float:
    rows = [json.loads(line) for line in _uit("score", pairs_file, "--model", model, "--no-cache", "--json", "--threads", "1").splitlines() if line.strip()]
    return sum(r["sum_ce"] for r in rows) / sum(r["tokens"] for r in rows)


def test_distilled_uit_tiny_loads_in_uit_and_scores_its_training_pairs_better(tmp_path):
    """distill-data on a real teacher's provenance, a short full fine-tune of models/uit-tiny (read
    back from its ONNX weights), the export, then uit itself: the exported model loads and its
    mean CE on the training targets is below the base model's."""
    teacher = os.path.join(REPO, "test", "fixtures", "distill", "teacher")
    tiny = os.path.join(REPO, "models", "uit-tiny")
    _uit("distill-data", teacher, "-o", str(tmp_path / "pairs"), "--tokenizer", tiny, "--dev-share", "0")
    train = tmp_path / "pairs" / "train.jsonl"
    out = tmp_path / "student"
    run(["--base", tiny, "--train", str(train), "--work", str(tmp_path / "work"), "--out", str(out), "--lr", "1e-3", "--steps", "6",
         "--batch-size", "4", "--threads", "2"])
    assert (out / "onnx" / "parity.json").exists()
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["train"]["pairs"] == 8 and summary["steps"] == 6
    scored = tmp_path / "score.jsonl"
    with open(train) as f, open(scored, "w") as g:
        for line in f:
            p = json.loads(line)
            g.write(json.dumps({"id": p["id"], "prefix": p["prompt"], "target": p["target"]}) + "\n")
    before, after = _mean_ce(tiny, str(scored)), _mean_ce(str(out), str(scored))
    assert after < before - 0.05, (before, after)


def test_paired_compare_tests_against_hand_computed_values():
    import paired_compare as pc

    assert pc.wilcoxon([1, 2, 3, 4, 5]) == {"n": 5, "w_plus": 15.0, "p": 2 / 32}
    # |1| twice share rank 1.5: W+ = 4.5 of 6; sums at least as far from 3: 0, 1.5 (twice), 4.5 (twice), 6
    assert pc.wilcoxon([1, -1, 2, 0]) == {"n": 3, "w_plus": 4.5, "p": 6 / 8}
    assert pc.sign_test([0.1, 0.2, -0.1, 0, 0.3]) == {"up": 3, "down": 1, "same": 1, "p": 2 * 5 / 16}
    r = pc.analyse({"a": 0.1, "b": 0.2, "c": 0.5}, {"a": 0.2, "b": 0.2, "c": 0.8, "d": 1.0})
    assert r["tasks"] == 3 and r["mean_diff"] == pytest.approx(0.4 / 3)
    assert r["bootstrap_95"][0] <= r["mean_diff"] <= r["bootstrap_95"][1]
