"""The contract every pipeline step follows, and how its outcomes are counted.

A stage is a small object with a ``name`` and one method, ``__call__(doc)``, that
returns the document (kept, maybe changed) or a :class:`~skypile.document.Dropped`.
The same object runs in a plain Python loop (:func:`run_stage`, used by tests
and laptop runs) and inside Beam (``pipelines.beam_stages.StageDoFn``), so the
logic is tested once without Beam and scaled with it.

:class:`StageStats` is the single source of the numbers in ``stats.json``; the
Beam wrapper mirrors exactly the same counter names into Beam metrics.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol, TypeVar, Union

from skypile.document import Document, Dropped

T = TypeVar("T")
U = TypeVar("U")


class Stage(Protocol[T, U]):
    name: str

    def __call__(self, item: T) -> Union[U, Dropped]: ...


# Counter names shared by StageStats and Beam metrics: "<stage>.in", "<stage>.kept",
# "<stage>.dropped.<reason>".
def counter_name(stage: str, outcome: str) -> str:
    return f"{stage}.{outcome}"


@dataclass
class StageStats:
    """Counts of what entered each stage and how it left (kept / dropped by reason)."""

    order: list[str] = field(default_factory=list)
    counts: dict[str, Counter] = field(default_factory=dict)

    def _stage(self, stage: str) -> Counter:
        if stage not in self.counts:
            self.counts[stage] = Counter()
            self.order.append(stage)
        return self.counts[stage]

    def add(self, stage: str, outcome: str, n: int = 1) -> None:
        """``outcome`` is ``in``, ``kept`` or ``dropped.<reason>``."""
        self._stage(stage)[outcome] += n

    def record_in(self, stage: str) -> None:
        self.add(stage, "in")

    def record_kept(self, stage: str) -> None:
        self.add(stage, "kept")

    def record_drop(self, drop: Dropped) -> None:
        self.add(drop.stage, f"dropped.{drop.reason}")

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
        c = self.counts.get(stage, Counter())
        return {k.split(".", 1)[1]: v for k, v in sorted(c.items()) if k.startswith("dropped.")}

    def to_dict(self, first_stage: str, final_kept: int) -> dict:
        """The stats report: per-stage in/kept/dropped and the whole-run balance.

        ``records_in`` is what entered ``first_stage``; every record either reached the
        end (``kept``) or was dropped by exactly one stage, so the report also carries
        ``balanced``: ``records_in == kept + dropped_total``.
        """
        stages = {}
        dropped_total = 0
        for stage in self.order:
            c = self.counts[stage]
            drops = self.dropped(stage)
            dropped_total += sum(drops.values())
            stages[stage] = {"in": c.get("in", 0), "kept": c.get("kept", 0), "dropped": drops}
        records_in = self.counts.get(first_stage, Counter()).get("in", 0)
        return {
            "records_in": records_in,
            "kept": final_kept,
            "dropped_total": dropped_total,
            "balanced": records_in == final_kept + dropped_total,
            "stages": stages,
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
    """Run one stage over an iterator in plain Python, counting every outcome."""
    name = stage.name  # type: ignore[union-attr]
    for item in items:
        stats.record_in(name)
        out = stage(item)
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
