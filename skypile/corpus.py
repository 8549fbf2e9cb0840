"""Corpus stages: steps that look at the whole corpus, as identify → decide → apply.

A per-document stage sees one document.  Dedup, recurring-segment removal,
percentile buckets and the mixer's token counts need the whole corpus, but
shuffling documents to get it is what made memory grow with the input.  So a
corpus stage never sees the corpus; it sees *facts*:

1. **identify** — :meth:`CorpusStage.facts` turns one document into a few small
   facts (``(text_hash, (doc_id, ref))``, ``(band_key, ref)``, ``(lang, score)``),
   computed while the document streams past in the previous pass;
2. **decide** — :meth:`CorpusStage.decide` turns the collection of all facts into
   *verdicts*: per-document ones (``(DocRef, verdict)``: drop this one, it
   duplicates that one) and/or one small *table* broadcast to every task
   (thresholds, a set of frequent segment hashes).  It is written against
   :class:`Coll`, a handful of dataflow operations (map, group by key, combine,
   flatten, side values) that each executor implements: in memory for the
   in-process executor, as PCollections for Beam.  Loops in ``decide`` unroll into
   a fixed number of rounds, which is how iterative steps (connected components
   over MinHash candidate pairs) are expressed;
3. **apply** — :meth:`CorpusStage.apply` runs per document in the next pass, with
   that document's verdict (looked up by its :class:`DocRef`) and the table.

A :class:`DocRef` names a document by *where it is*: the task (split) that wrote
it and its row there, so verdicts are routed to the one task that holds the
document, and nothing else about the document ever crosses a shuffle.  Stage
code imports no Beam.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any, Callable, Generic, Iterable, Iterator, NamedTuple, Protocol, TypeVar

import numpy as np

from skypile.document import Document, Dropped

A = TypeVar("A")
T = TypeVar("T")


class DocRef(NamedTuple):
    """Where a document is: the split whose part file holds it, and its row in that file."""

    split: str
    row: int


class KeyedFacts(NamedTuple):
    """Many facts ``(key, value)`` of one document that share its value, keys in one uint64 array.

    A document has tens of segment hashes or band keys; as separate tuples they
    cost ~100 bytes each in a Python process, as one array 8.  It means exactly
    the facts of :meth:`explode`: Beam explodes it before the shuffle, while
    :class:`MemColl` groups and counts such arrays with numpy.
    """

    keys: np.ndarray  # uint64
    value: Any

    def explode(self) -> Iterator[tuple[int, Any]]:
        value = self.value
        return ((k, value) for k in self.keys.tolist())


def explode(fact: Any) -> Iterator[Any]:
    """A fact as plain elements: a :class:`KeyedFacts` as its ``(key, value)`` pairs, anything else as itself."""
    if isinstance(fact, KeyedFacts):
        return fact.explode()
    return iter((fact,))


class Combiner(Protocol[A]):
    """An associative fold, run distributed (Beam CombineFn) or in one loop."""

    def create(self) -> A: ...

    def add(self, acc: A, item: Any) -> A: ...

    def merge(self, accs: Iterable[A]) -> A: ...

    def extract(self, acc: A) -> Any: ...


class Coll(Protocol[T]):
    """A distributed collection of facts; every executor provides one.

    Order of elements is not defined: decisions must not depend on it (break ties
    on ids, never on arrival).  ``side`` arguments take a :meth:`singleton` and
    pass its value as the function's second argument.
    """

    def map(self, fn: Callable[..., Any], side: "Coll | None" = None) -> "Coll": ...

    def flat_map(self, fn: Callable[..., Iterable[Any]], side: "Coll | None" = None) -> "Coll": ...

    def filter(self, fn: Callable[[T], bool]) -> "Coll[T]": ...

    def filter_values(self, fn: Callable[[Any], bool]) -> "Coll":
        """The ``(k, v)`` elements whose ``v`` passes: ``filter`` that looks at values only, so a
        :class:`MemColl` can keep :class:`KeyedFacts` packed (a stage whose facts are of two
        kinds splits them with it)."""
        ...

    def group_by_key(self) -> "Coll":
        """``(k, v)`` elements → ``(k, values)``, ``values`` an iterable."""
        ...

    def combine_per_key(self, combiner: Combiner) -> "Coll": ...

    def combine_globally(self, combiner: Combiner) -> "Coll":
        """A one-element collection (usable as ``side``), present even when the input is empty."""
        ...

    def flatten(self, *others: "Coll") -> "Coll": ...


class Sum:
    """Combiner: the sum of numbers (a count when every value is 1).  :class:`MemColl` runs it with numpy."""

    numpy_sum = True

    def create(self) -> int:
        return 0

    def add(self, acc: int, item: int) -> int:
        return acc + item

    def merge(self, accs: Iterable[int]) -> int:
        return sum(accs)

    def extract(self, acc: int) -> int:
        return acc


class Union:
    """Combiner: the distinct items of iterables, as a sorted tuple (on Beam it folds before the shuffle)."""

    def create(self) -> set:
        return set()

    def add(self, acc: set, item: Iterable[Any]) -> set:
        acc.update(item)
        return acc

    def merge(self, accs: Iterable[set]) -> set:
        out: set = set()
        for a in accs:
            out |= a
        return out

    def extract(self, acc: set) -> tuple:
        return tuple(sorted(acc))


REPORT_FIELDS = ("doc_id", "cluster_id", "rule")


@dataclass
class Decision:
    """What :meth:`CorpusStage.decide` returns.

    ``verdicts``: a Coll of ``(DocRef, verdict)``; documents without one get ``None``.
    ``table``: a one-element Coll (from ``combine_globally``) whose value is given to
    every ``apply`` call and written to ``DIR/fitted/<stage>.json`` (so it must be
    JSON-serializable); a later run can reuse it instead of fitting again.
    ``report``: a Coll of ``(doc_id, cluster_id, rule)`` rows the executors write to
    ``DIR/reports/<stage>.parquet`` (dedup stages: every member of a duplicate
    cluster, its survivor included), for users who audit what was removed.
    """

    verdicts: Coll | None = None
    table: Coll | None = None
    report: Coll | None = None


class CorpusStage(Protocol):
    name: str

    def facts(self, doc: Document, ref: DocRef) -> Iterable[Any]: ...

    def decide(self, facts: Coll) -> Decision: ...

    def apply(self, doc: Document, verdict: Any, table: Any) -> Document | Dropped: ...


def is_corpus_stage(step: Any) -> bool:
    return callable(getattr(step, "facts", None)) and callable(getattr(step, "decide", None))


# ----------------------------------------------------------------------------------------
# The in-memory Coll used by the in-process executor and by tests.


class MemColl(Generic[T]):
    """:class:`Coll` over a Python list.

    Memory holds the facts (tens of bytes per document), never the documents.
    :class:`KeyedFacts` stay packed: :meth:`group_by_key` and :meth:`combine_per_key`
    with a :class:`Sum` sort and count their key arrays with numpy and hand the
    result on as a lazy view, so a stage with tens of facts per document costs
    bytes, not Python objects, per fact; plain ``(int key, value)`` elements mixed
    in go the same way, as one-key facts.  :meth:`filter_values` and :meth:`flatten`
    are lazy and keep the packing, so facts read from the task files are never all
    in memory; so is :meth:`flat_map` over a grouping's view (fold it with
    :meth:`combine_per_key` before using it twice: each pass groups again).
    Every other operation sees them exploded, so results never depend on the
    packing.
    """

    def __init__(self, items: Iterable[T]):
        self.items = items if isinstance(items, (_View, FactSource)) else list(items)

    def __iter__(self) -> Iterator[T]:
        return chain.from_iterable(map(explode, self.items))

    def __len__(self) -> int:
        return len(self.items)

    def _side(self, side: "MemColl | None") -> tuple:
        if side is None:
            return ()
        if len(side.items) != 1:
            raise ValueError(f"a side value must be a singleton collection, got {len(side.items)} elements")
        return (next(iter(side)),)

    def map(self, fn: Callable[..., Any], side: "MemColl | None" = None) -> "MemColl":
        extra = self._side(side)
        return MemColl(fn(x, *extra) for x in self)

    def flat_map(self, fn: Callable[..., Iterable[Any]], side: "MemColl | None" = None) -> "MemColl":
        extra = self._side(side)
        if isinstance(self.items, _View):
            # over a grouping's lazy view, lazy too: a stage that expands every group (an LSH bucket into
            # its members' candidates) and folds the result by key never holds the expansion; iterating
            # the result again groups again, so fold it (combine_per_key) before reusing it
            return MemColl(FactSource(lambda: chain.from_iterable(fn(x, *extra) for x in self)))
        return MemColl(chain.from_iterable(fn(x, *extra) for x in self))

    def filter(self, fn: Callable[[T], bool]) -> "MemColl[T]":
        return MemColl(x for x in self if fn(x))

    def filter_values(self, fn: Callable[[Any], bool]) -> "MemColl":
        items = self.items

        def read() -> Iterator[Any]:
            for x in items:
                if fn(x.value if isinstance(x, KeyedFacts) else x[1]):
                    yield x

        return MemColl(FactSource(read))

    def _packed(self) -> "_Partitions | None":
        """The facts as key partitions, when every one is a :class:`KeyedFacts` or an ``(int key, value)``
        pair (one scan to count them)."""
        if isinstance(self.items, _View):
            return None
        n_keys = 0
        for x in self.items:
            if isinstance(x, KeyedFacts):
                n_keys += len(x.keys)
            elif _int_keyed(x):
                n_keys += 1
            else:
                return None
        if n_keys == 0:
            return None
        return _Partitions(self.items, max(1, -(-n_keys * BYTES_PER_KEY // PARTITION_BYTES)))

    def group_by_key(self) -> "MemColl":
        packed = self._packed()
        if packed is not None:
            return MemColl(_Groups(packed))
        groups: dict[Any, list] = {}
        for k, v in self:
            groups.setdefault(k, []).append(v)
        return MemColl(groups.items())

    def combine_per_key(self, combiner: Combiner) -> "MemColl":
        packed = self._packed() if getattr(combiner, "numpy_sum", False) else None
        if packed is not None:
            return MemColl(_Sums(packed))
        accs: dict[Any, Any] = {}
        for k, v in self:
            accs[k] = combiner.add(accs[k] if k in accs else combiner.create(), v)
        return MemColl((k, combiner.extract(a)) for k, a in accs.items())

    def combine_globally(self, combiner: Combiner) -> "MemColl":
        acc = combiner.create()
        for x in self:
            acc = combiner.add(acc, x)
        return MemColl([combiner.extract(acc)])

    def flatten(self, *others: "MemColl") -> "MemColl":
        parts = [self.items, *(o.items for o in others)]
        return MemColl(FactSource(lambda: chain.from_iterable(parts)))

    def value(self) -> Any:
        """The element of a singleton collection."""
        return self._side(self)[0]


def _int_keyed(x: Any) -> bool:
    return (type(x) is tuple and len(x) == 2 and isinstance(x[0], (int, np.integer))
            and not isinstance(x[0], bool) and 0 <= x[0] < 1 << 64)


class FactSource:
    """Facts kept outside memory (the in-process executor's task files), read again on each iteration."""

    def __init__(self, read: Callable[[], Iterable[Any]]):
        self._read = read

    def __iter__(self) -> Iterator[Any]:
        return iter(self._read())


BYTES_PER_KEY = 48  # key, document index, sort order, sorted copies of one packed fact while it is grouped
PARTITION_BYTES = 64 << 20  # packed facts are grouped a key partition of about this size at a time


class _View:
    """A re-iterable, read-only result of a numpy fast path (see :class:`MemColl`)."""


class _Partitions:
    """Packed facts split by ``key % n``, scanned one partition at a time.

    Memory holds one partition's keys, so grouping the band keys of 100k documents
    or of 100M costs the same; the facts are read again for each partition (from
    the task files when they come from a :class:`FactSource`).
    """

    def __init__(self, items: Iterable[KeyedFacts], n: int):
        self.items, self.n = items, n

    def scan(self, part: int) -> Iterator[tuple[KeyedFacts, np.ndarray]]:
        """Each fact with its keys in partition ``part`` (in the same order on every scan)."""
        n = np.uint64(self.n)
        for f in self.items:
            if not isinstance(f, KeyedFacts):  # an (int key, value) pair (see MemColl._packed)
                f = KeyedFacts(np.array([f[0]], dtype=np.uint64), f[1])
            k = f.keys if self.n == 1 else f.keys[f.keys % n == np.uint64(part)]
            yield f, k


class _Groups(_View):
    """``(key, [values])`` per distinct key, a partition at a time, holding values only where a key repeats.

    A partition is scanned twice: first its keys alone (8 bytes each) are sorted to find
    the keys that occur more than once; then, reading the facts again, a key that occurs
    once is handed on at once with its fact's value, and only the values of facts that
    share a key are kept until their groups are complete.  Memory: the partition's keys,
    plus the values of the documents that collide (duplicates), not of all documents.
    """

    def __init__(self, parts: _Partitions):
        self.parts = parts

    def __iter__(self) -> Iterator[tuple[int, list]]:
        for part in range(self.parts.n):
            counts = []
            chunks = []
            for _, k in self.parts.scan(part):
                counts.append(len(k))
                chunks.append(k)
            if not any(counts):
                continue
            keys = np.concatenate(chunks).astype(np.uint64, copy=False)
            del chunks
            doc = np.repeat(np.arange(len(counts)), counts)
            order = np.argsort(keys, kind="stable")
            ks = keys[order]
            same = ks[1:] == ks[:-1]
            multi_sorted = np.zeros(len(ks), dtype=bool)
            multi_sorted[1:] |= same
            multi_sorted[:-1] |= same
            multi = np.empty_like(multi_sorted)
            multi[order] = multi_sorted
            need = np.zeros(len(counts), dtype=bool)
            need[doc[multi]] = True
            kept: dict[int, Any] = {}
            offset = 0
            for i, (f, k) in enumerate(self.parts.scan(part)):
                flags = multi[offset : offset + len(k)]
                offset += len(k)
                for key in k[~flags].tolist():
                    yield key, [f.value]
                if need[i]:
                    kept[i] = f.value
            sel = order[multi_sorted]  # positions of repeated keys, in key order (stable: document order within a key)
            rk, rd = keys[sel], doc[sel]
            if len(rk):
                cuts = np.flatnonzero(rk[1:] != rk[:-1]) + 1
                starts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(rk)]])
                for a, b in zip(starts.tolist(), ends.tolist()):
                    yield int(rk[a]), [kept[d] for d in rd[a:b].tolist()]


