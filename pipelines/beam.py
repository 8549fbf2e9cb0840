"""The Beam executor: any recipe, translated to one Beam pipeline.

    Create(splits) → Reshuffle → ParDo(pass 0) ──parts──┐
                                   └─facts→ decide ──verdicts by split─ CoGroupByKey → ParDo(pass 1) → ...
    last pass's parts → CombineGlobally(list) → plan shards → Reshuffle → ParDo(write shard) → manifest

Only split descriptors, facts, verdicts and part/shard descriptions are Beam
elements; documents stay in each task's files (see
:mod:`skypile.executor.tasks`).  A corpus stage's ``decide`` runs on
:class:`BeamColl`, the PCollection implementation of
:class:`skypile.corpus.Coll`.  Counts and times are written by every task
beside its output and merged by :func:`skypile.executor.job.finish`, so the
report is the same on every runner, including portable ones (Flink, Spark,
the local job service) that return no metrics; Beam metrics (namespace
``skypile``, ``<stage>.in|kept|dropped.<reason>``) are for live progress.

The translation uses only what every runner has, Beam's Dask runner included
(``--runner DaskRunner`` runs :class:`skypile.pipelines.dask_runner.DaskRunner`):
no tagged outputs (a pass's facts and its part are one output, told apart by
type), no metrics read back, no reliance on ``Reshuffle``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Iterable, Iterator, Sequence


class _BeamImportNoise(logging.Filter):
    """Beam 2.78 logs "apitools not found" on the root logger at every import when its optional GCP
    client is absent (it is: the worker lock has it, the laptop install does not need it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and str(record.msg).startswith("apitools not found"))


logging.getLogger().addFilter(_BeamImportNoise())
import apache_beam as beam  # noqa: E402
from apache_beam.metrics import Metrics  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from skypile import io
from skypile.corpus import REPORT_FIELDS, Decision, explode
from skypile.executor import job as jobs
from skypile.executor.pack import ShardPlan, plan_shards, read_manifest, write_manifest
from skypile.executor.rundir import PartInfo, RunDir
from skypile.executor.tasks import TaskDone, run_task
from skypile.report.clusters import REPORT_SCHEMA
from skypile.stage import StageStats

NAMESPACE = "skypile"
log = logging.getLogger(__name__)


class _Labels:
    """Unique transform labels under one prefix (Beam requires them)."""

    def __init__(self, prefix: str):
        self.prefix, self.n = prefix, 0

    def __call__(self, what: str) -> str:
        self.n += 1
        return f"{self.prefix}/{what}{self.n}"


class _CombineFnAdapter(beam.CombineFn):
    def __init__(self, combiner: Any):
        self.combiner = combiner

    def create_accumulator(self) -> Any:
        return self.combiner.create()

    def add_input(self, acc: Any, item: Any) -> Any:
        return self.combiner.add(acc, item)

    def merge_accumulators(self, accs: Iterable[Any]) -> Any:
        return self.combiner.merge(list(accs))

    def extract_output(self, acc: Any) -> Any:
        return self.combiner.extract(acc)


def _opaque(transform: beam.PTransform) -> beam.PTransform:
    """``transform`` declared as taking and producing ``Any``.

    A corpus stage's functions are plain Python over tuples; their annotations document them
    and are not a Beam contract. Beam infers element types from a callable's annotations and
    lambdas, and what it infers changes between releases (2.78 began rejecting a pipeline 2.77
    ran, from annotations it had ignored), so every transform the ``Coll`` translation builds
    declares ``Any`` on both sides: elements travel with the pickling coder either way, and
    the pipeline's shape no longer depends on the release's inference. The executor's own
    transforms in :func:`build` are declared the same way, for the same reason.
    """
    args, kwargs = getattr(transform, "args", ()), getattr(transform, "kwargs", {})  # a ParDo's extra arguments
    return transform.with_input_types(Any, *(Any for _ in args), **{k: Any for k in kwargs}).with_output_types(Any)


