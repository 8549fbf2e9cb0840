"""SentencePiece BPE tokenizer: training from corpus files and the ``tokenize`` stage.

Settings follow the Skywork-13B tokenizer: BPE, digits split into single
pieces, byte fallback (no ``<unk>`` at encode time for any UTF-8 input), text
kept verbatim (identity normalization, whitespace preserved so code survives),
and 17 reserved special pieces at fixed ids.  The full 65,536-piece vocabulary
(base BPE + 8,000 single characters + ~25k Chinese words) builds on this module;
the skeleton trains a small vocabulary with the same options.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tempfile
from array import array
from pathlib import Path
from typing import Iterable, Iterator

import sentencepiece as spm

from skypile import io
from skypile.document import Document, Dropped
from skypile.readers.jsonl import iter_texts
from skypile.stage import drop

MODEL_NAME = "skypile-sp"
UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
# 4 control pieces + 13 reserved user-defined pieces = 17 reserved specials.
RESERVED = [f"<|reserved_{i}|>" for i in range(13)]
SPECIALS = [UNK, BOS, EOS, PAD, *RESERVED]
_DOC_TAG = re.compile(r"^</?doc\b")  # WikiExtractor's <doc id=...> wrappers


def iter_training_text(paths: Iterable[str], max_line_chars: int = 4096) -> Iterator[str]:
    """Lines of text from .txt/.jsonl(.gz) files (``text``/``content`` fields) or WARC files.

    WARC input runs the real read + extract stages, so a tokenizer can be built
    from a crawl when no clean corpus is at hand.
    """
    for path in paths:
        name = str(path)
        if ".warc" in name or name.endswith(".wet.txt"):
            texts: Iterable[str] = _texts_from_warc(name)
        elif name.endswith((".jsonl", ".jsonl.gz", ".json.gz")):
            texts = iter_texts(name)
        else:
            opener = gzip.open if name.endswith(".gz") else open
            with opener(name, "rt", encoding="utf-8", errors="replace") as f:
                texts = [f.read()]
        for text in texts:
            for line in text.splitlines():
                line = line.strip()
                if line and not _DOC_TAG.match(line):
                    yield line[:max_line_chars]


def _texts_from_warc(path: str) -> Iterator[str]:
    from skypile.extractors.html import HtmlExtractor
    from skypile.readers.warc import read_warc

    extract = HtmlExtractor()
    for rec in read_warc(path):
        if isinstance(rec, Dropped):
            continue
        doc = extract(rec)
        if isinstance(doc, Document):
            yield doc.text


def train_tokenizer(
    input_files: list[str],
    out_dir: str,
    vocab_size: int = 8000,
    *,
    character_coverage: float = 0.9995,
    max_sentences: int = 2_000_000,
    num_threads: int | None = None,
) -> str:
    """Train a BPE model; returns the path of ``<out_dir>/skypile-sp.model``.

    Writes ``.model``, ``.vocab`` and ``tokenizer.json`` (a card: options, specials,
    sha256, inputs) atomically, so a crashed training never leaves a model that
    looks complete.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        corpus = Path(tmp) / "corpus.txt"
        n_lines = 0
        with open(corpus, "w", encoding="utf-8") as f:
            for line in iter_training_text(input_files):
                f.write(line + "\n")
                n_lines += 1
        if n_lines == 0:
            raise ValueError(f"no training text found in {input_files}")
        prefix = Path(tmp) / MODEL_NAME
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(prefix),
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=character_coverage,
            byte_fallback=True,
            split_digits=True,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            allow_whitespace_only_pieces=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=3,
            user_defined_symbols=RESERVED,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            max_sentence_length=16384,
            num_threads=num_threads or os.cpu_count() or 1,
            minloglevel=2,
        )
        model_bytes = (Path(tmp) / f"{MODEL_NAME}.model").read_bytes()
        card = {
            "name": MODEL_NAME,
            "model_type": "bpe",
            "vocab_size": vocab_size,
            "specials": SPECIALS,
            "byte_fallback": True,
            "split_digits": True,
            "sha256": hashlib.sha256(model_bytes).hexdigest(),
            "training_lines": n_lines,
            "inputs": [str(p) for p in input_files],
        }
        io.atomic_write_bytes(str(out / f"{MODEL_NAME}.vocab"), (Path(tmp) / f"{MODEL_NAME}.vocab").read_bytes())
        io.atomic_write_text(str(out / "tokenizer.json"), json.dumps(card, indent=2) + "\n")
        io.atomic_write_bytes(str(out / f"{MODEL_NAME}.model"), model_bytes)
    return str(out / f"{MODEL_NAME}.model")


def load_tokenizer(path: str) -> spm.SentencePieceProcessor:
    """Load from a local path or any URI pyarrow.fs can read (so Beam workers can fetch it)."""
    return spm.SentencePieceProcessor(model_proto=io.read_bytes(path))


def tokenizer_info(path: str) -> dict:
    """What a shard reader needs to know: ids of the specials, vocab size, model hash."""
    model_bytes = io.read_bytes(path)
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    return {
        "path": path,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "vocab_size": sp.get_piece_size(),
        "unk_id": sp.unk_id(),
        "bos_id": sp.bos_id(),
        "eos_id": sp.eos_id(),
        "pad_id": sp.pad_id(),
    }


class Tokenize:
    """Stage ``tokenize``: fills ``Document.tokens`` (no BOS/EOS; packers add EOS)."""

    name = "tokenize"
    produces_tokens = True

    def __init__(self, model_path: str):
        self.model_path = model_path
        self._sp: spm.SentencePieceProcessor | None = None

    def __getstate__(self) -> dict:
        return {"model_path": self.model_path, "_sp": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    @property
    def sp(self) -> spm.SentencePieceProcessor:
        if self._sp is None:
            self._sp = load_tokenizer(self.model_path)
        return self._sp

    def __call__(self, doc: Document) -> Document | Dropped:
        ids = self.sp.encode(doc.text, out_type=int)
        if not ids:
            return drop(self.name, "no_tokens", doc)
        doc.tokens = array("i", ids)  # 4 bytes a token, not a Python int object each
        return doc
