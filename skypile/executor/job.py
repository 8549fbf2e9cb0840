"""A run from start to report, minus the scheduling: what both executors share.

:func:`prepare` checks everything a user can get wrong before any work starts
(inputs, tokenizer, output directory) and fixes the plan: recipe → passes,
inputs → splits, fingerprint.  An executor then runs the passes and the
packing; :func:`finish` merges the task stats (written as data beside the
output, so no runner's metrics are needed) into ``stats.json`` and writes the
run's page, ``report.html`` (:mod:`skypile.report.page`), from the run's files.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from skypile import io
from skypile.config import ConfigError, RunConfig
from skypile.executor.pack import ShardInfo, ShardPlan, write_shard
from skypile.executor.plan import Pass, compile_passes
from skypile.executor.rundir import MANAGED, OutputError, RunDir, fingerprint, merge_stats
from skypile.readers.sources import Split, expand_inputs, file_identity
from skypile.recipes import Recipe, build_recipe
from skypile.report.clusters import write_stage_report
from skypile.stage import StageStats

log = logging.getLogger(__name__)


@dataclass
class Job:
    cfg: RunConfig
    recipe: Recipe
    passes: list[Pass]
    inputs: list[str]
    splits: list[Split]
    run: RunDir
    fingerprint: str
    tokenizer: dict = field(default_factory=dict)
    fitted: dict[str, Any] = field(default_factory=dict)  # stage name → table reused from ``fitted_from``
    started: float = field(default_factory=time.time)
    done: dict | None = None  # the report of an identical run already complete in this directory

    @property
    def tokenized(self) -> bool:
        return self.passes[-1].tokenized

    @property
    def token_type(self) -> str:
        return self.passes[-1].token_type

    def manifest_extra(self) -> dict:
        return {"recipe": self.recipe.name, "stages": self.recipe.stage_names, "tokenizer": self.tokenizer,
                "fingerprint": self.fingerprint, "config": self.cfg.to_dict()}


def _tokenizer_info(recipe: Recipe) -> dict:
    for step in recipe.steps:
        if getattr(step, "produces_tokens", False):
            from skypile.tokenizer.spm import tokenizer_info

            try:
                return tokenizer_info(step.model_path)
            except (OSError, RuntimeError) as exc:
                raise ConfigError(
                    f"tokenizer model {step.model_path} cannot be loaded ({exc}); build it with `skypile models build`"
                ) from None
    return {}


def _reused_tables(cfg: RunConfig, recipe: Recipe) -> dict[str, Any]:
    """Tables of an earlier run (``cfg.fitted_from``) for this recipe's table-only corpus stages."""
    if not cfg.fitted_from:
        return {}
    source = RunDir(cfg.fitted_from)
    tables = {}
    for step in recipe.steps:
        if getattr(step, "table_only", False):
            uri = source.fitted_uri(step.name)
            if not io.exists(uri):
                raise ConfigError(f"fitted_from {cfg.fitted_from} holds no fitted table for stage {step.name!r} ({uri})")
            tables[step.name] = json.loads(io.read_bytes(uri))
    if not tables:
        raise ConfigError(f"fitted_from is set, but no stage of recipe {recipe.name!r} fits a reusable table")
    return tables


def prepare(cfg: RunConfig) -> Job:
    """Validate and plan; raises a :class:`~skypile.errors.UserError` with a one-line message for anything the user can fix."""
    if not cfg.output.path:
        raise ConfigError("no output directory (--output)")
    if not cfg.input.paths:
        raise ConfigError("no input (--input)")
    if cfg.output.shard_size <= 0 or cfg.output.row_group_rows <= 0:
        raise ConfigError("output.shard_size and output.row_group_rows must be positive")
    recipe = build_recipe(cfg)
    for step in recipe.steps:  # models and settings a stage needs: fail now, not once per document
        check = getattr(step, "check", None)
        if check is not None:
            try:
                check()
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    passes = compile_passes(recipe.steps)
    inputs = expand_inputs(cfg.input.paths)
    run = RunDir(cfg.output.path)
    if cfg.output.overwrite:
        _refuse_inputs_under(run, inputs)
    recipe.source.check(inputs)
    tok = _tokenizer_info(recipe)
    fitted = _reused_tables(cfg, recipe)
    identities = [file_identity(p) for p in inputs]
    fp = fingerprint(cfg.fingerprint_dict(), identities, {"tokenizer": tok.get("sha256", ""), "steps": recipe.stage_names, "fitted": fitted})
    job = Job(cfg, recipe, passes, inputs, recipe.source.splits(inputs), run, fp, tok, fitted)
    job.done = run.complete(fp) if not cfg.output.overwrite else None
    return job


