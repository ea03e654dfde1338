#!/usr/bin/env python3
"""Evaluate uit-tiny with the PyTorch model (same weights as the ONNX export) on held-out data.

    nice /usr/bin/python3 scripts/eval_tiny.py [--model tmp/uit-tiny/hf] [--out tmp/uit-tiny/eval.json]

1. Perplexity of held-out Ni-v2 definitions vs the same words shuffled (per-task and pooled).
2. Denoising: per held-out task, the human definition among corrupted candidates (sentences
   shuffled; the task's own name words swapped for another task's; another task's definition),
   each scored with the UIT scoring prompt: token-weighted mean CE of gold outputs over up to M
   instances. How often the human one has the lowest score, against chance.
3. Transfer: the held-out datasets' templates through the transfer prompt (bare pair and few-shot
   with src/transfer/seed-pairs.json), greedy and sampled, shown as they are.
Held-out tasks are the niv2/tasks files outside the default train split (see tiny_corpus.py): the
default test split itself is not in ../shared/data.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
sys.path.insert(0, SCRIPTS)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import bpe  # noqa: E402
import tiny_corpus as tc  # noqa: E402
from gptj import GPTJConfig, GPTJForCausalLM  # noqa: E402


def load_model(folder: str) -> Tuple[GPTJForCausalLM, bpe.ByteLevelBPE]:
    cfg = GPTJConfig.from_json_file(os.path.join(folder, "config.json"))
    model = GPTJForCausalLM(cfg)
    model.load_state_dict(torch.load(os.path.join(folder, "pytorch_model.bin")))
    model.eval()
    return model, bpe.ByteLevelBPE.from_file(os.path.join(folder, "tokenizer.json"))


@torch.no_grad()
def target_nll(model: GPTJForCausalLM, prefix: List[int], target: List[int]) -> Tuple[float, int]:
    """Sum of -log p(target | prefix) and the number of target tokens (teacher forcing). Past the
    context length the prefix loses tokens on the left, as `uit score` does by default."""
    room = model.config.n_positions - len(target)
    if len(prefix) > room:
        prefix = prefix[len(prefix) - room:]
    ids = torch.tensor([prefix + target])
    logits, _ = model(ids)
    logp = F.log_softmax(logits[0, len(prefix) - 1: ids.size(1) - 1], dim=1)
    nll = -logp.gather(1, torch.tensor(target).unsqueeze(1)).sum().item()
    return nll, len(target)


# ------------------------------------------------------------------------------------------------
# 1. perplexity vs shuffled words


def shuffled_words(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(10):
        rng.shuffle(words)
        if " ".join(words) != " ".join(text.split()):
            break
    return " ".join(words)


def eval_perplexity(model, tok, definitions: Dict[str, str], seed: int = 0) -> dict:
    """Each definition as its own document (after <|endoftext|>, as in training) vs a seeded
    shuffle of its words."""
    rng = random.Random(seed)
    rows = []
    for name, d in sorted(definitions.items()):
        d = " ".join(d.split())
        s = shuffled_words(d, rng)
        a = target_nll(model, [tok.eos_id], tok.encode(d))
        b = target_nll(model, [tok.eos_id], tok.encode(s))
        rows.append({"task": name, "ppl": math.exp(a[0] / a[1]), "ppl_shuffled": math.exp(b[0] / b[1]),
                     "tokens": a[1], "tokens_shuffled": b[1], "nll": a[0], "nll_shuffled": b[0]})
    pooled = math.exp(sum(r["nll"] for r in rows) / sum(r["tokens"] for r in rows))
    pooled_s = math.exp(sum(r["nll_shuffled"] for r in rows) / sum(r["tokens_shuffled"] for r in rows))
    return {"tasks": len(rows), "ppl": pooled, "ppl_shuffled": pooled_s,
            "original_lower": sum(r["ppl"] < r["ppl_shuffled"] for r in rows), "rows": rows}


# ------------------------------------------------------------------------------------------------
# 2. denoising


def split_sentences(text: str) -> List[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if s]


def shuffle_sentences(text: str, rng: random.Random) -> Optional[str]:
    parts = split_sentences(text)
    if len(parts) < 2:
        parts = [p.strip() for p in re.split(r"(?<=,)\s+", " ".join(text.split())) if p.strip()]
    if len(parts) < 2:
        return None
    orig = list(parts)
    for _ in range(10):
        rng.shuffle(parts)
        if parts != orig:
            return " ".join(parts)
    return None


def name_words(task: str) -> List[str]:
    """The descriptive words of a Ni-v2 task name: task184_snli_entailment_to_neutral_text_modification
    -> snli, entailment, neutral, text, modification."""
    return [w for w in task.split("_")[1:] if w.isalpha() and len(w) > 2 and w not in ("the", "and", "for")]


def swap_names(text: str, task: str, other: str) -> Optional[str]:
    """Replace the words of the task's own name that occur in its definition by the other task's
    name words, in order (e.g. 'question' -> 'summary'). None when nothing changes."""
    own = [w for w in name_words(task) if re.search(rf"\b{re.escape(w)}\b", text, re.I)]
    repl = [w for w in name_words(other) if w not in name_words(task)]
    if not own or not repl:
        return None
    out = text
    for i, w in enumerate(own):
        out = re.sub(rf"\b{re.escape(w)}\b", repl[i % len(repl)], out, flags=re.I)
    return out if out != text else None


def candidates(definition: str, task: str, other_task: str, other_definition: str, rng: random.Random,
               other_if_distinct: bool = False) -> dict:
    """The human definition and its corruptions, by kind: sentences shuffled, own name words
    swapped for the other task's, and the other task's definition (optionally only when it differs).
    The finetune stage of train-tiny-gptj.py draws its training candidates with this too."""
    cands = {"human": definition}
    s = shuffle_sentences(definition, rng)
    if s:
        cands["shuffled_sentences"] = s
    w = swap_names(definition, task, other_task)
    if w:
        cands["swapped_names"] = w
    if not other_if_distinct or other_definition.strip() != definition.strip():
        cands["other_task"] = other_definition
    return cands

def truncated_instances(model, tok, definition: str, examples: Sequence[dict], instances: Sequence[dict], m: int, seed: int) -> int:
    """How many scored instances do not fit the context (their prefix loses its start, and with it
    some or all of the definition)."""
    insts = [i for i in instances if i["output"] and i["output"][0]]
    random.Random(seed).shuffle(insts)
    return sum(len(tok.encode(tc.scoring_prefix(definition, examples, i["input"]))) + len(tok.encode(i["output"][0]))
               > model.config.n_positions for i in insts[:m])


def binom_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the one-sided p-value of k successes against chance p."""
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def uit_score(model, tok, definition: str, examples: Sequence[dict], instances: Sequence[dict], m: int, seed: int) -> float:
    """Token-weighted mean CE of the gold outputs, prefix and target tokenized separately."""
    insts = [i for i in instances if i["output"] and i["output"][0]]
    random.Random(seed).shuffle(insts)
    nll = n = 0.0
    for inst in insts[:m]:
        prefix = tok.encode(tc.scoring_prefix(definition, examples, inst["input"]))
        a, b = target_nll(model, prefix, tok.encode(inst["output"][0]))
        nll += a
        n += b
    return nll / n


