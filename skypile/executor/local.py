"""The in-process executor: the tasks of each pass in this process, or in a pool of forked workers.

For tests, ``skypile export``, benchmarks, laptops and small runs.  Documents
stream from file to file exactly as on Beam, and so do facts: each task writes
its facts to a file, and the corpus stage's decision reads them back through a
:class:`~skypile.corpus.MemColl` (packed facts a key partition at a time), so
the coordinating process holds the decision's working set, not the corpus.  With
``exec.workers > 1`` the tasks of a pass run in that many forked processes
(the tasks of a pass are independent; passes are separated by the corpus
stages' decisions), each holding one task's row group at a time.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterator

from tqdm import tqdm

from skypile.corpus import FactSource, MemColl
from skypile.executor import job as jobs
from skypile.executor.pack import plan_shards, write_manifest
from skypile.executor.rundir import PartInfo, RunDir
from skypile.executor.tasks import TaskDone, run_task


def decide(stage: Any, facts: FactSource | None, job: jobs.Job) -> tuple[dict[str, dict[int, Any]], Any]:
    """Run ``stage.decide`` in memory (or take the table reused from an earlier run).

    Returns the verdicts routed by split, and the table, also written to ``DIR/fitted``.
    """
    by_split: dict[str, dict[int, Any]] = defaultdict(dict)
    if stage.name in job.fitted:
        table = job.fitted[stage.name]
    else:
        decision = stage.decide(MemColl(facts if facts is not None else []))
        if decision.verdicts is not None:
            for ref, verdict in decision.verdicts:
                by_split[ref.split][ref.row] = verdict
        table = decision.table.value() if decision.table is not None else None
        if decision.report is not None:
            jobs.write_report(job.run, stage.name, decision.report)
    if table is not None:
        jobs.write_fitted(job.run, stage.name, table)
    release_memory()
    return by_split, table


def release_memory() -> None:
    """Hand freed heap back to the system (glibc keeps it otherwise, and a long run's resident size creeps up)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _task(args: tuple) -> TaskDone:
    """One task, run to the end (in a worker process, or here); its facts stay in its facts file."""
    p, root, split, source, prev, verdicts, table, row_group_rows, shard_size = args
    done = None
    for item in run_task(p, RunDir(root), split, source=source, prev=prev, verdicts=verdicts, table=table,
                         row_group_rows=row_group_rows, shard_size=shard_size):
        if isinstance(item, TaskDone):
            done = item
    assert done is not None
    release_memory()
    return done


def _facts_on_disk(run: RunDir, pass_index: int, splits: list[str]) -> FactSource:
    """The facts of a pass's tasks, read back from their files whenever the decision iterates them."""
    return FactSource(lambda: (f for s in splits for f in run.read_facts(pass_index, s)))


def _map(pool: ProcessPoolExecutor | None, tasks: list[tuple]) -> Iterator[TaskDone]:
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
    facts: FactSource | None = None
    n = min(workers(job), len(job.splits))
    # fork: workers inherit the loaded code (and a test's monkeypatches) and start in milliseconds
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(n, mp_context=ctx) if n > 1 else contextlib.nullcontext() as pool:
        for p in job.passes:
            verdicts, table = decide(p.apply, facts, job) if p.apply is not None else ({}, None)
            tasks = [(p, run.root, s, job.recipe.source, parts.get(s.name), verdicts.get(s.name), table,
                      cfg.output.row_group_rows, cfg.output.shard_size) for s in job.splits]
            desc = f"pass {p.index} ({', '.join(p.stage_names) or 'read'})"
            for done in tqdm(_map(pool, tasks), total=len(tasks), desc=desc, unit="task", disable=not show):
                parts[done.part.split.name] = done.part
            facts = _facts_on_disk(run, p.index, [s.name for s in job.splits]) if p.facts_for is not None else None
    plans = plan_shards(list(parts.values()), cfg.output.shard_size, job.fingerprint, cfg.output.row_group_rows)
    infos = [jobs.pack_shard(run, plan, job.tokenized, cfg.output.row_group_rows, job.token_type)
             for plan in tqdm(plans, desc="pack shards", unit="shard", disable=not show)]
    manifest = write_manifest(run.root, infos, job.tokenized, job.manifest_extra(), job.token_type)
    return jobs.finish(job, manifest, executor="local" if n == 1 else f"local:{n}")
