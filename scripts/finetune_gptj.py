"""Fine-tune a GPT-J on `uit distill-data` pairs: the logic behind scripts/finetune-gptj.py.

The offline transfer model of the UIT paper is GPT-J trained with teacher forcing on (source
instruction -> definition) pairs written by an API. This script does that on the pairs
`uit distill-data --tokenizer STUDENT` writes, with Debian's torch and plain PyTorch only:

  base       a Hugging Face GPT-J folder, a ModelCenter .pt (with --config and --tokenizer), or a
             uit model folder (models/uit-tiny, any export-gptj.py output): its weights are read
             back from the ONNX initializers (checkpoints.py)
  loss       cross-entropy on the target tokens only (the definition and EOS), summed over the
             global batch and divided by its target tokens, so it means the same on any number of
             processes and any gradient accumulation
  method     full fine-tuning (AdamW on every weight), or LoRA on the attention and MLP
             projections (lora.py), merged into the weights at the end
  precision  fp32, or bf16 autocast (trainable weights and Adam states stay fp32; a LoRA base is
             stored in bf16)
  memory     --grad-checkpoint recomputes each block in the backward pass; --micro-batch with
             --batch-size accumulates gradients
  resume     WORK/ckpt.pt every --ckpt-every steps (temp file + rename); --resume continues it. The
             batch of step k and its dropout are functions of (seed, k), so a resumed run has the
             same loss curve as an unbroken one
  log        WORK/log.jsonl: one line per step (loss, lr, tokens, gradient norm), dev loss every
             --eval-every steps and at step 0
  export     the merged weights go to WORK/final (config.json, pytorch_model.bin, tokenizer), then
             through scripts/export-gptj.py to --out, a model folder with onnx/parity.json, ready
             for `uit convert --method model --prompt-style pair`
  processes  DistributedDataParallel when started as several processes (torchrun, or by hand with
             MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK); --fsdp shards full
             fine-tuning with FullyShardedDataParallel (PyTorch 2.2 or later, GPUs)

See docs/distill.md for the recipe (GPT-J 6B) and the memory each option needs.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

# Under CPU contention, OpenMP threads that spin while waiting slow training several-fold; must be
# set before torch is imported (as in train-tiny-gptj.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch.utils.checkpoint  # noqa: E402
from torch import nn  # noqa: E402

import lora  # noqa: E402
import tokenizer_files as T  # noqa: E402
from checkpoints import CheckpointError, load_checkpoint  # noqa: E402
from gptj import GPTJBlock, GPTJConfig, GPTJForCausalLM  # noqa: E402

CKPT_VERSION = 1


class FinetuneError(Exception):
    pass


# ---------------------------------------------------------------- data

def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_pairs(path: str, vocab_size: int, max_len: int, tokenizer_digest: Optional[str]) -> List[Tuple[List[int], List[int]]]:
    """(prompt ids, target ids) of every line of a distill-data JSONL. The ids must be there (uit
    distill-data --tokenizer) and made with the base model's tokenizer.json."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise FinetuneError(f"{where}: not JSON ({e})") from e
            p, t = rec.get("prompt_ids"), rec.get("target_ids")
            if not isinstance(p, list) or not isinstance(t, list):
                raise FinetuneError(f"{where}: prompt_ids/target_ids: missing; write the pairs with "
                                    "`uit distill-data --tokenizer <the base model folder>`")
            if not t or not all(isinstance(i, int) and 0 <= i < vocab_size for i in p + t):
                raise FinetuneError(f"{where}: prompt_ids/target_ids: ids must be integers in [0, {vocab_size}) and the target not empty")
            if tokenizer_digest is not None and rec.get("tokenizer") != tokenizer_digest:
                raise FinetuneError(f"{where}: tokenizer: the pairs were tokenized with tokenizer.json sha256 {rec.get('tokenizer')}, "
                                    f"the base model's is {tokenizer_digest}; run uit distill-data --tokenizer with the base model folder")
            if len(p) + len(t) > max_len:
                raise FinetuneError(f"{where}: {len(p) + len(t)} tokens, longer than the model's {max_len} positions")
            pairs.append((p, t))
    if not pairs:
        raise FinetuneError(f"{path}: no pairs")
    return pairs