class BeamColl:
    """:class:`skypile.corpus.Coll` over a PCollection; every transform opaque (:func:`_opaque`)."""

    def __init__(self, pcoll: beam.PCollection, labels: _Labels):
        self.pcoll, self.labels = pcoll, labels

    def _new(self, pcoll: beam.PCollection) -> "BeamColl":
        return BeamColl(pcoll, self.labels)

    @staticmethod
    def _sides(side: "BeamColl | None") -> tuple:
        return (beam.pvalue.AsSingleton(side.pcoll),) if side is not None else ()

    def map(self, fn, side=None) -> "BeamColl":
        return self._new(self.pcoll | self.labels("map") >> _opaque(beam.Map(fn, *self._sides(side))))

    def flat_map(self, fn, side=None) -> "BeamColl":
        return self._new(self.pcoll | self.labels("flat_map") >> _opaque(beam.FlatMap(fn, *self._sides(side))))

    def filter(self, fn) -> "BeamColl":
        return self._new(self.pcoll | self.labels("filter") >> _opaque(beam.Filter(fn)))

    def filter_values(self, fn) -> "BeamColl":
        return self._new(self.pcoll | self.labels("filter_values") >> _opaque(beam.Filter(lambda kv: fn(kv[1]))))

    def group_by_key(self) -> "BeamColl":
        return self._new(self.pcoll | self.labels("group_by_key") >> beam.GroupByKey())

    def combine_per_key(self, combiner) -> "BeamColl":
        return self._new(self.pcoll | self.labels("combine_per_key") >> _opaque(beam.CombinePerKey(_CombineFnAdapter(combiner))))

    def combine_globally(self, combiner) -> "BeamColl":
        return self._new(self.pcoll | self.labels("combine_globally") >> _opaque(beam.CombineGlobally(_CombineFnAdapter(combiner))))

    def flatten(self, *others: "BeamColl") -> "BeamColl":
        return self._new((self.pcoll, *(o.pcoll for o in others)) | self.labels("flatten") >> beam.Flatten())


class _Counters:
    """Beam counters for live progress, fed with the deltas of a task's StageStats."""

    def __init__(self) -> None:
        self._c: dict[str, Any] = {}
        self._last: dict[str, int] = {}

    def start_task(self) -> None:
        self._last = {}

    def update(self, stats: StageStats) -> None:
        for name, value in stats.flat().items():
            delta = value - self._last.get(name, 0)
            if delta:
                c = self._c.get(name)
                if c is None:
                    c = self._c[name] = Metrics.counter(NAMESPACE, name)
                c.inc(delta)
                self._last[name] = value


class PassDoFn(beam.DoFn):
    """One task per element: ``(split, previous part or None, verdicts)`` → facts, then the new part.

    One output, not a tagged one: Beam's Dask runner puts every output of a ParDo into one bag, so
    :func:`build` tells parts (a :class:`PartInfo`) from facts by type instead.
    """

    def __init__(self, pass_: Any, root: str, source: Any, row_group_rows: int, shard_size: int):
        self.pass_, self.root, self.source = pass_, root, source
        self.row_group_rows, self.shard_size = row_group_rows, shard_size

    def setup(self) -> None:
        self.run = RunDir(self.root)
        self.counters = _Counters()

    def process(self, element: tuple, table: Any = None) -> Iterator[Any]:
        split, prev, verdicts = element
        self.counters.start_task()
        for item in run_task(self.pass_, self.run, split, source=self.source, prev=prev, verdicts=verdicts,
                             table=table, row_group_rows=self.row_group_rows, shard_size=self.shard_size,
                             progress=self.counters.update):
            yield item.part if isinstance(item, TaskDone) else item


