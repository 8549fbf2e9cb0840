"""The in-process executor: every task of every pass in this process, one after another.

For tests, ``skypile export``, benchmarks and small runs.  Documents stream
from file to file exactly as on Beam; what this process holds is one task's
row group plus the facts of the corpus stage being decided (tens of bytes per
document), gathered in a :class:`~skypile.corpus.MemColl`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from tqdm import tqdm

from skypile.corpus import MemColl
from skypile.executor import job as jobs
from skypile.executor.pack import plan_shards, write_manifest, write_shard
from skypile.executor.rundir import PartInfo
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


def execute(job: jobs.Job) -> dict:
    cfg, run = job.cfg, job.run
    show = cfg.exec.progress
    parts: dict[str, PartInfo] = {}
    facts: list = []
    for p in job.passes:
        verdicts, table = decide(p.apply, facts, job) if p.apply is not None else ({}, None)
        facts = []
        bar = tqdm(total=len(job.splits), desc=f"pass {p.index} ({', '.join(p.stage_names) or 'read'})", unit="task", disable=not show)
        for split in job.splits:
            for item in run_task(p, run, split, source=job.recipe.source, prev=parts.get(split.name),
                                 verdicts=verdicts.get(split.name), table=table, row_group_rows=cfg.output.row_group_rows,
                                 shard_size=cfg.output.shard_size):
                if isinstance(item, TaskDone):
                    parts[split.name] = item.part
                else:
                    facts.append(item)
            bar.update(1)
        bar.close()
    plans = plan_shards(list(parts.values()), cfg.output.shard_size, job.fingerprint, cfg.output.row_group_rows)
    infos = []
    for plan in tqdm(plans, desc="pack shards", unit="shard", disable=not show):
        t0 = time.perf_counter()
        info, _ = write_shard(run, plan, job.tokenized, cfg.output.row_group_rows)
        jobs.commit_pack_task(run, info, time.perf_counter() - t0)
        infos.append(info)
    manifest = write_manifest(run.root, infos, job.tokenized, job.manifest_extra())
    return jobs.finish(job, manifest, executor="local")
