"""Exact deduplication on normalized text.

Two documents are exact duplicates when their text is identical after
normalization (Unicode NFKC, case folding, whitespace collapsed), which catches
the same page crawled under several URLs or re-served with different spacing.

At scale the grouping is a Beam ``GroupByKey`` on :func:`dedup_key` (see
``pipelines``); :func:`resolve_group` decides which member survives, using only
the group's contents so the result does not depend on worker order.  For
laptop runs and tests :class:`ExactDedup` does the same with an in-memory set.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterable

from skypile.document import Document, Dropped
from skypile.stage import drop

STAGE = "exact_dedup"
_WS = re.compile(r"\s+")


def normalize_for_dedup(text: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def dedup_key(doc: Document) -> str:
    """128-bit hash of the normalized text: collision odds are negligible at 10^12 documents."""
    return hashlib.blake2b(normalize_for_dedup(doc.text).encode("utf-8"), digest_size=16).hexdigest()


def resolve_group(docs: Iterable[Document]) -> tuple[Document, list[Dropped]]:
    """Keep the member with the smallest id; the rest are dropped as ``exact_duplicate``."""
    ordered = sorted(docs, key=lambda d: d.id)
    survivor = ordered[0]
    return survivor, [drop(STAGE, "exact_duplicate", d, detail=f"duplicate of {survivor.id}") for d in ordered[1:]]


class ExactDedup:
    """Stage ``exact_dedup`` for in-process runs: first occurrence wins."""

    name = STAGE

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def __call__(self, doc: Document) -> Document | Dropped:
        key = dedup_key(doc)
        first = self._seen.setdefault(key, doc.id)
        if first != doc.id:
            return drop(STAGE, "exact_duplicate", doc, detail=f"duplicate of {first}")
        return doc