class Batches:
    """The global batch of optimizer step k: each epoch is a permutation of the pairs drawn from
    seed + epoch, cut into batches of --batch-size (the last, partial one dropped). Within a batch
    the pairs are sorted by length; process r of w takes every w-th, in micro-batches. The batch of
    step k depends on k alone, which is what makes a resumed run equal an unbroken one."""

    def __init__(self, pairs, batch_size: int, seed: int):
        if len(pairs) < batch_size:
            raise FinetuneError(f"{len(pairs)} training pairs, fewer than --batch-size {batch_size}")
        self.pairs, self.batch_size, self.seed = pairs, batch_size, seed
        self.steps_per_epoch = len(pairs) // batch_size
        self._perm: Dict[int, np.ndarray] = {}

    def indices(self, step: int) -> List[int]:
        epoch, j = divmod(step, self.steps_per_epoch)
        if epoch not in self._perm:
            self._perm = {epoch: np.random.RandomState(self.seed + epoch).permutation(len(self.pairs))}
        idx = [int(i) for i in self._perm[epoch][j * self.batch_size:(j + 1) * self.batch_size]]
        return sorted(idx, key=lambda i: (-self.total_len(i), i))

    def total_len(self, i: int) -> int:
        return len(self.pairs[i][0]) + len(self.pairs[i][1])

    def target_tokens(self, idx: Sequence[int]) -> int:
        return sum(len(self.pairs[i][1]) for i in idx)


