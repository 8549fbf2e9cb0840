"""Connected components of a graph held as a distributed collection of edges.

Near-duplicate detection yields candidate *pairs*; a cluster is a connected
component of those pairs, and one document survives per cluster.  Collecting
all pairs in one process and running union-find does not scale, so this is the
alternating *large-star* / *small-star* algorithm (Kiveris et al., "Connected
Components in MapReduce and Beyond", SoCC 2014), written against
:class:`skypile.corpus.Coll`: each step is one group-by-key, it runs in
process and on Beam alike, and after O(log² n) rounds every edge points from a
node to the smallest node of its component.

* large-star: each node links its *larger* neighbours to the smallest node in
  its neighbourhood (itself included);
* small-star: each node links itself and its *smaller* neighbours to the
  smallest of them.

Both keep the components unchanged and only ever lower the labels, so stopping
after a fixed number of rounds (needed for a Beam pipeline, whose shape is
fixed before it runs) never merges two components; a component that has not
converged yet is reported as several (a few extra survivors, never a wrong
drop).  Nodes must be comparable (ids, or ``(id, split, row)`` tuples).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

from skypile.corpus import Coll

Edge = tuple[Any, Any]


def _both_ways(edge: Edge) -> Iterator[Edge]:
    u, v = edge
    yield u, v
    yield v, u


def _large_star(node_nbrs: tuple[Any, Iterable[Any]]) -> Iterator[Edge]:
    u, nbrs = node_nbrs
    nbrs = set(nbrs)
    m = min(nbrs | {u})
    for v in nbrs:
        if v > u:
            yield v, m


def _small_star(node_nbrs: tuple[Any, Iterable[Any]]) -> Iterator[Edge]:
    u, smaller = node_nbrs
    group = set(smaller) | {u}
    m = min(group)
    for v in group:
        if v != m:
            yield v, m


def _larger_first(edge: Edge) -> Edge:
    u, v = edge
    return (u, v) if u > v else (v, u)


def _distinct(edges: Coll) -> Coll:
    return edges.map(lambda e: (e, None)).group_by_key().map(lambda kv: kv[0])


def default_rounds(n_nodes: int) -> int:
    """Rounds enough in practice: the algorithm's bound is O(log² n); near-dup graphs are mostly stars."""
    return max(4, 2 * math.ceil(math.log2(max(n_nodes, 2))))


def connected_components(edges: Coll, rounds: int = 12) -> Coll:
    """``(u, v)`` edges (u ≠ v) → ``(node, smallest node of its component)`` for every non-smallest node."""
    current = edges.filter(lambda e: e[0] != e[1]).map(_larger_first)
    for _ in range(rounds):
        current = _distinct(current.flat_map(_both_ways).group_by_key().flat_map(_large_star))
        current = _distinct(current.map(_larger_first).group_by_key().flat_map(_small_star))
    return current
