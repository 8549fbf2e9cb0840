"""Thin Beam wrappers around SkyPile's pure stages.

Each wrapper does three things only: call the stage, route the result to the
main output or the ``dropped`` output, and count the outcome under the same
names :class:`skypile.stage.StageStats` uses (namespace ``skypile``), so the
launcher can rebuild ``stats.json`` from Beam metrics on any runner.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from skypile.document import Document, Dropped
from skypile.stage import counter_name, drop

NAMESPACE = "skypile"
DROPPED = "dropped"
log = logging.getLogger(__name__)


class _Counters:
    """Beam counters created on first use (a DoFn may see many reasons)."""

    def __init__(self, stage: str):
        self.stage = stage
        self._c: dict[str, Any] = {}

    def inc(self, outcome: str) -> None:
        c = self._c.get(outcome)
        if c is None:
            c = self._c[outcome] = Metrics.counter(NAMESPACE, counter_name(self.stage, outcome))
        c.inc()

    def route(self, out: Any) -> Any:
        """Count one outcome and return it as Beam output: a drop goes to the ``dropped`` tag."""
        if isinstance(out, Dropped):
            self.inc(f"dropped.{out.reason}")
            return beam.pvalue.TaggedOutput(DROPPED, out)
        self.inc("kept")
        return out


class StageDoFn(beam.DoFn):
    """Runs a 1-in/1-out stage; an unexpected exception becomes a counted ``stage_error`` drop."""

    def __init__(self, stage: Any):
        self.stage = stage
        self.counters: _Counters | None = None

    def setup(self) -> None:
        self.counters = _Counters(self.stage.name)

    def process(self, item: Any) -> Iterator[Any]:
        assert self.counters is not None
        self.counters.inc("in")
        try:
            out = self.stage(item)
        except Exception as exc:  # a bug or a pathological record must not kill the job
            log.exception("stage %s failed on %s", self.stage.name, getattr(item, "id", "?"))
            out = drop(self.stage.name, "stage_error", item if isinstance(item, Document) else None, repr(exc))
        yield self.counters.route(out)


class ReadFileDoFn(beam.DoFn):
    """Expands one matched input file into raw records (counted as stage ``read``)."""

    def __init__(self, reader: Any, stage_name: str = "read"):
        self.reader = reader
        self.stage_name = stage_name

    def setup(self) -> None:
        self.counters = _Counters(self.stage_name)

    def process(self, path: str) -> Iterator[Any]:
        for item in self.reader(path):
            self.counters.inc("in")
            yield self.counters.route(item)


def apply_stage(pcoll: beam.PCollection, stage: Any, dropped: list) -> beam.PCollection:
    """``pcoll | stage``; the stage's drops are appended to ``dropped`` for the dead-letter sink."""
    res = pcoll | f"{stage.name}" >> beam.ParDo(StageDoFn(stage)).with_outputs(DROPPED, main="kept")
    dropped.append(res[DROPPED])
    return res["kept"]


def dropped_to_json(d: Dropped) -> str:
    return json.dumps(d.to_json(), ensure_ascii=False)