def collate(pairs, idx: Sequence[int], pad_id: int, device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input ids, attention mask and labels [b, longest]: right padding; labels are the ids on
    target positions and -100 elsewhere (prompt and padding), so only targets are learned."""
    seqs = [pairs[i][0] + pairs[i][1] for i in idx]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(seqs), width), dtype=torch.int64)
    labels = torch.full((len(seqs), width), -100, dtype=torch.int64)
    for r, i in enumerate(idx):
        p, t = pairs[i]
        n = len(p) + len(t)
        ids[r, :n] = torch.tensor(p + t)
        mask[r, :n] = 1
        labels[r, len(p):n] = torch.tensor(t)
    return ids.to(device), mask.to(device), labels.to(device)


# ---------------------------------------------------------------- model

class TargetLoss(nn.Module):
    """GPT-J forward for training: the summed cross-entropy of the target tokens. The LM head runs
    on the positions that predict a target only (a 50,400-word vocabulary makes full logits the
    largest tensor of a step). With `checkpoint`, each block is recomputed in the backward pass.
    Distributed wrappers (DDP, FSDP) wrap this module, so their hooks see every forward."""

    def __init__(self, model: GPTJForCausalLM, checkpoint: bool = False):
        super().__init__()
        self.model = model
        self.checkpoint = checkpoint

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        tr = self.model.transformer
        positions = torch.clamp(torch.cumsum(mask, dim=1) - 1, min=0)
        h, visible, sin, cos = tr._embed(ids, mask, positions)
        for block in tr.h:
            if self.checkpoint and self.training:
                h = torch.utils.checkpoint.checkpoint(_block_hidden, block, h, sin, cos, visible, use_reentrant=False)
            else:
                h = _block_hidden(block, h, sin, cos, visible)
        h = tr.ln_f(h)
        # position t predicts token t + 1
        want = labels[:, 1:]
        keep = want != -100
        logits = self.model.lm_head(h[:, : h.size(1) - 1][keep])
        return F.cross_entropy(logits.float(), want[keep], reduction="sum")


def _block_hidden(block: GPTJBlock, h, sin, cos, visible):
    return block(h, sin, cos, visible)[0]


def build_model(args) -> Tuple[GPTJForCausalLM, GPTJConfig, str]:
    try:
        sd, cfg, kind = load_checkpoint(args.base, args.config)
        model = GPTJForCausalLM.from_state_dict(cfg, sd)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        raise FinetuneError(f"--base {args.base}: {e}") from e
    for p in model.parameters():
        p.requires_grad_(True)
    return model, cfg, kind


def tokenizer_dir(args) -> str:
    d = args.tokenizer or (args.base if os.path.isdir(args.base) else None)
    if d is None:
        raise FinetuneError("--base is a weights file: pass --tokenizer DIR (the folder whose tokenizer.json made the pairs)")
    if not os.path.isfile(os.path.join(d, "tokenizer.json")):
        raise FinetuneError(f"{d}: no tokenizer.json")
    return d


# ---------------------------------------------------------------- distributed

class Dist:
    """Rank and world from the launcher's environment (torchrun or by hand); one process without."""

    def __init__(self, device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = device_arg == "cuda" or (device_arg == "auto" and torch.cuda.is_available())
        if cuda:
            if not torch.cuda.is_available():
                raise FinetuneError("--device cuda: torch sees no CUDA device")
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.world > 1:
            import torch.distributed as dist

            dist.init_process_group(backend="nccl" if cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, x: float) -> float:
        if self.world == 1:
            return x
        import torch.distributed as dist

        t = torch.tensor([x], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return float(t.item())

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def fsdp_modules():
    """The FSDP API of PyTorch >= 2.2, or a clear error (Debian's torch 1.13 on Python 3.11 cannot
    even import torch.distributed.fsdp: a dataclass incompatibility, DESIGN.md)."""
    try:
        from torch.distributed.checkpoint import state_dict as dcp_sd  # noqa: F401
        import torch.distributed.checkpoint as dcp  # noqa: F401
        from torch.distributed.fsdp import FullyShardedDataParallel, MixedPrecision  # noqa: F401
        from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy  # noqa: F401
    except Exception as e:  # ImportError, or the dataclass ValueError of 1.13 on Python 3.11
        raise FinetuneError(f"--fsdp needs PyTorch 2.2 or later with torch.distributed.fsdp; this is torch {torch.__version__} "
                            f"({type(e).__name__}: {e}). Without --fsdp, several processes train with DistributedDataParallel") from e
    import functools

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import state_dict as dcp_sd
    from torch.distributed.fsdp import FullyShardedDataParallel, MixedPrecision
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    return {"FSDP": FullyShardedDataParallel, "MixedPrecision": MixedPrecision, "dcp": dcp, "sd": dcp_sd,
            "policy": functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={GPTJBlock})}


# ---------------------------------------------------------------- training state

def run_key(args, dist: Dist, train_digest: str, dev_digest: Optional[str]) -> dict:
    """What a checkpoint must agree with to be resumed: everything that changes the loss curve."""
    keys = ["method", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets", "dtype", "batch_size", "micro_batch",
            "epochs", "steps", "lr", "warmup_steps", "schedule", "weight_decay", "clip", "seed", "fsdp"]
    k = {name: getattr(args, name) for name in keys}
    k.update(base=os.path.abspath(args.base), train=train_digest, dev=dev_digest, world=dist.world)
    return k


def lr_at(step: int, total: int, args) -> float:
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    if args.schedule == "constant":
        return args.lr
    t = (step - args.warmup_steps) / max(1, total - args.warmup_steps)
    return args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def trainable_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_ckpt(path: str, model: nn.Module, opt, step: int, elapsed: float, key: dict) -> None:
    tmp = path + ".tmp"
    torch.save({"version": CKPT_VERSION, "run": key, "step": step, "elapsed": elapsed, "trainable": trainable_state(model),
                "opt": opt.state_dict()}, tmp)
    os.replace(tmp, path)


def truncate_log(path: str, step: int) -> None:
    """Drop log lines after `step` (what a killed run logged past its last checkpoint)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        keep = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(keep)
    os.replace(tmp, path)


def check_resumable(ck: dict, key: dict, path: str) -> None:
    if ck.get("version") != CKPT_VERSION:
        raise FinetuneError(f"{path}: checkpoint format {ck.get('version')}, this script writes {CKPT_VERSION}")
    diff = sorted(k for k in set(key) | set(ck["run"]) if key.get(k) != ck["run"].get(k))
    if diff:
        detail = ", ".join(f"{k}: {ck['run'].get(k)!r} then, {key.get(k)!r} now" for k in diff)
        raise FinetuneError(f"{path} was made with other settings ({detail}); pass the same settings or use another --work")


# ---------------------------------------------------------------- the run

def evaluate(loss_mod: nn.Module, pairs, dist: Dist, pad_id: int, micro: int, autocast) -> Tuple[float, int]:
    """Mean target CE over `pairs` (every process takes every world-th pair)."""
    if not pairs:
        return float("nan"), 0
    loss_mod.eval()
    mine = list(range(dist.rank, len(pairs), dist.world))
    total = 0.0
    with torch.no_grad():
        for j in range(0, len(mine), micro):
            ids, mask, labels = collate(pairs, mine[j:j + micro], pad_id, dist.device)
            with autocast():
                total += float(loss_mod(ids, mask, labels))
    loss_mod.train()
    tokens = sum(len(t) for _, t in pairs)
    return dist.all_sum(total) / tokens, tokens


def train(args) -> dict:
    dist = Dist(args.device)
    try:
        return _train(args, dist)
    finally:
        dist.close()


def _log(dist: Dist, msg: str) -> None:
    if dist.main:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _train(args, dist: Dist) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.fsdp and args.method != "full":
        raise FinetuneError("--fsdp shards full fine-tuning; LoRA fits one GPU (drop --fsdp, or use --method full)")
    fsdp = fsdp_modules() if args.fsdp else None
    if args.batch_size % dist.world != 0:
        raise FinetuneError(f"--batch-size {args.batch_size} is not a multiple of the {dist.world} processes")
    per_rank = args.batch_size // dist.world
    micro = min(args.micro_batch, per_rank)
    accum = math.ceil(per_rank / micro)

    tok_dir = tokenizer_dir(args)
    tok_digest = sha256_file(os.path.join(tok_dir, "tokenizer.json"))
    model, cfg, kind = build_model(args)
    train_pairs = load_pairs(args.train, cfg.vocab_size, cfg.n_positions, tok_digest)
    dev_pairs = load_pairs(args.dev, cfg.vocab_size, cfg.n_positions, tok_digest) if args.dev else []
    pad_id = cfg.eos_token_id if 0 <= cfg.eos_token_id < cfg.vocab_size else 0
    batches = Batches(train_pairs, args.batch_size, args.seed)
    total = args.steps if args.steps else args.epochs * batches.steps_per_epoch

    torch.manual_seed(args.seed)
    if args.method == "lora":
        wrapped = lora.add_lora(model, args.lora_rank, args.lora_alpha, args.lora_dropout, args.lora_targets.split(","))
        if args.dtype == "bf16":
            # The frozen base in bf16 halves its memory; A and B stay float32.
            for name, p in model.named_parameters():
                if not p.requires_grad:
                    p.data = p.data.to(torch.bfloat16)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    loss_mod = TargetLoss(model, checkpoint=args.grad_checkpoint)
    if fsdp is not None:
        mp = fsdp["MixedPrecision"](param_dtype=torch.bfloat16, reduce_dtype=torch.float32, buffer_dtype=torch.bfloat16) if args.dtype == "bf16" else None
        runner = fsdp["FSDP"](loss_mod, auto_wrap_policy=fsdp["policy"], mixed_precision=mp, device_id=dist.device,
                              use_orig_params=True)
    else:
        loss_mod.to(dist.device)
        runner = loss_mod
        if dist.world > 1:
            runner = nn.parallel.DistributedDataParallel(loss_mod, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    params = [p for p in runner.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-8)

    def autocast():
        if args.dtype != "bf16" or fsdp is not None:  # FSDP's MixedPrecision casts instead
            return contextlib.nullcontext()
        return torch.autocast(device_type=dist.device.type, dtype=torch.bfloat16)

    os.makedirs(args.work, exist_ok=True)
    ckpt = os.path.join(args.work, "ckpt.pt" if fsdp is None else "ckpt")
    log_path = os.path.join(args.work, "log.jsonl")
    key = run_key(args, dist, sha256_file(args.train), sha256_file(args.dev) if args.dev else None)
    step, elapsed = 0, 0.0
    if os.path.exists(ckpt):
        if not args.resume:
            raise FinetuneError(f"{ckpt} exists: pass --resume to continue that run, or use another --work")
        step, elapsed = load_state(ckpt, runner, model, opt, key, fsdp, dist)
        _log(dist, f"resumed at step {step} of {total} ({elapsed:.0f} s trained)")
        if dist.main:
            truncate_log(log_path, step)
    elif args.resume:
        _log(dist, f"--resume: no checkpoint in {args.work}, starting at step 0")
    dist.barrier()

    _log(dist, f"GPT-J ({kind}) {n_all / 1e6:.2f}M parameters, {n_train / 1e6:.3f}M trained ({args.method}"
               + (f", {len(wrapped)} LoRA modules" if args.method == "lora" else "") + f"), {args.dtype}; "
               f"{len(train_pairs)} train / {len(dev_pairs)} dev pairs; {total} steps of {args.batch_size} "
               f"({dist.world} process{'es' if dist.world > 1 else ''} x {accum} micro-batches of <= {micro}) on {dist.device}")
    logf = open(log_path, "a", encoding="utf-8") if dist.main else None

    def write(rec: dict) -> None:
        if logf:
            logf.write(json.dumps(rec) + "\n")
            logf.flush()

    if step == 0 and dev_pairs:
        dev_loss, _ = evaluate(runner, dev_pairs, dist, pad_id, micro, autocast)
        write({"step": 0, "dev_loss": round(dev_loss, 6)})
        _log(dist, f"step 0: dev loss {dev_loss:.4f}")
    stop_at = total if args.max_steps is None else min(total, step + args.max_steps)
    runner.train()
    while step < stop_at:
        t0 = time.time()
        # Dropout (LoRA's) of step k is drawn from (seed, k): a resumed run draws the same.
        torch.manual_seed(args.seed * 1_000_003 + step)
        lr = lr_at(step, total, args)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = batches.indices(step)
        tokens = batches.target_tokens(idx)
        mine = idx[dist.rank::dist.world]
        opt.zero_grad(set_to_none=True)
        local = 0.0
        for j in range(accum):
            part = mine[j * micro:(j + 1) * micro]
            ids, mask, labels = collate(train_pairs, part, pad_id, dist.device)
            sync = j == accum - 1 or dist.world == 1
            with (contextlib.nullcontext() if sync else runner.no_sync()):
                with autocast():
                    ce = runner(ids, mask, labels)
                # DDP and FSDP average gradients over processes: scale so that the result is the
                # sum over the whole batch divided by its target tokens.
                (ce * (dist.world / tokens)).backward()
            local += float(ce)
        if fsdp is not None:
            gnorm = runner.clip_grad_norm_(args.clip if args.clip > 0 else float("inf"))
        else:
            gnorm = torch.nn.utils.clip_grad_norm_(params, args.clip if args.clip > 0 else float("inf"))
        opt.step()
        step += 1
        elapsed += time.time() - t0
        loss = dist.all_sum(local) / tokens
        rec = {"step": step, "epoch": round(step / batches.steps_per_epoch, 4), "loss": round(loss, 6), "lr": lr, "tokens": tokens,
               "gnorm": round(float(gnorm), 4), "elapsed_s": round(elapsed, 2)}
        if dev_pairs and (step % args.eval_every == 0 or step == total):
            rec["dev_loss"] = round(evaluate(runner, dev_pairs, dist, pad_id, micro, autocast)[0], 6)
        write(rec)
        if step % 10 == 0 or "dev_loss" in rec or step == stop_at:
            _log(dist, json.dumps(rec))
        if step % args.ckpt_every == 0 or step == stop_at:
            save_state(ckpt, runner, model, opt, step, elapsed, key, fsdp, dist)
    if logf:
        logf.close()
    result = {"step": step, "total": total, "elapsed_s": round(elapsed, 1)}
    if step < total:
        _log(dist, f"stopped at step {step} of {total} (--max-steps); --resume continues")
        return result
    weights = final_weights(args, runner, model, fsdp, dist)
    if dist.main:
        final = write_final(args, cfg, weights, tok_dir)
        weights = None  # the export runs in another process: free this copy first
        result["final"] = final
        if args.out:
            result["out"] = export(args, final, log_path, key, kind)
    # The other processes end here: the export can take longer than a collective's timeout.
    return result


def save_state(path: str, runner, model, opt, step: int, elapsed: float, key: dict, fsdp, dist: Dist) -> None:
    if fsdp is None:
        if dist.main:
            save_ckpt(path, model, opt, step, elapsed, key)
        dist.barrier()
        return
    # FSDP: every process writes its shards (torch.distributed.checkpoint) into a new folder, which
    # replaces the old one only when complete.
    model_sd, optim_sd = fsdp["sd"].get_state_dict(runner, opt)
    tmp = path + ".tmp"
    if dist.main and os.path.exists(tmp):
        shutil.rmtree(tmp)
    dist.barrier()
    fsdp["dcp"].save({"model": model_sd, "optim": optim_sd}, checkpoint_id=tmp)
    if dist.main:
        with open(os.path.join(tmp, "uit-meta.json"), "w", encoding="utf-8") as f:
            json.dump({"version": CKPT_VERSION, "run": key, "step": step, "elapsed": elapsed}, f)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    dist.barrier()


def load_state(path: str, runner, model, opt, key: dict, fsdp, dist: Dist) -> Tuple[int, float]:
    if fsdp is None:
        ck = torch.load(path, map_location="cpu")
        check_resumable(ck, key, path)
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, t in ck["trainable"].items():
                params[n].copy_(t)
        opt.load_state_dict(ck["opt"])
        return ck["step"], ck["elapsed"]
    with open(os.path.join(path, "uit-meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    check_resumable(meta, key, path)
    model_sd, optim_sd = fsdp["sd"].get_state_dict(runner, opt)
    state = {"model": model_sd, "optim": optim_sd}
    fsdp["dcp"].load(state, checkpoint_id=path)
    fsdp["sd"].set_state_dict(runner, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    return meta["step"], meta["elapsed"]


def final_weights(args, runner, model, fsdp, dist: Dist) -> Optional[Dict[str, torch.Tensor]]:
    """The trained weights with Hugging Face names, float32, on the main process (None elsewhere)."""
    if fsdp is None:
        if not dist.main:
            return None
        # A LoRA base trained in bf16 is merged into the original weights, read again.
        base = load_checkpoint(args.base, args.config)[0] if args.method == "lora" and args.dtype == "bf16" else None
        return lora.merged_state_dict(model, base)
    opts = fsdp["sd"].StateDictOptions(full_state_dict=True, cpu_offload=True)
    sd = fsdp["sd"].get_model_state_dict(runner, options=opts)
    if not dist.main:
        return None
    # TargetLoss holds the model as `model.`; FSDP with use_orig_params keeps the names.
    return {k[len("model."):] if k.startswith("model.") else k: v.float() for k, v in sd.items()}


def write_final(args, cfg: GPTJConfig, weights: Dict[str, torch.Tensor], tok_dir: str) -> str:
    """WORK/final: a Hugging Face GPT-J folder of the trained weights (fp32), the input of the export."""
    final = os.path.join(args.work, "final")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    torch.save(weights, os.path.join(tmp, "pytorch_model.bin"))
    hf = cfg.to_hf_dict()
    hf["torch_dtype"] = "float32"
    hf.pop("transformers.js_config", None)
    T.write_json(os.path.join(tmp, "config.json"), hf)
    T.copy_tokenizer(tok_dir, tmp, cfg.n_positions)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def export(args, final: str, log_path: str, key: dict, kind: str) -> str:
    cmd = [sys.executable, os.path.join(SCRIPTS, "export-gptj.py"), final, args.out, "--force", "--dtype", args.export_dtype] + args.export_arg
    print(f"[{time.strftime('%H:%M:%S')}] export: {' '.join(cmd)}", flush=True)
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise FinetuneError(f"export-gptj.py exited {r.returncode}; the trained weights are in {final} (export them again by hand)")
    with open(log_path, encoding="utf-8") as f:
        log = [json.loads(line) for line in f if line.strip()]
    steps = [r for r in log if "loss" in r]
    devs = [r for r in log if "dev_loss" in r]
    summary = {
        "base": {"path": args.base, "kind": kind},
        "train": {"path": args.train, "sha256": key["train"], "pairs": None},
        "dev": {"path": args.dev, "sha256": key["dev"]} if args.dev else None,
        "settings": {k: v for k, v in key.items() if k not in ("base", "train", "dev")},
        "steps": len(steps),
        "loss": {"first": steps[0]["loss"] if steps else None, "last": steps[-1]["loss"] if steps else None},
        "dev_loss": {"first": devs[0]["dev_loss"] if devs else None, "last": devs[-1]["dev_loss"] if devs else None},
        "export_dtype": args.export_dtype,
    }
    with open(args.train, encoding="utf-8") as f:
        summary["train"]["pairs"] = sum(1 for line in f if line.strip())
    T.write_json(os.path.join(args.out, "finetune.json"), summary)
    return args.out


# ---------------------------------------------------------------- command line

def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="finetune-gptj.py",
        description="Fine-tune a GPT-J on uit distill-data pairs (teacher forcing, loss on the target tokens), then export "
                    "it to a uit model folder. Plain PyTorch: no transformers, no peft.",
        epilog="examples:\n"
               "  /usr/bin/python3 scripts/finetune-gptj.py --base models/uit-tiny --train pairs/train.jsonl --dev pairs/dev.jsonl \\\n"
               "      --work /tmp/ft --out bench/models/uit-tiny-distilled --lr 3e-4 --epochs 4\n"
               "  python3 scripts/finetune-gptj.py --base ~/models/gpt-j-6b --train pairs/train.jsonl --method lora --dtype bf16 \\\n"
               "      --grad-checkpoint --device cuda --work ft --out gptj-uit --export-dtype fp16\n"
               "  torchrun --nproc_per_node 8 scripts/finetune-gptj.py --fsdp --base ~/models/gpt-j-6b --train pairs/train.jsonl \\\n"
               "      --dtype bf16 --grad-checkpoint --lr 1e-6 --epochs 2 --work ft --out gptj-uit --export-dtype fp16\n"
               "See docs/distill.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--base", required=True, help="Hugging Face GPT-J folder, ModelCenter/HF .pt or .safetensors file, or a uit model folder")
    ap.add_argument("--config", help="config.json for a weights file (HF GPTJConfig or ModelCenter keys)")
    ap.add_argument("--tokenizer", help="folder with the tokenizer.json the pairs were made with (default: --base when it is a folder)")
    ap.add_argument("--train", required=True, help="train.jsonl of uit distill-data --tokenizer")
    ap.add_argument("--dev", help="dev.jsonl of uit distill-data (dev loss at step 0, every --eval-every steps and at the end)")
    ap.add_argument("--work", required=True, help="folder for log.jsonl, the checkpoint and final/ (the trained HF folder)")
    ap.add_argument("--out", help="export the trained model here through export-gptj.py (a uit model folder)")
    ap.add_argument("--method", choices=["full", "lora"], default="full")
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--lora-alpha", type=float, default=16.0)
    ap.add_argument("--lora-dropout", type=float, default=0.0)
    ap.add_argument("--lora-targets", default=",".join(lora.DEFAULT_TARGETS), help="comma-separated module names (default: every projection)")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast compute, fp32 trainable weights and Adam states")
    ap.add_argument("--grad-checkpoint", action="store_true", help="recompute each block in the backward pass (activation memory of one block)")
    ap.add_argument("--batch-size", type=int, default=8, help="pairs per optimizer step, all processes together (default 8)")
    ap.add_argument("--micro-batch", type=int, default=8, help="pairs per forward pass per process; fewer accumulates gradients (default 8)")
    ap.add_argument("--epochs", type=int, default=2, help="passes over the training pairs (default 2, as the UIT reference)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps instead of --epochs")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-6 full, as the UIT reference; 1e-4 LoRA)")
    ap.add_argument("--warmup-steps", type=int, default=0)
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="constant", help="after warmup (default constant)")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient norm clip (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt-every", type=int, default=50, help="checkpoint every N steps (and at the end)")
    ap.add_argument("--eval-every", type=int, default=50, help="dev loss every N steps")
    ap.add_argument("--resume", action="store_true", help="continue the run checkpointed in --work")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after N steps of this run (a pilot; --resume continues)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--fsdp", action="store_true", help="shard full fine-tuning over the processes (PyTorch >= 2.2, GPUs; start with torchrun)")
    ap.add_argument("--export-dtype", choices=["fp32", "fp16"], default="fp32", help="weights of the exported model (fp16 for GPT-J 6B)")
    ap.add_argument("--export-arg", action="append", default=[], help="another argument for export-gptj.py (repeatable)")
    a = ap.parse_args(argv)
    if a.lr is None:
        a.lr = 1e-6 if a.method == "full" else 1e-4
    for name in ("batch_size", "micro_batch", "epochs", "ckpt_every", "eval_every", "lora_rank"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.steps is not None and a.steps < 1:
        ap.error("--steps must be >= 1")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = train(args)
    except FinetuneError as e:
        print(f"finetune-gptj: error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result), flush=True)
    return 0