class PackDoFn(beam.DoFn):
    def __init__(self, root: str, tokenized: bool, row_group_rows: int, token_type: str = "uint16"):
        self.root, self.tokenized, self.row_group_rows, self.token_type = root, tokenized, row_group_rows, token_type

    def setup(self) -> None:
        self.run = RunDir(self.root)
        self.rows = Metrics.counter(NAMESPACE, "write.kept")

    def process(self, plan: ShardPlan) -> Iterator[Any]:
        info = jobs.pack_shard(self.run, plan, self.tokenized, self.row_group_rows, self.token_type)
        self.rows.inc(info.rows)
        yield info


def _is_part(item: Any) -> bool:
    return isinstance(item, PartInfo)


def _is_fact(item: Any) -> bool:
    return not isinstance(item, PartInfo)


def _route(ref_verdict: tuple) -> tuple:
    ref, verdict = ref_verdict
    return ref.split, (ref.row, verdict)


def _task_input(keyed: tuple) -> tuple:
    _, grouped = keyed
    (part,) = grouped["part"]
    return part.split, part, dict(grouped.get("verdicts", ()))


def _write_fitted(table: Any, root: str, stage: str) -> None:
    jobs.write_fitted(RunDir(root), stage, table)


def _write_report(rows: beam.PCollection, root: str, stage: str) -> None:
    """``DIR/reports/<stage>.parquet``, as the local executor writes it (one file; rows are ids, not documents)."""
    path = RunDir(root).report_uri(stage)
    path = io.local_path(path) or path  # Beam's filesystems know gs://, s3://, hdfs:// and plain paths, not file://
    _ = (
        rows
        | f"{stage}/report_rows" >> _opaque(beam.Map(lambda row: dict(zip(REPORT_FIELDS, row))))
        | f"{stage}/write_report" >> beam.io.WriteToParquet(path.removesuffix(".parquet"), REPORT_SCHEMA, file_name_suffix=".parquet",
                                                           num_shards=1, shard_name_template="")
    )


def build(p: beam.Pipeline, job: jobs.Job) -> None:
    cfg, root = job.cfg, job.run.root
    rg = cfg.output.row_group_rows
    elements = p | "splits" >> beam.Create(job.splits) | "spread_splits" >> beam.Reshuffle() | "pass0_inputs" >> _opaque(beam.Map(lambda s: (s, None, None)))
    parts = facts = None
    for pass_ in job.passes:
        side: dict[str, Any] = {}
        if pass_.apply is not None:
            name = pass_.apply.name
            if name in job.fitted:  # reused from an earlier run: no decision to make
                table_pc = p | f"{name}/reused_table" >> beam.Create([job.fitted[name]])
                decision = Decision(table=BeamColl(table_pc, _Labels(name)))
            else:
                # a document's packed facts (KeyedFacts) become one element per key before any shuffle
                decision = pass_.apply.decide(BeamColl(facts | f"{name}/explode_facts" >> _opaque(beam.FlatMap(explode)), _Labels(f"{name}/decide")))
                if decision.report is not None:
                    _write_report(decision.report.pcoll, root, name)
            keyed = {"part": parts | f"{name}/parts_by_split" >> _opaque(beam.Map(lambda part: (part.split.name, part)))}
            if decision.verdicts is not None:
                keyed["verdicts"] = decision.verdicts.pcoll | f"{name}/verdicts_by_split" >> _opaque(beam.Map(_route))
            elements = keyed | f"{name}/join" >> beam.CoGroupByKey() | f"{name}/task_inputs" >> _opaque(beam.Map(_task_input))
            if decision.table is not None:
                side["table"] = beam.pvalue.AsSingleton(decision.table.pcoll)
                _ = decision.table.pcoll | f"{name}/write_fitted" >> _opaque(beam.Map(_write_fitted, root, name))
        out = elements | f"pass{pass_.index}" >> _opaque(beam.ParDo(PassDoFn(pass_, root, job.recipe.source, rg, cfg.output.shard_size), **side))
        parts = out | f"pass{pass_.index}/parts" >> _opaque(beam.Filter(_is_part))
        facts = out | f"pass{pass_.index}/facts" >> _opaque(beam.Filter(_is_fact)) if pass_.facts_for is not None else None
    fp, shard_size, tokenized, extra = job.fingerprint, cfg.output.shard_size, job.tokenized, job.manifest_extra()
    token_type = job.token_type
    infos = (
        parts
        | "pack/collect_parts" >> beam.combiners.ToList()
        | "pack/plan" >> _opaque(beam.FlatMap(lambda ps: plan_shards(ps, shard_size, fp, rg)))
        | "pack/spread" >> beam.Reshuffle()
        | "pack/write" >> _opaque(beam.ParDo(PackDoFn(root, tokenized, rg, token_type)))
    )
    _ = (
        infos
        | "manifest/collect" >> beam.combiners.ToList()
        | "manifest/write" >> _opaque(beam.Map(lambda shards: write_manifest(root, shards, tokenized, extra, token_type)))
    )


