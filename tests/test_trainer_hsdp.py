"""A 2 x 2 HSDP mesh (4 processes, gloo, CPU) trains exactly like one process: same losses and
gradient norms step by step, with the cross-replica all-reduce skipped on all but the last
micro-batch of each step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from skypile.trainer.train import main  # noqa: E402
from trainer_fixtures import real_shards  # noqa: E402,F401  (session fixture)

# Both runs see the same 4 readers' windows per step: 4 ranks x 1 reader x 2 micro-batches, or
# 1 rank x 4 dataloader workers x 8 micro-batches (the loader visits its workers round-robin).
COMMON = ["--config", "tiny", "steps=4", "micro_batch_size=2", "seq_len=64", "ckpt_every=0"]


def _rows(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["type"] == "train"]


def test_hsdp_2x2_mesh_matches_one_process(real_shards, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
           "-m", "skypile.trainer.train", *COMMON, "--data", real_shards["dir"], "--run-dir", str(tmp_path / "hsdp"),
           "dp_replicate=2", "dp_shard=2", "grad_accum=2", "num_workers=0", "verify_sha256=true"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "terminate called" not in proc.stderr, proc.stderr[-5000:]
    assert "mesh={'dp_replicate': 2, 'dp_shard': 2}" in proc.stderr
    # One process holds unsharded gradients over its 8 micro-batches (grad_sync=skip); the 2 x 2 mesh
    # reduce-scatters each micro-batch and all-reduces across replicas only after the last (the default).
    main([*COMMON, "--data", real_shards["dir"], "--run-dir", str(tmp_path / "one"), "grad_accum=8", "num_workers=4",
          "grad_sync=skip"])
    hsdp, one = _rows(tmp_path / "hsdp"), _rows(tmp_path / "one")
    assert [r["step"] for r in hsdp] == [r["step"] for r in one] == [1, 2, 3, 4]
    print("losses 2x2:", [round(r["loss"], 5) for r in hsdp], "1 proc:", [round(r["loss"], 5) for r in one])
    for a, b in zip(hsdp, one):
        assert a["tokens"] == b["tokens"] == a["step"] * 8 * 2 * 64
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)
    assert hsdp[-1]["loss"] < hsdp[0]["loss"]
    ck = tmp_path / "hsdp" / "checkpoints" / "step-00000004"
    assert json.loads((ck / "meta.json").read_text())["world_size"] == 4
    assert one[-1]["mfu"] is None and one[-1]["peak_tflops"] is None  # CPU: no made-up peak
