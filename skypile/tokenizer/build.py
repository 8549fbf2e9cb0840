"""The SkyPile vocabulary, built the way Skywork built theirs (``models/tokenizer/recipe.json``).

1. A BPE base trained on English and code text (:func:`skypile.tokenizer.spm.train_bpe`:
   byte fallback, single digits, 17 control specials at fixed ids).
2. The most frequent single characters of the Chinese corpus (CJK characters and
   symbols) that the base lacks, topped up from jieba's dictionary when the corpus
   has too few distinct characters (and any printable ASCII character a small base
   corpus lacked, so digits are never bytes).
3. Multi-character Chinese words from jieba's dictionary that occur in the Chinese
   corpus, most frequent (by jieba's count) first, then the rest of the dictionary
   if the corpus is too small; as many as it takes to reach exactly ``vocab_size``.

Steps 2 and 3 append pieces to the base model's protobuf
(:mod:`skypile.tokenizer.extend`), so base ids keep their meaning.  Only words that
BPE can actually build from pieces already present are taken (and shorter words go
first), so every added piece can be produced by the encoder.
"""

from __future__ import annotations

import glob
import importlib.resources
import re
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

from skypile import io
from skypile.tokenizer.extend import extend_model, reachable
from skypile.tokenizer.spm import iter_training_text, train_bpe, write_model

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
HAN_RUN = re.compile(f"[{_HAN}]+")
HAN_WORD = re.compile(f"[{_HAN}]{{2,}}")
BASE_NAME = "base.model"  # written beside the extended model


def jieba_dictionary() -> dict[str, int]:
    """jieba's bundled dictionary (``word count tag`` lines): word → count.  Nothing is downloaded."""
    try:
        path = importlib.resources.files("jieba") / "dict.txt"
    except ModuleNotFoundError:
        raise RuntimeError("the tokenizer build needs jieba's dictionary: pip install jieba") from None
    words: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            words[parts[0]] = words.get(parts[0], 0) + int(parts[1])
    return words


def is_symbol_char(ch: str) -> bool:
    """A character worth a piece of its own: not ASCII, not whitespace, control, format, private or unassigned."""
    return ord(ch) > 127 and not ch.isspace() and unicodedata.category(ch)[0] not in "CZ"


def count_corpus(texts: Iterable[str], words: set[str], max_word_len: int) -> tuple[Counter, Counter]:
    """Character counts and counts of dictionary words (every occurrence of every length) in ``texts``."""
    chars: Counter = Counter()
    found: Counter = Counter()
    for text in texts:
        chars.update(ch for ch in text if is_symbol_char(ch))
        for run in HAN_RUN.findall(text):
            n = len(run)
            for i in range(n - 1):
                for j in range(i + 2, min(n, i + max_word_len) + 1):
                    sub = run[i:j]
                    if sub in words:
                        found[sub] += 1
    return chars, found


def select_chars(corpus_chars: Counter, dictionary: dict[str, int], vocab: set[str], n: int) -> list[str]:
    """The ``n`` most frequent corpus characters not in ``vocab``; jieba's single characters fill any shortfall."""
    ranked = [c for c, _ in sorted(corpus_chars.items(), key=lambda kv: (-kv[1], kv[0]))]
    ranked += [w for w, _ in sorted(dictionary.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) == 1 and is_symbol_char(w)]
    chosen: list[str] = []
    seen = set(vocab)
    for ch in ranked:
        if len(chosen) == n:
            break
        if ch not in seen:
            chosen.append(ch)
            seen.add(ch)
    return chosen


def select_words(ranked: list[str], vocab: set[str], n: int) -> list[str]:
    """Up to ``n`` words, in rank order, each reachable by BPE from ``vocab`` plus the words chosen before it.

    A word whose parts are chosen later in the ranking gets another chance in the
    next sweep.  Returned shortest first: the order in which they must be appended.
    """
    vocab = set(vocab)
    chosen: list[str] = []
    pending = [w for w in ranked if w not in vocab]
    while pending and len(chosen) < n:
        rest = []
        for word in pending:
            if len(chosen) == n:
                break
            if reachable(word, vocab):
                chosen.append(word)
                vocab.add(word)
            else:
                rest.append(word)
        if len(rest) == len(pending):
            break
        pending = rest
    rank = {w: i for i, w in enumerate(ranked)}
    return sorted(chosen, key=lambda w: (len(w), rank[w]))


def resolve_inputs(patterns: list[str], data_dir: Path) -> list[str]:
    """Recipe inputs (paths or globs relative to the shared data folder) that exist."""
    found: list[str] = []
    for pattern in patterns:
        found += sorted(glob.glob(str(data_dir / pattern))) if any(c in pattern for c in "*?[") else [str(data_dir / pattern)]
    return [p for p in found if Path(p).is_file()]


