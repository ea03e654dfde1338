"""Tests of the uit-tiny build: the BPE trainer against @huggingface/tokenizers, template text,
dataset matching, the held-out guarantees of the corpus, and deterministic batching."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import bpe
import tiny_corpus as tc

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(SCRIPTS)
NODE = shutil.which("node")
HAS_DATA = os.path.isdir(tc.DEFAULT_DATA)
needs_node = pytest.mark.skipif(NODE is None or not os.path.isdir(os.path.join(REPO, "node_modules", "@huggingface", "tokenizers")),
                                reason="node and node_modules/@huggingface/tokenizers are needed")
needs_data = pytest.mark.skipif(not HAS_DATA, reason=f"{tc.DEFAULT_DATA} is missing")

TRICKY = [
    "Hello world! It's 2024, isn't it?  Yes.\n\nDefinition: In this task, you're given {premise}.",
    "naïve café — 東京 ١٢٣ ½ x²\t\ttabs   \n  trailing ",
    "Output: ",
    "'s'S'll 're  'd\u00a0nbsp\u2028line",
]


def run_node(script: str, payload: object) -> object:
    r = subprocess.run([NODE, "--input-type=module", "-e", script], input=json.dumps(payload), capture_output=True,
                       text=True, cwd=REPO, check=True)
    return json.loads(r.stdout)


@needs_node
def test_pretokenizer_matches_the_js_runtime():
    js = """
import { ByteLevelPreTokenizer } from '@huggingface/tokenizers';
let s = ''; for await (const c of process.stdin) s += c;
const pre = new ByteLevelPreTokenizer({ add_prefix_space: false, use_regex: true });
console.log(JSON.stringify(JSON.parse(s).map((t) => pre.pre_tokenize_text(t))));
"""
    b2u = bpe.bytes_to_unicode()
    ours = [["".join(b2u[b] for b in p.encode("utf-8")) for p in bpe.pretokenize(t)] for t in TRICKY]
    assert ours == run_node(js, TRICKY)


def test_bpe_is_deterministic_and_merges_frequent_pairs():
    texts = ["the cat sat on the mat"] * 5 + ["the hat"] * 3
    counts = bpe.count_words(texts)
    m1 = bpe.train_bpe(counts, 20)
    m2 = bpe.train_bpe(dict(reversed(list(counts.items()))), 20)
    assert m1 == m2
    assert m1[0] == ("a", "t")  # in cat, sat, mat (5 times each) and hat (3): the most frequent pair
    ranks = {p: i for i, p in enumerate(m1)}
    assert bpe.encode_word("Ġthe", ranks) == ["Ġthe"]


@needs_node
def test_tokenizer_json_loads_in_js_and_encodes_like_the_reference(tmp_path):
    texts = TRICKY + ["In this task, you are given a question. Answer the question."] * 4
    tok, cfg = bpe.train_tokenizer(texts, 400)
    (tmp_path / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    js = """
import { readFileSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
let s = ''; for await (const c of process.stdin) s += c;
const { dir, texts } = JSON.parse(s);
const t = new Tokenizer(JSON.parse(readFileSync(dir + '/tokenizer.json', 'utf8')), JSON.parse(readFileSync(dir + '/tokenizer_config.json', 'utf8')));
const out = texts.map((x) => { const ids = t.encode(x, { add_special_tokens: false }).ids; return { ids, text: t.decode(ids) }; });
out.push({ eos: t.token_to_id('<|endoftext|>'), ids: t.encode('a<|endoftext|>b', { add_special_tokens: false }).ids });
console.log(JSON.stringify(out));
"""
    got = run_node(js, {"dir": str(tmp_path), "texts": texts})
    vocab = tok["model"]["vocab"]
    ranks = {tuple(p): i for i, p in enumerate(tok["model"]["merges"])}
    b2u = bpe.bytes_to_unicode()
    py = bpe.ByteLevelBPE(tok)
    for text, g in zip(texts, got):
        ref = [vocab[s] for p in bpe.pretokenize(text) for s in bpe.encode_word("".join(b2u[b] for b in p.encode("utf-8")), ranks)]
        assert g["ids"] == ref
        assert py.encode(text) == ref
        assert g["text"] == text == py.decode(ref)
    eos = got[-1]["eos"]
    assert eos == len(vocab) - 1 == vocab[bpe.EOS]
    assert eos in got[-1]["ids"]  # the special token is matched as one token inside text


@needs_node
def test_template_text_is_the_pipelines():
    """Source instructions come from src/transfer/template-text.ts (built in dist/), as in `uit convert`."""
    got = tc.template_prompts([
        {"kind": "promptsource", "jinja": "What label best describes this news article?\n{{text}} ||| \n{{answer_choices[label] }}"},
        {"kind": "flan", "input": "{premise}\n\nCan we conclude that \"{hypothesis}\"?\n\n{options_}", "output": "{answer}"},
        {"kind": "promptsource", "jinja": "{% if x %}"},
    ])
    assert got[0] == "What label best describes this news article?\n{text}"
    assert got[1] == "{premise}\n\nCan we conclude that \"{hypothesis}\"?\n\n{options}"
    assert got[2] is None
    assert tc.has_words("Summarize this: {text}") and not tc.has_words("{text}\n\n{options}")


def test_dataset_matching_and_kinds():
    assert tc.task_matches(["agnews"], "task379_agnews_topic_classification")
    assert tc.task_matches(["kilttaskshotpotqa"], "task1293_kilt_tasks_hotpotqa_question_answering")
    assert not tc.task_matches(["race"], "task320_stereoset_classification_race")
    assert not tc.task_matches(["hotpotqa"], "task1293_kilt_tasks_hotpotqa_question_answering")
    t = tc.Template("promptsource", "glue/mrpc", "paraphrase", "x")
    assert "mrpc" in tc.dataset_names(t) and "gluemrpc" in tc.dataset_names(t)
    assert tc.output_kind("generate_question\nWrite a question about {context}") == "question"
    assert tc.output_kind("task024_cosmosqa_answer_generation\nWrite a correct answer to the given question.") == "other"
    assert tc.output_kind("Translate the sentence into French") == "translation"


def test_prompt_mirrors_match_the_typescript_formats():
    fmt = tc.load_prompt_format()
    assert tc.transfer_block(fmt, " Q: {q} ", "Answer it. ") == "Instruction: Q: {q}\nDefinition: Answer it."
    assert tc.transfer_block(fmt, "Q") == "Instruction: Q\nDefinition:"
    p = tc.fewshot_prompt(fmt, [("A", "a.")], "B")
    assert p == fmt["header"] + "\n\nInstruction: A\nDefinition: a.\n\nInstruction: B\nDefinition:"
    s = tc.scoring_prefix("D", [{"input": "i1", "output": "o1"}, {"input": "i2", "output": "o2"}, {"input": "x", "output": "y"}], "x")
    assert s == ("Definition: D\n\nPositive Examples 1\nInput: i1\nOutput: o1\n\nPositive Examples 2\nInput: i2\nOutput: o2\n\n"
                 "Now complete the following example -\nInput: x\nOutput: ")


@pytest.fixture(scope="module")
def corpus():
    if not HAS_DATA:
        pytest.skip(f"{tc.DEFAULT_DATA} is missing")
    return tc.build()


@needs_data
def test_corpus_keeps_held_out_tasks_out(corpus):
    ni = tc.load_niv2(tc.DEFAULT_DATA)
    test_split = set(tc.load_split(tc.DEFAULT_DATA, "test"))
    text = "\n".join(d["text"] for d in corpus.train)
    held = corpus.heldout
    assert len(held["eval_tasks"]) >= 40
    for name in held["eval_tasks"] + held["holdout_tasks"] + [n for n in ni if n in test_split]:
        d = ni[name].definition.strip()
        # a few short generic definitions are shared verbatim with training tasks: skip those
        if any(ni[o].definition.strip() == d for o in ni if o != name and o not in held["eval_tasks"] + held["holdout_tasks"]):
            continue
        assert d not in text, name
        for inst in ni[name].instances[:5]:
            if len(inst["input"]) > 40:
                assert inst["input"] not in text, name
    # Some generic FLAN/PromptSource templates are shared word for word by several datasets; the
    # held-out datasets' own templates must not be in training.
    shared = {t.text for t in tc.load_promptsource(tc.DEFAULT_DATA) + tc.load_flan(tc.DEFAULT_DATA) if not tc.is_holdout_template(t)}
    trained_templates = {d["text"] for d in corpus.train if d["kind"] == "template"} | {p["source"] for p in corpus.pairs}
    own = [t["text"] for t in held["holdout_templates"] if t["text"] not in shared]
    assert len(own) >= 40
    assert not any(t in trained_templates for t in own)
    train_texts = {d["text"] for d in corpus.train}
    held_p3 = [p + c for f, rows in tc.load_p3(tc.DEFAULT_DATA).items() if tc.is_holdout_p3(f) for p, c in rows]
    assert len(held_p3) >= 100 and not any(x in train_texts for x in held_p3)
    assert not any(p["task"] in held["eval_tasks"] or p["task"] in held["holdout_tasks"] for p in corpus.pairs)
    assert held["holdout_pairs"], "the held-out datasets must have pairs for the transfer evaluation"


@needs_data
def test_corpus_documents_use_the_pipeline_formats(corpus):
    fmt = tc.load_prompt_format()
    kinds = {d["kind"] for d in corpus.train}
    assert kinds == {"pair", "fewshot", "score", "template", "p3"}
    assert corpus.stats["pairs"] >= 400
    for d in corpus.train:
        if d["kind"] == "pair":
            assert d["text"].startswith(fmt["sourceLabel"] + " ") and "\n" + fmt["definitionLabel"] + " " in d["text"]
        elif d["kind"] == "fewshot":
            assert d["text"].startswith(fmt["header"] + fmt["separator"])
        elif d["kind"] == "score":
            assert "".join(d["segments"]) == d["text"] and d["segments"][0].endswith("\nOutput: ")


def _load_trainer():
    spec = importlib.util.spec_from_file_location("train_tiny_gptj", os.path.join(SCRIPTS, "train-tiny-gptj.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_batches_are_a_function_of_the_step():
    tr = _load_trainer()
    ids = np.arange(1000, dtype=np.uint16) % 97
    starts = np.array([0, 100, 350, 351, 700, 1000], dtype=np.int64)
    a = tr.Batches(ids, starts, 16, 3, seed=5)
    b = tr.Batches(ids, starts, 16, 3, seed=5)
    for step in (0, 7, 20, 21, 40, 3):  # 20 and 21 cross into the second epoch
        assert np.array_equal(a.batch(step), b.batch(step))
    assert a.batch(0).shape == (3, 16)
    # the windows of an epoch are the documents, each once, packed in the seed's order
    order = np.random.RandomState(5).permutation(len(starts) - 1)
    stream = np.concatenate([ids[starts[i]:starts[i + 1]] for i in order])
    epoch = np.concatenate([a.batch(s) for s in range(a.windows_per_epoch // 3)]).reshape(-1)
    assert np.array_equal(epoch, stream[: len(epoch)]) and len(epoch) == 60 * 16
    assert not np.array_equal(tr.Batches(ids, starts, 16, 3, seed=6).batch(0), a.batch(0))


def test_cosine_schedule():
    tr = _load_trainer()
    import argparse

    a = argparse.Namespace(lr=1e-3, warmup_steps=10, steps=110, min_lr_ratio=0.1)
    assert tr.lr_at(0, a) == pytest.approx(1e-4)
    assert tr.lr_at(9, a) == pytest.approx(1e-3)
    assert tr.lr_at(60, a) == pytest.approx(0.55e-3)
    assert tr.lr_at(110, a) == pytest.approx(1e-4)


def test_weighted_loss_weighs_targets():
    import torch
    import torch.nn.functional as F

    tr = _load_trainer()
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    ids = torch.randint(0, 11, (2, 6))
    flags = torch.tensor([[0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.uint8)
    plain = F.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1))
    assert torch.allclose(tr.weighted_lm_loss(logits, ids, flags, 1.0), plain)
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1), reduction="none").view(2, 5)
    only_targets = torch.cat([ce[0, 2:], ce[1]]).mean()  # row 0 predicts ids[3..5] as targets
    assert torch.allclose(tr.weighted_lm_loss(logits, ids, flags, 0.0), only_targets)


def test_batches_carry_target_flags():
    tr = _load_trainer()
    ids = np.arange(40, dtype=np.uint16)
    target = (np.arange(40) % 3 == 0).astype(np.uint8)
    starts = np.array([0, 10, 25, 40], dtype=np.int64)
    b = tr.Batches(ids, starts, 8, 2, seed=1, target=target)
    x, t = b.batch_with_target(3)
    assert np.array_equal(t, target[x])  # the flags travel with their tokens through the shuffle


@needs_node
def test_encoder_marks_targets_and_splits_like_the_scorer(tmp_path):
    texts = ["Instruction: Say hi.\nDefinition: Write hello.", "Output: hello world"] * 3
    tok, cfg = bpe.train_tokenizer(texts, 300)
    tdir = tmp_path / "tok"
    tdir.mkdir()
    (tdir / "tokenizer.json").write_text(json.dumps(tok), encoding="utf-8")
    (tdir / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    docs = [tc.transfer_doc("pair", "Instruction: Say hi.\nDefinition:", "Write hello."),
            tc.score_doc("Input: x\nOutput: ", "hello world"),
            {"kind": "p3", "text": "plain text"}]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    r = subprocess.run([NODE, os.path.join(SCRIPTS, "encode-corpus.mjs"), str(tdir), str(tmp_path / "c.jsonl"), str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=REPO, check=True)
    info = json.loads(r.stdout)
    assert info["split_differs"] == 0
    ids = np.fromfile(tmp_path / "o.ids.bin", dtype="<u2")
    flags = np.fromfile(tmp_path / "o.target.bin", dtype=np.uint8)
    starts = np.fromfile(tmp_path / "o.docs.bin", dtype="<u4")
    py = bpe.ByteLevelBPE(tok)
    eos = py.eos_id
    for d, a, b in zip(docs, starts[:-1], starts[1:]):
        segs = d.get("segments", [d["text"]])
        want = [i for s in segs for i in py.encode(s)] + [eos]
        assert ids[a:b].tolist() == want
        n_target = len(py.encode(segs[-1])) + 1
        assert flags[a:b].tolist() == [0] * (len(want) - n_target) + [1] * n_target
    # the scoring prompt's prefix ends with a lone space token, as the scorer tokenizes it
    s_ids = ids[starts[1]:starts[2]].tolist()
    assert py.decode([s_ids[len(py.encode("Input: x\nOutput: ")) - 1]]) == " "


# ------------------------------------------------------------------------------------------------
# The finetune stage


def test_ranking_loss_is_a_hinge_on_the_gap():
    import torch

    tr = _load_trainer()
    ce = torch.tensor([1.0, 1.5, 1.05, 0.9])  # human, then three corrupted candidates
    # gaps 0.5, 0.05, -0.1 against a margin of 0.2: losses 0, 0.15, 0.3
    assert tr.ranking_loss(ce, 0.2).item() == pytest.approx(0.15)
    assert tr.ranking_loss(torch.tensor([1.0, 2.0, 3.0]), 0.2).item() == 0.0


def test_group_target_ce_matches_unpadded_scoring():
    """The right-padded batch gives each candidate the CE it has alone (what the scorer computes)."""
    import torch
    import torch.nn.functional as F
    from gptj import GPTJConfig, GPTJForCausalLM

    tr = _load_trainer()
    cfg = GPTJConfig.from_dict({"vocab_size": 50, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 2, "rotary_dim": 8,
                                "n_inner": 48, "bos_token_id": 49, "eos_token_id": 49})
    m = GPTJForCausalLM(cfg)
    m.init_weights(std=0.2, randomize_all=True, generator=torch.Generator().manual_seed(3))
    m.eval()
    prefixes = [[1, 2, 3, 4, 5, 6, 7], [8, 9, 10], [11, 12, 13, 14, 15]]
    target = [20, 21, 22, 23]
    with torch.no_grad():
        got = tr.group_target_ce(m, prefixes, target)
        for k, p in enumerate(prefixes):
            logits, _ = m(torch.tensor([p + target]))
            lp = F.log_softmax(logits[0, len(p) - 1:-1], dim=1)
            want = -lp.gather(1, torch.tensor(target).unsqueeze(1)).mean()
            assert got[k].item() == pytest.approx(want.item(), abs=1e-5)
    assert len({round(x, 4) for x in got.tolist()}) == 3  # the prefixes matter


def test_read_onnx_weights_reads_back_an_export(tmp_path):
    """The finetune stage can start from a shipped model folder: its ONNX weights are the state dict."""
    import sys

    import torch
    from gptj import GPTJConfig, GPTJForCausalLM
    from tokenizer_files import write_byte_tokenizer

    tr = _load_trainer()
    cfg = {"model_type": "gptj", "vocab_size": 260, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 2,
           "rotary_dim": 8, "n_inner": 48, "bos_token_id": 256, "eos_token_id": 256}
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps(cfg))
    m = GPTJForCausalLM(GPTJConfig.from_dict(cfg))
    m.init_weights(std=0.2, randomize_all=True, generator=torch.Generator().manual_seed(11))
    torch.save(m.state_dict(), hf / "pytorch_model.bin")
    write_byte_tokenizer(str(hf), 64)
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "export-gptj.py"), str(hf), str(tmp_path / "out")],
                   check=True, capture_output=True, env={**os.environ, "UIT_TORCH_THREADS": "2"})
    from checkpoints import read_onnx_weights

    sd = read_onnx_weights(str(tmp_path / "out"))
    ref = m.state_dict()
    assert set(sd) == set(ref)
    for k, v in ref.items():
        assert torch.equal(sd[k], v), k


@needs_data
def test_finetune_groups_come_from_training_tasks_only(corpus):
    import argparse
    import random

    tr = _load_trainer()
    files, shots = tr.ft_pools(tc.DEFAULT_DATA)
    assert tc.split_tasks(tc.load_niv2(tc.DEFAULT_DATA))[1] == corpus.heldout["eval_tasks"]
    held = set(corpus.heldout["eval_tasks"]) | set(corpus.heldout["holdout_tasks"]) | set(tc.load_split(tc.DEFAULT_DATA, "test"))
    assert len(files) >= 100 and len(shots) >= 1000
    assert not any(t.name in held for t in files + shots)
    assert not any(tc.is_holdout_task(t.name) for t in shots)
    tok = bpe.ByteLevelBPE.from_file(os.path.join(REPO, "models", "uit-tiny", "tokenizer.json"))
    a = argparse.Namespace(ft_zero_shot=0.3, ft_max_len=512, n_positions=1024)
    names = {t.definition: t.name for t in shots}
    seen_kinds = set()
    for seed in range(20):
        kinds, prefixes, target = tr.ft_group(random.Random(seed), files, shots, tok, a)
        again = tr.ft_group(random.Random(seed), files, shots, tok, a)
        assert again == (kinds, prefixes, target)  # a function of the seed
        assert kinds[0] == "human" and len(kinds) == len(prefixes) >= 2
        assert len(prefixes[0]) + len(target) <= 512
        text = tok.decode(prefixes[0])
        assert text.startswith("Definition: ") and text.endswith("\nOutput: ")
        definition = text[len("Definition: "):].split("\n\n")[0]
        assert names.get(definition) not in held
        seen_kinds.update(kinds)
    assert seen_kinds == {"human", "shuffled_sentences", "swapped_names", "other_task"}


@needs_data
def test_reserved_tasks_stay_out_of_pretraining_and_feed_the_finetune(corpus):
    ni = tc.load_niv2(tc.DEFAULT_DATA)
    train, _ = tc.split_tasks(ni)
    reserved = tc.reserved_tasks(train, 0.5, 0)
    assert reserved == tc.reserved_tasks(train, 0.5, 0) and not tc.reserved_tasks(train, 0.0, 0)
    with_file = [t for t in train if t.has_file]
    assert 0.3 < sum(t.name in reserved for t in with_file) / len(with_file) < 0.7
    assert 0.3 < len(reserved) / len(train) < 0.7
    fam = tc.task_families(train)
    assert fam["task105_story_cloze_rocstories_sentence_generation"] == fam["task296_storycloze_correct_end_classification"]
    assert not {fam[n] for n in reserved} & {fam[t.name] for t in train if t.name not in reserved}
    kept = tc.build(ft_reserve=0.5)
    assert kept.stats["ft_reserved_tasks"] == len(reserved)
    assert [p["task"] for p in kept.pairs] == [p["task"] for p in corpus.pairs]  # pairs carry no outputs: kept
    full = "\n".join(d["text"] for d in corpus.train if d["kind"] == "score")
    less = "\n".join(d["text"] for d in kept.train if d["kind"] == "score")
    for t in with_file:
        inputs = [i["input"] for i in t.instances if len(i["input"]) > 40]
        if t.name in reserved:
            assert not any(x in less for x in inputs), t.name
        elif any(x in full for x in inputs):
            assert any(x in less for x in inputs), t.name
    tr = _load_trainer()
    files, shots = tr.ft_pools(tc.DEFAULT_DATA, 0.5, 0)
    assert len(files) == sum(t.name in reserved for t in with_file) and len(shots) >= 500
    assert all(t.name in reserved for t in files + shots)


def test_corpus_stage_refuses_a_corpus_built_with_other_settings(tmp_path):
    tr = _load_trainer()
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    (corpus_dir / "train.jsonl").write_text("")
    (corpus_dir / "settings.json").write_text(json.dumps({"seed": 0, "ft_reserve": 0.5}))
    tr.main(["--stage", "corpus", "--work", str(tmp_path), "--ft-reserve", "0.5"])  # same settings: kept
    with pytest.raises(SystemExit, match="was built with"):
        tr.main(["--stage", "corpus", "--work", str(tmp_path)])
    # Nor does the finetune take it: its reserved tasks would have been in pretraining.
    with pytest.raises(SystemExit, match="was built with"):
        tr.main(["--stage", "finetune", "--work", str(tmp_path), "--ft-steps", "10"])
