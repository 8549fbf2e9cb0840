"""Unique document ids within a run: the corpus stage ``unique_ids``.

Joins, dedup verdicts, dead letters and resumes all name documents by id, so
two different documents must never share one.  Crawls break this: WARC
writers reuse record ids, tools emit a constant id, JSONL rows repeat theirs.
In a group of documents sharing an id, the one with the smallest ``(content
hash, split, row)`` keeps it, and every other gets ``<id>#<first 8 hex digits of
its text's hash>``, with ``.<n>`` added when that is taken (the n-th further
copy of the same text: exact duplicates, which exact dedup drops when the recipe
has it).  New ids depend only on the group's contents, so they are the same on
every executor and every re-run.  Each rename is counted as ``changed.id_renamed``.

**Unique by construction.**  A new id could equal an id already in the input
(re-exporting a run's own output next to its source brings ``a`` and ``a#79603211``
together).  So the facts are grouped not by id but by the id's *root*: the id
with every trailing ``#<8 hex>`` / ``#<8 hex>.<n>`` taken off.  A new id has the
same root as the id it renames, so the one group that can make it also holds
every input id it could collide with, and it picks one that none of them has.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable, Iterator

from skypile.corpus import Coll, Decision, DocRef
from skypile.document import Document

STAGE = "unique_ids"
_RENAMED = re.compile(r"#[0-9a-f]{8}(?:\.[0-9]+)?$")  # what a rename appends


def content_hash(doc: Document) -> bytes:
    return hashlib.blake2b(doc.text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def id_root(doc_id: str) -> str:
    """``doc_id`` without the suffixes renames append: ``a#79603211.1#0badcafe`` -> ``a``."""
    while True:
        root = _RENAMED.sub("", doc_id)
        if root == doc_id:
            return root
        doc_id = root


def _renames(group: tuple[str, Iterable[tuple[str, bytes, str, int]]]) -> Iterator[tuple[DocRef, str]]:
    """One root's documents: the first of each id keeps it, the others get an id no member has."""
    _, members = group
    taken: set[str] = set()
    again: list[tuple[str, bytes, str, int]] = []
    for member in sorted(members):  # by id, then (hash, split, row): the smallest of an id keeps it
        if member[0] in taken:
            again.append(member)
        taken.add(member[0])
    for doc_id, digest, split, row in again:
        new = f"{doc_id}#{digest[:4].hex()}"
        copy = 0
        while (candidate := new + (f".{copy}" if copy else "")) in taken:
            copy += 1
        taken.add(candidate)
        yield DocRef(split, row), candidate


class UniqueIds:
    name = STAGE

    def __init__(self) -> None:
        self._renamed = 0

    def facts(self, doc: Document, ref: DocRef) -> Iterator[tuple[str, tuple[str, bytes, str, int]]]:
        yield id_root(doc.id), (doc.id, content_hash(doc), ref.split, ref.row)

    def decide(self, facts: Coll) -> Decision:
        return Decision(verdicts=facts.group_by_key().flat_map(_renames))

    def apply(self, doc: Document, verdict: Any, table: Any) -> Document:
        if verdict is not None:
            doc.id = verdict
            self._renamed += 1
        return doc

    def drain_changes(self) -> dict[str, int]:
        """Counts of documents changed (not dropped) since the last call, for the stats."""
        out, self._renamed = ({"id_renamed": self._renamed} if self._renamed else {}), 0
        return out
