"""Beam across real process boundaries: a Dask cluster, and the portable runner's external worker pool.

A Dask scheduler and two worker processes on 127.0.0.1 (no shared memory): the web, dedup and
export recipes run with ``--runner DaskRunner`` and must write the same bytes (shards, stats, dead
letters) as ``--runner local``; a multi-sink pipeline must run every sink (Beam's own DaskRunner
computes only the last one); and a run whose models and inputs are ``file://`` URIs of a staging
directory must load them through the URI on the workers.  The portable runner runs the web recipe
on Beam's job service with the SDK harness in a separate worker pool process (``EXTERNAL``), the
way Flink and Spark run it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from run_fixtures import comparable, dead_letter_bytes, free_port, mirrored_warcs, report_rows, run_job, shard_hashes, \
    shard_ids, wait_for_port

from skypile.evaluation import dedup as ev
from skypile.filters.language import default_model_path

pytestmark = pytest.mark.usefixtures("quality_models")


@pytest.fixture(scope="module")
def worker_tmp(tmp_path_factory) -> Path:
    """The workers' TMPDIR: where they cache what they fetch by URI."""
    return tmp_path_factory.mktemp("worker-tmp")


@pytest.fixture(scope="module")
def cluster(worker_tmp):
    pytest.importorskip("dask.distributed")  # the `dask` extra (requirements/lock.txt has it)
    from skypile.pipelines.dask_cluster import LocalDaskCluster

    # PYTHONPATH: the workers import this module's functions (a cluster gets user code as packages)
    with LocalDaskCluster(workers=2, threads=1, env={"TMPDIR": str(worker_tmp), "PYTHONPATH": str(Path(__file__).parent)}) as c:
        yield c


def _dask(cluster) -> tuple[str, ...]:
    return "--runner", "DaskRunner", f"--dask_client_address={cluster.address}"


def _same_bytes(a: Path, b: Path) -> None:
    """Two runs of one job wrote the same shards, stats and dead letters."""
    sa, sb = (json.loads((o / "stats.json").read_text()) for o in (a, b))
    assert sa["balanced"] and comparable(sa) == comparable(sb)
    assert shard_hashes(a) == shard_hashes(b)
    assert dead_letter_bytes(a) == dead_letter_bytes(b)
    assert not (b / "_work").exists()


def _sink(x: int, out: str, name: str) -> int:
    import time

    time.sleep(0.05)  # long enough that both workers get tasks
    with open(os.path.join(out, f"{name}-{x}"), "w") as f:
        f.write(str(os.getpid()))
    return x


def _double(x: int) -> int:
    return 2 * x


def test_every_sink_of_a_multi_sink_pipeline_runs(cluster, tmp_path):
    """Beam's DaskRunner computes only the last transform's bag: 3 of these 4 sinks wrote nothing, exit 0."""
    from skypile.pipelines.dask_runner import DaskRunner

    p = beam.Pipeline(runner=DaskRunner(), options=PipelineOptions([f"--dask_client_address={cluster.address}"]))
    nums = p | beam.Create(list(range(8)))
    for i in range(4):
        _ = nums | f"sink{i}" >> beam.Map(_sink, str(tmp_path), f"s{i}")
    doubled = nums | "double" >> beam.Map(_double)
    _ = doubled | "sink_after_map" >> beam.Map(_sink, str(tmp_path), "d")
    assert p.run().wait_until_finish() == "DONE"
    written = Counter(f.split("-")[0] for f in os.listdir(tmp_path))
    assert written == {"s0": 8, "s1": 8, "s2": 8, "s3": 8, "d": 8}
    assert len({(tmp_path / f).read_text() for f in os.listdir(tmp_path)}) == 2  # both worker processes wrote


@pytest.fixture(scope="module")
def warcs(tmp_path_factory, shared) -> list[str]:
    shared("html-en", "trafilatura-eval")
    return mirrored_warcs(tmp_path_factory.mktemp("warcs"), first=12, mirrored=4, new=6)


@pytest.fixture(scope="module")
def local_web(warcs, tokenizer_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local-web")
    rc, stats = run_job("run", warcs, out, "--runner", "local", tokenizer=tokenizer_model)
    assert rc == 0 and stats["executor"] == "local"
    assert stats["stages"]["exact_dedup"]["dropped"].get("exact_duplicate", 0) >= 1  # a mirrored page crossed files
    return out


def test_web_recipe_on_dask_writes_the_same_bytes_as_local(cluster, warcs, tokenizer_model, local_web, tmp_path):
    rc, stats = run_job("run", warcs, tmp_path / "dask", *_dask(cluster), tokenizer=tokenizer_model)
    assert rc == 0 and stats["executor"] == "beam:DaskRunner"
    _same_bytes(local_web, tmp_path / "dask")
    for stage in ("exact_dedup", "near_dedup"):
        assert report_rows(tmp_path / "dask", stage) == report_rows(local_web, stage)
    assert not list((tmp_path / "dask" / "reports").glob("beam-temp-*"))  # each report sink ran once, and finished


@pytest.fixture(scope="module")
def planted_docs(tmp_path_factory, shared) -> list[str]:
    """Real articles with planted exact, syndicated and templated copies, in two files."""
    shared("html-en", "cleaneval", "gold")
    shared("domains", "zh", "skywork-eval-loss")
    docs = ev.plant(ev.base_articles("en")[:24], "en", seed=5).docs + ev.plant(ev.base_articles("zh", limit=60)[:24], "zh", seed=5).docs
    d = tmp_path_factory.mktemp("planted")
    paths = []
    for i, part in enumerate((docs[::2], docs[1::2])):  # copies land in both files
        paths.append(str(d / f"docs-{i}.jsonl"))
        Path(paths[-1]).write_text("".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in part), encoding="utf-8")
    return paths


