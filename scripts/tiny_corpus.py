"""The training corpus of the embedded model (models/uit-tiny), built from ../shared/data only.

Document kinds (each document ends with <|endoftext|> when encoded):
  pair      "Instruction: {PromptSource/FLAN template text}\\nDefinition: {Ni-v2 definition}" (the
            transfer prompt's bare pair, from src/transfer/prompt-format.json), for the same
            dataset matched by name (see match_tasks)
  fewshot   the transfer prompt's few-shot style: header, 2 other pairs, then the pair
  score     the UIT scoring prompt (src/perplexity/scoring-prompt.ts) with an instance's gold output
  template  PromptSource template text ({field} placeholders) and FLAN input templates
  p3        P3 prompts rendered by PromptSource, with their completion

Held out of training entirely:
  * the Ni-v2 default test split (niv2/splits/default/test_tasks.txt). ../shared/data holds none of
    its tasks (definitions.jsonl leaves them out and niv2/tasks has none), so the names are only
    used as a guard;
  * EVAL tasks: the niv2/tasks files outside the default train split (46 English tasks with 20
    instances each): their definitions, examples, instances and pairs. They stand in for the test
    split in the perplexity and denoising evaluations;
  * HOLDOUT datasets: every PromptSource/FLAN template, P3 file and matched Ni-v2 task of a few
    datasets, for the demo and the transfer evaluation.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))

# Whole datasets kept out of training (templates, P3 files and matched Ni-v2 tasks), chosen because
# each has PromptSource and/or FLAN templates AND a matching Ni-v2 task to compare a transfer with.
HOLDOUT_DATASETS = ["ag_news", "samsum", "trec", "xsum", "imdb"]

# FLAN keys whose templates are not one dataset's task (generic, chain-of-thought, Ni-v2 itself).
FLAN_GENERIC = re.compile(r"^(synth_cot_|cot_|stream_|t0_|bigbench:|program_synthesis|natinst_v2|predict_next_turn)")

# FLAN/PromptSource name -> the spelling Ni-v2 task names use.
ALIASES = {
    "ag_news_subset": "ag_news",
    "imdb_reviews": "imdb",
    "bool_q": "boolq",
    "multi_nli": "mnli",
    "opinion_abstracts_rotten_tomatoes": "rotten_tomatoes",
    "yelp_polarity_reviews": "yelp_polarity",
    "web_nlg_en": "web_nlg",
    "wiki_lingua_english_en": "wiki_lingua",
    "paws_wiki": "paws",
    "squad_v1": "squad1.1",
    "squad_v2": "squad2.0",
    "story_cloze": "storycloze",
    "e2e_nlg_cleaned": "e2e",
    "e2e_nlg": "e2e",
    "glue_mrpc": "mrpc",
    "glue_qqp": "qqp",
}


# --------------------------------------------------------------------------------------------
# The pipeline's prompt formats, read from the files the TypeScript code reads.


def load_prompt_format(repo: str = REPO) -> dict:
    with open(os.path.join(repo, "src", "transfer", "prompt-format.json"), encoding="utf-8") as f:
        return json.load(f)


def transfer_block(fmt: dict, source: str, definition: Optional[str] = None) -> str:
    """Mirror of block() in src/transfer/prompt.ts."""
    head = f"{fmt['sourceLabel']} {source.strip()}\n{fmt['definitionLabel']}"
    return head if definition is None else f"{head} {definition.strip()}"


def fewshot_prompt(fmt: dict, shots: Sequence[Tuple[str, str]], source: str, definition: Optional[str] = None) -> str:
    """Mirror of buildTransferPrompt(source, 'fewshot', seeds) in src/transfer/prompt.ts, with the
    answer appended when given."""
    parts = [fmt["header"]] + [transfer_block(fmt, s, d) for s, d in shots] + [transfer_block(fmt, source, definition)]
    return fmt["separator"].join(parts)


def scoring_prefix(definition: str, examples: Sequence[dict], inp: str) -> str:
    """Mirror of buildScoringPrefix() in src/perplexity/scoring-prompt.ts."""
    s = f"Definition: {definition}\n\n"
    for i, ex in enumerate(list(examples)[:2]):
        s += f"Positive Examples {i + 1}\nInput: {ex['input']}\nOutput: {ex['output']}\n\n"
    s += f"Now complete the following example -\nInput: {inp}\nOutput: "
    return s


def score_doc(prefix: str, target: str) -> dict:
    """A scoring-prompt document. The pipeline tokenizes the prefix and the gold output separately
    and concatenates the ids (DESIGN.md), so the encoder does the same with `segments`: the model
    then learns exactly the token boundary it is scored on ("Output:", " ", then the target).
    The last segment is the document's target (see the trainer's --context-weight)."""
    return {"kind": "score", "text": prefix + target, "segments": [prefix, target]}


def transfer_doc(kind: str, prompt: str, definition: str) -> dict:
    """A transfer document: the prompt up to "Definition:", then " " + the definition as the
    target. Splitting there tokenizes like the whole text (the space starts a new pre-token)."""
    return {"kind": kind, "text": f"{prompt} {definition.strip()}", "segments": [prompt, " " + definition.strip()]}


# --------------------------------------------------------------------------------------------
# Template text: what a template says around its fields, fields as {field}. Made by the pipeline's
# own code (src/formats/template-text.ts via scripts/template-texts.mjs), so the model trains on
# exactly the source text `uit convert --method model` gives it.


def template_prompts(items: List[dict], repo: str = REPO) -> List[Optional[str]]:
    """items: {"kind": "promptsource", "jinja"} or {"kind": "flan", "input", "output"}; None where
    the pipeline cannot read the template."""
    lib = os.path.join(repo, "dist", "formats", "template-text.js")
    if not os.path.exists(lib):
        subprocess.run(["npx", "tsc", "-p", "tsconfig.build.json"], cwd=repo, check=True)
    r = subprocess.run(["node", os.path.join(repo, "scripts", "template-texts.mjs")], input=json.dumps(items),
                       capture_output=True, text=True, cwd=repo, check=True)
    return [o.get("prompt") for o in json.loads(r.stdout)]


def has_words(text: str, n: int = 10) -> bool:
    """At least n letters outside the {field} placeholders: the template says something."""
    return len(re.findall(r"[A-Za-z]", re.sub(r"\{[^{}]*\}", "", text))) >= n


# --------------------------------------------------------------------------------------------
# Loading.


class _PSLoader(yaml.SafeLoader):
    pass


def _mapping(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
    return loader.construct_mapping(node, deep=True)


_PSLoader.add_constructor("!Template", _mapping)
_PSLoader.add_constructor("!TemplateMetadata", _mapping)


@dataclass
class Template:
    source: str  # "promptsource" | "flan"
    dataset: str  # PromptSource folder ("glue/mrpc") or FLAN key
    name: str
    text: str


def load_promptsource(data: str) -> List[Template]:
    root = os.path.join(data, "promptsource", "templates")
    raw: List[Tuple[str, str, str]] = []
    for dirpath, _dirs, files in sorted(os.walk(root)):
        if "templates.yaml" not in files:
            continue
        with open(os.path.join(dirpath, "templates.yaml"), encoding="utf-8") as f:
            doc = yaml.load(f, Loader=_PSLoader)
        ds = os.path.relpath(dirpath, root).replace(os.sep, "/")
        for _id, t in sorted((doc.get("templates") or {}).items()):
            langs = ((t.get("metadata") or {}).get("languages") or ["en"])
            if "en" in langs:
                raw.append((ds, t["name"], t["jinja"]))
    texts = template_prompts([{"kind": "promptsource", "jinja": j} for _, _, j in raw])
    return [Template("promptsource", ds, name, text) for (ds, name, _), text in zip(raw, texts) if text and has_words(text)]


def load_flan(data: str) -> List[Template]:
    raw: List[Tuple[str, str, dict]] = []
    seen = set()
    for fname in ("flan2021_templates.json", "flan2022_templates.json"):
        with open(os.path.join(data, "flan", fname), encoding="utf-8") as f:
            doc = json.load(f)
        for key in sorted(doc):
            for i, t in enumerate(doc[key]):
                if (key, t["input"]) in seen:
                    continue
                seen.add((key, t["input"]))
                raw.append((key, f"{fname.split('_')[0]}:{i}", t))
    texts = template_prompts([{"kind": "flan", "input": t["input"], "output": t["output"]} for _, _, t in raw])
    return [Template("flan", key, name, text) for (key, name, _), text in zip(raw, texts) if text and has_words(text)]


@dataclass
class NiTask:
    name: str
    definition: str
    positive: List[dict]
    instances: List[dict] = field(default_factory=list)  # {input, output: [..]} from niv2/tasks
    has_file: bool = False


def _norm_task(name: str) -> str:
    return name.replace("-", "_")


def load_niv2(data: str) -> Dict[str, NiTask]:
    """Definitions from definitions.jsonl and niv2/tasks, one entry per task number (the jsonl has
    some tasks twice, spelled with '-' and '_')."""
    tasks: Dict[str, NiTask] = {}
    with open(os.path.join(data, "niv2", "definitions.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            key = _norm_task(r["task"])
            if key in tasks:
                continue
            ex = r.get("positive_examples")
            tasks[key] = NiTask(key, r["definition"], [ex] if ex else [])
    tdir = os.path.join(data, "niv2", "tasks")
    for fname in sorted(os.listdir(tdir)):
        if not fname.endswith(".json"):
            continue
        with open(os.path.join(tdir, fname), encoding="utf-8") as f:
            t = json.load(f)
        key = _norm_task(fname[:-5])
        tasks[key] = NiTask(
            key,
            t["Definition"][0],
            [{"input": e["input"], "output": e["output"]} for e in t["Positive Examples"]],
            [{"input": i["input"], "output": i["output"]} for i in t["Instances"]],
            True,
        )
    return tasks


def load_split(data: str, which: str) -> List[str]:
    with open(os.path.join(data, "niv2", "splits", "default", f"{which}_tasks.txt"), encoding="utf-8") as f:
        return [_norm_task(x) for x in f.read().split()]


def load_p3(data: str) -> Dict[str, List[Tuple[str, str]]]:
    root = os.path.join(data, "p3_rendered")
    out: Dict[str, List[Tuple[str, str]]] = {}
    for fname in sorted(os.listdir(root)):
        if not fname.endswith(".jsonl"):
            continue
        rows = []
        with open(os.path.join(root, fname), encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                rows.append((r["prompt"], r["completion"].replace("<|endoftext|>", "")))
        out[fname[:-6]] = rows
    return out


# --------------------------------------------------------------------------------------------
# Matching datasets to Ni-v2 tasks by name.


def _alnum(s: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", s.lower()).replace(".", "")


def dataset_names(t: Template) -> List[str]:
    if t.source == "flan":
        names = [t.dataset, ALIASES.get(t.dataset, t.dataset)]
    else:
        parts = t.dataset.split("/")
        names = [parts[0], ALIASES.get(parts[0], parts[0])]
        if parts[0] == "glue" and len(parts) > 1:
            names = [parts[1], "glue_" + parts[1]]
    return sorted({_alnum(n) for n in names if n})


def task_matches(names: Sequence[str], task: str) -> bool:
    """True when the task name, after its number, starts with the dataset name: the first k
    underscore-separated words joined equal the dataset name without punctuation."""
    words = [_alnum(w) for w in task.split("_")[1:]]
    for n in names:
        s = ""
        for w in words:
            s += w
            if s == n:
                return True
            if len(s) >= len(n):
                break
    return False


_STOP = set(
    "a an the of to in on for and or is are be this that with as by it its your you from given each "
    "which what will should can if not then than into one two about following task there their they "
    "them any all also has have was were do does did based".split()
)


def _content_words(s: str) -> set:
    return {w for w in re.findall(r"[a-z]+", s.lower()) if w not in _STOP and len(w) > 2}


_KINDS = [
    ("question", re.compile(r"question_generation|generate_question|\b(generate|write|come up with|ask|create|construct|formulate)\b[^.?\n]{0,15}\bquestions?\b", re.I)),
    ("title", re.compile(r"\btitles?\b", re.I)),
    ("summary", re.compile(r"summar|tl;?dr|sum up|\bgist\b", re.I)),
    ("translation", re.compile(r"translat", re.I)),
]


def output_kind(text: str) -> str:
    """A coarse kind of what a task produces, to keep a question-writing template away from a
    question-answering definition of the same dataset (and titles, summaries likewise)."""
    for kind, rx in _KINDS:
        if rx.search(text):
            return kind
    return "other"


def best_task(t: Template, candidates: Sequence[NiTask]) -> Tuple[Optional[NiTask], float]:
    """Among a dataset's Ni-v2 tasks, the one whose definition and name share the most content
    words with the template (a set cosine), so a question-generation template pairs with the
    question-generation task rather than with the answer-generation one."""
    tw = _content_words(t.text + " " + t.name.replace("_", " "))
    kind = output_kind(t.name + "\n" + t.text)
    best, score = None, 0.0
    for c in candidates:
        if output_kind(c.name + "\n" + c.definition) != kind:
            continue
        cw = _content_words(c.definition + " " + " ".join(c.name.split("_")[1:]))
        if not tw or not cw:
            continue
        s = len(tw & cw) / math.sqrt(len(tw) * len(cw))
        if s > score:
            best, score = c, s
    return best, score


# --------------------------------------------------------------------------------------------
# The corpus.


def is_holdout_template(t: Template) -> bool:
    names = set(dataset_names(t))
    return any(_alnum(h) in names for h in HOLDOUT_DATASETS)


def is_holdout_task(task: str) -> bool:
    return task_matches([_alnum(h) for h in HOLDOUT_DATASETS], task)


def is_holdout_p3(fname: str) -> bool:
    return any(fname.startswith(h + "_") for h in HOLDOUT_DATASETS)


def split_tasks(ni: Dict[str, NiTask], data: str = DEFAULT_DATA) -> Tuple[List[NiTask], List[str]]:
    """(training tasks, EVAL task names): the EVAL tasks are the niv2/tasks files outside the
    default train split; training tasks are all others, less the default test split and the
    HOLDOUT datasets' tasks. The corpus and the trainer's finetune stage both use this."""
    train_split = set(load_split(data, "train"))
    test_split = set(load_split(data, "test"))
    eval_tasks = sorted(n for n, t in ni.items() if t.has_file and n not in train_split)
    excluded = set(eval_tasks) | test_split | {n for n in ni if is_holdout_task(n)}
    train_tasks = [t for n, t in sorted(ni.items()) if n not in excluded]
    assert not any(t.name in test_split for t in train_tasks)
    return train_tasks, eval_tasks


def task_families(tasks: Sequence[NiTask]) -> Dict[str, str]:
    """Task name -> a family key: tasks are one family when their names share the first word (the
    dataset) or they share an instance or example input (task105_story_cloze_rocstories_* and
    task2xx_rocstories_* share stories). The key is the family's first name in sorted order."""
    parent = {t.name: t.name for t in tasks}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: Dict[str, str] = {}
    for t in sorted(tasks, key=lambda t: t.name):
        keys = {"ds:" + t.name.split("_")[1]}
        keys |= {"in:" + x["input"] for x in t.instances + t.positive if len(x["input"]) > 40}
        for k in keys:
            if k in first:
                union(first[k], t.name)
            else:
                first[k] = t.name
    return {n: find(n) for n in parent}


