"""Exact deduplication on normalized text: the first corpus stage.

Two documents are exact duplicates when their text is identical after
normalization (Unicode NFKC, case folding, whitespace collapsed), which catches
the same page crawled under several URLs or re-served with different spacing.

As a corpus stage (see :mod:`skypile.corpus`) only a 16-byte hash and the
document's id and location are shuffled: facts ``(hash, (id, split, row))`` are
grouped by the hash's first 64 bits (a packed :class:`~skypile.corpus.KeyedFacts`,
so the in-process executor groups them with numpy, a key partition at a time),
split by the other 64, and in each group of two or more every member but the
one with the smallest ``(id, split, row)`` gets a drop verdict.  The choice depends only
on the group's contents, so every executor keeps the same copy.  The decision's table is
its largest groups (:func:`skypile.report.clusters.largest_clusters`), for the run's page.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterable, Iterator

import numpy as np

from skypile.corpus import Coll, Decision, DocRef, KeyedFacts
from skypile.dedup.removal import RemovesClusterMembers
from skypile.document import Document
from skypile.report.clusters import ClusterExamples, largest_clusters

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


def _verdicts(group: tuple[tuple[int, bytes], list[Member]]) -> Iterator[tuple[DocRef, tuple[str, str]]]:
    """A drop verdict ``(reason, survivor id)`` for every member but the survivor."""
    _, members = group
    survivor, dups = resolve_group(members)
    for doc_id, split, row in dups:
        yield DocRef(split, row), ("exact_duplicate", survivor[0])


def _by_full_hash(group: tuple[int, Iterable[tuple]]) -> Iterator[tuple[tuple[int, bytes], list[Member]]]:
    """A 64-bit group split by the other 64 bits of the hash: members whose whole 128-bit hash is equal."""
    key, members = group
    by_rest: dict[bytes, list[Member]] = {}
    for rest, doc_id, split, row in members:
        by_rest.setdefault(rest, []).append((doc_id, split, row))
    for rest, same in by_rest.items():
        yield (key, rest), same


def _has_copies(members: Iterable[Member]) -> bool:
    it = iter(members)
    return next(it, None) is not None and next(it, None) is not None


def _report(group: tuple[tuple[int, bytes], list[Member]]) -> Iterator[tuple[str, str, str]]:
    """Every member of a group of copies, survivor included, with the survivor's id as the cluster id."""
    _, members = group
    survivor, _ = resolve_group(members)
    for doc_id, _, _ in members:
        yield doc_id, survivor[0], STAGE


class ExactDedup(RemovesClusterMembers):
    """Corpus stage ``exact_dedup``: one survivor per group of identical normalized texts."""

    name = STAGE

    def __init__(self) -> None:
        self.examples = ClusterExamples()

    def facts(self, doc: Document, ref: DocRef) -> Iterator[KeyedFacts]:
        key = dedup_key(doc)  # 128 bits: the first 64 group, the last 64 split a group on the rare 64-bit collision
        yield KeyedFacts(np.frombuffer(key[:8], dtype="<u8").astype(np.uint64), (key[8:], doc.id, ref.split, ref.row))

    def decide(self, facts: Coll) -> Decision:
        groups = facts.group_by_key().flat_map(_by_full_hash).filter(lambda kv: _has_copies(kv[1]))
        report = groups.flat_map(_report)
        return Decision(verdicts=groups.flat_map(_verdicts), report=report, table=largest_clusters(report))