def _refuse_inputs_under(run: RunDir, inputs: list[str]) -> None:
    """``--overwrite`` clears what the output holds of a run before reading: an input in there would be deleted unread."""
    root = run.root.rstrip("/") + "/"
    for path in inputs:
        full = path if "://" in path and not path.startswith("file://") else os.path.abspath(path.removeprefix("file://"))
        if full.startswith(root) and full[len(root):].split("/", 1)[0] in MANAGED:
            raise OutputError(f"--overwrite would delete input {path}: it lies under the output {run.root}; "
                              "write to another --output, or move the input out first")


def claim(job: Job) -> None:
    job.run.claim(job.fingerprint, job.cfg.output.overwrite, {"config": job.cfg.to_dict(), "inputs": job.inputs})


def write_fitted(run: RunDir, stage: str, table: Any) -> None:
    io.atomic_write_text(run.fitted_uri(stage), json.dumps(table, indent=2, sort_keys=True) + "\n")


def write_report(run: RunDir, stage: str, rows: Iterable[tuple]) -> int:
    """A corpus stage's report rows (see :class:`skypile.corpus.Decision`) to ``DIR/reports/<stage>.parquet``."""
    return write_stage_report(run.report_uri(stage), rows)


def pack_shard(run: RunDir, plan: ShardPlan, tokenized: bool, row_group_rows: int, token_type: str = "uint16") -> ShardInfo:
    """One packing task (either executor): write or reuse the shard, and commit its stats as data."""
    t0 = time.perf_counter()
    info = write_shard(run, plan, tokenized, row_group_rows, token_type)
    stats = StageStats()
    stats.add("write", "kept", info.rows)
    stats.add_time("write", time.perf_counter() - t0)
    io.atomic_write_text(run.pack_task_uri(info.path), json.dumps(stats.to_json()) + "\n")
    return info


def finish(job: Job, manifest: dict, executor: str) -> dict:
    """Merge every task's stats into ``stats.json``; remove ``_work`` unless kept."""
    run = job.run
    parts = [run.task_stats(p.index, s.name) for p in job.passes for s in job.splits]
    packs = [run.pack_stats(shard["path"]) for shard in manifest["shards"]]
    stats = merge_stats([*parts, *packs])
    report = stats.to_dict(job.recipe.source.name, manifest["rows"], order=job.recipe.stage_names)
    report.update(
        {
            "tokens": manifest["tokens"],
            "num_shards": manifest["num_shards"],
            "bytes": manifest["bytes"],
            "executor": executor,
            "wall_seconds": round(time.time() - job.started, 2),
            "inputs": job.inputs,
            "splits": len(job.splits),
            "fingerprint": job.fingerprint,
            "config": job.cfg.to_dict(),
            "recipe": job.recipe.name,
            "stage_info": _stage_info(job.recipe),
        }
    )
    io.atomic_write_text(run.uri("stats.json"), json.dumps(report, indent=2) + "\n")
    if not report["balanced"]:
        log.error("stats do not balance: %s in, %s kept, %s dropped", report["records_in"], report["kept"], report["dropped_total"])
    if not job.cfg.output.keep_work:
        run.remove_work()
    write_page(run.root)
    return report


def _stage_info(recipe: Recipe) -> dict:
    """What stages tell the run's page about themselves (``report_info()``: e.g. the bucket thresholds they used)."""
    info = {}
    for step in recipe.steps:
        describe = getattr(step, "report_info", None)
        if describe is not None:
            info[step.name] = describe()
    return info


def write_page(root: str) -> str | None:
    """``DIR/report.html`` after a run.  The run's outputs are complete without it: a page that cannot be
    built is logged, never the end of the run (``skypile report DIR`` builds it again)."""
    from skypile.report.page import write_report_page

    try:
        return write_report_page(root)
    except Exception:  # noqa: BLE001 - a view of finished outputs; the run itself succeeded
        log.exception("the run's report page could not be written (try: skypile report %s)", root)
        return None
