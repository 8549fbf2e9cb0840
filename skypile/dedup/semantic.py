"""Semantic duplicates (SemDeDup, Abbas et al. 2023): embed, cluster, drop what is too close within a cluster.

MinHash finds copies that share words; paraphrases, translations of a template
and machine-spun variants share meaning instead.  As a corpus stage:

1. facts: the document's unit vector from a pluggable encoder
   (:mod:`skypile.dedup.encoders`), stored as float16 with its ``(id, split, row)``;
2. decide:
   * k-means is fitted on a *sample*, not the corpus: the ``sample_size``
     documents with the smallest hash of their id, kept by a mergeable
     bottom-k combiner (the same sample on every executor, however the facts
     are partitioned); vectors are centred on the sample's mean (mean word
     vectors otherwise all sit near cosine 1), then spherical k-means (Lloyd on
     unit vectors, k-means++ seeding from ``seed``);
   * every document goes to its nearest centroid (a map with the centroids as a
     side value), and each cluster is grouped;
   * within a cluster, in id order, a document whose cosine to an *earlier*
     member reaches ``threshold`` is a semantic duplicate of it (SemDeDup's rule);
     clusters are processed in id-ordered blocks of ``max_group`` members, so a
     huge cluster costs ``O(max_group)`` per member, never ``O(n**2)``;
   * a cluster of at least ``dense_min_docs`` documents whose mean cosine to its
     centroid reaches ``dense_cos`` is *flagged* (reported under
     ``semantic_dense``, not dropped): extremely recurrent content (templates,
     spam farms) for a person to look at;
3. apply: drop the verdict's documents as ``semantic_duplicate``.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator

import numpy as np

from skypile.corpus import Coll, Decision, DocRef
from skypile.dedup.removal import RemovesClusterMembers
from skypile.document import Document
from skypile.report.clusters import ClusterExamples, largest_clusters

STAGE = "semantic_dedup"
DENSE_RULE = "semantic_dense"


def sample_key(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class BottomK:
    """Combiner: the ``k`` items with the smallest keys — a uniform, deterministic, mergeable sample."""

    def __init__(self, k: int):
        self.k = k

    def create(self) -> list:
        return []

    def _cut(self, acc: list) -> list:
        acc.sort(key=lambda kv: kv[0])
        del acc[self.k :]
        return acc

    def add(self, acc: list, item: tuple[int, bytes]) -> list:
        acc.append(item)
        return self._cut(acc) if len(acc) >= 2 * self.k else acc

    def merge(self, accs: Iterable[list]) -> list:
        out: list = []
        for acc in accs:
            out.extend(acc)
        return self._cut(out)

    def extract(self, acc: list) -> list[bytes]:
        return [v for _, v in self._cut(list(acc))]


def _vectors(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.frombuffer(b, dtype=np.float16) for b in blobs]).astype(np.float32)


def spherical_kmeans(x: np.ndarray, k: int, seed: int, iterations: int = 20) -> np.ndarray:
    """Centroids (unit vectors) of ``x`` (unit rows): k-means++ seeding, then Lloyd steps on cosine."""
    rng = np.random.default_rng(seed)
    n = len(x)
    k = max(1, min(k, n))
    centers = [x[rng.integers(n)]]
    for _ in range(1, k):
        d = np.clip(1.0 - np.max(x @ np.stack(centers).T, axis=1), 0.0, None)
        if d.sum() <= 0:
            break
        centers.append(x[rng.choice(n, p=d / d.sum())])
    c = np.stack(centers)
    for _ in range(iterations):
        assign = np.argmax(x @ c.T, axis=1)
        new = np.stack([x[assign == j].sum(axis=0) if np.any(assign == j) else c[j] for j in range(len(c))])
        new /= np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-12)
        if np.allclose(new, c, atol=1e-6):
            break
        c = new
    return c.astype(np.float32)


class SemanticDedup(RemovesClusterMembers):
    """Corpus stage ``semantic_dedup``."""

    name = STAGE
    member_of = "semantic duplicate of"

    def __init__(self, encoder: Any, threshold: float = 0.98, n_clusters: int = 64, sample_size: int = 20_000,
                 max_group: int = 4000, dense_min_docs: int = 100, dense_cos: float = 0.9, seed: int = 1):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"semantic_dedup.threshold is a cosine in (0, 1], got {threshold}")
        self.encoder = encoder
        self.threshold, self.n_clusters, self.sample_size = threshold, n_clusters, sample_size
        self.max_group, self.dense_min_docs, self.dense_cos, self.seed = max_group, dense_min_docs, dense_cos, seed
        self.examples = ClusterExamples()

    def facts(self, doc: Document, ref: DocRef) -> Iterator[tuple]:
        vec = self.encoder.encode(doc.text)
        if np.any(vec):  # no tokens at all: nothing to compare
            yield (doc.id, ref.split, ref.row), vec.astype(np.float16).tobytes()

    def decide(self, facts: Coll) -> Decision:
        k, seed, th = self.n_clusters, self.seed, self.threshold
        sample = facts.map(lambda f: (sample_key(f[0][0]), f[1])).combine_globally(BottomK(self.sample_size))
        model = sample.map(lambda blobs: _fit(_vectors(blobs), k, seed) if blobs else None)
        grouped = facts.map(_assign, side=model).group_by_key()
        max_group, dense_min, dense_cos = self.max_group, self.dense_min_docs, self.dense_cos
        found = grouped.flat_map(lambda g: _cluster_duplicates(g, th, max_group, dense_min, dense_cos))
        verdicts = found.filter(lambda t: t[0] == "drop").map(lambda t: (DocRef(t[1][1], t[1][2]), ("semantic_duplicate", t[2])))
        report = found.filter(lambda t: t[0] == "report").map(lambda t: t[1])
        return Decision(verdicts=verdicts, report=report, table=largest_clusters(report, rule=STAGE))


def _centre(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    x = x - mean
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _fit(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The sample's mean vector and the k-means centroids of the centred sample.

    Mean word vectors share one large common direction (frequent words), which
    puts every pair of documents near cosine 1; removing the corpus mean (as SIF
    embeddings do) spreads them out again, so a cosine threshold means something.
    """
    mean = x.mean(axis=0)
    return mean, spherical_kmeans(_centre(x, mean), k, seed)


