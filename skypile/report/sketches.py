"""What a run keeps for its report page: small summaries each task computes and the run merges.

The page on a billion documents must be as small, and as quick to build, as the page on a
hundred, and the same on every executor.  So beside its counts (:class:`skypile.stage.StageStats`)
each task keeps summaries whose size does not grow with the input and that merge exactly, in any
order, by the same rule on both executors (they travel inside the task's stats file):

* **scores**: fixed-bin histograms (:class:`Bins`) of the scores a stage measures, per language;
* **values**: counts of what a stage set (language, bucket), per language;
* **written**: documents, characters and tokens written, by source and language (the token mix);
* **samples**: per stage, the kept documents and the dropped ones (per reason) whose seeded hash of
  ``(stage, id)`` is smallest, their first :data:`TEXT_CHARS` characters with their scores: the
  k smallest of a union are the k smallest of the parts' k smallest, so the sample depends only on
  which documents passed a stage, never on tasks, workers or order (two reports of a run agree);
* **examples** a stage hands back (``drain_examples()``): keyed entries with a bounded list of
  items, e.g. the first lines of two members of each of the largest dedup clusters
  (:mod:`skypile.report.clusters`) or the text of the most frequent recurring segments.

Which scores a stage measures it says itself: a ``measures`` tuple of document fields
(``lang`` or a :class:`~skypile.document.DocMetadata` field).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from skypile.document import Document, Dropped

SAMPLE_SEED = "skypile-report-1"  # part of every sample hash: a new seed, a new sample
KEPT_SAMPLES = 3  # kept documents per stage
DROPPED_SAMPLES = 2  # dropped documents per stage and reason
TEXT_CHARS = 200  # characters of a sampled document's text
EXAMPLE_ITEMS = {"segment": 1}  # items kept per example entry, by kind (others: DEFAULT_ITEMS)
DEFAULT_ITEMS = 2
ALL = "*"  # the language key of a value counted over all languages (``lang`` itself)


@dataclass(frozen=True)
class Bins:
    """Equal-width bins on a linear or log10 scale: ``n`` bins over ``[lo, hi]``, plus below/above."""

    scale: str  # "linear" | "log10"
    lo: float
    hi: float
    n: int

    def index(self, value: float) -> int:
        """Bin of a finite value: -1 below ``lo``, ``n`` above ``hi``; ``hi`` itself is in the last bin."""
        x = math.log10(value) if self.scale == "log10" else value
        if self.scale == "log10" and value <= 0:
            return -1
        if x < self.lo:
            return -1
        if x > self.hi:
            return self.n
        return min(self.n - 1, int((x - self.lo) / (self.hi - self.lo) * self.n))

    def edges(self) -> list[float]:
        """The ``n + 1`` bin edges in the score's own units."""
        step = (self.hi - self.lo) / self.n
        xs = [self.lo + i * step for i in range(self.n + 1)]
        return [10.0 ** x for x in xs] if self.scale == "log10" else xs

    def to_json(self) -> dict:
        return {"scale": self.scale, "lo": self.lo, "hi": self.hi, "n": self.n}


# Bins of every score a stage measures; a score not listed here is not histogrammed.
SCORE_BINS = {
    "perplexity": Bins("log10", 0.0, 5.0, 100),  # 1 .. 100,000; CCNet's web text lies within 10 .. 10^4
    "ref_prob": Bins("linear", 0.0, 1.0, 50),
    "lang_score": Bins("linear", 0.0, 1.0, 50),
}


