"""A run killed at any point (SIGKILL to its process group) and re-run into the same output ends
exactly as a clean run: the same ids, none twice, shards the manifest's checksums verify.

The kill comes from ``tests/kill_hook/sitecustomize.py`` inside the run's own processes (the CLI
and, on Beam, its worker processes), at the N-th call of a chosen function: during extraction
(pass 0), during exact dedup's decision (a corpus stage deciding over facts), and while shards are
packed. On the in-process executor and on Beam's DirectRunner with two worker processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from run_fixtures import mirrored_warcs, shard_ids

pytestmark = pytest.mark.usefixtures("quality_models")

HOOK = Path(__file__).parent / "kill_hook"
KILL_POINTS = {
    "extraction": "skypile.extractors.html:HtmlExtractor.__call__:6",
    "decision": "skypile.dedup.exact:_verdicts:1",
    "packing": "skypile.executor.pack:_slices:2",
}
RUNNERS = {"local": ["--runner", "local"], "DirectRunner": ["--runner", "DirectRunner", "--workers", "2"]}


@pytest.fixture(scope="module")
def warcs(tmp_path_factory, shared) -> list[str]:
    shared("html-en", "trafilatura-eval")
    return mirrored_warcs(tmp_path_factory.mktemp("warcs"), first=8, mirrored=3, new=4)


def _run(warcs: list[str], out: Path, tokenizer: str, runner: list[str], kill_at: str | None = None) -> int:
    """``skypile run`` as a process group of its own; returns its exit status (-9: killed)."""
    cmd = [sys.executable, "-m", "skypile.cli", "run", "--output", str(out), "--tokenizer", tokenizer, "--shard-size", "16KB",
           "--no-progress", *runner]
    for w in warcs:
        cmd += ["--input", w]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYPILE_KILL")}
    if kill_at:
        env.update(PYTHONPATH=str(HOOK), SKYPILE_KILL_AT=kill_at, SKYPILE_KILL_COUNT=str(out.parent / f"{out.name}.calls"))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, start_new_session=True)
    assert proc.returncode in (0, -9), proc.stderr[-3000:]
    return proc.returncode


@pytest.fixture(scope="module")
def clean(warcs, tokenizer_model, tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("clean") / "out"
    assert _run(warcs, out, tokenizer_model, RUNNERS["local"]) == 0
    ids = shard_ids(out)
    assert len(ids) >= 4 and len(json.loads((out / "manifest.json").read_text())["shards"]) >= 2
    return ids


@pytest.mark.parametrize("runner", list(RUNNERS))
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_run_resumes_to_the_clean_result(point, runner, warcs, tokenizer_model, clean, tmp_path):
    out = tmp_path / "out"
    assert _run(warcs, out, tokenizer_model, RUNNERS[runner], kill_at=KILL_POINTS[point]) == -9
    assert not (out / "stats.json").exists()  # it died before the report
    assert _run(warcs, out, tokenizer_model, RUNNERS[runner]) == 0
    ids = shard_ids(out)
    assert ids == clean and not [i for i, n in Counter(ids).items() if n > 1]
    manifest = json.loads((out / "manifest.json").read_text())
    for shard in manifest["shards"]:
        assert hashlib.sha256((out / shard["path"]).read_bytes()).hexdigest() == shard["sha256"], shard["path"]
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(Path(s["path"]).name for s in manifest["shards"])
    assert json.loads((out / "stats.json").read_text())["balanced"] and not (out / "_work").exists()
