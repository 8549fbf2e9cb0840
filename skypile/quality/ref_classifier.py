"""The Wikipedia-reference classifier: could this page be cited as a reference by Wikipedia?

A fastText supervised model (one for all languages: Chinese text is split into
characters, so it learns character bigrams), as in the LLaMA/CCNet recipe.
Positives: Wikipedia articles (cut into pieces of page length) and
reference-quality pages; negatives: ordinary web text (see
:mod:`skypile.quality.corpora`).  Articles and pages are split into train and
held-out sets by a seeded hash of their key, so no article is on both sides;
the held-out ROC AUC and the precision at the kept fractions go into the
manifest and the model card.  ``thread=1`` and a fixed seed make the build
deterministic.

Stage ``ref_prob`` writes ``metadata.ref_prob``, the probability of the
positive label; a text with no letters gets 0.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from skypile.document import Document, Dropped
from skypile.io import local_copy
from skypile.quality.corpora import Text, chunks, is_held_out, reference_texts, wiki_articles
from skypile.quality.perplexity import ModelError
from skypile.quality.text import classifier_line, has_letters
from skypile.stage import LoadsOnWorker

STAGE = "ref_prob"
POSITIVE, NEGATIVE = "__label__wiki", "__label__web"
_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()


def roc_auc(scores: list[float], labels: list[int]) -> float:
    """Probability that a random positive outscores a random negative (ties count half): Mann-Whitney U."""
    import numpy as np

    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        raise ValueError("ROC AUC needs both positives and negatives")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at(scores: list[float], labels: list[int], kept_fraction: float) -> float:
    """Share of positives among the best-scored ``kept_fraction`` of the items."""
    ranked = sorted(zip(scores, labels), key=lambda sl: -sl[0])
    k = max(1, round(kept_fraction * len(ranked)))
    return sum(label for _, label in ranked[:k]) / k


def load_classifier(path: str) -> Any:
    with _LOCK:
        model = _MODELS.get(path)
        if model is None:
            import fasttext

            try:
                local = local_copy(path)  # a path, or a URI fetched once per machine
            except FileNotFoundError:
                local = ""
            if not os.path.isfile(local):
                raise ModelError(f"reference classifier missing: {path} (run `skypile models build`)")
            try:
                model = _MODELS[path] = fasttext.load_model(local)
            except Exception as exc:  # noqa: BLE001 - fastText raises ValueError on a bad file
                raise ModelError(f"reference classifier {path} cannot be loaded: {exc}") from None
            if POSITIVE not in model.get_labels():
                raise ModelError(f"{path} is not a reference classifier (labels {model.get_labels()})")
        return model


def probability(model: Any, text: str, max_chars: int = 10_000) -> float:
    """P(positive label) for ``text`` (0 for text without letters)."""
    if not has_letters(text):
        return 0.0
    labels, probs = model.predict(classifier_line(text, max_chars), k=2)
    for label, p in zip(labels, probs):
        if label == POSITIVE:
            return min(1.0, float(p))
    return 0.0


@dataclass
class RefProb(LoadsOnWorker):
    """Stage ``ref_prob``: ``metadata.ref_prob`` from the fastText reference classifier (decides nothing)."""

    model_path: str
    max_chars: int = 10_000
    name: str = STAGE
    measures: ClassVar[tuple[str, ...]] = ("ref_prob",)  # binned per language for the run's page
    _model: Any = field(default=None, init=False, repr=False, compare=False)
    loaded: ClassVar[dict[str, Any]] = {"_model": None}

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_classifier(self.model_path)
        return self._model

    def check(self) -> None:
        _ = self.model

    def score(self, text: str) -> float:
        return probability(self.model, text, self.max_chars)

    def __call__(self, doc: Document) -> Document | Dropped:
        doc.metadata.ref_prob = self.score(doc.text)
        return doc


def training_examples(data_dir: Path, recipe: dict, web: dict[str, list[Text]]) -> tuple[list[tuple[int, Text]], dict]:
    """``[(label, text)]`` for every chunk: Wikipedia + reference pages = 1, web text = 0; and per-source counts."""
    max_chars = int(recipe.get("chunk_chars", 2000))
    items: list[tuple[int, Text]] = []
    counts: dict[str, int] = {}
    for lang in recipe["langs"]:
        for art in wiki_articles(data_dir, lang):
            for c in chunks(art, max_chars):
                items.append((1, c))
        for t in web[lang]:
            items.append((0, t))
    for t in reference_texts(data_dir):
        for c in chunks(t, max_chars):
            items.append((1, c))
    for label, t in items:
        k = f"{'positive' if label else 'negative'}:{t.lang}:{t.source}"
        counts[k] = counts.get(k, 0) + 1
    return items, dict(sorted(counts.items()))


def _train_in_fresh_process(train_file: str, out_path: str, params: dict) -> None:
    """``fasttext.train_supervised`` in a new interpreter.

    fastText's training is reproducible only in a fresh process: a second identical
    training in the same process can differ (and even diverge to NaN), so every build
    trains in its own.
    """
    code = (
        "import json, sys, fasttext\n"
        "a = json.loads(sys.argv[1])\n"
        "fasttext.train_supervised(input=a['input'], **a['params']).save_model(a['output'])\n"
    )
    args = json.dumps({"input": train_file, "output": out_path, "params": params})
    proc = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"fastText training failed: {proc.stderr.strip()[-2000:]}")


def build_ref_classifier(recipe: dict, data_dir: Path, out_dir: Path, web: dict[str, list[Text]], progress: bool = True) -> dict:
    """Train, evaluate on the held-out split, and write ``<out>/<output>``; returns the manifest entry."""
    import fasttext

    seed, held = int(recipe.get("seed", 0)), float(recipe.get("held_out", 0.2))
    items, counts = training_examples(data_dir, recipe, web)
    train = [(y, t) for y, t in items if not is_held_out(t.key, seed, held)]
    test = [(y, t) for y, t in items if is_held_out(t.key, seed, held)]
    random.Random(seed).shuffle(train)
    params = {"lr": 0.5, "epoch": 20, "wordNgrams": 2, "dim": 32, "minCount": 2, "bucket": 200_000, "loss": "softmax"}
    params.update(recipe.get("fasttext", {}))
    target = out_dir / recipe["output"]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        train_file = os.path.join(scratch, "train.txt")
        with open(train_file, "w", encoding="utf-8") as f:
            for y, t in train:
                f.write(f"{POSITIVE if y else NEGATIVE} {classifier_line(t.text)}\n")
        tmp = os.path.join(scratch, "model.bin")
        _train_in_fresh_process(train_file, tmp, dict(params, seed=seed, thread=1, verbose=0))
        os.replace(tmp, target)
    model = fasttext.load_model(str(target))
    scores = [probability(model, t.text) for _, t in test]
    labels = [y for y, _ in test]
    cuts = [float(c) for c in recipe.get("kept_fractions", [0.3, 0.6])]
    metrics = {
        "held_out_roc_auc": round(roc_auc(scores, labels), 4),
        "precision_at_kept_fraction": {str(c): round(precision_at(scores, labels, c), 4) for c in cuts},
        "held_out_items": len(test),
        "held_out_positives": sum(labels),
    }
    for lang in recipe["langs"]:
        idx = [i for i, (_, t) in enumerate(test) if t.lang == lang]
        ys = [labels[i] for i in idx]
        if 0 < sum(ys) < len(ys):
            metrics[f"held_out_roc_auc_{lang}"] = round(roc_auc([scores[i] for i in idx], ys), 4)
    return {
        "kind": "fasttext_ref",
        "path": str(target),
        "files": [target.name],
        "data": {"examples": counts, "train": len(train), "held_out": len(test)},
        "parameters": {**params, "seed": seed, "thread": 1, "held_out": held, "chunk_chars": int(recipe.get("chunk_chars", 2000))},
        "metrics": metrics,
    }