def sample_hash(stage: str, key: str) -> str:
    """The seeded 64-bit hash (16 hex digits) that orders a stage's candidates for its samples."""
    return hashlib.blake2b(f"{SAMPLE_SEED}\0{stage}\0{key}".encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def doc_scores(doc: Document) -> dict:
    """The scores a document carries so far (finite, set ones only), for a sample."""
    m = doc.metadata
    out: dict[str, Any] = {}
    if doc.lang:
        out["lang"] = doc.lang
    for name in ("lang_score", "perplexity", "ref_prob"):
        v = getattr(m, name)
        if v and math.isfinite(v):
            out[name] = round(float(v), 4)
    if m.perplexity == math.inf:
        out["perplexity"] = "unscorable"
    if m.bucket:
        out["bucket"] = m.bucket
    if doc.tokens is not None:
        out["n_tokens"] = len(doc.tokens)
    return out


def _counter(counters: dict, key: tuple) -> Counter:
    c = counters.get(key)  # (not setdefault: that would build a Counter per call)
    if c is None:
        c = counters[key] = Counter()
    return c


def _keep_smallest(items: list, k: int) -> list:
    return sorted(items, key=_order)[:k]


def _order(entry: Any) -> Any:
    return (entry["h"], entry.get("id", ""), entry.get("text", "")) if isinstance(entry, dict) else entry


@dataclass
class RunSketch:
    """The bounded, mergeable summaries of one task (or, merged, of the run).  See the module doc."""

    scores: dict[tuple[str, str, str], Counter] = field(default_factory=dict)  # (stage, field, lang) → bin → n
    values: dict[tuple[str, str, str], Counter] = field(default_factory=dict)  # (stage, field, lang) → value → n
    written: dict[tuple[str, str], Counter] = field(default_factory=dict)  # (source, lang) → docs/chars/tokens
    samples: dict[tuple[str, str], list[dict]] = field(default_factory=dict)  # (stage, "kept"|reason) → entries
    examples: dict[tuple[str, str, str], dict] = field(default_factory=dict)  # (stage, kind, key) → items, n, size

    # --- recording (in a task) -------------------------------------------------------------
    def measure(self, stage: str, names: Iterable[str], doc: Document, only_set: bool = False) -> None:
        """Record the fields a stage measures on ``doc``: scores into bins, anything else as a value.

        ``only_set``: for a document the stage dropped, only the fields it set before dropping it
        (a bucket, yes; the language of an empty page it refused to identify, no)."""
        lang = doc.lang or "und"
        for name in names:
            if name == "lang":
                if doc.lang or not only_set:
                    _counter(self.values, (stage, name, ALL))[lang] += 1
                continue
            value = getattr(doc.metadata, name)
            if only_set and not value:
                continue
            bins = SCORE_BINS.get(name)
            if bins is None:
                _counter(self.values, (stage, name, lang))[str(value)] += 1
            elif isinstance(value, (int, float)) and math.isfinite(value):
                _counter(self.scores, (stage, name, lang))[str(bins.index(float(value)))] += 1
            else:
                _counter(self.scores, (stage, name, lang))["missing"] += 1

    def write(self, doc: Document) -> None:
        c = _counter(self.written, (doc.source, doc.lang or "und"))
        c["docs"] += 1
        c["chars"] += len(doc.text)
        c["tokens"] += len(doc.tokens) if doc.tokens is not None else 0

    def _candidate(self, stage: str, outcome: str, key: str, k: int) -> tuple[list, str] | None:
        h = sample_hash(stage, key)
        entries = self.samples.setdefault((stage, outcome), [])
        if len(entries) >= k and h > entries[-1]["h"]:
            return None  # (an equal hash, from an id seen twice, is settled by the full order below)
        return entries, h

    def sample_kept(self, stage: str, doc: Document) -> None:
        found = self._candidate(stage, "kept", doc.id, KEPT_SAMPLES)
        if found is not None:
            entries, h = found
            entries.append({"h": h, "id": doc.id, "url": doc.url, "text": doc.text[:TEXT_CHARS], "scores": doc_scores(doc)})
            entries[:] = _keep_smallest(entries, KEPT_SAMPLES)

    def sample_dropped(self, drop: Dropped, doc: Any = None) -> None:
        """A dropped record (with its document's text and scores when it was a document)."""
        found = self._candidate(drop.stage, drop.reason, drop.id or f"{drop.url}\0{drop.detail}", DROPPED_SAMPLES)
        if found is not None:
            entries, h = found
            entry = {"h": h, "id": drop.id, "url": drop.url, "detail": drop.detail[:TEXT_CHARS]}
            if isinstance(doc, Document):
                entry.update(text=doc.text[:TEXT_CHARS], scores=doc_scores(doc))
            entries.append(entry)
            entries[:] = _keep_smallest(entries, DROPPED_SAMPLES)

    def add_examples(self, stage: str, found: dict) -> None:
        """``found``: ``{kind: {key: {"items": [...], "n": int, "size": int}}}`` from a stage's ``drain_examples()``."""
        for kind, entries in found.items():
            for key, e in entries.items():
                self._merge_example((stage, kind, str(key)), e)

    def _merge_example(self, k: tuple[str, str, str], e: dict) -> None:
        cur = self.examples.get(k)
        limit = EXAMPLE_ITEMS.get(k[1], DEFAULT_ITEMS)
        if cur is None:
            self.examples[k] = {"items": _keep_smallest([list(i) for i in e.get("items", [])], limit),
                                "n": int(e.get("n", 0)), "size": int(e.get("size", 0))}
            return
        seen = {tuple(i) for i in cur["items"]}
        items = cur["items"] + [list(i) for i in e.get("items", []) if tuple(i) not in seen]
        cur["items"] = _keep_smallest(items, limit)
        cur["n"] += int(e.get("n", 0))
        cur["size"] = max(cur["size"], int(e.get("size", 0)))

    # --- merging and serialization ---------------------------------------------------------
    def merge(self, other: "RunSketch") -> "RunSketch":
        for mine, theirs in ((self.scores, other.scores), (self.values, other.values), (self.written, other.written)):
            for k, c in theirs.items():
                _counter(mine, k).update(c)
        for k, entries in other.samples.items():
            limit = KEPT_SAMPLES if k[1] == "kept" else DROPPED_SAMPLES
            self.samples[k] = _keep_smallest(self.samples.get(k, []) + list(entries), limit)
        for k, e in other.examples.items():
            self._merge_example(k, e)
        return self

    def __bool__(self) -> bool:
        return any((self.scores, self.values, self.written, self.samples, self.examples))

    def to_json(self) -> dict:
        """Nested, key-sorted dicts (so a merged report is the same whatever the merge order)."""
        scores: dict = {}
        for (stage, name, lang), c in sorted(self.scores.items()):
            bins = SCORE_BINS[name]
            below, above, missing = c.get("-1", 0), c.get(str(bins.n), 0), c.get("missing", 0)
            counts = {b: c[b] for b in sorted((b for b in c if b.isdigit() and int(b) < bins.n), key=int)}
            scores.setdefault(stage, {}).setdefault(name, {})[lang] = {
                "bins": bins.to_json(), "counts": counts, "below": below, "above": above, "missing": missing,
                "n": sum(c.values())}
        values: dict = {}
        for (stage, name, lang), c in sorted(self.values.items()):
            values.setdefault(stage, {}).setdefault(name, {})[lang] = dict(sorted(c.items()))
        written: dict = {}
        for (source, lang), c in sorted(self.written.items()):
            written.setdefault(source, {})[lang] = {k: c.get(k, 0) for k in ("docs", "chars", "tokens")}
        samples: dict = {}
        for (stage, outcome), entries in sorted(self.samples.items()):
            s = samples.setdefault(stage, {"kept": [], "dropped": {}})
            if outcome == "kept":
                s["kept"] = entries
            else:
                s["dropped"][outcome] = entries
        examples: dict = {}
        for (stage, kind, key), e in sorted(self.examples.items()):
            examples.setdefault(stage, {}).setdefault(kind, {})[key] = e
        return {"scores": scores, "values": values, "written": written, "samples": samples, "examples": examples}

    @classmethod
    def from_json(cls, data: dict) -> "RunSketch":
        s = cls()
        for stage, names in data.get("scores", {}).items():
            for name, langs in names.items():
                for lang, h in langs.items():
                    c = Counter({b: n for b, n in h["counts"].items()})
                    n_bins = h["bins"]["n"]
                    for key, k in (("below", "-1"), ("above", str(n_bins)), ("missing", "missing")):
                        if h.get(key):
                            c[k] = h[key]
                    s.scores[(stage, name, lang)] = c
        for stage, names in data.get("values", {}).items():
            for name, langs in names.items():
                for lang, c in langs.items():
                    s.values[(stage, name, lang)] = Counter(c)
        for source, langs in data.get("written", {}).items():
            for lang, c in langs.items():
                s.written[(source, lang)] = Counter(c)
        for stage, outcomes in data.get("samples", {}).items():
            if outcomes.get("kept"):
                s.samples[(stage, "kept")] = list(outcomes["kept"])
            for reason, entries in outcomes.get("dropped", {}).items():
                s.samples[(stage, reason)] = list(entries)
        for stage, kinds in data.get("examples", {}).items():
            for kind, entries in kinds.items():
                for key, e in entries.items():
                    s.examples[(stage, kind, key)] = {"items": [list(i) for i in e["items"]], "n": e["n"], "size": e["size"]}
        return s