def reserved_tasks(train_tasks: Sequence[NiTask], share: float, seed: int = 0) -> set:
    """Training tasks whose instances stay out of pretraining: every task of a seeded share of the
    task families (task_families: sibling tasks share inputs; the share is taken separately among
    families with task files and the others). The finetune stage ranks definitions of these
    tasks, which the model has not memorized with their outputs (docs/model.md, "What was tried").
    Their definitions still appear in transfer pairs, which carry no outputs."""
    if share <= 0:
        return set()
    rng = random.Random(seed * 7919 + 17)
    fam = task_families(train_tasks)
    with_file = sorted({fam[t.name] for t in train_tasks if t.has_file})
    others = sorted(set(fam.values()) - set(with_file))
    chosen = set(rng.sample(with_file, round(len(with_file) * share))) | set(rng.sample(others, round(len(others) * share)))
    return {n for n, f in fam.items() if f in chosen}


@dataclass
class Corpus:
    train: List[dict]  # {kind, text}
    pairs: List[dict]  # {template_source, dataset, template, task, score, source, definition}
    heldout: dict
    stats: dict


def build(data: str = DEFAULT_DATA, seed: int = 0, repo: str = REPO, min_pair_score: float = 0.15,
          score_docs_per_task: int = 10, fewshot_per_pair: int = 1, pair_repeat: int = 2,
          p3_rows_per_file: int = 8, score_docs_without_examples: int = 0, ft_reserve: float = 0.0) -> Corpus:
    rng = random.Random(seed)
    fmt = load_prompt_format(repo)
    ni = load_niv2(data)
    test_split = set(load_split(data, "test"))
    train_tasks, eval_tasks = split_tasks(ni, data)
    reserved = reserved_tasks(train_tasks, ft_reserve, seed)

    templates = load_promptsource(data) + load_flan(data)
    train_templates = [t for t in templates if not is_holdout_template(t)]
    held_templates = [t for t in templates if is_holdout_template(t)]

    # Parallel pairs: template -> the best-matching Ni-v2 task of the same dataset.
    def pair_for(t: Template, pool: Sequence[NiTask]) -> Optional[dict]:
        if t.source == "flan" and FLAN_GENERIC.match(t.dataset):
            return None
        names = dataset_names(t)
        cands = [c for c in pool if task_matches(names, c.name)]
        task, score = best_task(t, cands)
        if task is None or score < min_pair_score:
            return None
        return {"template_source": t.source, "dataset": t.dataset, "template": t.name, "task": task.name,
                "score": round(score, 3), "source": t.text, "definition": task.definition}

    def unique(ps: List[Optional[dict]]) -> List[dict]:
        # Several PromptSource subsets (adversarial_qa/*, codah/fold_*) repeat the same templates.
        seen, out = set(), []
        for p in ps:
            if p and p["source"] not in seen:
                seen.add(p["source"])
                out.append(p)
        return out

    pairs = unique([pair_for(t, train_tasks) for t in train_templates])
    held_pool = [ni[n] for n in sorted(ni) if is_holdout_task(n) and n not in test_split]
    held_pairs = unique([pair_for(t, held_pool) for t in held_templates])

    docs: List[dict] = []
    for _ in range(pair_repeat):
        for p in pairs:
            docs.append(transfer_doc("pair", transfer_block(fmt, p["source"]), p["definition"]))
    for p in pairs:
        others = [q for q in pairs if q["dataset"] != p["dataset"]]
        for _ in range(fewshot_per_pair):
            shots = rng.sample(others, 2)
            docs.append(transfer_doc("fewshot", fewshot_prompt(fmt, [(q["source"], q["definition"]) for q in shots], p["source"]),
                                     p["definition"]))

    for t in train_tasks:
        if t.name in reserved:
            continue
        if t.instances and len(t.positive) >= 2:
            insts = [i for i in t.instances if i["output"]]
            rng.shuffle(insts)
            # As the scorer sees them (two positive examples), and optionally more without
            # examples, where the definition is all there is to go by (tried for denoising: see
            # docs/model.md, "What was tried").
            for k, inst in enumerate(insts[:score_docs_per_task + score_docs_without_examples]):
                exs = t.positive[:]
                rng.shuffle(exs)
                shown = exs[:2] if k < score_docs_per_task else []
                docs.append(score_doc(scoring_prefix(t.definition, shown, inst["input"]), inst["output"][0]))
        else:
            for ex in t.positive:
                docs.append(score_doc(scoring_prefix(t.definition, [], ex["input"]), ex["output"]))

    for t in train_templates:
        docs.append({"kind": "template", "text": t.text})
    for fname, rows in load_p3(data).items():
        if is_holdout_p3(fname):
            continue
        for prompt, completion in rows[:p3_rows_per_file]:
            docs.append({"kind": "p3", "text": prompt + completion})

    rng.shuffle(docs)
    matched = sorted({p["task"] for p in pairs})
    stats = {
        "documents": {k: sum(1 for d in docs if d["kind"] == k) for k in ("pair", "fewshot", "score", "template", "p3")},
        "characters": {k: sum(len(d["text"]) for d in docs if d["kind"] == k) for k in ("pair", "fewshot", "score", "template", "p3")},
        "pairs": len(pairs),
        "pair_templates": {"promptsource": sum(p["template_source"] == "promptsource" for p in pairs),
                           "flan": sum(p["template_source"] == "flan" for p in pairs)},
        "pair_datasets": len({p["dataset"] for p in pairs}),
        "pair_tasks": len(matched),
        "train_tasks": len(train_tasks),
        "eval_tasks": len(eval_tasks),
        "test_split_tasks_in_data": sum(1 for n in ni if n in test_split),
        "heldout_pairs": len(held_pairs),
        "ft_reserved_tasks": len(reserved),
    }
    heldout = {
        "eval_tasks": eval_tasks,
        "holdout_datasets": HOLDOUT_DATASETS,
        "holdout_tasks": [t.name for t in held_pool],
        "holdout_templates": [{"source": t.source, "dataset": t.dataset, "name": t.name, "text": t.text} for t in held_templates],
        "holdout_pairs": held_pairs,
    }
    return Corpus(docs, pairs, heldout, stats)


def write(corpus: Corpus, out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "train.jsonl"), "w", encoding="utf-8") as f:
        for d in corpus.train:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, "pairs.jsonl"), "w", encoding="utf-8") as f:
        for p in corpus.pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, "heldout.json"), "w", encoding="utf-8") as f:
        json.dump(corpus.heldout, f, ensure_ascii=False, indent=1)
    with open(os.path.join(out_dir, "stats.json"), "w", encoding="utf-8") as f:
        json.dump(corpus.stats, f, indent=1)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Build the uit-tiny training corpus from ../shared/data.")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--out", default=os.path.join(REPO, "tmp", "uit-tiny", "corpus"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    c = build(a.data, a.seed)
    write(c, a.out)
    print(json.dumps(c.stats, indent=1))
