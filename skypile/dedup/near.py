"""Near-duplicate documents: MinHash LSH candidates, connected components, one survivor per cluster.

The same article syndicated by ten sites, each with its own header, footer and
a few edited sentences, is not an exact duplicate, but its shingle sets overlap
far more than two different articles ever do.  As a corpus stage:

1. facts: the document's LSH band keys (:mod:`skypile.dedup.minhash`), one
   uint64 array per document, with its ``(id, split, row)`` and a *sketch*: its
   signature's values cut to 16 bits (2 bytes per permutation; two different
   values agree on them once in 65,536, so estimates barely move);
2. decide: documents sharing a band key are candidates.  The bands are cut so
   that a pair at the threshold becomes a candidate with probability 0.99
   (:func:`~skypile.dedup.minhash.recall_bands`: many short bands), and each
   candidate is *verified*: its sketch's Jaccard estimate against an earlier
   member of the bucket must reach the threshold.  A bucket's members are
   compared with at most ``MAX_COMPARE`` smaller members each, so a bucket of ``m``
   documents costs ``O(m)``, never ``m**2 / 2`` (a template bucket of 100k pages
   stays linear), and yields at most ``m - 1`` edges; the edges' connected
   components (:mod:`skypile.dedup.components`, a fixed number of distributed
   rounds) are the clusters, and every member but the smallest ``(id, split, row)``
   gets a drop verdict.  The report lists every member with its survivor;
3. apply: drop the verdict's documents as ``near_duplicate``.

Run it after :class:`~skypile.dedup.segments.RecurringSegments`: a templated
copy of an article wrapped in a site's navigation block shares few shingles
with the original until that block is gone.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from skypile.corpus import Coll, Decision, DocRef, KeyedFacts
from skypile.dedup.components import connected_components
import numpy as np

from skypile.dedup.minhash import MinHasher, band_keys, recall_bands, shingle_hashes
from skypile.document import Document, Dropped
from skypile.stage import drop

STAGE = "near_dedup"

Member = tuple[str, str, int]  # (doc id, split, row): ordered by id first, so the smallest id survives
MAX_COMPARE = 8  # smaller bucket members a member is verified against


def similar(a: bytes, b: bytes, threshold: float) -> bool:
    """Do two sketches (16-bit signature values) estimate a Jaccard similarity of at least ``threshold``?"""
    x, y = np.frombuffer(a, dtype=np.uint16), np.frombuffer(b, dtype=np.uint16)
    return float(np.mean(x == y)) >= threshold


def verified_edges(bucket: tuple[int, Iterable[tuple]], threshold: float) -> Iterator[tuple[Member, Member]]:
    """Edges ``member → smaller member`` of one LSH bucket whose sketches agree above ``threshold``."""
    _, members = bucket
    members = sorted(members)
    for i in range(1, len(members)):
        m = members[i]
        for earlier in members[: min(i, MAX_COMPARE)]:
            if similar(m[3], earlier[3], threshold):
                yield m[:3], earlier[:3]
                break


def _verdict(node_root: tuple[Member, Member]) -> tuple[DocRef, tuple[str, str]]:
    (_, split, row), root = node_root
    return DocRef(split, row), ("near_duplicate", f"near-duplicate of {root[0]}")


def _member_rows(node_root: tuple[Member, Member], rule: str) -> tuple[str, str, str]:
    return node_root[0][0], node_root[1][0], rule


def cluster_report(components: Coll, rule: str) -> Coll:
    """``(doc_id, cluster_id, rule)`` for every member of a cluster, the survivor (``cluster_id`` = its id) included."""
    members = components.map(lambda nr: _member_rows(nr, rule))
    roots = components.map(lambda nr: (nr[1], None)).group_by_key().map(lambda kv: (kv[0][0], kv[0][0], rule))
    return members.flatten(roots)


class NearDedup:
    """Corpus stage ``near_dedup``: MinHash LSH clusters above a Jaccard threshold, one survivor each."""

    name = STAGE

    def __init__(self, threshold: float = 0.5, num_perm: int = 128, bands: int = 0, rows: int = 0,
                 word_ngram: int = 5, char_ngram: int = 5, seed: int = 1, rounds: int = 6):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"near_dedup.threshold must be in (0, 1), got {threshold}")
        if (bands or rows) and bands * rows > num_perm:
            raise ValueError(f"near_dedup: bands * rows = {bands * rows} exceeds num_perm = {num_perm}")
        self.threshold = threshold
        self.bands, self.rows = (bands, rows) if bands and rows else recall_bands(threshold, num_perm)
        self.hasher = MinHasher(num_perm, seed)
        self.word_ngram, self.char_ngram, self.rounds = word_ngram, char_ngram, rounds

    def signature(self, text: str) -> np.ndarray | None:
        shingles = shingle_hashes(text, self.word_ngram, self.char_ngram)
        return self.hasher.signature(shingles) if len(shingles) else None

    def facts(self, doc: Document, ref: DocRef) -> Iterator[KeyedFacts]:
        sig = self.signature(doc.text)
        if sig is not None:  # no words at all: nothing to compare (exact dedup handles empty texts)
            sketch = sig.astype(np.uint16).tobytes()
            yield KeyedFacts(band_keys(sig, self.bands, self.rows), (doc.id, ref.split, ref.row, sketch))

    def decide(self, facts: Coll) -> Decision:
        threshold = self.threshold
        edges = facts.group_by_key().flat_map(lambda bucket: verified_edges(bucket, threshold))
        components = connected_components(edges, self.rounds)
        return Decision(verdicts=components.map(_verdict), report=cluster_report(components, self.name))

    def apply(self, doc: Document, verdict: Any, table: Any) -> Document | Dropped:
        if verdict is None:
            return doc
        reason, detail = verdict
        return drop(self.name, reason, doc, detail)
