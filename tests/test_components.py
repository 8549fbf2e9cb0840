"""Connected components written once against Coll: in memory and on Beam, equal to union-find."""

from __future__ import annotations

import random

import pytest

from skypile.corpus import MemColl
from skypile.dedup.components import connected_components, default_rounds


def union_find(edges, nodes) -> dict:
    parent = {n: n for n in nodes}

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        a, b = root(u), root(v)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {n: root(n) for n in nodes if root(n) != n}


def graphs():
    rng = random.Random(7)
    chain = list(range(500))
    rng.shuffle(chain)
    yield "shuffled chain", [(chain[i], chain[i + 1]) for i in range(499)], range(500)
    yield "random sparse", [(rng.randrange(2000), rng.randrange(2000)) for _ in range(1800)], range(2000)
    # near-duplicate shape: band buckets give stars, and a document can sit in several buckets
    edges = [(f"d{c * 10:05d}", f"d{c * 10 + k:05d}") for c in range(50) for k in range(1, 10)]
    edges += [(f"d{c * 10 + 9:05d}", f"d{(c + 1) * 10 + 5:05d}") for c in range(0, 48, 3)]
    yield "stars of string ids", edges, sorted({n for e in edges for n in e})


@pytest.mark.parametrize("name, edges, nodes", list(graphs()), ids=lambda x: x if isinstance(x, str) else "")
def test_in_memory_matches_union_find(name, edges, nodes):
    rounds = default_rounds(len(nodes))
    assert dict(connected_components(MemColl(edges), rounds)) == union_find(edges, nodes)


def test_stopping_early_never_merges_two_components():
    edges = [(i, i + 1) for i in range(300)] + [(1000 + i, 1001 + i) for i in range(300)]
    truth = union_find(edges, range(1301))
    partial = dict(connected_components(MemColl(edges), rounds=2))
    assert partial != truth  # not converged yet ...
    for node, label in partial.items():
        assert label < node and (truth.get(node, node) == truth.get(label, label))  # ... but never wrong


def test_beam_gives_the_same_components():
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from skypile.pipelines.beam import BeamColl, _Labels

    _, edges, nodes = list(graphs())[2]
    expected = sorted(union_find(edges, nodes).items())
    with beam.Pipeline(runner="DirectRunner") as p:
        coll = BeamColl(p | beam.Create(edges), _Labels("cc"))
        assert_that(connected_components(coll, default_rounds(len(nodes))).pcoll, equal_to(expected))