def _assign(fact: tuple, model: tuple[np.ndarray, np.ndarray] | None) -> tuple[int, tuple]:
    """``(cluster, (member, centred vector))`` for the nearest centroid."""
    member, blob = fact
    v = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
    if model is None:
        return 0, (member, blob)
    mean, centroids = model
    c = _centre(v, mean)
    return int(np.argmax(centroids @ c)), (member, c.astype(np.float16).tobytes())


def _cluster_duplicates(group: tuple[int, Iterable[tuple]], threshold: float, max_group: int, dense_min: int,
                        dense_cos: float) -> Iterator[tuple]:
    cluster, members = group
    members = sorted(members)
    n = len(members)
    if n >= dense_min:
        x = _vectors([b for _, b in members])
        centre = x.mean(axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        if float(np.mean(x @ centre)) >= dense_cos:
            for m, _ in members:
                yield "report", (m[0], f"dense-{cluster}", DENSE_RULE)
    for start in range(0, n, max_group):
        block = members[start : start + max_group]
        x = _vectors([b for _, b in block])
        close = np.tril(x @ x.T >= threshold, -1)  # close[i, j]: j < i and cosine >= threshold
        has = close.any(axis=1)
        if not has.any():
            continue
        first = close.argmax(axis=1)
        root = np.arange(len(block))
        for i in range(len(block)):  # first[i] < i, so roots are known when i is reached
            if has[i]:
                root[i] = root[first[i]]
        survivors = set()
        for i in np.flatnonzero(has).tolist():
            member, survivor = block[i][0], block[root[i]][0]
            survivors.add(survivor)
            yield "drop", member, survivor[0]
            yield "report", (member[0], survivor[0], STAGE)
        for s in sorted(survivors):
            yield "report", (s[0], s[0], STAGE)
