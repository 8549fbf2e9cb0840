"""Near-duplicate documents: MinHash LSH candidates, connected components, one survivor per cluster.

The same article syndicated by ten sites, each with its own header, footer and
a few edited sentences, is not an exact duplicate, but its shingle sets overlap
far more than two different articles ever do.  As a corpus stage:

1. facts: the document's LSH band keys (:mod:`skypile.dedup.minhash`), one
   uint64 array per document with a 64-bit key of its member ``(id, split, row)``,
   and one *sketch* fact under that key: the member and its signature's values cut
   to 16 bits (2 bytes per permutation; two different values agree on them once in
   65,536, so estimates barely move);
2. decide: documents sharing a band key are candidates.  The bands are cut so
   that a pair at the threshold becomes a candidate with probability 0.99
   (:func:`~skypile.dedup.minhash.recall_bands`: many short bands), and each
   candidate pair is *verified*: its sketches' Jaccard estimate must reach the
   threshold.  A bucket's members are candidates of at most ``MAX_COMPARE``
   others each (the bucket's smallest keys), so a bucket of ``m`` documents costs ``O(m)``, never
   ``m**2 / 2`` (a template bucket of 100k pages stays linear).  The band
   shuffle carries two integers per band; the sketches join the candidate pairs
   in two shuffles keyed by member (a member's sketch travels to its candidates,
   which hold their own), so a document's sketch crosses the wire twice, not
   once per band (35 times: on Beam's DirectRunner, which holds shuffles in
   memory, that was 6.6 GiB at 100k documents).  The verified pairs' connected
   components (:mod:`skypile.dedup.components`, a fixed number of distributed
   rounds) are the clusters, and every member but the smallest ``(id, split, row)``
   gets a drop verdict.  The report lists every member with its survivor, and the
   table holds the largest clusters, for the run's page;
3. apply: drop the verdict's documents as ``near_duplicate``.

Run it after :class:`~skypile.dedup.segments.RecurringSegments`: a templated
copy of an article wrapped in a site's navigation block shares few shingles
with the original until that block is gone.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator

import numpy as np

from skypile.corpus import Coll, Decision, DocRef, KeyedFacts, Union
from skypile.dedup.components import connected_components
from skypile.dedup.minhash import MinHasher, band_keys, recall_bands, shingle_hashes
from skypile.dedup.removal import RemovesClusterMembers
from skypile.document import Document
from skypile.report.clusters import ClusterExamples, largest_clusters

STAGE = "near_dedup"

Member = tuple[str, str, int]  # (doc id, split, row): ordered by id first, so the smallest id survives
MAX_COMPARE = 8  # smaller bucket members a member is verified against


def similar(a: bytes, b: bytes, threshold: float) -> bool:
    """Do two sketches (16-bit signature values) estimate a Jaccard similarity of at least ``threshold``?"""
    x, y = np.frombuffer(a, dtype=np.uint16), np.frombuffer(b, dtype=np.uint16)
    return float(np.mean(x == y)) >= threshold


def member_key(member: Member) -> int:
    """A member's 64-bit key: what the band shuffle carries, and the key of the sketch joins.

    A collision (two documents, one key; ~n²/2⁶⁵) only adds candidates: a pair is still
    verified on the two documents' own sketches."""
    _, split, row = member
    return int.from_bytes(hashlib.blake2b(f"{split}\0{row}".encode(), digest_size=8).digest(), "little")


def _is_sketch(value: Any) -> bool:
    """A sketch fact's value is ``(member, sketch)``; a band fact's is the member's key (an int)."""
    return type(value) is tuple and len(value) == 2 and isinstance(value[1], bytes)


