"""Document perplexity under a per-language KenLM 5-gram, computed as CCNet does.

Each paragraph (line) is normalized (:func:`skypile.quality.text.normalize`),
cut into SentencePiece pieces with the language's own small unigram model
(trained on the same Wikipedia text as the LM, as CCNet does), and scored by
KenLM (log10 probability, with ``</s>``); the log probabilities are summed over
the document and normalized by the token count (pieces + one ``</s>`` per
paragraph): ``perplexity = 10 ** (-sum(log10 p) / n_tokens)``.  Low is
Wikipedia-like.

A model directory (``skypile models build`` → ``models/build/kenlm``) holds, per
language, ``<lang>.arpa.bin`` (KenLM binary) and ``<lang>.sp.model``.  Stage
``perplexity`` writes ``metadata.perplexity``; a document it cannot score (a
language without a model, no letters) gets ``inf``, which every bucket stage
puts in the ``tail``: counted, never a crash.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from skypile import io
from skypile.document import Document, Dropped
from skypile.errors import UserError
from skypile.quality.text import has_letters, paragraphs
from skypile.stage import LoadsOnWorker

STAGE = "perplexity"
_MODELS: dict[tuple[str, str], "LanguageModel"] = {}
_LOCK = threading.Lock()


class ModelError(UserError):
    """A quality model that is missing or cannot be loaded (a configuration problem: raised at start-up)."""


def lm_paths(model_dir: str, lang: str) -> tuple[str, str]:
    """The KenLM binary and SentencePiece model of ``lang`` in ``model_dir`` (a path or a URI)."""
    return io.join(model_dir, f"{lang}.arpa.bin"), io.join(model_dir, f"{lang}.sp.model")


class LanguageModel:
    """One language's SentencePiece + KenLM pair."""

    def __init__(self, model_dir: str, lang: str):
        import sentencepiece as spm

        try:
            import kenlm
        except ImportError:
            raise ModelError("the kenlm Python module is not installed: `pip install kenlm` (scripts/install.sh does)") from None

        lm_path, sp_path = lm_paths(model_dir, lang)
        for path in (lm_path, sp_path):
            if not io.exists(path):
                raise ModelError(f"perplexity model for {lang!r} missing: {path} (run `skypile models build`)")
        lm_path, sp_path = io.local_copy(lm_path), io.local_copy(sp_path)  # KenLM reads only local files
        try:
            self.sp = spm.SentencePieceProcessor(model_file=sp_path)
        except Exception as exc:  # noqa: BLE001 - sentencepiece raises RuntimeError/OSError on a bad file
            raise ModelError(f"SentencePiece model {sp_path} cannot be loaded: {exc}") from None
        try:
            self.lm = kenlm.Model(lm_path)
        except Exception as exc:  # noqa: BLE001 - kenlm raises OSError/RuntimeError on a bad file
            raise ModelError(f"KenLM model {lm_path} cannot be loaded: {exc}") from None
        self.lang = lang

    def pieces(self, paragraph: str) -> str:
        """A normalized paragraph as the space-joined pieces the LM was trained on."""
        return " ".join(self.sp.encode(paragraph, out_type=str))

    def log_score(self, text: str) -> tuple[float, int]:
        """``(sum of log10 p over the paragraphs, tokens incl. one </s> per paragraph)``."""
        total, n = 0.0, 0
        for para in paragraphs(text):
            line = self.pieces(para)
            total += self.lm.score(line, bos=True, eos=True)
            n += line.count(" ") + 2 if line else 1
        return total, n

    def perplexity(self, text: str) -> float:
        total, n = self.log_score(text)
        return round(10.0 ** (-total / n), 1) if n else math.inf


def load_language_model(model_dir: str, lang: str) -> LanguageModel:
    """One loaded model per (directory, language) per process, shared by every stage instance."""
    with _LOCK:
        key = (model_dir if io.is_uri(model_dir) else os.path.abspath(model_dir), lang)
        if key not in _MODELS:
            _MODELS[key] = LanguageModel(model_dir, lang)
        return _MODELS[key]


def available_langs(model_dir: str) -> list[str]:
    if not os.path.isdir(model_dir):
        return []
    return sorted(n[: -len(".arpa.bin")] for n in os.listdir(model_dir) if n.endswith(".arpa.bin"))


@dataclass
class Perplexity(LoadsOnWorker):
    """Stage ``perplexity``: ``metadata.perplexity`` from the document language's KenLM model.

    Decides nothing: a document it cannot score (no model for its language,
    no letters) is kept with ``inf``, which the bucket stages put in the ``tail``.
    """

    model_dir: str
    langs: tuple[str, ...] = ("en", "zh")
    name: str = STAGE
    measures: ClassVar[tuple[str, ...]] = ("perplexity",)  # binned per language for the run's page
    _models: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    loaded: ClassVar[dict[str, Any]] = {"_models": {}}

    def check(self) -> None:
        """Load every language's model now: a missing or corrupt file stops the run before any work."""
        for lang in self.langs:
            self.model(lang)

    def model(self, lang: str) -> LanguageModel | None:
        if lang not in self.langs:
            return None
        m = self._models.get(lang)
        if m is None:
            m = self._models[lang] = load_language_model(self.model_dir, lang)
        return m

    def score(self, text: str, lang: str) -> float:
        model = self.model(lang)
        if model is None or not has_letters(text):
            return math.inf
        return model.perplexity(text)

    def __call__(self, doc: Document) -> Document | Dropped:
        doc.metadata.perplexity = self.score(doc.text, doc.lang)
        return doc
