"""CCNet-style buckets: score every document, fit percentile thresholds per language, keep the best buckets.

A table-only corpus stage (see :mod:`skypile.corpus`).  Any score a measuring
stage wrote into the document's metadata can be bucketed (perplexity, a
classifier probability, the language score): facts are ``(lang, score)``; the
decision is one small table of thresholds per language, fitted from
mergeable histograms; ``apply`` writes ``metadata.bucket`` and drops the
buckets not kept.

Percentiles are computed from a sparse histogram of scores rounded to
``SIGNIFICANT`` significant digits: it merges exactly in any order (so every
executor fits the same thresholds), its size is bounded by the distinct rounded
values rather than the number of documents, and it errs by at most one part in
10^4 of a score.  CCNet's default cuts are the 30th and 60th percentiles:
``head`` holds the best 30% of a language's documents, ``middle`` the next 30%,
``tail`` the rest.  The fitted table is written to ``DIR/fitted/<stage>.json``
and a later run can reuse it (``fitted_from``) instead of fitting again, e.g. to
bucket a new crawl with the thresholds of a reference sample.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Iterator

from skypile.corpus import Coll, Decision, DocRef
from skypile.document import Document, Dropped
from skypile.stage import drop

STAGE = "buckets"
SIGNIFICANT = 4
BUCKETS = ("head", "middle", "tail")


def quantize(value: float) -> float:
    """``value`` rounded to :data:`SIGNIFICANT` significant digits (0 and non-finite values kept as they are)."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    return round(value, SIGNIFICANT - 1 - int(math.floor(math.log10(abs(value)))))


class Histogram:
    """Combiner: rounded score → count, merged by addition (order-free)."""

    def create(self) -> Counter:
        return Counter()

    def add(self, acc: Counter, value: float) -> Counter:
        acc[value] += 1
        return acc

    def merge(self, accs: Iterable[Counter]) -> Counter:
        out: Counter = Counter()
        for acc in accs:
            out.update(acc)
        return out

    def extract(self, acc: Counter) -> dict[float, int]:
        return dict(acc)


class Collect:
    """Combiner: ``(key, value)`` pairs → one dict."""

    def create(self) -> dict:
        return {}

    def add(self, acc: dict, kv: tuple) -> dict:
        acc[kv[0]] = kv[1]
        return acc

    def merge(self, accs: Iterable[dict]) -> dict:
        out: dict = {}
        for acc in accs:
            out.update(acc)
        return out

    def extract(self, acc: dict) -> dict:
        return acc


def top_threshold(hist: dict[float, int], pct: float) -> float:
    """The score of the document at the ``pct``% mark counted from the best: ``≥`` it are the best ``pct``%.

    Ties at the mark all count as above it, so a plateau of equal scores is never split (or dropped whole).
    """
    need = max(1, math.ceil(pct / 100.0 * sum(hist.values())))
    seen = 0
    ordered = sorted(hist.items(), reverse=True)
    for value, count in ordered:
        seen += count
        if seen >= need:
            return value
    return ordered[-1][0]


@dataclass
class ScoreBuckets:
    """Corpus stage: head / middle / tail per language from the percentiles of ``metadata.<score>``.

    ``higher_is_better``: True for probabilities (classifier, language score),
    False for perplexity.  ``cuts`` are percentiles of *quality* rank: with the
    default (30, 60), head is the best 30% of a language, middle the next 30%.
    """

    score: str = "lang_score"
    higher_is_better: bool = True
    cuts: tuple[float, float] = (30.0, 60.0)
    keep: tuple[str, ...] = ("head", "middle")
    name: str = STAGE
    table_only: ClassVar[bool] = True  # its decision is one table: reusable by a later run
    measures: ClassVar[tuple[str, ...]] = ("bucket",)  # bucket shares per language on the run's page

    def __post_init__(self) -> None:
        if not (0 < self.cuts[0] <= self.cuts[1] < 100):
            raise ValueError(f"{self.name}: cuts must satisfy 0 < first <= second < 100, got {self.cuts}")
        unknown = set(self.keep) - set(BUCKETS)
        if unknown:
            raise ValueError(f"{self.name}: unknown bucket(s) {sorted(unknown)} (known: {', '.join(BUCKETS)})")

    def _score(self, doc: Document) -> float:
        value = float(getattr(doc.metadata, self.score))
        return value if self.higher_is_better else -value  # rank so that larger is always better

    def facts(self, doc: Document, ref: DocRef) -> Iterator[tuple[str, float]]:
        score = self._score(doc)
        if math.isfinite(score):
            yield doc.lang, quantize(score)

    def decide(self, facts: Coll) -> Decision:
        cuts, score, hib = self.cuts, self.score, self.higher_is_better

        def thresholds(lang_hist: tuple[str, dict]) -> tuple[str, dict]:
            lang, hist = lang_hist
            head, middle = (top_threshold(hist, c) for c in cuts)
            return lang, {"head": head, "middle": middle, "n": sum(hist.values())}

        def table(per_lang: dict) -> dict:
            return {"score": score, "higher_is_better": hib, "cuts": list(cuts), "languages": dict(sorted(per_lang.items()))}

        per_lang = facts.combine_per_key(Histogram()).map(thresholds).combine_globally(Collect())
        return Decision(table=per_lang.map(table))

    def bucket(self, doc: Document, table: dict) -> str:
        t = table["languages"].get(doc.lang)
        score = self._score(doc)
        if t is None or not math.isfinite(score):
            return "tail"  # a language the table was not fitted on, or no usable score
        score = quantize(score)
        return "head" if score >= t["head"] else "middle" if score >= t["middle"] else "tail"

    def apply(self, doc: Document, verdict: Any, table: Any) -> Document | Dropped:
        doc.metadata.bucket = b = self.bucket(doc, table)
        if b not in self.keep:
            return drop(self.name, f"bucket_{b}", doc, f"{self.score}={getattr(doc.metadata, self.score)}")
        return doc
