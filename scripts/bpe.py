"""Byte-level BPE trainer that writes a Hugging Face tokenizer.json (GPT-2 style).

Why hand-written: Debian's Python has neither `tokenizers` nor `regex`. The GPT-2 pre-tokenizer
regex needs \\p{L} and \\p{N}, so we build those classes from `unicodedata` and spell JavaScript's
\\s out explicitly: the runtime tokenizer (@huggingface/tokenizers) runs that regex with V8's /u
semantics, and the trainer must split text the same way. The corpus is encoded for training by
@huggingface/tokenizers itself (scripts/encode-corpus.mjs), so ids always match the runtime even
where the two Unicode tables differ.
"""
from __future__ import annotations

import collections
import heapq
import json
import re
import sys
import unicodedata
from typing import Dict, Iterable, List, Tuple

EOS = "<|endoftext|>"


def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _category_class(prefix: str) -> str:
    """A regex character class body covering every code point whose category starts with prefix."""
    ranges: List[Tuple[int, int]] = []
    start = -1
    for cp in range(sys.maxunicode + 1):
        hit = unicodedata.category(chr(cp)).startswith(prefix)
        if hit and start < 0:
            start = cp
        elif not hit and start >= 0:
            ranges.append((start, cp - 1))
            start = -1
    if start >= 0:
        ranges.append((start, sys.maxunicode))

    def esc(cp: int) -> str:
        return "\\U%08x" % cp

    return "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges)


# ECMAScript \s (WhiteSpace + LineTerminator), which is what the JS tokenizer's /u regex uses.
_JS_SPACE = "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_L = _category_class("L")
_N = _category_class("N")
GPT2_SPLIT = re.compile(
    "'s|'t|'re|'ve|'m|'ll|'d"
    f"| ?[{_L}]+| ?[{_N}]+| ?[^{_JS_SPACE}{_L}{_N}]+"
    f"|[{_JS_SPACE}]+(?![^{_JS_SPACE}])|[{_JS_SPACE}]+"
)


def pretokenize(text: str) -> List[str]:
    return GPT2_SPLIT.findall(text)


def count_words(texts: Iterable[str]) -> collections.Counter:
    """Pre-token frequencies, each pre-token mapped to its byte-level symbol string."""
    b2u = bytes_to_unicode()
    counts: collections.Counter = collections.Counter()
    for text in texts:
        for piece in pretokenize(text):
            counts["".join(b2u[b] for b in piece.encode("utf-8"))] += 1
    return counts


def train_bpe(word_counts: Dict[str, int], num_merges: int, min_frequency: int = 2) -> List[Tuple[str, str]]:
    """Classic BPE: repeatedly merge the most frequent adjacent pair (ties broken by the pair's
    strings, so the result is deterministic). Pair counts are updated incrementally for the words
    that contain the merged pair, and a lazy max-heap finds the next best pair."""
    words: List[List[str]] = []
    freqs: List[int] = []
    for w, c in sorted(word_counts.items()):
        words.append(list(w))
        freqs.append(c)

    pair_counts: Dict[Tuple[str, str], int] = collections.defaultdict(int)
    where: Dict[Tuple[str, str], set] = collections.defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_counts[(a, b)] += freqs[i]
            where[(a, b)].add(i)

    # Heap entries: (-count, pair). Stale entries are skipped when their count no longer matches.
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges: List[Tuple[str, str]] = []
    while len(merges) < num_merges and heap:
        negc, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negc:
            continue
        if -negc < min_frequency:
            break
        merges.append(pair)
        a, b = pair
        ab = a + b
        changed: Dict[Tuple[str, str], int] = {}
        for i in list(where[pair]):
            w = words[i]
            f = freqs[i]
            # remove this word's old pairs
            for p in zip(w, w[1:]):
                pair_counts[p] -= f
                changed[p] = pair_counts[p]
            out: List[str] = []
            j = 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(ab)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pair_counts[p] += f
                changed[p] = pair_counts[p]
                where[p].add(i)
        del pair_counts[pair]
        where.pop(pair, None)
        changed.pop(pair, None)
        for p, c in changed.items():
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_counts.pop(p, None)
    return merges


def build_tokenizer_json(merges: List[Tuple[str, str]]) -> dict:
    """Vocabulary: the 256 byte symbols (GPT-2 order), one token per merge, then <|endoftext|> last."""
    b2u = bytes_to_unicode()
    vocab: Dict[str, int] = {}
    for sym in b2u.values():
        vocab[sym] = len(vocab)
    for a, b in merges:
        tok = a + b
        if tok not in vocab:
            vocab[tok] = len(vocab)
    eos_id = len(vocab)
    vocab[EOS] = eos_id
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": eos_id, "content": EOS, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
        ],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": dict(byte_level, trim_offsets=False),
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [[a, b] for a, b in merges],
        },
    }


def tokenizer_config(model_max_length: int) -> dict:
    return {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": EOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "add_prefix_space": False,
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
    }


def train_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int = 1024) -> Tuple[dict, dict]:
    """vocab_size counts the 256 bytes and <|endoftext|>; fewer merges result if the corpus runs out
    of pairs seen at least twice."""
    counts = count_words(texts)
    merges = train_bpe(counts, vocab_size - 256 - 1)
    return build_tokenizer_json(merges), tokenizer_config(model_max_length)


def encode_word(word: str, ranks: Dict[Tuple[str, str], int]) -> List[str]:
    """Reference BPE encoding of one byte-level pre-token (used by the tests only)."""
    parts = list(word)
    while len(parts) > 1:
        best = min(range(len(parts) - 1), key=lambda i: ranks.get((parts[i], parts[i + 1]), 1 << 30))
        if (parts[best], parts[best + 1]) not in ranks:
            break
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    return parts


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Train a byte-level BPE tokenizer.json from a JSONL corpus ({text} per line).")
    ap.add_argument("corpus")
    ap.add_argument("out_dir")
    ap.add_argument("--vocab-size", type=int, default=8192)
    args = ap.parse_args()
    with open(args.corpus, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    tok, cfg = train_tokenizer(texts, args.vocab_size)
    import os

    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(args.out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)


class ByteLevelBPE:
    """Encoder/decoder for a tokenizer.json written by build_tokenizer_json, in plain Python, for the
    PyTorch-side evaluation (scripts/eval_tiny.py). Tests check it against @huggingface/tokenizers."""

    def __init__(self, tokenizer_json: dict):
        model = tokenizer_json["model"]
        self.vocab: Dict[str, int] = model["vocab"]
        self.inv = {i: t for t, i in self.vocab.items()}
        self.ranks = {tuple(p) if isinstance(p, list) else tuple(p.split(" ", 1)): i for i, p in enumerate(model["merges"])}
        self.b2u = bytes_to_unicode()
        self.u2b = {u: b for b, u in self.b2u.items()}
        self.eos_id = self.vocab[EOS]
        self._cache: Dict[str, List[int]] = {}

    @classmethod
    def from_file(cls, path: str) -> "ByteLevelBPE":
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    def encode(self, text: str) -> List[int]:
        out: List[int] = []
        for piece in pretokenize(text):
            ids = self._cache.get(piece)
            if ids is None:
                word = "".join(self.b2u[b] for b in piece.encode("utf-8"))
                ids = [self.vocab[s] for s in encode_word(word, self.ranks)]
                self._cache[piece] = ids
            out.extend(ids)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        data = bytearray()
        for i in ids:
            tok = self.inv[i]
            if tok == EOS:
                continue
            data.extend(self.u2b[c] for c in tok)
        return data.decode("utf-8", errors="replace")
