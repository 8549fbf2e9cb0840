"""One recipe, two executors: the in-process runner and Beam give the same shards and stats.

Input: real pages from ../shared/data in two WARC files, the second re-serving
part of the first under mirror URLs (planted exact duplicates across files, so
verdicts must be routed to the right task), plus the shared crawl samples.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from run_fixtures import comparable as _comparable, dead_letters as _dead_letters, free_port, mirrored_warcs, run_job, \
    shard_hashes as _shard_hashes, wait_for_port

from skypile.document import table_to_documents
from skypile.quality.buckets import quantize

# the web recipe scores pages with the quality models (tests/conftest.py builds small ones)
pytestmark = pytest.mark.usefixtures("quality_models")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared) -> list[str]:
    shared("html-en", "trafilatura-eval")
    warcs = mirrored_warcs(tmp_path_factory.mktemp("warcs"), first=40, mirrored=10, new=20)
    return [*warcs, f"{shared('warc', 'dolma')}/*.warc.gz"]


def _run(inputs: list[str], out: Path, tokenizer: str, *extra: str) -> tuple[int, dict]:
    return run_job("run", inputs, out, *extra, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def local_run(inputs, tokenizer_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    rc, stats = _run(inputs, out, tokenizer_model, "--runner", "local")
    assert rc == 0, stats
    return out, stats


def test_local_run_accounts_for_every_record_and_drops_planted_copies(local_run):
    out, stats = local_run
    assert stats["balanced"] and stats["executor"] == "local"
    assert stats["records_in"] == 1 + 40 + 1 + 30 + 48 + 34  # warcinfo + pages per file, and the dolma WARCs
    dups = stats["stages"]["exact_dedup"]["dropped"]["exact_duplicate"]
    assert dups >= 10  # the 10 mirrored pages (those that survive extraction) and the crawl's own 2
    # the survivor is the copy with the smallest id, and the mirror's dead letter names it
    survivors = {d.id: d.url for s in (out / "shards").iterdir() for d in table_to_documents(pq.read_table(s))}
    letters = [json.loads(line) for f in (out / "dropped").glob("*.jsonl") for line in f.read_text().splitlines()]
    later = {x["id"] for x in letters if x["stage"] in ("segments", "near_dedup", "perplexity", "ref_prob", "quality_bucket")}
    for d in (x for x in letters if x["reason"] == "exact_duplicate"):
        first = d["detail"].removeprefix("duplicate of ")
        assert first < d["id"] and (first in survivors or first in later)  # kept, unless a later stage dropped it
    assert len(survivors) == stats["kept"]


def test_beam_gives_the_same_shards_and_stats(inputs, tokenizer_model, local_run, tmp_path):
    out, stats = local_run
    rc, beam_stats = _run(inputs, tmp_path / "beam", tokenizer_model, "--runner", "DirectRunner", "--direct-num-workers", "2")
    assert rc == 0 and beam_stats["executor"] == "beam:DirectRunner"
    assert _comparable(beam_stats) == _comparable(stats)
    assert _shard_hashes(tmp_path / "beam") == _shard_hashes(out)
    assert _dead_letters(tmp_path / "beam") == _dead_letters(out)
    assert not (tmp_path / "beam" / "_work").exists()


def test_portable_runner_on_the_local_job_service(inputs, tokenizer_model, local_run, tmp_path):
    """The path Flink and Spark take: no metrics come back, the stats still do (they are data)."""
    port = free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        rc, stats = _run(inputs, tmp_path / "portable", tokenizer_model, "--runner", "PortableRunner",
                         f"--job_endpoint=localhost:{port}", "--environment_type=LOOPBACK")
    finally:
        service.terminate()
        service.wait(timeout=30)
    out, local_stats = local_run
    assert rc == 0 and stats["balanced"]
    assert _comparable(stats) == _comparable(local_stats)
    assert _shard_hashes(tmp_path / "portable") == _shard_hashes(out)


def test_killed_run_resumes_finished_tasks_and_shards(inputs, tokenizer_model, local_run, tmp_path):
    out = tmp_path / "resume"
    rc, first = _run(inputs, out, tokenizer_model, "--runner", "local", "--keep-work")
    assert rc == 0
    parts0 = {p: p.stat().st_mtime_ns for p in (out / "_work" / "p0").glob("*.parquet")}
    shards = sorted((out / "shards").iterdir())
    # "kill" it during the second pass and the packing: one task and one shard lost, no report yet
    os.remove(next((out / "_work" / "p1").glob("*.task.json")))
    shards[1].unlink()
    (out / "stats.json").unlink()
    (out / "manifest.json").unlink()
    kept_shard = shards[0].stat().st_mtime_ns
    rc, again = _run(inputs, out, tokenizer_model, "--runner", "local", "--keep-work")
    assert rc == 0 and _comparable(again) == _comparable(first)
    assert {p: p.stat().st_mtime_ns for p in (out / "_work" / "p0").glob("*.parquet")} == parts0  # pass 0 not redone
    assert shards[0].stat().st_mtime_ns == kept_shard  # a complete shard of the same plan is reused
    assert _shard_hashes(out) == _shard_hashes(local_run[0])


def test_a_different_run_into_the_same_output_is_refused(inputs, tokenizer_model, local_run, tmp_path, capsys):
    out = tmp_path / "owned"
    assert _run(inputs[:1], out, tokenizer_model, "--runner", "local")[0] == 0
    rc, _ = _run(inputs[1:2], out, tokenizer_model, "--runner", "local")
    err = capsys.readouterr().err
    assert rc == 2 and "holds a different run" in err and len(err.strip().splitlines()) == 1
    rc, stats = _run(inputs[1:2], out, tokenizer_model, "--runner", "local", "--overwrite")
    assert rc == 0 and stats["inputs"] == [inputs[1]]
    rows = sum(pq.read_metadata(p).num_rows for p in (out / "shards").iterdir())
    assert rows == stats["kept"]  # nothing of the first run is left among the shards


def test_a_locked_output_is_refused_and_a_stale_lock_is_taken_over(inputs, tokenizer_model, tmp_path, capsys):
    from skypile.executor.rundir import RunDir

    out = tmp_path / "locked"
    with RunDir(str(out)).lock():  # a live run holds it
        rc, _ = _run(inputs[:1], out, tokenizer_model, "--runner", "local")
    assert rc == 2 and f"in use by another run ({{'host': '{socket.gethostname()}', 'pid': {os.getpid()}}})" in capsys.readouterr().err
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".skypile.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    rc, stats = _run(inputs[:1], out, tokenizer_model, "--runner", "local")
    assert rc == 0 and stats["balanced"] and not (out / ".skypile.lock").exists()


def _race_for_the_lock(out: str, marker: str, start: float) -> int:
    """Worker: wait for the start, try the lock; while holding it, create ``marker`` exclusively (a second
    holder at the same time fails there).  1 = took it, 0 = refused, -1 = two holders at once."""
    from skypile.executor.rundir import OutputError, RunDir

    while time.time() < start:
        pass
    try:
        with RunDir(out).lock():
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return -1
            time.sleep(0.02)
            os.close(fd)
            os.unlink(marker)
            return 1
    except OutputError:
        return 0


def test_a_stale_lock_is_taken_over_by_one_process_at_a_time(tmp_path, monkeypatch):
    """Four processes race for an output whose lock file a dead process left; never two at once.  Reading the
    lock file is slowed down (a busy disk): taking over by reading the stale holder, then unlinking the file,
    let two processes hold the lock in 6 of these 10 races (27 in 200 on an idle disk)."""
    import multiprocessing

    from skypile.executor import rundir

    read = rundir._read_lock
    monkeypatch.setattr(rundir, "_read_lock", lambda path: time.sleep(0.05) or read(path))  # the forked workers' too
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ctx = multiprocessing.get_context("fork")
    results = []
    with ctx.Pool(4) as pool:
        for i in range(10):
            out = tmp_path / f"out{i}"
            out.mkdir()
            (out / ".skypile.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
            start = time.time() + 0.05
            results += pool.starmap(_race_for_the_lock, [(str(out), str(tmp_path / f"held{i}"), start)] * 4)
    assert -1 not in results and results.count(1) >= 10  # every race had a winner, never two holders at once


def test_user_errors_are_one_line_and_exit_2(inputs, tokenizer_model, tmp_path, capsys):
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    cases = [
        (["--runner", "local"], a_file, "is a file"),
        (["--runner", "local", "--set", "length.min_wrds=3"], tmp_path / "o1", "unknown config key 'length.min_wrds'"),
        (["--runner", "local", "--set", "length.min_words=many"], tmp_path / "o2", "length.min_words: expected an integer"),
        (["--runner", "local", "--tokenizer", str(tmp_path / "none.model")], tmp_path / "o3", "cannot be loaded"),
        (["--runner", "local", "--set", "steps=[extract,frobnicate]"], tmp_path / "o4", "unknown step(s) frobnicate"),
    ]
    for extra, out, message in cases:
        rc, _ = _run(inputs[:1], out, tokenizer_model, *extra)
        err = capsys.readouterr().err.strip()
        assert rc == 2 and message in err and len(err.splitlines()) == 1, (extra, err)


def test_steps_and_thresholds_come_from_the_run_config(inputs, tokenizer_model, local_run, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "steps: [extract, langid, lang_filter, length, tokenize]\n"
        "length: {min_words: 200}\n"
        "lang_filter: {keep: [en]}\n"
        "extract: {lines: {prose_words: 12}}\n"
    )
    out = tmp_path / "cfg"
    rc, stats = _run(inputs, out, tokenizer_model, "--runner", "local", "--config", str(config), "--set", "length.min_cjk_chars=300")
    assert rc == 0 and stats["balanced"]
    assert list(stats["stages"]) == ["read", "extract", "langid", "lang_filter", "length", "tokenize", "write"]
    assert stats["config"]["length"] == {"min_words": 200, "min_cjk_chars": 300}
    assert stats["config"]["extract"]["lines"]["prose_words"] == 12
    base = local_run[1]["stages"]
    assert stats["stages"]["length"]["dropped"]["too_short"] > base["length"]["dropped"].get("too_short", 0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["steps"] == ["extract", "langid", "lang_filter", "length", "tokenize"]


def test_a_fitted_table_is_written_and_reused_by_a_later_run(inputs, tokenizer_model, tmp_path):
    """Percentile buckets over the language score: fitted on one run, reused by another, same on Beam."""
    steps = ["--set", "steps=[extract, langid, lang_filter, length, buckets, exact_dedup, tokenize]"]
    fit = tmp_path / "fit"
    rc, stats = _run(inputs[:1], fit, tokenizer_model, "--runner", "local", *steps)
    assert rc == 0 and stats["balanced"]
    table = json.loads((fit / "fitted" / "buckets.json").read_text())
    assert table["score"] == "lang_score" and table["languages"]["en"]["n"] == stats["stages"]["buckets"]["in"]
    assert stats["stages"]["buckets"]["dropped"]["bucket_tail"] > 0
    buckets = Counter(d.metadata.bucket for s in (fit / "shards").iterdir() for d in table_to_documents(pq.read_table(s)))
    assert set(buckets) == {"head", "middle"}

    rc, beam_stats = _run(inputs[:1], tmp_path / "fit-beam", tokenizer_model, "--runner", "DirectRunner", "--direct-num-workers", "2", *steps)
    assert rc == 0 and _comparable(beam_stats) == _comparable(stats)
    assert json.loads((tmp_path / "fit-beam" / "fitted" / "buckets.json").read_text()) == table

    # another input bucketed with the first run's thresholds, not its own
    rc, reused = _run(inputs[1:2], tmp_path / "reuse", tokenizer_model, "--runner", "local", *steps, "--set", f"fitted_from={fit}")
    assert rc == 0 and reused["balanced"]
    assert json.loads((tmp_path / "reuse" / "fitted" / "buckets.json").read_text()) == table
    docs = [d for s in (tmp_path / "reuse" / "shards").iterdir() for d in table_to_documents(pq.read_table(s))]
    t = table["languages"]["en"]
    assert all((d.metadata.bucket == "head") == (quantize(d.metadata.lang_score) >= t["head"]) for d in docs if d.lang == "en")
    rc, _ = _run(inputs[1:2], tmp_path / "reuse-bad", tokenizer_model, "--runner", "local", *steps, "--set", f"fitted_from={tmp_path}")
    assert rc == 2


def test_byte_range_splits_of_one_file_give_the_same_documents_in_order(inputs, tokenizer_model, tmp_path):
    """A big WARC is read as several tasks (byte ranges): same records, same order, same stats."""
    one = [inputs[0]]
    size = os.path.getsize(one[0])
    rc, whole = _run(one, tmp_path / "whole", tokenizer_model, "--runner", "local")
    rc2, split = _run(one, tmp_path / "split", tokenizer_model, "--runner", "local", "--set", f"input.split_size={size // 5}")
    assert rc == rc2 == 0 and whole["splits"] == 1 and split["splits"] >= 5
    assert {k: v for k, v in _comparable(split).items() if k not in ("splits", "fingerprint", "num_shards", "bytes")} == \
        {k: v for k, v in _comparable(whole).items() if k not in ("splits", "fingerprint", "num_shards", "bytes")}

    def ids(out: Path) -> list[str]:
        return [i for s in sorted((out / "shards").iterdir()) for i in pq.read_table(s).column("id").to_pylist()]

    assert ids(tmp_path / "split") == ids(tmp_path / "whole")
    letters = _dead_letters(tmp_path / "split")
    assert letters == _dead_letters(tmp_path / "whole") and len(list((tmp_path / "split" / "dropped").iterdir())) >= 1


def test_local_worker_pool_gives_the_same_shards(inputs, tokenizer_model, local_run, tmp_path):
    rc, stats = _run(inputs, tmp_path / "pool", tokenizer_model, "--runner", "local", "--workers", "2")
    assert rc == 0 and stats["executor"] == "local:2"
    assert _comparable(stats) == _comparable(local_run[1])
    assert _shard_hashes(tmp_path / "pool") == _shard_hashes(local_run[0])
