"""Trainer features for large runs, on CPU: selective activation checkpointing, skipped non-finite
steps, MFU peaks by device, falling back past damaged checkpoints, clear errors for bad tokens, and
the data reset on resume (the 2 x 2 HSDP mesh is in test_trainer_hsdp.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from skypile.trainer import model as M  # noqa: E402
from skypile.trainer.config import ModelConfig  # noqa: E402
from skypile.trainer.parallelize import apply_activation_checkpointing, mesh_shape, parse_ac_mode  # noqa: E402
from skypile.trainer.train import main, optimizer_step  # noqa: E402
from trainer_fixtures import real_shards  # noqa: E402,F401  (session fixture)

def _rows(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["type"] == "train"]


def _tiny_model(**kw):
    cfg = ModelConfig(dim=64, n_layers=4, n_heads=4, vocab_size=300, multiple_of=32, max_seq_len=64, **kw)
    return cfg


@pytest.mark.parametrize("mode", ["full", "every:2", "op"])
def test_activation_checkpointing_modes_give_the_same_grads(mode):
    cfg = _tiny_model()
    tokens = torch.randint(0, cfg.vocab_size, (2, 33), generator=torch.Generator().manual_seed(1))
    grads = []
    for ac in (None, mode):
        model = M.build_model(cfg, "meta")
        if ac:
            apply_activation_checkpointing(model, ac)
        model.to_empty(device="cpu")
        model.init_weights(0)
        loss = torch.nn.functional.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        grads.append({M.canonical_name(n): p.grad for n, p in model.named_parameters()})
        wrapped = [type(b).__name__ for b in model.layers]
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        torch.testing.assert_close(g, grads[1][name], rtol=1e-5, atol=1e-6)
    expect = {"full": [1, 1, 1, 1], "every:2": [1, 0, 1, 0], "op": [1, 1, 1, 1]}[mode]
    assert [int(w == "CheckpointWrapper") for w in wrapped] == expect


def test_config_errors_for_mesh_and_ac():
    assert mesh_shape(8, -1, 1) == (1, 8) and mesh_shape(512, -1, 64) == (64, 8) and mesh_shape(4, 2, 2) == (2, 2)
    with pytest.raises(ValueError, match="not divisible"):
        mesh_shape(6, -1, 4)
    with pytest.raises(ValueError, match="!= world size"):
        mesh_shape(8, 2, 2)
    assert parse_ac_mode("every:3") == ("every", 3)
    with pytest.raises(ValueError, match="ac_mode"):
        parse_ac_mode("every:0")


def test_peak_tflops_by_device():
    assert M.peak_tflops_for("NVIDIA A800-SXM4-80GB") == 312.0
    assert M.peak_tflops_for("NVIDIA A100-SXM4-80GB") == 312.0
    assert M.peak_tflops_for("NVIDIA H100 80GB HBM3") == 989.0
    assert M.peak_tflops_for("NVIDIA H200") == 989.0
    assert M.peak_tflops_for("NVIDIA H100 PCIe") == 756.0
    assert M.peak_tflops_for(None) is None and M.peak_tflops_for("Tesla T4") is None
    assert M.peak_tflops_for("NVIDIA H200", override=500.0) == 500.0


def test_non_finite_gradient_norm_skips_the_update():
    cfg = _tiny_model()
    model = M.build_model(cfg, "cpu")
    model.init_weights(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    tokens = torch.randint(0, cfg.vocab_size, (2, 17), generator=torch.Generator().manual_seed(2))

    def backward():
        loss = torch.nn.functional.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()

    before = {k: v.clone() for k, v in model.state_dict().items()}
    backward()
    model.layers[2].feed_forward.w2.weight.grad[0, 0] = float("inf")  # an overflow in one gradient
    norm, applied = optimizer_step(model, opt, 1.0)
    assert norm == float("inf") and not applied
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters()) and not opt.state
    backward()
    norm, applied = optimizer_step(model, opt, 1.0)
    assert applied and 0 < norm < float("inf")
    assert not torch.equal(model.output.weight, before["output.weight"])


def test_resume_falls_back_past_damaged_checkpoints(real_shards, tmp_path, capfd):
    args = ["--config", "tiny", "--data", real_shards["dir"], "seq_len=64", "steps=6", "ckpt_every=1", "keep_ckpts=6"]
    full = tmp_path / "full"
    assert main([*args, "--run-dir", str(full)]) == 0
    want = {r["step"]: r for r in _rows(full)}
    run = tmp_path / "damaged"
    import shutil

    shutil.copytree(full / "checkpoints", run / "checkpoints")
    ck = run / "checkpoints"
    assert (ck / "latest").read_text().strip() == "step-00000006"
    files = json.loads((ck / "step-00000006" / "meta.json").read_text())["files"]
    assert {n for n in files if n.endswith(".distcp")} and {".metadata", "rank00000.pt"} <= set(files)
    data = sorted((ck / "step-00000006").glob("*.distcp"), key=lambda p: p.stat().st_size)[-1]
    blob = bytearray(data.read_bytes())
    blob[1000:5000] = bytes(4000)  # 4,000 bytes rewritten in place, same size: only the checksum sees it
    data.write_bytes(bytes(blob))
    data = next((ck / "step-00000005").glob("*.distcp"))
    with open(data, "r+b") as f:  # step 5: truncated
        f.truncate(data.stat().st_size // 2)
    (ck / "step-00000004" / "rank00000.pt").unlink()  # step 4: half-deleted
    capfd.readouterr()
    assert main([*args, "--run-dir", str(run)]) == 0
    log = capfd.readouterr().err
    assert "step-00000006 is damaged" in log and "sha256 differs" in log and "step-00000005 is damaged" in log
    assert "step-00000004 is not intact (missing rank00000.pt)" in log
    got = _rows(run)
    assert [r["step"] for r in got] == [4, 5, 6]  # resumed from step 3, the newest undamaged one
    for r in got:
        assert r["loss"] == pytest.approx(want[r["step"]]["loss"], abs=1e-6)
    for name in ("step-00000006", "step-00000005", "step-00000004"):  # re-saved, intact again
        assert (ck / name / "rank00000.pt").is_file() and not (ck / f".{name}.old").exists()

    for p in ck.glob("step-*"):  # nothing to resume from: an error, not a silent fresh start
        (p / ".metadata").unlink()
    assert main([*args, "--run-dir", str(run)]) == 2
    err = capfd.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: no checkpoint in") and "resume=none" in err
    for p in ck.glob("step-*"):  # every step gone, `latest` kept: an error too, and metrics.jsonl untouched
        shutil.rmtree(p)
    lines = (run / "metrics.jsonl").read_text()
    assert main([*args, "--run-dir", str(run)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {ck / 'latest'} names step-00000006, which is missing") and "Traceback" not in "\n".join(err)
    assert (run / "metrics.jsonl").read_text() == lines


def test_out_of_vocabulary_token_stops_the_run_naming_the_file(real_shards, tmp_path, capsys):
    import dataclasses

    from skypile.writers.parquet import write_manifest, write_shard

    import numpy as np

    docs = sorted(real_shards["docs"][:120], key=lambda d: d.id)  # the writer's row order
    # The first document of the row group the single reader visits first (its epoch-0 permutation).
    first_unit = int(np.random.default_rng([0, 0, 0]).permutation(len(docs) // 16 + 1)[0])
    i = 16 * first_unit
    bad = list(docs[i].tokens)
    bad[1] = 5000  # >= the 4000-piece tokenizer (and the model's 4032 rows)
    docs[i] = dataclasses.replace(docs[i], tokens=bad)
    info = write_shard(docs, str(tmp_path / "data"), 0, 1, row_group_rows=16)
    write_manifest(str(tmp_path / "data"), [info], tokenizer=real_shards["manifest"]["tokenizer"])
    args = ["--config", "tiny", "--data", str(tmp_path / "data"), "seq_len=64", "steps=10"]
    assert main([*args, "--run-dir", str(tmp_path / "a")]) == 2  # one line, exit 2, no traceback
    err = capsys.readouterr().err.strip().splitlines()  # the run's log, then the error
    assert re.match(f"error: .*part-00000-of-00001.parquet row {i} .*token id 5000", err[-1]), err[-1]
    assert not any(line.startswith("error:") or "Traceback" in line for line in err[:-1])
    main([*args, "--run-dir", str(tmp_path / "b"), "bad_data=skip", "log_every=5", "verify_sha256=true"])
    rows = _rows(tmp_path / "b")
    assert [r["step"] for r in rows] == [5, 10]
    assert rows[-1]["skipped_docs"] >= 1 and all(r["loss"] == r["loss"] for r in rows)


def test_reset_data_position_on_resume_with_another_layout(real_shards, tmp_path, capsys):
    args = ["--config", "tiny", "--data", real_shards["dir"], "--run-dir", str(tmp_path), "seq_len=64"]
    main([*args, "steps=2"])
    assert main([*args, "steps=4", "num_workers=2"]) == 2  # 2 readers now: the saved position does not apply
    assert "reset_data_position=true" in capsys.readouterr().err
    main([*args, "steps=4", "num_workers=2", "reset_data_position=true"])
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["tokens"] == 4 * 4 * 64
    assert set(rows[-1]["data_epochs"]) == {"*"} and 0 < rows[-1]["data_epochs"]["*"] < 1


def test_resume_with_more_steps_continues_on_the_new_schedule_and_says_so(real_shards, tmp_path, capsys):
    """Resume 4 -> 8 steps: the LR of every resumed step is the 8-step schedule's (the one an
    uninterrupted 8-step run uses), stated in the log; before, step 5 ran at the LR the 4-step
    schedule had left in the optimizer."""
    from skypile.trainer.schedule import lr_at

    args = ["--config", "tiny", "--data", real_shards["dir"], "--run-dir", str(tmp_path), "seq_len=64", "warmup_steps=2"]
    main([*args, "steps=4"])
    capsys.readouterr()
    main([*args, "steps=8"])
    err = capsys.readouterr().err
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == list(range(1, 9))
    schedule = {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 2}
    assert [r["lr"] for r in rows[:4]] == pytest.approx([lr_at(s, **schedule, decay_steps=4) for s in range(4)], rel=1e-9)
    assert [r["lr"] for r in rows[4:]] == pytest.approx([lr_at(s, **schedule, decay_steps=8) for s in range(4, 8)], rel=1e-9)
    assert "the schedule changed since step 4" in err and "cosine to 0.0003 at step 8" in err
    assert f"step 5 runs at lr {lr_at(4, **schedule, decay_steps=8):.3g} (the saved schedule: 0.0003)" in err
