"""Exact deduplication on normalized text: the first corpus stage.

Two documents are exact duplicates when their text is identical after
normalization (Unicode NFKC, case folding, whitespace collapsed), which catches
the same page crawled under several URLs or re-served with different spacing.

As a corpus stage (see :mod:`skypile.corpus`) only a 16-byte hash and the
document's id and location are shuffled: facts ``(hash, (id, split, row))`` are
grouped by hash, and in each group of two or more every member but the one with
the smallest ``(id, split, row)`` gets a drop verdict.  The choice depends only
on the group's contents, so every executor keeps the same copy.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any, Iterable, Iterator

from skypile.corpus import Coll, Decision, DocRef
from skypile.document import Document, Dropped
from skypile.stage import drop

STAGE = "exact_dedup"
_WS = re.compile(r"\s+")

Member = tuple[str, str, int]  # (doc id, split, row)


def normalize_for_dedup(text: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def dedup_key(doc: Document) -> bytes:
    """128-bit hash of the normalized text: collision odds are negligible at 10^12 documents."""
    return hashlib.blake2b(normalize_for_dedup(doc.text).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def resolve_group(members: Iterable[Member]) -> tuple[Member, list[Member]]:
    """The survivor (smallest ``(id, split, row)``) and the members that duplicate it."""
    ordered = sorted(members)
    return ordered[0], ordered[1:]


def _verdicts(group: tuple[bytes, Iterable[Member]]) -> Iterator[tuple[DocRef, tuple[str, str]]]:
    _, members = group
    survivor, dups = resolve_group(members)
    for doc_id, split, row in dups:
        yield DocRef(split, row), ("exact_duplicate", f"duplicate of {survivor[0]}")


class ExactDedup:
    """Corpus stage ``exact_dedup``: one survivor per group of identical normalized texts."""

    name = STAGE

    def facts(self, doc: Document, ref: DocRef) -> Iterator[tuple[bytes, Member]]:
        yield dedup_key(doc), (doc.id, ref.split, ref.row)

    def decide(self, facts: Coll) -> Decision:
        return Decision(verdicts=facts.group_by_key().flat_map(_verdicts))

    def apply(self, doc: Document, verdict: Any, table: Any) -> Document | Dropped:
        if verdict is None:
            return doc
        reason, detail = verdict
        return drop(self.name, reason, doc, detail)
