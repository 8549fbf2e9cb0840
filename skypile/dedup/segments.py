"""Recurring segments: lines that recur in many documents are boilerplate; remove them everywhere.

Navigation bars, cookie notices, "related articles" blocks, site footers and
spam templates are the same few lines on thousands of pages.  CCNet removes
them by hashing every normalized paragraph and deleting the ones seen more
than once in a shard; SkyPile does it corpus-wide with a threshold:

1. facts: the distinct hashes of a document's normalized lines (one uint64
   array per document, :class:`~skypile.corpus.KeyedFacts`);
2. decide: the number of documents holding each hash, summed by a combiner
   (no group-by, so a line on a million pages costs a counter, not a list);
   hashes in at least ``min_docs`` documents form the table, a sorted uint64
   array broadcast to every task (and written to ``DIR/fitted/segments.json``,
   reusable by a later run with ``fitted_from``), with the :data:`TOP` most
   frequent ones and their document counts, for the run's page;
3. apply: drop those lines from every document; a document left with nothing is
   dropped as ``only_recurring_segments``.  What was removed is counted
   (``changed.lines_removed``, ``changed.chars_removed``), and for the top segments
   the lines removed and one line's text (the smallest) go to the run's stats.

Normalization follows CCNet: lower case, digits as ``0``, punctuation removed,
whitespace collapsed, so "Page 2 of 10" and "page 3 of 12" are one segment.
Lines whose normalized form is shorter than ``min_chars`` are neither counted
nor removed (a bare "1." in a list is not boilerplate).  Count documents, not
occurrences: a line repeated within one page counts once.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any, ClassVar, Iterable, Iterator

import numpy as np

from skypile.corpus import Coll, Decision, DocRef, KeyedFacts, Sum
from skypile.document import Document, Dropped
from skypile.stage import drop

STAGE = "segments"
TOP = 20  # most frequent segments named on the run's page
_DIGITS = re.compile(r"\d")
_PUNCT = re.compile(r"[^\w\s]|_")
_SPACE = re.compile(r"\s+")


def normalize_segment(line: str) -> str:
    """CCNet's normalization for dedup: lower case, digits → 0, no punctuation, one space between words."""
    s = _DIGITS.sub("0", line.lower())
    return _SPACE.sub(" ", _PUNCT.sub("", s)).strip()


