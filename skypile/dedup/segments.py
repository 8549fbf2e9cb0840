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
   reusable by a later run with ``fitted_from``);
3. apply: drop those lines from every document; a document left with nothing is
   dropped as ``only_recurring_segments``.  What was removed is counted
   (``changed.lines_removed``, ``changed.chars_removed``).

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

from skypile.corpus import Coll, Decision, DocRef, KeyedFacts, Sum, Union
from skypile.document import Document, Dropped
from skypile.stage import drop

STAGE = "segments"
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


class HashSet(Union):
    """Combiner: a set of hashes → a sorted uint64 array, base64 in JSON (8 bytes per hash)."""

    def add(self, acc: set, h: int) -> set:
        acc.add(h)
        return acc

    def extract(self, acc: set) -> dict:
        arr = np.array(sorted(acc), dtype="<u8")
        return {"count": len(arr), "hashes": base64.b64encode(arr.tobytes()).decode("ascii")}


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
        self._changes = {"lines_removed": 0, "chars_removed": 0}

    def facts(self, doc: Document, ref: DocRef) -> Iterator[KeyedFacts]:
        hashes = {h for h in line_hashes(doc.text.split("\n"), self.min_chars) if h is not None}
        if hashes:
            yield KeyedFacts(np.fromiter(hashes, dtype=np.uint64, count=len(hashes)), 1)

    def decide(self, facts: Coll) -> Decision:
        min_docs = self.min_docs
        frequent = facts.combine_per_key(Sum()).filter(lambda kv: kv[1] >= min_docs).map(lambda kv: kv[0])
        return Decision(table=frequent.combine_globally(HashSet()))

    def _frequent(self, table: dict) -> np.ndarray:
        if self._table_key is not table:  # decoded once per table, not per document
            self._table_key, self._hashes = table, table_hashes(table)
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
        self._changes["lines_removed"] += int(hit.sum())
        removed_chars = sum(len(line) for line, h in zip(lines, hit.tolist()) if h)
        self._changes["chars_removed"] += removed_chars
        text = "\n".join(kept).strip()
        if not text:
            return drop(self.name, "only_recurring_segments", doc, f"{int(hit.sum())} recurring lines, nothing else")
        doc.text = text
        doc.metadata.n_chars = len(text)
        return doc

    def drain_changes(self) -> dict[str, int]:
        out = {k: v for k, v in self._changes.items() if v}
        self._changes = {k: 0 for k in self._changes}
        return out
