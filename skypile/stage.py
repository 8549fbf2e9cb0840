"""The contract every per-document step follows, and how outcomes are counted.

A per-document stage is a small object with a ``name`` and one method,
``__call__(doc)``, that returns the document (kept, maybe changed) or a
:class:`~skypile.document.Dropped`.  Corpus-wide steps (dedup, percentiles)
follow :class:`skypile.corpus.CorpusStage` instead.  Stages are plain objects:
they run in :func:`run_stage` (tests), in the in-process executor and inside
Beam, from one definition.

:class:`StageStats` is the single source of the numbers in ``stats.json``.
Each executor task keeps one, writes it beside its output as data, and the
run merges them (:meth:`StageStats.merge`), so the report never depends on
a runner returning metrics.  Beam metrics mirror the same counter names for
live progress only.  Beside the counts it carries the run page's bounded summaries
(:class:`~skypile.report.sketches.RunSketch`: score histograms, samples, the token
mix), merged the same way.
"""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator, Protocol, TypeVar, Union

from skypile.document import Document, Dropped
from skypile.report.sketches import RunSketch

T = TypeVar("T")
U = TypeVar("U")


class Stage(Protocol[T, U]):
    name: str

    def __call__(self, item: T) -> Union[U, Dropped]: ...



class LoadsOnWorker:
    """A stage that loads its model on first use pickles without it.

    Beam and Dask ship stages to their workers pickled: the stage carries its model's path and
    each worker loads its own copy (fastText and KenLM models do not pickle, and would weigh
    hundreds of megabytes in every task if they did).  ``loaded`` maps each attribute that holds
    something loaded to its empty value, which a pickled copy carries instead.
    """

    loaded: ClassVar[dict[str, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update({k: copy.copy(empty) for k, empty in self.loaded.items()})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

# Counter names shared by StageStats and Beam metrics: "<stage>.in", "<stage>.kept",
# "<stage>.dropped.<reason>".
CHARS_REMOVED = "chars_removed"  # text a stage removed: dropped documents' and removed segments' characters
VOLUME = ("chars", "tokens")  # also counted per stage, of documents: "<stage>.chars.in|kept", "<stage>.tokens.in|kept"
_VOLUME_KEYS = {o: (f"chars.{o}", f"tokens.{o}") for o in ("in", "kept")}


def counter_name(stage: str, outcome: str) -> str:
    return f"{stage}.{outcome}"


@dataclass
class StageStats:
    """Counts of what entered each stage and how it left (kept / dropped by reason), and the time it took."""

    order: list[str] = field(default_factory=list)
    counts: dict[str, Counter] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    sketch: RunSketch = field(default_factory=RunSketch)

    def _stage(self, stage: str) -> Counter:
        if stage not in self.counts:
            self.counts[stage] = Counter()
            self.order.append(stage)
        return self.counts[stage]

    def add(self, stage: str, outcome: str, n: int = 1) -> None:
        """``outcome`` is ``in``, ``kept``, ``dropped.<reason>`` or ``changed.<what>`` (kept, but changed)."""
        self._stage(stage)[outcome] += n

    def add_time(self, stage: str, seconds: float) -> None:
        self._stage(stage)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def record_in(self, stage: str) -> None:
        self.add(stage, "in")

    def record_kept(self, stage: str) -> None:
        self.add(stage, "kept")

    def record_drop(self, drop: Dropped) -> None:
        self.add(drop.stage, f"dropped.{drop.reason}")

    def add_volume(self, stage: str, outcome: str, doc: Document) -> None:
        """Characters and tokens of a document entering (``in``) or leaving (``kept``) a stage."""
        c = self.counts.get(stage) or self._stage(stage)
        chars, tokens = _VOLUME_KEYS[outcome]
        c[chars] += len(doc.text)
        if doc.tokens is not None:
            c[tokens] += len(doc.tokens)

    def merge(self, other: "StageStats") -> "StageStats":
        for stage in other.order:
            self._stage(stage).update(other.counts[stage])
            if stage in other.seconds:
                self.add_time(stage, other.seconds[stage])
        self.sketch.merge(other.sketch)
        return self

    def flat(self) -> dict[str, int]:
        """``"<stage>.<outcome>" -> n``, the Beam metric names."""
        return {counter_name(s, k): v for s in self.order for k, v in self.counts[s].items()}

    def to_json(self) -> dict:
        out = {"order": self.order, "counts": {s: dict(self.counts[s]) for s in self.order}, "seconds": self.seconds}
        if self.sketch:
            out["sketch"] = self.sketch.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict) -> "StageStats":
        stats = cls()
        for stage in data.get("order", []):
            stats._stage(stage).update(data["counts"].get(stage, {}))
        stats.seconds = {k: float(v) for k, v in data.get("seconds", {}).items()}
        if "sketch" in data:
            stats.sketch = RunSketch.from_json(data["sketch"])
        return stats

    @classmethod
    def from_counters(cls, counters: dict[str, int], order: Iterable[str] = ()) -> "StageStats":
        """Rebuild from flat ``"<stage>.<outcome>" -> n`` counters (e.g. Beam metrics)."""
        stats = cls()
        for stage in order:
            stats._stage(stage)
        for name, n in sorted(counters.items()):
            stage, _, outcome = name.partition(".")
            stats.add(stage, outcome, int(n))
        return stats

    def dropped(self, stage: str) -> dict[str, int]:
        return self._outcomes(stage, "dropped.")

    def changed(self, stage: str) -> dict[str, int]:
        """Documents a stage kept but changed (renamed, text removed), by what it did."""
        return self._outcomes(stage, "changed.")

    def _outcomes(self, stage: str, prefix: str) -> dict[str, int]:
        c = self.counts.get(stage, Counter())
        return {k[len(prefix):]: v for k, v in sorted(c.items()) if k.startswith(prefix)}

    def to_dict(self, first_stage: str, final_kept: int, order: Iterable[str] | None = None) -> dict:
        """The stats report: per-stage in/kept/dropped/seconds and the whole-run balance.

        ``records_in`` is what entered ``first_stage``; every record either reached the
        end (``kept``) or was dropped by exactly one stage, so the report also carries
        ``balanced``: ``records_in == kept + dropped_total``.
        """
        stages = {}
        dropped_total = 0
        names = list(order) if order is not None else list(self.order)
        names += [s for s in self.order if s not in names]
        for stage in names:
            c = self.counts.get(stage, Counter())
            drops, changed = self.dropped(stage), self.changed(stage)
            dropped_total += sum(drops.values())
            secs = self.seconds.get(stage, 0.0)
            n_in = c.get("in", 0)
            stages[stage] = {
                "in": n_in,
                "kept": c.get("kept", 0),
                "dropped": drops,
                **({"changed": changed} if changed else {}),
                **({CHARS_REMOVED: c[CHARS_REMOVED]} if c.get(CHARS_REMOVED) else {}),
                # of documents only: none for raw records (extract's in), none before tokenize (tokens)
                **{v: {o: c[f"{v}.{o}"] for o in ("in", "kept") if f"{v}.{o}" in c}
                   for v in VOLUME if f"{v}.in" in c or f"{v}.kept" in c},
                "seconds": round(secs, 3),
                "docs_per_s": round(n_in / secs, 1) if secs > 0 else None,
            }
        records_in = self.counts.get(first_stage, Counter()).get("in", 0)
        return {
            "records_in": records_in,
            "kept": final_kept,
            "dropped_total": dropped_total,
            "balanced": records_in == final_kept + dropped_total,
            "stages": stages,
            **self.sketch.to_json(),
        }

    def write_json(self, path: str, first_stage: str, final_kept: int, extra: dict | None = None) -> dict:
        from skypile.io import atomic_write_text

        report = self.to_dict(first_stage, final_kept)
        if extra:
            report.update(extra)
        atomic_write_text(path, json.dumps(report, indent=2, sort_keys=False) + "\n")
        return report


def run_stage(
    stage: Callable[[T], Union[U, Dropped]] | Stage,
    items: Iterable[T],
    stats: StageStats,
    on_drop: Callable[[Dropped], None] | None = None,
) -> Iterator[U]:
    """Run one stage over an iterator in plain Python, counting and timing every outcome."""
    name = stage.name  # type: ignore[union-attr]
    for item in items:
        stats.record_in(name)
        t0 = time.perf_counter()
        out = stage(item)
        stats.add_time(name, time.perf_counter() - t0)
        if isinstance(out, Dropped):
            stats.record_drop(out)
            if on_drop is not None:
                on_drop(out)
        else:
            stats.record_kept(name)
            yield out


def drop(stage: str, reason: str, doc: Document | None = None, detail: str = "") -> Dropped:
    """Shorthand for a :class:`Dropped` that carries the document's identity."""
    return Dropped(stage=stage, reason=reason, id=doc.id if doc else "", url=doc.url if doc else "", detail=detail[:500])