def eval_denoising(model, tok, tasks: Sequence[tc.NiTask], pool: Sequence[tc.NiTask], m: int = 16, seed: int = 0) -> dict:
    """pool: where the 'other task' candidates come from (a task of another dataset)."""
    rng = random.Random(seed)
    rows = []
    for t in tasks:
        if len(t.positive) < 2 or not t.instances:
            continue
        others = [o for o in pool if o.name.split("_")[1] != t.name.split("_")[1]]
        other = rng.choice(others)
        cands = candidates(t.definition, t.name, other.name, other.definition, rng)
        scores = {k: uit_score(model, tok, v, t.positive[:2], t.instances, m, seed) for k, v in cands.items()}
        rows.append({"task": t.name, "other": other.name, "scores": scores,
                     "human_best": all(scores["human"] < v for k, v in scores.items() if k != "human"), "candidates": len(cands),
                     "truncated": truncated_instances(model, tok, t.definition, t.positive[:2], t.instances, m, seed)})
    best = sum(r["human_best"] for r in rows)
    chance = sum(1 / r["candidates"] for r in rows)
    summary = {"tasks": len(rows), "human_best": best, "chance_best": round(chance, 1),
               "tasks_with_truncated_prompts": sum(r["truncated"] > 0 for r in rows)}
    for k in ("shuffled_sentences", "swapped_names", "other_task"):
        have = [r for r in rows if k in r["scores"] and r["scores"][k] != r["scores"]["human"]]
        wins = sum(r["scores"]["human"] < r["scores"][k] for r in have)
        summary[f"human_beats_{k}"] = {"wins": wins, "of": len(have), "p_value": round(binom_tail(wins, len(have), 0.5), 4)}
    return {"summary": summary, "rows": rows}


# ------------------------------------------------------------------------------------------------
# 3. transfer


