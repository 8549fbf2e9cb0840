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

from skypile.document import Document, Dropped

A = TypeVar("A")
T = TypeVar("T")


class DocRef(NamedTuple):
    """Where a document is: the split whose part file holds it, and its row in that file."""

    split: str
    row: int


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

    def group_by_key(self) -> "Coll":
        """``(k, v)`` elements → ``(k, values)``, ``values`` an iterable."""
        ...

    def combine_per_key(self, combiner: Combiner) -> "Coll": ...

    def combine_globally(self, combiner: Combiner) -> "Coll":
        """A one-element collection (usable as ``side``), present even when the input is empty."""
        ...

    def flatten(self, *others: "Coll") -> "Coll": ...


@dataclass
class Decision:
    """What :meth:`CorpusStage.decide` returns.

    ``verdicts``: a Coll of ``(DocRef, verdict)``; documents without one get ``None``.
    ``table``: a one-element Coll (from ``combine_globally``) whose value is given to
    every ``apply`` call and written to ``DIR/fitted/<stage>.json`` (so it must be
    JSON-serializable); a later run can reuse it instead of fitting again.
    """

    verdicts: Coll | None = None
    table: Coll | None = None


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
    """

    def __init__(self, items: Iterable[T]):
        self.items = list(items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def _side(self, side: "MemColl | None") -> tuple:
        if side is None:
            return ()
        if len(side.items) != 1:
            raise ValueError(f"a side value must be a singleton collection, got {len(side.items)} elements")
        return (side.items[0],)

    def map(self, fn: Callable[..., Any], side: "MemColl | None" = None) -> "MemColl":
        extra = self._side(side)
        return MemColl(fn(x, *extra) for x in self.items)

    def flat_map(self, fn: Callable[..., Iterable[Any]], side: "MemColl | None" = None) -> "MemColl":
        extra = self._side(side)
        return MemColl(chain.from_iterable(fn(x, *extra) for x in self.items))

    def filter(self, fn: Callable[[T], bool]) -> "MemColl[T]":
        return MemColl(x for x in self.items if fn(x))

    def group_by_key(self) -> "MemColl":
        groups: dict[Any, list] = {}
        for k, v in self.items:
            groups.setdefault(k, []).append(v)
        return MemColl(groups.items())

    def combine_per_key(self, combiner: Combiner) -> "MemColl":
        accs: dict[Any, Any] = {}
        for k, v in self.items:
            accs[k] = combiner.add(accs[k] if k in accs else combiner.create(), v)
        return MemColl((k, combiner.extract(a)) for k, a in accs.items())

    def combine_globally(self, combiner: Combiner) -> "MemColl":
        acc = combiner.create()
        for x in self.items:
            acc = combiner.add(acc, x)
        return MemColl([combiner.extract(acc)])

    def flatten(self, *others: "MemColl") -> "MemColl":
        return MemColl(chain(self.items, *(o.items for o in others)))

    def value(self) -> Any:
        """The element of a singleton collection."""
        return self._side(self)[0]


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
