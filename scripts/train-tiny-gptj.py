#!/usr/bin/env python3
"""Build models/uit-tiny: corpus -> byte-level BPE -> GPT-J training -> ONNX export.

    nice /usr/bin/python3 scripts/train-tiny-gptj.py            # every stage, resumable
    nice /usr/bin/python3 scripts/train-tiny-gptj.py --stage train --max-steps 50   # a pilot

Stages (each skips work whose output exists, so a killed run resumes where it stopped):
  corpus     scripts/tiny_corpus.py -> WORK/corpus/{train,val}.jsonl, pairs.jsonl, heldout.json
  tokenizer  scripts/bpe.py on the unique training texts -> WORK/tokenizer/
  encode     node scripts/encode-corpus.mjs (@huggingface/tokenizers) -> WORK/{train,val}.{ids,docs}.bin
  train      GPT-J from scripts/gptj.py, AdamW + cosine LR, seeded, checkpoint WORK/ckpt.pt
  finetune   from the trained weights (WORK/ckpt.pt, or --base: an exported model folder whose
             onnx/model.onnx_data is read back), --ft-steps steps that teach the scorer to read the
             definition: a margin loss on the UIT scoring prompt (train-split tasks only) between the
             gold output's mean CE given the task's definition and given corrupted ones (its
             sentences shuffled, its name words swapped for another task's, another task's
             definition), plus the gold output's CE and the ordinary LM loss on the corpus;
             checkpoint WORK/ft-ckpt.pt. Off by default (--ft-steps 0): tried with --ft-steps 500, it
             did not make held-out denoising better than chance (docs/model.md, "What was tried").
             --ft-reserve S (on every stage) keeps a share S of the task families out of the
             corpus and finetunes on those only, so the finetune sees tasks the model has not
             memorized; tried with 0.5, no better
  export     WORK/hf (config.json, pytorch_model.bin, tokenizer) -> scripts/export-gptj.py -> OUT

Deterministic: the corpus order, the tokenizer and the data order depend on --seed only, and the
batch of step k is a function of k (so a resumed run sees the same batches as an unbroken one).
Loss: next-token cross-entropy on every token. --context-weight W < 1 weighs a document's context
W and its target 1 (the definition of a transfer pair, the gold output of a scoring prompt); that
was tried and did not help (docs/model.md, "What was tried"), so the default is 1.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np

# Under CPU contention (other jobs on the same 2 cores) OpenMP threads that spin while waiting
# slow training several-fold; must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
sys.path.insert(0, SCRIPTS)

import bpe  # noqa: E402
import tiny_corpus  # noqa: E402

DEFAULTS = dict(
    vocab_size=4096,
    n_embd=256,
    n_layer=4,
    n_head=8,
    rotary_dim=32,
    n_positions=1024,
    seq_len=512,
    batch_size=4,
    lr=1.5e-3,
    context_weight=1.0,
    min_lr_ratio=0.1,
    warmup_steps=60,
    weight_decay=0.1,
    steps=1000,
    seed=0,
    ft_reserve=0.0,
)

# The finetune stage (see stage_finetune); its own checkpoint key. Off by default: the values are
# those of the last try (--ft-steps 500: 1223 s on the 2-core box), which did not help on held-out
# tasks (docs/model.md, "What was tried").
FT_DEFAULTS = dict(
    ft_steps=0,
    ft_lr=5e-4,
    ft_warmup=20,
    ft_groups=6,
    ft_margin=0.2,
    ft_rank_weight=4.0,
    ft_gold_weight=1.0,
    ft_lm_batch=2,
    ft_max_len=512,
    ft_zero_shot=0.7,
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------
# Data stages


def corpus_settings(a: argparse.Namespace) -> dict:
    return {"seed": a.seed, "ft_reserve": a.ft_reserve}


def check_corpus_settings(a: argparse.Namespace) -> None:
    """Refuses WORK's corpus when it was built with other settings (its settings.json; corpora made
    before that file have none): the finetune's reserved tasks must be the ones pretraining left out."""
    path = os.path.join(a.work, "corpus", "settings.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            made = json.load(f)
        if made != corpus_settings(a):
            raise SystemExit(f"{os.path.dirname(path)} was built with {made}, not {corpus_settings(a)}: remove it or use another --work")


def stage_corpus(a: argparse.Namespace) -> None:
    out = os.path.join(a.work, "corpus")
    if os.path.exists(os.path.join(out, "train.jsonl")):
        check_corpus_settings(a)
        log(f"corpus: {out} exists")
        return
    c = tiny_corpus.build(a.data, a.seed, ft_reserve=a.ft_reserve)
    tiny_corpus.write(c, out)
    write_val(c, out, a.data)
    with open(os.path.join(out, "settings.json"), "w", encoding="utf-8") as f:
        json.dump(corpus_settings(a), f)
    log(f"corpus: {json.dumps(c.stats)}")


def write_val(c: tiny_corpus.Corpus, out: str, data: str) -> None:
    """Validation documents from the held-out EVAL tasks (never trained on): scoring prompts."""
    data_ni = tiny_corpus.load_niv2(data)
    docs = []
    for name in c.heldout["eval_tasks"]:
        t = data_ni[name]
        for inst in t.instances[:2]:
            if inst["output"]:
                docs.append(tiny_corpus.score_doc(tiny_corpus.scoring_prefix(t.definition, t.positive[:2], inst["input"]), inst["output"][0]))
    with open(os.path.join(out, "val.jsonl"), "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")


def stage_tokenizer(a: argparse.Namespace) -> None:
    out = os.path.join(a.work, "tokenizer")
    if os.path.exists(os.path.join(out, "tokenizer.json")):
        log(f"tokenizer: {out} exists")
        return
    with open(os.path.join(a.work, "corpus", "train.jsonl"), encoding="utf-8") as f:
        texts = sorted({json.loads(line)["text"] for line in f})
    tok, cfg = bpe.train_tokenizer(texts, a.vocab_size, a.n_positions)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    log(f"tokenizer: {len(tok['model']['vocab'])} tokens, {len(tok['model']['merges'])} merges")


def stage_encode(a: argparse.Namespace) -> None:
    for split in ("train", "val"):
        prefix = os.path.join(a.work, split)
        if os.path.exists(prefix + ".docs.bin"):
            log(f"encode: {prefix}.*.bin exist")
            continue
        r = subprocess.run(
            ["node", os.path.join(SCRIPTS, "encode-corpus.mjs"), os.path.join(a.work, "tokenizer"),
             os.path.join(a.work, "corpus", f"{split}.jsonl"), prefix],
            cwd=REPO, check=True, capture_output=True, text=True)
        log(f"encode {split}: {r.stdout.strip()}")


def load_ids(work: str, split: str):
    ids = np.memmap(os.path.join(work, f"{split}.ids.bin"), dtype="<u2", mode="r")
    target = np.memmap(os.path.join(work, f"{split}.target.bin"), dtype=np.uint8, mode="r")
    starts = np.fromfile(os.path.join(work, f"{split}.docs.bin"), dtype="<u4").astype(np.int64)
    return ids, target, starts


class Batches:
    """Sequence packing: each epoch concatenates the documents (each ending in <|endoftext|>) in
    an order drawn from seed+epoch, and cuts the stream into windows of seq_len tokens."""

    def __init__(self, ids, starts, seq_len: int, batch_size: int, seed: int, target=None):
        self.ids, self.starts = ids, starts
        self.target = target if target is not None else np.ones(len(ids), dtype=np.uint8)
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.windows_per_epoch = int(starts[-1]) // seq_len
        self._epoch, self._stream = -1, None

    def _epoch_stream(self, epoch: int):
        if epoch != self._epoch:
            order = np.random.RandomState(self.seed + epoch).permutation(len(self.starts) - 1)
            spans = [slice(self.starts[i], self.starts[i + 1]) for i in order]
            self._stream = (np.concatenate([self.ids[sp] for sp in spans]).astype(np.int64),
                            np.concatenate([self.target[sp] for sp in spans]))
            self._epoch = epoch
        return self._stream

    def batch(self, step: int) -> np.ndarray:
        return self.batch_with_target(step)[0]

    def batch_with_target(self, step: int):
        """Token ids [batch, seq_len] and the target flags of the same tokens."""
        rows, flags = [], []
        for j in range(self.batch_size):
            w = step * self.batch_size + j
            epoch, k = divmod(w, self.windows_per_epoch)
            ids, target = self._epoch_stream(epoch)
            rows.append(ids[k * self.seq_len:(k + 1) * self.seq_len])
            flags.append(target[k * self.seq_len:(k + 1) * self.seq_len])
        return np.stack(rows), np.stack(flags)


def weighted_lm_loss(logits, ids, target, context_weight: float):
    """Next-token cross-entropy where a predicted token of a target weighs 1, others context_weight."""
    import torch
    import torch.nn.functional as F

    v = logits.size(2)
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, v), ids[:, 1:].reshape(-1), reduction="none")
    w = torch.where(target[:, 1:].reshape(-1) > 0, torch.tensor(1.0), torch.tensor(context_weight))
    return (ce * w).sum() / w.sum()