class _Sums(_View):
    """``(key, sum of values)`` per distinct key, a partition at a time."""

    def __init__(self, parts: _Partitions):
        self.parts = parts

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for part in range(self.parts.n):
            keys, weights = [], []
            for f, k in self.parts.scan(part):
                if len(k):
                    keys.append(k)
                    weights.append(np.full(len(k), f.value, dtype=np.float64))
            if not keys:
                continue
            uniq, inverse = np.unique(np.concatenate(keys), return_inverse=True)
            sums = np.bincount(inverse, weights=np.concatenate(weights), minlength=len(uniq)).astype(np.int64)
            yield from zip(uniq.tolist(), sums.tolist())


def run_corpus_stage(stage: CorpusStage, docs: Iterable[Document], stats: Any = None) -> tuple[list[Document], list[Dropped], Any]:
    """identify → decide → apply over documents held in a list (tests, notebooks).

    Returns ``(kept, dropped, table)``; refs are ``DocRef("mem", index)``.  ``stats``
    (a :class:`~skypile.stage.StageStats`) counts the outcomes as the executors do.
    """
    docs = list(docs)
    facts = MemColl(chain.from_iterable(stage.facts(d, DocRef("mem", i)) for i, d in enumerate(docs)))
    decision = stage.decide(facts)
    verdicts = {ref.row: v for ref, v in decision.verdicts} if decision.verdicts is not None else {}
    table = decision.table.value() if decision.table is not None else None
    kept: list[Document] = []
    dropped: list[Dropped] = []
    for i, doc in enumerate(docs):
        out = stage.apply(doc, verdicts.get(i), table)
        if stats is not None:
            stats.record_in(stage.name)
        if isinstance(out, Dropped):
            dropped.append(out)
            if stats is not None:
                stats.record_drop(out)
        else:
            kept.append(out)
            if stats is not None:
                stats.record_kept(stage.name)
    return kept, dropped, table
