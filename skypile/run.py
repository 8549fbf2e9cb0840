"""Run a recipe: prepare (validate, plan, claim the output), execute in process or on Beam, report.

``exec.runner == "local"`` (the default) runs the in-process executor; any other
value is a Beam runner name (DirectRunner, DaskRunner, DataflowRunner, FlinkRunner,
SparkRunner, PortableRunner, ...), and Beam is imported only then.
"""

from __future__ import annotations

from typing import Sequence

from skypile import io
from skypile.config import RunConfig
from skypile.executor import job as jobs

LOCAL = "local"


def run(cfg: RunConfig, beam_args: Sequence[str] = ()) -> dict:
    """Run to completion; returns the report also written to ``DIR/stats.json``.

    Raises a :class:`skypile.errors.UserError` for problems the user can fix.
    An identical run already complete in the output directory is not redone.
    """
    job = jobs.prepare(cfg)
    if job.done is not None:
        if not io.exists(job.run.uri("report.html")):  # a run finished before runs wrote their page
            jobs.write_page(job.run.root)
        return {**job.done, "reused": True}
    with job.run.lock():
        jobs.claim(job)
        if cfg.exec.runner == LOCAL:
            from skypile.executor.local import execute

            return execute(job)
        from skypile.pipelines.beam import execute as beam_execute

        return beam_execute(job, beam_args)
