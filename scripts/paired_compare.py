#!/usr/bin/env python3
"""Paired comparison of two `uit compare --json` reports against the same reference (before and
after distillation, or any two offline models): per-task differences of a metric, with tests
across tasks that do not assume normality.

    /usr/bin/python3 scripts/paired_compare.py before.json after.json [--metric rougeL] [--json]

Tasks are matched by id; a task in one report only is left out (and counted). For the mean
difference (after - before): a bootstrap 95% interval (10,000 resamples of tasks, seeded), the sign
test (exact two-sided binomial on the tasks that changed) and the Wilcoxon signed-rank test (exact,
two-sided, zero differences dropped, tied magnitudes given their mean rank). Tasks of one dataset
are not independent (a P3 dataset's templates share their reference), so --group REGEX repeats the
tests on group means, the group of a task being the first capture group of REGEX on its id.
Standard library only.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
from typing import Dict, List, Optional, Sequence


def read_metric(path: str, metric: str) -> Dict[str, float]:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    out = {}
    for t in doc["tasks"]:
        v = t.get(metric)
        if v is None and metric == "perplexity":
            v = (t.get("offline") or {}).get("perplexity")
        if v is not None:
            out[t["id"]] = float(v)
    return out


def sign_test(diffs: Sequence[float]) -> dict:
    wins = sum(d > 0 for d in diffs)
    losses = sum(d < 0 for d in diffs)
    n = wins + losses
    k = min(wins, losses)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return {"up": wins, "down": losses, "same": len(diffs) - n, "p": p}


def wilcoxon(diffs: Sequence[float]) -> dict:
    """Exact two-sided p of W+ (the sum of ranks of positive differences) by counting, over every
    sign assignment, the sums at least as far from the mean; ranks are doubled to stay integers."""
    d = [x for x in diffs if x != 0]
    n = len(d)
    if n == 0:
        return {"n": 0, "w_plus": 0.0, "p": 1.0}
    order = sorted(range(n), key=lambda i: abs(d[i]))
    ranks2 = [0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            ranks2[order[k]] = i + j + 2  # twice the mean of ranks i+1 .. j+1
        i = j + 1
    w2 = sum(r for r, x in zip(ranks2, d) if x > 0)
    total2 = sum(ranks2)
    counts = {0: 1}
    for r in ranks2:
        nxt = dict(counts)
        for s, c in counts.items():
            nxt[s + r] = nxt.get(s + r, 0) + c
        counts = nxt
    dev = abs(2 * w2 - total2)
    extreme = sum(c for s, c in counts.items() if abs(2 * s - total2) >= dev)
    return {"n": n, "w_plus": w2 / 2, "p": min(1.0, extreme / 2 ** n)}


def bootstrap(diffs: Sequence[float], seed: int = 0, reps: int = 10_000) -> List[float]:
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(reps))
    return [means[int(0.025 * reps)], means[int(0.975 * reps) - 1]]


def analyse(before: Dict[str, float], after: Dict[str, float]) -> dict:
    ids = sorted(set(before) & set(after))
    diffs = [after[i] - before[i] for i in ids]
    if not ids:
        raise SystemExit("no task is in both reports")
    n = len(ids)
    return {
        "tasks": n,
        "mean_before": sum(before[i] for i in ids) / n,
        "mean_after": sum(after[i] for i in ids) / n,
        "mean_diff": sum(diffs) / n,
        "bootstrap_95": bootstrap(diffs),
        "sign_test": sign_test(diffs),
        "wilcoxon": wilcoxon(diffs),
    }


def grouped(values: Dict[str, float], pattern: re.Pattern) -> Dict[str, float]:
    groups: Dict[str, List[float]] = {}
    for k, v in values.items():
        m = pattern.search(k)
        groups.setdefault(m.group(1) if m else k, []).append(v)
    return {g: sum(v) / len(v) for g, v in groups.items()}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--metric", default="rougeL", help="a per-task number of the reports: rougeL (default), bleu, exact, or "
                    "perplexity (the offline side's, from uit compare --scorer)")
    ap.add_argument("--group", help="also test group means; the group is the first capture group of REGEX on the task id")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    before, after = read_metric(a.before, a.metric), read_metric(a.after, a.metric)
    result = {"metric": a.metric, "only_before": len(set(before) - set(after)), "only_after": len(set(after) - set(before)),
              "by_task": analyse(before, after)}
    if a.group:
        rx = re.compile(a.group)
        result["by_group"] = analyse(grouped(before, rx), grouped(after, rx))
        result["by_group"]["groups"] = result["by_group"].pop("tasks")
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    for level in ("by_task", "by_group"):
        r = result.get(level)
        if not r:
            continue
        n = r.get("tasks", r.get("groups"))
        s, w = r["sign_test"], r["wilcoxon"]
        print(f"{a.metric} {level.replace('_', ' ')} (n = {n}): before {r['mean_before']:.3f}, after {r['mean_after']:.3f}, "
              f"difference {r['mean_diff']:+.3f} (bootstrap 95% {r['bootstrap_95'][0]:+.3f} to {r['bootstrap_95'][1]:+.3f}); "
              f"up {s['up']}, down {s['down']}, same {s['same']}: sign test p = {s['p']:.3g}, Wilcoxon signed-rank p = {w['p']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