def segment_hash(norm: str) -> int:
    return int.from_bytes(hashlib.blake2b(norm.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def line_hashes(lines: list[str], min_chars: int = 0) -> list[int | None]:
    """Per line: its segment hash, or None for a line too short to count."""
    out: list[int | None] = []
    for line in lines:
        norm = normalize_segment(line)
        out.append(segment_hash(norm) if norm and len(norm) >= min_chars else None)
    return out


def hash_name(h: int) -> str:
    return f"{h:016x}"


class FrequentSegments:
    """Combiner: ``(hash, documents)`` of the frequent segments → the table: every hash as a sorted uint64
    array, base64 in JSON (8 bytes per hash), and the ``top`` most frequent as ``[[hex hash, documents], ...]``."""

    def __init__(self, top: int = TOP):
        self.top = top

    def _trim(self, best: list) -> list:
        return sorted(best, key=lambda nh: (-nh[0], nh[1]))[: self.top]

    def create(self) -> tuple[set, list]:
        return set(), []

    def add(self, acc: tuple[set, list], kv: tuple[int, int]) -> tuple[set, list]:
        hashes, best = acc
        hashes.add(kv[0])
        best.append((int(kv[1]), kv[0]))
        return (hashes, self._trim(best)) if len(best) > 4 * self.top else (hashes, best)

    def merge(self, accs: Iterable[tuple[set, list]]) -> tuple[set, list]:
        hashes: set = set()
        best: list = []
        for h, b in accs:
            hashes |= h
            best = self._trim(best + list(b))
        return hashes, best

    def extract(self, acc: tuple[set, list]) -> dict:
        hashes, best = acc
        arr = np.array(sorted(hashes), dtype="<u8")
        return {"count": len(arr), "top": [[hash_name(h), n] for n, h in self._trim(best)],
                "hashes": base64.b64encode(arr.tobytes()).decode("ascii")}


def table_hashes(table: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(table["hashes"]), dtype="<u8")


class RecurringSegments:
    """Corpus stage ``segments``: remove lines found in at least ``min_docs`` documents."""

    name = STAGE
    table_only: ClassVar[bool] = True

    def __init__(self, min_docs: int = 10, min_chars: int = 0):
        if min_docs < 2:
            raise ValueError(f"segments.min_docs must be at least 2, got {min_docs}")
        self.min_docs, self.min_chars = min_docs, min_chars
        self._table_key: Any = None
        self._hashes = np.zeros(0, dtype="<u8")
        self._top: dict[int, int] = {}
        self._changes = {"lines_removed": 0, "chars_removed": 0}
        self._examples: dict[str, dict] = {}

    def facts(self, doc: Document, ref: DocRef) -> Iterator[KeyedFacts]:
        hashes = {h for h in line_hashes(doc.text.split("\n"), self.min_chars) if h is not None}
        if hashes:
            yield KeyedFacts(np.fromiter(hashes, dtype=np.uint64, count=len(hashes)), 1)

    def decide(self, facts: Coll) -> Decision:
        min_docs = self.min_docs
        frequent = facts.combine_per_key(Sum()).filter(lambda kv: kv[1] >= min_docs)
        return Decision(table=frequent.combine_globally(FrequentSegments()))

    def _frequent(self, table: dict) -> np.ndarray:
        if self._table_key is not table:  # decoded once per table, not per document
            self._table_key, self._hashes = table, table_hashes(table)
            self._top = {int(h, 16): n for h, n in table.get("top", [])}  # a table fitted before there was a top: none
        return self._hashes

    def apply(self, doc: Document, verdict: Any, table: Any) -> Document | Dropped:
        frequent = self._frequent(table)
        if len(frequent) == 0:
            return doc
        lines = doc.text.split("\n")
        hashes = line_hashes(lines, self.min_chars)
        known = np.array([h if h is not None else 0 for h in hashes], dtype=np.uint64)
        pos = np.searchsorted(frequent, known)
        hit = (pos < len(frequent)) & (frequent[np.minimum(pos, len(frequent) - 1)] == known)
        hit &= np.array([h is not None for h in hashes])
        if not hit.any():
            return doc
        kept = [line for line, h in zip(lines, hit.tolist()) if not h]
        if self._top:
            self._note_top(lines, hashes, hit.tolist())
        self._changes["lines_removed"] += int(hit.sum())
        removed_chars = sum(len(line) for line, h in zip(lines, hit.tolist()) if h)
        self._changes["chars_removed"] += removed_chars
        text = "\n".join(kept).strip()
        if not text:
            return drop(self.name, "only_recurring_segments", doc, f"{int(hit.sum())} recurring lines, nothing else")
        doc.text = text
        doc.metadata.n_chars = len(text)
        return doc

    def _note_top(self, lines: list[str], hashes: list[int | None], hit: list[bool]) -> None:
        """Lines removed of the top segments: how many, and the smallest line's text (one line per segment)."""
        for line, h, removed in zip(lines, hashes, hit):
            if removed and h in self._top:
                e = self._examples.setdefault(hash_name(h), {"items": [], "n": 0, "size": self._top[h]})
                text = line.strip()[:200]
                if not e["items"] or [text] < e["items"][0]:
                    e["items"] = [[text]]
                e["n"] += 1

    def drain_examples(self) -> dict:
        """The top segments met since the last call, for the run's stats (:class:`~skypile.report.sketches.RunSketch`)."""
        found, self._examples = self._examples, {}
        return {"segment": found} if found else {}

    def drain_changes(self) -> dict[str, int]:
        out = {k: v for k, v in self._changes.items() if v}
        self._changes = {k: 0 for k in self._changes}
        return out