def build_vocabulary(recipe: dict, data_dir: Path, out_dir: str, fallback_inputs: list[str] | None = None) -> str:
    """Build ``recipe`` (see ``models/tokenizer/recipe.json``) into ``out_dir``; returns the model path.

    ``fallback_inputs`` stand in for either text set when none of its files exist.
    """
    from tqdm import tqdm

    size = int(recipe["vocab_size"])
    if int(recipe["base"]["vocab_size"]) + int(recipe["chinese"]["chars"]) >= size:
        raise ValueError(f"recipe {recipe.get('name')}: base vocab_size + chars leave no room for words below {size}")
    base_inputs = resolve_inputs(recipe["base"]["inputs"], data_dir) or list(fallback_inputs or [])
    zh_inputs = resolve_inputs(recipe["chinese"]["inputs"], data_dir) or list(fallback_inputs or [])
    if not base_inputs:
        raise FileNotFoundError(f"recipe {recipe.get('name')}: no base inputs under {data_dir}")
    seconds: dict[str, float] = {}
    steps = tqdm(total=3, desc="tokenizer", unit="step")

    t0 = time.perf_counter()
    steps.set_postfix_str(f"BPE base ({recipe['base']['vocab_size']})")
    base, n_lines = train_bpe(base_inputs, int(recipe["base"]["vocab_size"]), hard_vocab_limit=False)
    base_sp = spm.SentencePieceProcessor(model_proto=base)
    base_size = base_sp.get_piece_size()
    vocab = {base_sp.id_to_piece(i) for i in range(base_size)}
    seconds["base"] = time.perf_counter() - t0
    steps.update()

    t0 = time.perf_counter()
    steps.set_postfix_str("count Chinese characters and words")
    max_len = int(recipe["chinese"].get("max_word_len", 8))
    dictionary = jieba_dictionary()
    candidates = {w for w in dictionary if len(w) <= max_len and HAN_WORD.fullmatch(w)}
    chars_seen, words_seen = count_corpus(iter_training_text(zh_inputs), candidates, max_len)
    seconds["count"] = time.perf_counter() - t0
    steps.update()

    t0 = time.perf_counter()
    steps.set_postfix_str("extend")
    ascii_missing = [chr(c) for c in range(33, 127) if chr(c) not in vocab]  # a tiny base corpus may lack digits
    chars = ascii_missing + select_chars(chars_seen, dictionary, vocab, int(recipe["chinese"]["chars"]))
    min_count = int(recipe["chinese"].get("min_word_count", 1))
    by_jieba = sorted(candidates, key=lambda w: (-dictionary[w], w))
    in_corpus = [w for w in by_jieba if words_seen[w] >= min_count]
    seen = set(in_corpus)
    ranked = in_corpus + [w for w in by_jieba if w not in seen]  # the dictionary alone fills a small corpus's gap
    n_words = size - base_size - len(chars)
    words = select_words(ranked, vocab | set(chars), n_words)
    ext = extend_model(base, chars + words, limit=size)
    if ext.unreachable or len(ext.added) != len(chars) + len(words) or ext.vocab_size != size:
        raise ValueError(f"extension reached {ext.vocab_size} pieces, not {size} "
                         f"({len(chars)} characters, {len(words)} of {n_words} words, {len(ext.unreachable)} unreachable)")
    seconds["extend"] = time.perf_counter() - t0
    steps.update()
    steps.close()
    card = {
        "recipe": recipe.get("name", "tokenizer"),
        "base_vocab_size": base_size,
        "chars_added": len(chars) - len(ascii_missing),
        "ascii_added": len(ascii_missing),
        "words_added": len(words),
        "words_from_corpus": sum(1 for w in words if words_seen[w] >= min_count),
        "corpus_chars_distinct": len(chars_seen),
        "training_lines": n_lines,
        "inputs": {"base": base_inputs, "chinese": zh_inputs, "words": "jieba dict.txt"},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    io.atomic_write_bytes(io.join(out_dir, BASE_NAME), base)  # the base alone, for comparisons (bench/tokenizer.py)
    return write_model(out_dir, ext.model, card)


def build_from_recipe(recipe: dict, data_dir: Path, target: Path) -> str:
    """``skypile models build`` for a ``skypile_vocabulary`` recipe: without shared data, the bundled pages' WARC."""
    with tempfile.TemporaryDirectory() as scratch:
        fallback: list[str] = []
        if recipe.get("fallback") == "default_warc" and not resolve_inputs(recipe["base"]["inputs"], data_dir):
            from skypile.readers.warc_builder import build_default_warc

            fallback = [str(Path(scratch) / "default.warc.gz")]
            build_default_warc(fallback[0])
        return build_vocabulary(recipe, data_dir, str(target.parent), fallback)