def bucket_candidates(bucket: tuple[int, Iterable[int]]) -> Iterator[tuple[int, tuple[int, ...]]]:
    """Each member of one LSH bucket (by key) with its candidates: the (at most ``MAX_COMPARE``) smallest
    keys of the bucket below its own, keyed by it for the sketch join (one element per member, never pairs)."""
    _, keys = bucket
    keys = sorted(set(keys))
    for i in range(1, len(keys)):
        yield keys[i], tuple(keys[: min(i, MAX_COMPARE)])


def send_sketch(group: tuple[int, Iterable[Any]]) -> Iterator[tuple[int, tuple[bytes, Member]]]:
    """Join 1, by a member's key: its sketch goes to each of its candidates (folded: distinct keys), keyed by them
    (as ``(sketch, member)``, the other way round from a sketch fact, so join 2 tells them apart)."""
    own, candidates = [], set()
    for v in group[1]:
        if _is_sketch(v):
            own.append(v)
        else:
            candidates.update(v)
    for member, sketch in own:
        for key in sorted(candidates):
            yield key, (sketch, member)


def verified_pairs(group: tuple[int, Iterable[Any]], threshold: float) -> Iterator[tuple[Member, Member]]:
    """Join 2, by a member's key: the candidates' sketches against its own; the pairs above ``threshold``."""
    own, sent = [], []
    for v in group[1]:
        (own if _is_sketch(v) else sent).append(v)
    for e, sketch_e in own:
        for sketch_m, m in sent:
            if m != e and similar(sketch_m, sketch_e, threshold):
                yield m, e


def _verdict(node_root: tuple[Member, Member]) -> tuple[DocRef, tuple[str, str]]:
    """A drop verdict ``(reason, survivor id)``."""
    (_, split, row), root = node_root
    return DocRef(split, row), ("near_duplicate", root[0])


def _member_rows(node_root: tuple[Member, Member], rule: str) -> tuple[str, str, str]:
    return node_root[0][0], node_root[1][0], rule


def cluster_report(components: Coll, rule: str) -> Coll:
    """``(doc_id, cluster_id, rule)`` for every member of a cluster, the survivor (``cluster_id`` = its id) included."""
    members = components.map(lambda nr: _member_rows(nr, rule))
    roots = components.map(lambda nr: (nr[1], None)).group_by_key().map(lambda kv: (kv[0][0], kv[0][0], rule))
    return members.flatten(roots)


class NearDedup(RemovesClusterMembers):
    """Corpus stage ``near_dedup``: MinHash LSH clusters above a Jaccard threshold, one survivor each."""

    name = STAGE
    member_of = "near-duplicate of"

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
        self.examples = ClusterExamples()

    def signature(self, text: str) -> np.ndarray | None:
        shingles = shingle_hashes(text, self.word_ngram, self.char_ngram)
        return self.hasher.signature(shingles) if len(shingles) else None

    def facts(self, doc: Document, ref: DocRef) -> Iterator[KeyedFacts]:
        sig = self.signature(doc.text)
        if sig is not None:  # no words at all: nothing to compare (exact dedup handles empty texts)
            member = (doc.id, ref.split, ref.row)
            key = member_key(member)
            yield KeyedFacts(band_keys(sig, self.bands, self.rows), key)
            yield KeyedFacts(np.array([key], dtype=np.uint64), (member, sig.astype(np.uint16).tobytes()))

    def decide(self, facts: Coll) -> Decision:
        threshold = self.threshold
        sketches = facts.filter_values(_is_sketch)
        # a pair shares most of its 35 bands: its candidates are folded to distinct keys per member at once
        candidates = facts.filter_values(lambda v: not _is_sketch(v)).group_by_key().flat_map(bucket_candidates).combine_per_key(Union())
        sent = candidates.flatten(sketches).group_by_key().flat_map(send_sketch)
        edges = sent.flatten(sketches).group_by_key().flat_map(lambda g: verified_pairs(g, threshold))
        components = connected_components(edges, self.rounds)
        report = cluster_report(components, self.name)
        return Decision(verdicts=components.map(_verdict), report=report, table=largest_clusters(report))