def val_windows(a: argparse.Namespace) -> np.ndarray:
    """The first --val-windows windows of the validation split, the loss both stages log."""
    vids, _vt, _vs = load_ids(a.work, "val")
    return np.asarray(vids[: (len(vids) // a.seq_len) * a.seq_len], dtype=np.int64).reshape(-1, a.seq_len)[: a.val_windows]


def val_loss(model, val: np.ndarray) -> float:
    import torch
    from gptj import causal_lm_loss

    model.eval()
    with torch.no_grad():
        losses = [causal_lm_loss(model(torch.from_numpy(val[i:i + 4]))[0], torch.from_numpy(val[i:i + 4])).item()
                  for i in range(0, len(val), 4)]
    model.train()
    return float(np.mean(losses))


def save_checkpoint(path: str, model, opt, step: int, elapsed: float, run_key, cfg) -> None:
    """Written to a temp file and renamed, so a killed run leaves the previous checkpoint whole."""
    import torch

    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                "run": run_key, "config": cfg.to_hf_dict()}, tmp)
    os.replace(tmp, path)


def lr_at(step: int, a: argparse.Namespace) -> float:
    if step < a.warmup_steps:
        return a.lr * (step + 1) / a.warmup_steps
    t = (step - a.warmup_steps) / max(1, a.steps - a.warmup_steps)
    return a.lr * (a.min_lr_ratio + (1 - a.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def model_config(a: argparse.Namespace):
    from gptj import GPTJConfig

    with open(os.path.join(a.work, "tokenizer", "tokenizer.json"), encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    eos = vocab[bpe.EOS]
    return GPTJConfig(vocab_size=len(vocab), n_positions=a.n_positions, n_embd=a.n_embd, n_layer=a.n_layer,
                      n_head=a.n_head, rotary_dim=a.rotary_dim, bos_token_id=eos, eos_token_id=eos)


# ------------------------------------------------------------------------------------------------
# Training


def stage_train(a: argparse.Namespace) -> None:
    import torch
    from gptj import GPTJForCausalLM, causal_lm_loss

    torch.set_num_threads(a.threads)
    ckpt_path = os.path.join(a.work, "ckpt.pt")
    cfg = model_config(a)
    torch.manual_seed(a.seed)
    model = GPTJForCausalLM(cfg)
    model.init_weights()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    step, elapsed = 0, 0.0
    run_key = {k: getattr(a, k) for k in DEFAULTS}
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        if ck["run"] != run_key:
            raise SystemExit(f"{ckpt_path} was made with other settings {ck['run']}; remove it or pass the same settings")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed = ck["step"], ck["elapsed"]
        log(f"train: resumed at step {step} ({elapsed:.0f}s trained)")
    n_params = sum(p.numel() for p in model.parameters())
    ids, target, starts = load_ids(a.work, "train")
    data = Batches(ids, starts, a.seq_len, a.batch_size, a.seed, target)
    val = val_windows(a)
    log(f"train: {n_params / 1e6:.2f}M params, {int(starts[-1])} tokens/epoch, {a.steps} steps x "
        f"{a.batch_size}x{a.seq_len} = {a.steps * a.batch_size * a.seq_len / starts[-1]:.2f} epochs")

    logf = open(os.path.join(a.work, "train-log.jsonl"), "a", encoding="utf-8")
    stop_at = a.steps if a.max_steps is None else min(a.steps, step + a.max_steps)
    model.train()
    t_last, tok_last = time.time(), 0
    while step < stop_at:
        t0 = time.time()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a)
        xb, tb = data.batch_with_target(step)
        x = torch.from_numpy(xb)
        logits, _ = model(x)
        if a.context_weight == 1.0:
            loss = causal_lm_loss(logits, x)
        else:
            loss = weighted_lm_loss(logits, x, torch.from_numpy(tb), a.context_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed += time.time() - t0
        tok_last += x.numel()
        rec = {"step": step, "loss": round(loss.item(), 4), "lr": round(lr_at(step - 1, a), 6), "gnorm": round(float(gnorm), 3),
               "elapsed_s": round(elapsed, 1)}
        if step % a.eval_every == 0 or step == a.steps:
            rec["val_loss"] = round(val_loss(model, val), 4)
        if step % 10 == 0 or "val_loss" in rec:
            rec["tok_per_s"] = round(tok_last / (time.time() - t_last))
            t_last, tok_last = time.time(), 0
            log(json.dumps(rec))
        logf.write(json.dumps(rec) + "\n")
        if step % a.ckpt_every == 0 or step == stop_at:
            save_checkpoint(ckpt_path, model, opt, step, elapsed, run_key, cfg)
    logf.close()
    log(f"train: stopped at step {step}/{a.steps}, {elapsed:.0f}s of training")


# ------------------------------------------------------------------------------------------------
# Finetune: make the scorer read the definition


def ft_pools(data: str, reserve: float = 0.0, seed: int = 0):
    """Training-split Ni-v2 tasks (tiny_corpus.split_tasks: no EVAL task, no test-split task, no
    HOLDOUT dataset): those with a task file (instances, 2+ positive examples) and all with at
    least one positive example (for prompts without examples). With reserve > 0, only the tasks
    the corpus kept out of pretraining (tiny_corpus.reserved_tasks, same share and seed)."""
    ni = tiny_corpus.load_niv2(data)
    train, _eval = tiny_corpus.split_tasks(ni, data)
    if reserve > 0:
        keep = tiny_corpus.reserved_tasks(train, reserve, seed)
        train = [t for t in train if t.name in keep]
    files = [t for t in train if t.has_file and len(t.positive) >= 2 and any(i["output"] and i["output"][0] for i in t.instances)]
    shots = [t for t in train if any(e["output"] for e in t.positive)]
    return files, shots


def ft_group(rng, files, shots, tok, a):
    """One scoring-prompt group: (kinds, prefix ids per candidate definition, gold output ids).
    Candidate 0 is the task's definition; the others are the corruptions of scripts/eval_tiny.py
    (sentences shuffled, own name words swapped for another task's, another task's definition),
    the other task drawn from a different dataset. With probability ft_zero_shot the prompt has no
    examples (any training task, a positive example as the instance), else two positive examples
    and an instance of a task file, as the scorer prompts."""
    from eval_tiny import candidates

    for _ in range(50):
        if rng.random() < a.ft_zero_shot:
            t = rng.choice(shots)
            exs = []
            inst = rng.choice([e for e in t.positive if e["output"]])
            inp, out = inst["input"], inst["output"]
        else:
            t = rng.choice(files)
            exs = rng.sample(t.positive, 2)
            inst = rng.choice([i for i in t.instances if i["output"] and i["output"][0]])
            inp, out = inst["input"], inst["output"][0]
        target = tok.encode(out)
        if not target:
            continue
        ds = t.name.split("_")[1]
        pool = files if exs else shots
        other = rng.choice([o for o in pool if o.name.split("_")[1] != ds])
        cands = candidates(t.definition, t.name, other.name, other.definition, rng, other_if_distinct=True)
        if len(cands) < 2:
            continue
        prefixes = [tok.encode(tiny_corpus.scoring_prefix(d, exs, inp)) for d in cands.values()]
        if len(prefixes[0]) + len(target) > a.ft_max_len:
            continue
        room = a.n_positions - len(target)
        return list(cands), [p[-room:] for p in prefixes], target
    raise RuntimeError("no scoring group fits --ft-max-len")


def group_target_ce(model, prefixes, target):
    """Mean CE of the target tokens after each prefix: one right-padded batch (causal attention, so
    the padding after a row never reaches its tokens)."""
    import torch
    import torch.nn.functional as F

    rows = [p + target for p in prefixes]
    n = max(len(r) for r in rows)
    ids = torch.tensor([r + [r[-1]] * (n - len(r)) for r in rows])
    logits, _ = model(ids)
    tgt = torch.tensor(target)
    out = []
    for b, p in enumerate(prefixes):
        lp = F.log_softmax(logits[b, len(p) - 1: len(p) - 1 + len(target)], dim=1)
        out.append(-lp.gather(1, tgt.unsqueeze(1)).mean())
    return torch.stack(out)


def ranking_loss(ce, margin: float):
    """ce[0]: the gold output's mean CE given the true definition; ce[1:]: given corrupted ones.
    Hinge: each corrupted candidate should score at least `margin` nats worse."""
    import torch

    return torch.clamp(margin - (ce[1:] - ce[0]), min=0).mean()


def stage_finetune(a: argparse.Namespace) -> None:
    import random

    import torch
    from checkpoints import read_onnx_weights
    from gptj import GPTJConfig, GPTJForCausalLM, causal_lm_loss

    if a.ft_steps <= 0:
        log("finetune: --ft-steps 0, skipped")
        return
    check_corpus_settings(a)
    torch.set_num_threads(a.threads)
    ft_path = os.path.join(a.work, "ft-ckpt.pt")
    run_key = {k: getattr(a, k) for k in list(DEFAULTS) + list(FT_DEFAULTS)}
    base_ck = os.path.join(a.work, "ckpt.pt")
    if os.path.exists(base_ck):
        ck = torch.load(base_ck)
        if ck["step"] < a.steps:
            raise SystemExit(f"training is at step {ck['step']} of {a.steps}: run --stage train first")
        cfg, base, base_from = GPTJConfig.from_dict(ck["config"]), ck["model"], base_ck
    elif a.base:
        cfg = GPTJConfig.from_json_file(os.path.join(a.base, "config.json"))
        base, base_from = read_onnx_weights(a.base), a.base
    else:
        raise SystemExit(f"finetune needs {base_ck} (--stage train) or --base MODEL_FOLDER")
    torch.manual_seed(a.seed)
    model = GPTJForCausalLM(cfg)
    model.load_state_dict(base)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.ft_lr, betas=(0.9, 0.95), eps=1e-8)
    step, elapsed = 0, 0.0
    if os.path.exists(ft_path):
        ck = torch.load(ft_path)
        if ck["run"] != run_key:
            raise SystemExit(f"{ft_path} was made with other settings {ck['run']}; remove it or pass the same settings")
        if ck["step"] >= a.ft_steps:
            log(f"finetune: {ft_path} is complete ({ck['step']} steps)")
            return
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed = ck["step"], ck["elapsed"]
        log(f"finetune: resumed at step {step}")
    tok = bpe.ByteLevelBPE.from_file(os.path.join(a.work, "tokenizer", "tokenizer.json"))
    files, shots = ft_pools(a.data, a.ft_reserve, a.seed)
    ids, target, starts = load_ids(a.work, "train")
    lm = Batches(ids, starts, a.seq_len, a.ft_lm_batch, a.seed + 1000, target)
    val = val_windows(a)
    log(f"finetune from {base_from}: {a.ft_steps} steps, {len(files)} task files, {len(shots)} tasks with examples; "
        f"{a.ft_groups} scoring groups + {a.ft_lm_batch}x{a.seq_len} LM tokens per step")

    def ft_lr(k: int) -> float:
        if k < a.ft_warmup:
            return a.ft_lr * (k + 1) / a.ft_warmup
        t = (k - a.ft_warmup) / max(1, a.ft_steps - a.ft_warmup)
        return a.ft_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    logf = open(os.path.join(a.work, "finetune-log.jsonl"), "a", encoding="utf-8")
    stop_at = a.ft_steps if a.max_steps is None else min(a.ft_steps, step + a.max_steps)
    model.train()
    acc: list = []
    while step < stop_at:
        t0 = time.time()
        for g in opt.param_groups:
            g["lr"] = ft_lr(step)
        rng = random.Random(a.seed * 1_000_003 + step)  # the groups of step k are a function of k
        opt.zero_grad(set_to_none=True)
        x = torch.from_numpy(lm.batch(step))
        lm_loss = causal_lm_loss(model(x)[0], x)
        lm_loss.backward()
        rank_sum = gold_sum = 0.0
        for _ in range(a.ft_groups):
            kinds, prefixes, tgt = ft_group(rng, files, shots, tok, a)
            ce = group_target_ce(model, prefixes, tgt)
            rank = ranking_loss(ce, a.ft_margin)
            ((a.ft_rank_weight * rank + a.ft_gold_weight * ce[0]) / a.ft_groups).backward()
            rank_sum += rank.item()
            gold_sum += ce[0].item()
            acc.append(float(bool((ce[1:] > ce[0]).all())))
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed += time.time() - t0
        rec = {"step": step, "lm": round(lm_loss.item(), 4), "rank": round(rank_sum / a.ft_groups, 4),
               "gold_ce": round(gold_sum / a.ft_groups, 4), "lr": round(ft_lr(step - 1), 6), "gnorm": round(float(gnorm), 3),
               "elapsed_s": round(elapsed, 1)}
        if step % a.eval_every == 0 or step == a.ft_steps:
            rec["val_loss"] = round(val_loss(model, val), 4)
        if step % 10 == 0 or "val_loss" in rec:
            rec["human_best_last50"] = round(float(np.mean(acc[-50 * a.ft_groups:])), 3)
            log(json.dumps(rec))
        logf.write(json.dumps(rec) + "\n")
        if step % 25 == 0 or step == stop_at:
            save_checkpoint(ft_path, model, opt, step, elapsed, run_key, cfg)
    logf.close()
    log(f"finetune: stopped at step {step}/{a.ft_steps}, {elapsed:.0f}s")


# ------------------------------------------------------------------------------------------------
# Export


def stage_export(a: argparse.Namespace) -> None:
    import torch

    if a.ft_steps > 0:
        ck = torch.load(os.path.join(a.work, "ft-ckpt.pt"))
        if ck["step"] < a.ft_steps:
            raise SystemExit(f"finetuning is at step {ck['step']} of {a.ft_steps}: run --stage finetune first")
    else:
        ck = torch.load(os.path.join(a.work, "ckpt.pt"))
        if ck["step"] < a.steps:
            raise SystemExit(f"training is at step {ck['step']} of {a.steps}: run --stage train first")
    hf = os.path.join(a.work, "hf")
    os.makedirs(hf, exist_ok=True)
    torch.save(ck["model"], os.path.join(hf, "pytorch_model.bin"))
    with open(os.path.join(hf, "config.json"), "w", encoding="utf-8") as f:
        json.dump(ck["config"], f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(a.work, "tokenizer", name), os.path.join(hf, name))
    staged = os.path.join(a.work, "export")
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "export-gptj.py"), hf, staged, "--force"] + a.export_args,
                   cwd=REPO, check=True)
    # Replace the model files in OUT but keep what is written by hand there (MODEL_CARD.md).
    os.makedirs(a.out, exist_ok=True)
    for name in os.listdir(a.out):
        if name != "MODEL_CARD.md":
            p = os.path.join(a.out, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    for name in os.listdir(staged):
        src = os.path.join(staged, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, os.path.join(a.out, name))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(a.out) for f in fs)
    log(f"export: {a.out} ({size / 1e6:.1f} MB)")


STAGES = {"corpus": stage_corpus, "tokenizer": stage_tokenizer, "encode": stage_encode, "train": stage_train,
          "finetune": stage_finetune, "export": stage_export}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["all"] + list(STAGES), default="all")
    ap.add_argument("--data", default=tiny_corpus.DEFAULT_DATA, help="../shared/data")
    ap.add_argument("--work", default=os.path.join(REPO, "tmp", "uit-tiny"), help="intermediate files (git-ignored)")
    ap.add_argument("--out", default=os.path.join(REPO, "models", "uit-tiny"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in this run (pilot/resume)")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--val-windows", type=int, default=16)
    ap.add_argument("--export-arg", dest="export_args", action="append", default=[], help="extra argument for export-gptj.py")
    ap.add_argument("--base", default=None, help="finetune: start from this exported model folder (its onnx/model.onnx_data) "
                    "when WORK/ckpt.pt is absent")
    for k, v in {**DEFAULTS, **FT_DEFAULTS}.items():
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=v)
    a = ap.parse_args(argv)
    os.makedirs(a.work, exist_ok=True)
    for name, fn in STAGES.items():
        if a.stage in ("all", name):
            fn(a)


if __name__ == "__main__":
    main()
