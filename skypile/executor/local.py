"""The in-process executor: the tasks of each pass in this process, or in a pool of forked workers.

For tests, ``skypile export``, benchmarks, laptops and small runs.  Documents
stream from file to file exactly as on Beam; what the coordinating process
holds is the facts of the corpus stage being decided (tens of bytes per
document), gathered in a :class:`~skypile.corpus.MemColl`.  With
``exec.workers > 1`` the tasks of a pass run in that many forked processes
(the tasks of a pass are independent; passes are separated by the corpus
stages' decisions), each holding one task's row group at a time.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterator

from tqdm import tqdm

from skypile.corpus import MemColl
from skypile.executor import job as jobs
from skypile.executor.pack import plan_shards, write_manifest
from skypile.executor.rundir import PartInfo, RunDir
from skypile.executor.tasks import TaskDone, run_task


def decide(stage: Any, facts: list, job: jobs.Job) -> tuple[dict[str, dict[int, Any]], Any]:
    """Run ``stage.decide`` in memory (or take the table reused from an earlier run).

    Returns the verdicts routed by split, and the table, also written to ``DIR/fitted``.
    """
    by_split: dict[str, dict[int, Any]] = defaultdict(dict)
    if stage.name in job.fitted:
        table = job.fitted[stage.name]
    else:
        decision = stage.decide(MemColl(facts))
        if decision.verdicts is not None:
            for ref, verdict in decision.verdicts:
                by_split[ref.split][ref.row] = verdict
        table = decision.table.value() if decision.table is not None else None
    if table is not None:
        jobs.write_fitted(job.run, stage.name, table)
    return by_split, table


def _task(args: tuple) -> tuple[list, TaskDone]:
    """One task, run to the end: its facts and its :class:`TaskDone` (in a worker process, or here)."""
    p, root, split, source, prev, verdicts, table, row_group_rows, shard_size = args
    facts, done = [], None
    for item in run_task(p, RunDir(root), split, source=source, prev=prev, verdicts=verdicts, table=table,
                         row_group_rows=row_group_rows, shard_size=shard_size):
        if isinstance(item, TaskDone):
            done = item
        else:
            facts.append(item)
    assert done is not None
    return facts, done


def _map(pool: ProcessPoolExecutor | None, tasks: list[tuple]) -> Iterator[tuple[list, TaskDone]]:
    """Results in task order; in a pool when there is one and more than one task."""
    if pool is None or len(tasks) < 2:
        return map(_task, tasks)
    return pool.map(_task, tasks)


def workers(job: jobs.Job) -> int:
    """``exec.workers`` for the local executor: 0 (the default) means 1, i.e. in this process."""
    return max(1, job.cfg.exec.workers)


def execute(job: jobs.Job) -> dict:
    cfg, run = job.cfg, job.run
    show = cfg.exec.progress
    parts: dict[str, PartInfo] = {}
    facts: list = []
    n = min(workers(job), len(job.splits))
    # fork: workers inherit the loaded code (and a test's monkeypatches) and start in milliseconds
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(n, mp_context=ctx) if n > 1 else contextlib.nullcontext() as pool:
        for p in job.passes:
            verdicts, table = decide(p.apply, facts, job) if p.apply is not None else ({}, None)
            facts = []
            tasks = [(p, run.root, s, job.recipe.source, parts.get(s.name), verdicts.get(s.name), table,
                      cfg.output.row_group_rows, cfg.output.shard_size) for s in job.splits]
            desc = f"pass {p.index} ({', '.join(p.stage_names) or 'read'})"
            for task_facts, done in tqdm(_map(pool, tasks), total=len(tasks), desc=desc, unit="task", disable=not show):
                parts[done.part.split.name] = done.part
                facts.extend(task_facts)
    plans = plan_shards(list(parts.values()), cfg.output.shard_size, job.fingerprint, cfg.output.row_group_rows)
    infos = [jobs.pack_shard(run, plan, job.tokenized, cfg.output.row_group_rows)
             for plan in tqdm(plans, desc="pack shards", unit="shard", disable=not show)]
    manifest = write_manifest(run.root, infos, job.tokenized, job.manifest_extra())
    return jobs.finish(job, manifest, executor="local" if n == 1 else f"local:{n}")
