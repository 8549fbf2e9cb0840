"""Per-language percentile thresholds of both quality scores on a reference sample, and the stage that uses them.

CCNet cuts its buckets at percentiles of perplexity measured per language on a
sample of the crawl.  ``skypile models build`` (recipe kind
``quality_thresholds``) scores the reference sample (ordinary web text of each
language, :func:`skypile.quality.corpora.web_texts`) with the KenLM models and
the reference classifier and stores, per score and language, the score at every
whole percentile counted from the best (``percentiles["30"]``: the best 30%
score at least this well).  Stage ``quality_bucket`` then buckets each document
on its own, with no corpus pass: ``head`` / ``middle`` / ``tail`` at
``quality_bucket.cuts`` (whole percentiles), and drops the buckets not kept.
To fit the cuts on the run's own corpus instead, use the corpus stage
``buckets`` (:mod:`skypile.quality.buckets`) with ``buckets.score=perplexity``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from skypile.document import Document, Dropped
from skypile.io import read_bytes
from skypile.quality.buckets import ScoreBuckets, quantize, top_threshold
from skypile.stage import drop

STAGE = "quality_bucket"
SCORES = {"perplexity": False, "ref_prob": True}  # score -> higher_is_better


def percentile_table(values: list[float], higher_is_better: bool) -> dict:
    """``{"n": ..., "percentiles": {"1": v1, ..., "99": v99}}``: the score the best p% reach (natural units)."""
    sign = 1.0 if higher_is_better else -1.0
    hist = Counter(quantize(sign * v) for v in values if math.isfinite(v))
    if not hist:
        return {"n": 0, "percentiles": {}}
    return {"n": sum(hist.values()), "percentiles": {str(p): sign * top_threshold(hist, p) for p in range(1, 100)}}


def build_thresholds(recipe: dict, out_dir: Path, web: dict, progress: bool = True) -> dict:
    """Score the reference sample with the built models; write ``<out>/<output>``; returns the manifest entry."""
    import statistics

    from tqdm import tqdm

    from skypile.io import atomic_write_text
    from skypile.quality.perplexity import LanguageModel
    from skypile.quality.ref_classifier import load_classifier, probability

    classifier = load_classifier(str(out_dir / recipe["classifier"]))
    scores: dict[str, dict[str, dict]] = {s: {} for s in SCORES}
    sample, metrics = {}, {}
    for lang in recipe["langs"]:
        lm = LanguageModel(str(out_dir / recipe["kenlm"]), lang)
        texts = web[lang]
        ppl = [lm.perplexity(t.text) for t in tqdm(texts, desc=f"reference sample {lang}", disable=not progress)]
        ref = [probability(classifier, t.text) for t in texts]
        scores["perplexity"][lang] = percentile_table(ppl, False)
        scores["ref_prob"][lang] = percentile_table(ref, True)
        sample[lang] = dict(sorted(Counter(t.source for t in texts).items()))
        finite = [p for p in ppl if math.isfinite(p)]
        metrics[lang] = {"web_perplexity_median": round(statistics.median(finite), 1) if finite else None,
                         "web_ref_prob_median": round(statistics.median(ref), 4) if ref else None}
    table = {"sample": sample, "scores": {s: {"higher_is_better": SCORES[s], "languages": scores[s]} for s in SCORES}}
    target = out_dir / recipe["output"]
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(str(target), json.dumps(table, indent=1, sort_keys=True) + "\n")
    return {
        "kind": "quality_thresholds",
        "path": str(target),
        "files": [target.name],
        "data": {"reference_sample": sample},
        "parameters": {"percentiles": "1..99, counted from the best", "models": [recipe["kenlm"], recipe["classifier"]]},
        "metrics": metrics,
    }


def load_reference(path: str) -> dict:
    try:
        table = json.loads(read_bytes(path))  # a path or a URI
    except FileNotFoundError:
        raise ValueError(f"quality thresholds missing: {path} (run `skypile models build`)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"quality thresholds {path} cannot be read: {exc}") from None
    if not isinstance(table, dict) or not isinstance(table.get("scores"), dict):
        raise ValueError(f"quality thresholds {path}: not a thresholds table (no 'scores')")
    return table


def bucket_table(reference: dict, score: str, cuts: tuple[float, float]) -> dict:
    """The stored percentiles at ``cuts`` as a :class:`ScoreBuckets` table (rank space: larger is better)."""
    if score not in reference["scores"]:
        raise ValueError(f"quality_bucket.score {score!r} has no stored thresholds (have: {', '.join(reference['scores'])})")
    if any(c != int(c) for c in cuts):
        raise ValueError(f"quality_bucket.cuts must be whole percentiles with stored thresholds, got {list(cuts)}")
    entry = reference["scores"][score]
    sign = 1.0 if entry["higher_is_better"] else -1.0
    langs = {}
    for lang, t in entry["languages"].items():
        p = t.get("percentiles") or {}
        if p:
            langs[lang] = {"head": quantize(sign * p[str(int(cuts[0]))]), "middle": quantize(sign * p[str(int(cuts[1]))]), "n": t["n"]}
    return {"score": score, "higher_is_better": entry["higher_is_better"], "cuts": list(cuts), "languages": langs}


@dataclass
class QualityBucket:
    """Stage ``quality_bucket``: ``metadata.bucket`` from stored per-language thresholds; drops buckets not kept.

    A language without stored thresholds, and an unscorable document (``inf``
    perplexity), land in the ``tail``.
    """

    reference: str
    score: str = "perplexity"
    cuts: tuple[float, float] = (30.0, 60.0)
    keep: tuple[str, ...] = ("head", "middle")
    name: str = STAGE
    table: dict = field(default_factory=dict, init=False, repr=False)
    measures: ClassVar[tuple[str, ...]] = ("bucket",)  # bucket shares per language on the run's page

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"quality_bucket.score must be one of {', '.join(SCORES)}, got {self.score!r}")
        self._rule = ScoreBuckets(score=self.score, higher_is_better=SCORES[self.score], cuts=self.cuts, keep=self.keep, name=self.name)
        self.table = bucket_table(load_reference(self.reference), self.score, self.cuts)

    def bucket(self, doc: Document) -> str:
        if self.score == "perplexity" and not doc.metadata.perplexity > 0:
            return "tail"  # 0: the perplexity stage did not run on it
        return self._rule.bucket(doc, self.table)

    def report_info(self) -> dict:
        """For the run's page: both scores' thresholds at ``cuts``, in the scores' own units (``score`` is bucketed on)."""
        reference = load_reference(self.reference)
        thresholds = {}
        for score in SCORES:
            if score in reference["scores"]:
                t = bucket_table(reference, score, self.cuts)
                sign = 1.0 if t["higher_is_better"] else -1.0
                thresholds[score] = {lang: {"head": sign * v["head"], "middle": sign * v["middle"]} for lang, v in t["languages"].items()}
        return {"score": self.score, "cuts": list(self.cuts), "keep": list(self.keep), "thresholds": thresholds}

    def __call__(self, doc: Document) -> Document | Dropped:
        doc.metadata.bucket = b = self.bucket(doc)
        if b not in self.keep:
            return drop(self.name, f"bucket_{b}", doc, f"{self.score}={getattr(doc.metadata, self.score)}")
        return doc

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