def pipeline_options(cfg: Any, beam_args: Sequence[str]) -> PipelineOptions:
    args = list(beam_args)
    if not any(a.startswith("--runner") for a in args):
        args.append(f"--runner={cfg.exec.runner}")
    runner = next(a.split("=", 1)[1] for a in args if a.startswith("--runner="))
    if runner == "DirectRunner":
        workers = cfg.exec.workers or os.cpu_count() or 1
        if not any(a.startswith("--direct_num_workers") for a in args):
            args.append(f"--direct_num_workers={workers}")
        if not any(a.startswith("--direct_running_mode") for a in args):
            # one worker: run the bundles here, no worker process to start and no gRPC data plane
            args.append("--direct_running_mode=" + ("in_memory" if workers == 1 else "multi_processing"))
    if not any(a.startswith("--default_sdk_harness_log_level") for a in args):
        args.append("--default_sdk_harness_log_level=WARNING")  # no per-bundle INFO chatter
    return PipelineOptions(args)


def _runner(options: PipelineOptions) -> Any:
    """The runner ``--runner`` names; Beam's DaskRunner is replaced by the one that runs every sink."""
    name = options.get_all_options().get("runner")
    if name in ("DaskRunner", "apache_beam.runners.dask.dask_runner.DaskRunner"):
        from skypile.pipelines.dask_runner import DaskRunner

        return DaskRunner()
    return None  # Beam resolves the name


class _TaskWatcher:
    """Progress from committed task files: works on every runner that shares the output's filesystem."""

    def __init__(self, job: jobs.Job, enabled: bool):
        self.job, self.enabled = job, enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "_TaskWatcher":
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join(timeout=5)

    def _done(self) -> int:
        import pyarrow.fs as pafs

        fs, path = io.filesystem_and_path(self.job.run.uri("_work"))
        try:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        except OSError:
            return 0
        return sum(1 for i in infos if i.base_name.endswith(".task.json") and "/pack/" not in i.path)

    def _loop(self) -> None:
        from tqdm import tqdm

        total = len(self.job.passes) * len(self.job.splits)
        with tqdm(total=total, desc="tasks", unit="task") as bar:
            while not self._stop.wait(2.0):
                bar.n = min(total, self._done())
                bar.refresh()
            bar.n = min(total, self._done())
            bar.refresh()


def execute(job: jobs.Job, beam_args: Sequence[str] = ()) -> dict:
    from apache_beam.runners.runner import PipelineState

    options = pipeline_options(job.cfg, beam_args)
    if not log.isEnabledFor(logging.INFO):  # local workers forward every harness warning; keep errors only
        logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
    p = beam.Pipeline(runner=_runner(options), options=options)
    build(p, job)
    with _TaskWatcher(job, job.cfg.exec.progress):
        state = p.run().wait_until_finish()
    if state != PipelineState.DONE:
        raise RuntimeError(f"the Beam job ended in state {state}")
    manifest = read_manifest(job.run.root)
    runner = options.get_all_options().get("runner") or job.cfg.exec.runner
    return jobs.finish(job, manifest, executor=f"beam:{runner}")
