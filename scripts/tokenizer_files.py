"""Tokenizer files for exported model folders.

- byte_level_tokenizer(): a Hugging Face tokenizer.json whose BPE vocabulary is
  GPT-2's 256 byte-to-unicode symbols (id = byte value), no merges, and one
  special token <|endoftext|> (id 256). Every text round-trips; used by the
  test fixtures and random-init models.
- tokenizer_json_from_gpt2_files(): tokenizer.json from vocab.json +
  merges.txt (+ added_tokens.json) when a checkpoint folder lacks it.
- copy_tokenizer(): copy a checkpoint's tokenizer files into the model folder.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Dict, List, Optional

EOT = "<|endoftext|>"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json")


def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _added_token(id_: int, content: str) -> dict:
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}


def _gpt2_style(vocab: Dict[str, int], merges: List[str], added: List[dict]) -> dict:
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


def byte_level_tokenizer() -> dict:
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    return _gpt2_style(vocab, [], [_added_token(256, EOT)])


def tokenizer_config(model_max_length: int) -> dict:
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": EOT,
        "eos_token": EOT,
        "unk_token": EOT,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "tokenizer_class": "GPT2Tokenizer",
    }


def special_tokens_map() -> dict:
    return {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT}


def tokenizer_json_from_gpt2_files(src_dir: str) -> dict:
    with open(os.path.join(src_dir, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(src_dir, "merges.txt"), encoding="utf-8") as f:
        merges = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#version")]
    added = []
    p = os.path.join(src_dir, "added_tokens.json")
    extra: Dict[str, int] = {}
    if os.path.isfile(p):
        with open(p, encoding="utf-8") as f:
            extra = json.load(f)
    for tok, id_ in sorted({**{EOT: vocab.get(EOT)}, **extra}.items(), key=lambda kv: (kv[1] is None, kv[1])):
        if id_ is not None:
            added.append(_added_token(int(id_), tok))
    return _gpt2_style(vocab, merges, added)


def write_json(path: str, obj: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def copy_tokenizer(src_dir: str, out_dir: str, model_max_length: int) -> List[str]:
    """Copy the tokenizer files found in src_dir; build tokenizer.json from
    vocab.json + merges.txt if it is missing. Returns the files written."""
    written = []
    for name in TOKENIZER_FILES:
        p = os.path.join(src_dir, name)
        if os.path.isfile(p):
            shutil.copyfile(p, os.path.join(out_dir, name))
            written.append(name)
    if "tokenizer.json" not in written:
        if "vocab.json" in written and "merges.txt" in written:
            write_json(os.path.join(out_dir, "tokenizer.json"), tokenizer_json_from_gpt2_files(src_dir))
            written.append("tokenizer.json")
        else:
            raise FileNotFoundError(f"{src_dir} has no tokenizer.json (nor vocab.json + merges.txt to build one)")
    if "tokenizer_config.json" not in written:
        write_json(os.path.join(out_dir, "tokenizer_config.json"), tokenizer_config(model_max_length))
        written.append("tokenizer_config.json")
    return written


def write_byte_tokenizer(out_dir: str, model_max_length: int) -> List[str]:
    write_json(os.path.join(out_dir, "tokenizer.json"), byte_level_tokenizer())
    write_json(os.path.join(out_dir, "tokenizer_config.json"), tokenizer_config(model_max_length))
    write_json(os.path.join(out_dir, "special_tokens_map.json"), special_tokens_map())
    return ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def eos_from_tokenizer(out_dir: str) -> Optional[int]:
    """The id of <|endoftext|> in the written tokenizer.json, if any."""
    with open(os.path.join(out_dir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    for t in tj.get("added_tokens", []):
        if t.get("content") == EOT:
            return int(t["id"])
    return tj.get("model", {}).get("vocab", {}).get(EOT)


def max_token_id(out_dir: str) -> int:
    """The largest id tokenizer.json can produce (vocabulary and added tokens)."""
    with open(os.path.join(out_dir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    ids = list(tj.get("model", {}).get("vocab", {}).values()) + [t["id"] for t in tj.get("added_tokens", [])]
    return max(ids) if ids else -1
