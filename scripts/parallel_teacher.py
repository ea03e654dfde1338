#!/usr/bin/env python3
"""An offline stand-in for an API teacher: human Ni-v2 definitions of P3 tasks, as candidates.

docs/distill.md checks distillation end to end on this machine, where no API can be called and
the teacher's text must not come from the student. The parallel data in ../shared/data pairs a
PromptSource template with the Ni-v2 task of the same dataset whose definition matches it best
(scripts/tiny_corpus.py, the pairing models/uit-tiny's corpus uses). A P3 file is one PromptSource
template rendered over a dataset's rows, so it has instances to score and a human definition to
stand in for what an API would have written. This script writes, for the P3 files that pair:

    OUT/teacher-candidates.jsonl  one {"task": "p3/<file>", "candidates": [DEFINITION], "transfer": {...}}
                                  per file, the input of `uit denoise --candidates` (its "transfer"
                                  record says backend "openai", so the provenance reads method "api")
    OUT/train-files.txt           the P3 files of datasets uit-tiny was trained on, one path a line
    OUT/dev-files.txt             the P3 files of the five datasets held out of uit-tiny's training
                                  (tiny_corpus.HOLDOUT_DATASETS): the student never saw them

    /usr/bin/python3 scripts/parallel_teacher.py --out /tmp/distill
    uit denoise $(cat /tmp/distill/train-files.txt) --candidates /tmp/distill/teacher-candidates.jsonl \\
        --scorer models/uit-tiny -o /tmp/distill/teacher-train

A P3 file pairs when its name is a PromptSource template's (dataset, subset and template name,
punctuation ignored) and that template pairs with a Ni-v2 task (set cosine of content words at
least 0.15, the same output kind). Needs dist/ (the template text comes from the pipeline's code).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)

import tiny_corpus as tc  # noqa: E402

TEACHER = {
    "backend": "openai",
    # What stands in for `api:<base-url>#<model>`: no URL was called.
    "model": "api:offline://shared-data#niv2-human-definitions",
    "name": "Ni-v2 human definitions (parallel data)",
    "promptStyle": "pair",
    "seeds": None,
    "params": {},
    "candidates": 1,
}


def _key(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def pair_p3_files(data: str, min_score: float = 0.15):
    """[(p3 file name without .jsonl, template, Ni-v2 task)] for the P3 files that pair."""
    ni = tc.load_niv2(data)
    test_split = set(tc.load_split(data, "test"))
    pool = [t for n, t in sorted(ni.items()) if n not in test_split]
    by_name = {}
    for t in tc.load_promptsource(data):
        by_name.setdefault(_key(t.dataset.replace("/", "_") + "_" + t.name), t)
    root = os.path.join(data, "p3_rendered")
    out = []
    for fname in sorted(os.listdir(root)):
        if not fname.endswith(".jsonl"):
            continue
        t = by_name.get(_key(fname[: -len(".jsonl")]))
        if t is None:
            continue
        names = tc.dataset_names(t)
        task, score = tc.best_task(t, [c for c in pool if tc.task_matches(names, c.name)])
        if task is not None and score >= min_score:
            out.append((fname[: -len(".jsonl")], t, task))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=tc.DEFAULT_DATA, help="../shared/data")
    ap.add_argument("--out", required=True, help="folder for teacher-candidates.jsonl, train-files.txt, dev-files.txt")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    pairs = pair_p3_files(a.data)
    root = os.path.join(a.data, "p3_rendered")
    train, dev = [], []
    with open(os.path.join(a.out, "teacher-candidates.jsonl"), "w", encoding="utf-8") as f:
        for name, template, task in pairs:
            rec = {"task": f"p3/{name}", "candidates": [task.definition], "transfer": TEACHER,
                   "pairing": {"template": f"{template.dataset}/{template.name}", "niv2_task": task.name}}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            (dev if tc.is_holdout_template(template) else train).append(os.path.join(root, name + ".jsonl"))
    for fname, files in (("train-files.txt", train), ("dev-files.txt", dev)):
        with open(os.path.join(a.out, fname), "w", encoding="utf-8") as f:
            f.write("".join(p + "\n" for p in files))
    print(json.dumps({"pairs": len(pairs), "train_files": len(train), "dev_files": len(dev), "out": a.out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
