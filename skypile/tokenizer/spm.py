"""SentencePiece BPE tokenizer: training from corpus files and the ``tokenize`` stage.

Settings follow the Skywork-13B tokenizer: BPE, digits split into single
pieces, byte fallback (no ``<unk>`` at encode time for any UTF-8 input), text
kept verbatim (identity normalization, whitespace preserved so code survives,
no dummy-prefix space: ``decode(encode(s)) == s`` for every string but one holding
U+2581, SentencePiece's own space marker),
and 17 reserved special pieces at fixed ids.  The specials are control pieces:
``encode`` never produces them from text, whatever the text says.  The full
65,536-piece SkyPile vocabulary (this BPE as the base, extended with single
characters and Chinese words) is :mod:`skypile.tokenizer.build`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from array import array
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

import sentencepiece as spm

from skypile import io
from skypile.document import Document, Dropped, token_type_for
from skypile.readers.jsonl import iter_texts
from skypile.readers.rows import open_text
from skypile.readers.sources import InputError
from skypile.stage import LoadsOnWorker, drop

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
        elif name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
            texts = iter_texts(name)
        else:
            with open_text(name) as f:  # gzip or not, by its bytes
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


def train_bpe(
    input_files: list[str],
    vocab_size: int,
    *,
    character_coverage: float = 0.9995,
    max_sentences: int = 2_000_000,
    num_threads: int | None = None,
    hard_vocab_limit: bool = True,
) -> tuple[bytes, int]:
    """Train a BPE model in a scratch folder; returns ``(model bytes, training lines)``.

    ``hard_vocab_limit=False`` lets a small corpus stop below ``vocab_size`` instead of failing.
    """
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        n_lines = 0
        with open(corpus, "w", encoding="utf-8") as f:
            for line in iter_training_text(input_files):
                f.write(line + "\n")
                n_lines += 1
        if n_lines == 0:
            raise InputError(f"no training text found in {', '.join(map(str, input_files))}")
        prefix = Path(tmp) / MODEL_NAME
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(prefix),
            model_type="bpe",
            vocab_size=vocab_size,
            hard_vocab_limit=hard_vocab_limit,
            character_coverage=character_coverage,
            byte_fallback=True,
            split_digits=True,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            # no "▁" glued to the start of every text: a text's ids are the same in transformers'
            # LlamaTokenizer (loaded with add_prefix_space=False), whose Metaspace never doubles a leading space
            add_dummy_prefix=False,
            allow_whitespace_only_pieces=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=3,
            control_symbols=RESERVED,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            max_sentence_length=16384,
            num_threads=num_threads or os.cpu_count() or 1,
            minloglevel=2,
        )
        return _without_scratch_paths((Path(tmp) / f"{MODEL_NAME}.model").read_bytes()), n_lines


def _without_scratch_paths(model_bytes: bytes) -> bytes:
    """Drop what the trainer records of this machine (scratch paths, thread count): same data, same bytes."""
    from skypile.tokenizer.extend import parse_model

    proto = parse_model(model_bytes)
    del proto.trainer_spec.input[:]
    proto.trainer_spec.ClearField("model_prefix")
    proto.trainer_spec.ClearField("num_threads")
    return proto.SerializeToString()


def write_model(out_dir: str, model_bytes: bytes, card: dict) -> str:
    """``<out_dir>/skypile-sp.model``, ``.vocab`` (piece, score) and ``tokenizer.json`` (the card), atomically.

    The model is renamed into place last, so a crashed build never leaves a model that looks complete.
    """
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    vocab = "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.get_piece_size()))
    card = {"name": MODEL_NAME, "model_type": "bpe", "vocab_size": sp.get_piece_size(), "specials": SPECIALS,
            "byte_fallback": True, "split_digits": True, **card, "sha256": hashlib.sha256(model_bytes).hexdigest()}
    io.atomic_write_text(io.join(out_dir, f"{MODEL_NAME}.vocab"), vocab)
    io.atomic_write_text(io.join(out_dir, "tokenizer.json"), json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    io.atomic_write_bytes(io.join(out_dir, f"{MODEL_NAME}.model"), model_bytes)
    return io.join(out_dir, f"{MODEL_NAME}.model")


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
    sha256, inputs) atomically.
    """
    io.check_output_dir(out_dir, "tokenizer output")  # before the training, not after it
    model_bytes, n_lines = train_bpe(input_files, vocab_size, character_coverage=character_coverage,
                                     max_sentences=max_sentences, num_threads=num_threads)
    return write_model(out_dir, model_bytes, {"training_lines": n_lines, "inputs": [str(p) for p in input_files]})


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


class Tokenize(LoadsOnWorker):
    """Stage ``tokenize``: fills ``Document.tokens`` (no BOS/EOS; packers add EOS)."""

    name = "tokenize"
    produces_tokens = True
    loaded: ClassVar[dict[str, Any]] = {"_sp": None}

    def __init__(self, model_path: str):
        self.model_path = model_path
        self._sp: spm.SentencePieceProcessor | None = None

    @property
    def sp(self) -> spm.SentencePieceProcessor:
        if self._sp is None:
            self._sp = load_tokenizer(self.model_path)
        return self._sp

    def check(self) -> None:
        """At start-up (before :attr:`token_type` is asked for): a model that does not load is a config error."""
        try:
            self.sp
        except (OSError, RuntimeError) as exc:
            raise ValueError(
                f"tokenizer model {self.model_path} cannot be loaded ({exc}); build it with `skypile models build`"
            ) from None

    @property
    def token_type(self) -> str:
        """Id type of the shards' ``tokens`` column: ``uint16`` up to 65,536 pieces, ``uint32`` above."""
        return token_type_for(self.sp.get_piece_size())

    def __call__(self, doc: Document) -> Document | Dropped:
        ids = self.sp.encode(doc.text, out_type=int)
        if not ids:
            return drop(self.name, "no_tokens", doc)
        doc.tokens = array("i", ids)  # 4 bytes a token, not a Python int object each
        return doc