def test_dedup_on_dask_writes_the_same_bytes_as_local(cluster, planted_docs, tmp_path):
    runs = {}
    for name, extra in (("local", ("--runner", "local")), ("dask", _dask(cluster))):
        rc, stats = run_job("dedup", planted_docs, tmp_path / name, *extra)
        assert rc == 0, name
        runs[name] = stats
    assert runs["local"]["stages"]["near_dedup"]["dropped"] and runs["local"]["stages"]["exact_dedup"]["dropped"]
    _same_bytes(tmp_path / "local", tmp_path / "dask")
    for stage in ("exact_dedup", "segments", "near_dedup"):
        if (tmp_path / "local" / "reports" / f"{stage}.parquet").exists():
            assert report_rows(tmp_path / "dask", stage) == report_rows(tmp_path / "local", stage)


def test_export_on_dask_writes_the_same_bytes_as_local(cluster, shared, tokenizer_model, tmp_path):
    inputs = [str(p) for p in sorted(shared("web", "en", "dolma").glob("*.jsonl"))[:2]]
    for name, extra in (("local", ("--runner", "local")), ("dask", _dask(cluster))):
        rc, _ = run_job("export", inputs, tmp_path / name, *extra, tokenizer=tokenizer_model)
        assert rc == 0, name
    _same_bytes(tmp_path / "local", tmp_path / "dask")
    assert len(shard_ids(tmp_path / "dask")) == 20


def test_models_and_inputs_by_uri_from_a_staging_dir(cluster, worker_tmp, warcs, tokenizer_model, quality_models, tmp_path):
    """Every model and input named by a file:// URI of a staging directory (not the repository, not the
    models the test built): the workers fetch them through the URI, and the shards are the local run's."""
    stage = tmp_path / "staging"
    models = Path(quality_models["out"])
    shutil.copytree(models / "kenlm", stage / "kenlm")
    shutil.copy(models / "wikiref" / "wikiref.bin", stage / "wikiref.bin")
    shutil.copy(models / "quality" / "thresholds.json", stage / "thresholds.json")
    shutil.copy(tokenizer_model, stage / "tokenizer.model")
    shutil.copy(default_model_path(), stage / "lid.176.ftz")
    for w in warcs:
        shutil.copy(w, stage / Path(w).name)
    uri = f"file://{stage}"
    args = ("--tokenizer", f"{uri}/tokenizer.model", "--lid-model", f"{uri}/lid.176.ftz",
            "--set", f"perplexity.models={uri}/kenlm", "--set", f"ref_prob.model={uri}/wikiref.bin",
            "--set", f"quality_bucket.reference={uri}/thresholds.json")
    inputs = [f"{uri}/{Path(w).name}" for w in warcs]
    for name, extra in (("local", ("--runner", "local")), ("dask", _dask(cluster))):
        rc, stats = run_job("run", inputs, tmp_path / name, *extra, *args, output_uri=True)
        assert rc == 0, name
    _same_bytes(tmp_path / "local", tmp_path / "dask")
    cfg = stats["config"]
    assert [cfg["tokenize"]["model"], cfg["langid"]["model"], cfg["perplexity"]["models"], cfg["ref_prob"]["model"]] == \
        [f"{uri}/tokenizer.model", f"{uri}/lid.176.ftz", f"{uri}/kenlm", f"{uri}/wikiref.bin"]
    # the workers loaded their own copies, fetched through the URIs (models load when first needed: the pages are English)
    fetched = {p.name.split("-", 1)[1] for p in (worker_tmp / "skypile-models").iterdir()}
    assert {"lid.176.ftz", "wikiref.bin", "en.arpa.bin", "en.sp.model"} <= fetched


def test_portable_runner_with_an_external_worker_pool(warcs, tokenizer_model, local_web, tmp_path):
    """Beam's job service and a worker pool as two more processes: the SDK harness runs outside the
    submitting process, in workers the pool starts (as on Flink and Spark), with no metrics back."""
    job_port, pool_port = free_port(), free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # the pool runs `python`
    service = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", "--port", str(job_port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, process_group=0)
    pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", "--service_port", str(pool_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, process_group=service.pid)
    harnesses: set[str] = set()
    done = threading.Event()

    def watch() -> None:  # the SDK harness processes the pool starts for the job
        while not done.wait(0.2):
            harnesses.update(subprocess.run(["pgrep", "-P", str(pool.pid)], capture_output=True, text=True).stdout.split())

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        wait_for_port(job_port)
        wait_for_port(pool_port)
        watcher.start()
        rc, stats = run_job("run", warcs, tmp_path / "external", "--runner", "PortableRunner", f"--job_endpoint=localhost:{job_port}",
                            "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}", tokenizer=tokenizer_model)
    finally:
        done.set()
        os.killpg(service.pid, signal.SIGKILL)
        service.wait(timeout=30)
        pool.wait(timeout=30)
    assert rc == 0 and stats["executor"] == "beam:PortableRunner"
    assert harnesses  # the work ran in SDK harness processes the pool started
    _same_bytes(local_web, tmp_path / "external")