@torch.no_grad()
def generate(model, tok, prompt: str, max_new: int = 80, temperature: float = 0.0, top_p: float = 0.95,
             seed: int = 0, stop: str = "\n\n") -> str:
    g = torch.Generator().manual_seed(seed)
    ids = tok.encode(prompt)
    logits, past = model(torch.tensor([ids]))
    out: List[int] = []
    for _ in range(max_new):
        last = logits[0, -1]
        if temperature <= 0:
            nxt = int(last.argmax())
        else:
            probs = torch.softmax(last / temperature, dim=0)
            sp, si = probs.sort(descending=True)
            keep = (sp.cumsum(0) - sp) < top_p
            sp = sp * keep
            nxt = int(si[torch.multinomial(sp / sp.sum(), 1, generator=g)])
        if nxt == tok.eos_id:
            break
        out.append(nxt)
        text = tok.decode(out)
        if stop in text:
            return text[: text.index(stop)].strip()
        n = len(ids) + len(out)
        logits, past = model(torch.tensor([[nxt]]), torch.ones(1, n, dtype=torch.int64),
                             torch.tensor([[n - 1]]), past)
    return tok.decode(out).strip()


def eval_transfer(model, tok, heldout: dict, seeds: List[dict], per_dataset: int = 1) -> List[dict]:
    fmt = tc.load_prompt_format()
    rows = []
    for ds in heldout["holdout_datasets"]:
        pairs = [p for p in heldout["holdout_pairs"] if tc._alnum(ds) in tc.dataset_names(
            tc.Template(p["template_source"], p["dataset"], p["template"], p["source"]))]
        pairs.sort(key=lambda p: -p["score"])
        for p in pairs[:per_dataset]:
            pair_prompt = tc.transfer_block(fmt, p["source"])
            few_prompt = tc.fewshot_prompt(fmt, [(s["source"], s["definition"]) for s in seeds], p["source"])
            rows.append({
                "dataset": p["dataset"], "template": p["template"], "source": p["source"],
                "reference_task": p["task"], "reference": p["definition"],
                "pair_greedy": generate(model, tok, pair_prompt),
                "pair_sampled": [generate(model, tok, pair_prompt, temperature=0.8, seed=s) for s in (1, 2)],
                "fewshot_greedy": generate(model, tok, few_prompt),
            })
    return rows


def write_crosscheck_pairs(model, tok, t: tc.NiTask, path: str, n: int = 8) -> None:
    nll = tokens = 0.0
    with open(path, "w", encoding="utf-8") as f:
        for i, inst in enumerate(t.instances[:n]):
            prefix = tc.scoring_prefix(t.definition, t.positive[:2], inst["input"])
            s, k = target_nll(model, tok.encode(prefix), tok.encode(inst["output"][0]))
            nll, tokens = nll + s, tokens + k
            f.write(json.dumps({"id": f"{t.name}#{i}", "prefix": prefix, "target": inst["output"][0], "py_sum_ce": s}) + "\n")
    print(json.dumps({"pairs": path, "task": t.name, "py_mean_ce": nll / tokens}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "tmp", "uit-tiny", "hf"))
    ap.add_argument("--heldout", default=os.path.join(REPO, "tmp", "uit-tiny", "corpus", "heldout.json"))
    ap.add_argument("--data", default=tc.DEFAULT_DATA)
    ap.add_argument("--out", default=os.path.join(REPO, "tmp", "uit-tiny", "eval.json"))
    ap.add_argument("--m", type=int, default=16, help="instances per task for denoising")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N held-out tasks (a quick check)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: ppl,denoise,transfer")
    ap.add_argument("--pairs-out", metavar="FILE", help="also write 8 scoring pairs of a held-out task as `uit score` JSONL, "
                    "with PyTorch's summed CE as py_sum_ce, to compare the ONNX model with")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, tok = load_model(a.model)
    with open(a.heldout, encoding="utf-8") as f:
        heldout = json.load(f)
    ni = tc.load_niv2(a.data)
    skip = set(filter(None, a.skip.split(",")))
    if a.pairs_out:
        name = "task1552_scitail_question_generation"
        write_crosscheck_pairs(model, tok, ni[name if name in heldout["eval_tasks"] else heldout["eval_tasks"][0]], a.pairs_out)
    res: dict = {"model": a.model}
    pool = [ni[n] for n in heldout["eval_tasks"]]
    eval_tasks = pool[: a.limit]
    if "ppl" not in skip:
        res["perplexity"] = eval_perplexity(model, tok, {t.name: t.definition for t in eval_tasks})
        print(json.dumps({k: v for k, v in res["perplexity"].items() if k != "rows"}), flush=True)
    if "denoise" not in skip:
        res["denoising"] = eval_denoising(model, tok, eval_tasks, pool, a.m)
        print(json.dumps(res["denoising"]["summary"]), flush=True)
    if "transfer" not in skip:
        with open(os.path.join(REPO, "src", "transfer", "seed-pairs.json"), encoding="utf-8") as f:
            seeds = json.load(f)
        res["transfer"] = eval_transfer(model, tok, heldout, seeds)
        for r in res["transfer"]:
            print(json.dumps(r, ensure_ascii=False, indent=1), flush=True)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(res, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
