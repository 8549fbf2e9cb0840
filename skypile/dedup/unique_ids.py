"""Unique document ids within a run: the corpus stage ``unique_ids``.

Joins, dedup verdicts, dead letters and resumes all name documents by id, so
two different documents must never share one.  Crawls break this: WARC
writers reuse record ids, tools emit a constant id, JSONL rows repeat theirs.
Facts are ``(id, (content hash, split, row))``; in a group of documents sharing
an id, the one with the smallest ``(hash, split, row)`` keeps it, and every
other gets ``<id>#<first 8 hex digits of its text's hash>``, with ``.<n>`` added
for the n-th further copy of the same text (those copies are exact duplicates,
which exact dedup drops when the recipe has it).  New ids depend only on the
group's contents, so they are the same on every executor and every re-run.
Each rename is counted as ``changed.id_renamed``.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator

from skypile.corpus import Coll, Decision, DocRef
from skypile.document import Document

STAGE = "unique_ids"


def content_hash(doc: Document) -> bytes:
    return hashlib.blake2b(doc.text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _renames(group: tuple[str, Iterable[tuple[bytes, str, int]]]) -> Iterator[tuple[DocRef, str]]:
    doc_id, members = group
    seen: dict[bytes, int] = {}
    for i, (digest, split, row) in enumerate(sorted(members)):
        copy = seen[digest] = seen.get(digest, -1) + 1
        if i == 0:
            continue  # the first keeps its id
        suffix = f"#{digest[:4].hex()}" + (f".{copy}" if copy else "")
        yield DocRef(split, row), doc_id + suffix


class UniqueIds:
    name = STAGE

    def __init__(self) -> None:
        self._renamed = 0

    def facts(self, doc: Document, ref: DocRef) -> Iterator[tuple[str, tuple[bytes, str, int]]]:
        yield doc.id, (content_hash(doc), ref.split, ref.row)

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
