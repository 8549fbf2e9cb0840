"""``skypile eval leakage``: a real contamination experiment on CPU, and the verdict rules.

Two tiny models (tests/eval_fixtures.py) are fitted on the same text, GSM8K train problems
0-149; the second also gets GSM8K test problems 0-49 mixed in.  Both are then tested with
``--train`` = those train problems, ``--test`` = those test problems and ``--ref`` = GSM8K train
problems 1000-1049, which neither model saw: fresh problems of exactly the benchmark's kind.
(The default reference, the mock GSM8K set the Skywork paper published, is written in prose
around the same annotated solutions, a style difference a 2-layer model notices: it is used
below only to check that the defaults run.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eval_fixtures import clean_run, eval_base, fit_tiny, gsm8k_texts  # noqa: E402,F401  (session fixture)
from skypile.cli import main  # noqa: E402
from skypile.data_paths import shared_path  # noqa: E402
from skypile.evaluation.leakage import bootstrap_losses, verdict  # noqa: E402
from skypile.evaluation.scoring import DocScore  # noqa: E402


def _raw_lines(name: str, start: int, stop: int, out: Path) -> str:
    """The shared file's own JSONL lines (question/answer), untouched."""
    with open(shared_path("gsm8k", name), encoding="utf-8") as f:
        lines = f.readlines()[start:stop]
    out.write_text("".join(lines), encoding="utf-8")
    return str(out)


def _leakage(run: Path, sets: dict[str, str], out: Path, capsys) -> tuple[dict, str]:
    rc = main(["eval", "leakage", "--model", str(run), "--train", sets["train"], "--test", sets["test"],
               "--ref", sets["ref"], "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0
    return json.loads((out / "leakage.json").read_text()), printed


def test_leakage_report_separates_a_contaminated_model_from_a_clean_one(eval_base, tmp_path, capsys):
    clean, tok = clean_run(eval_base)
    dirty = fit_tiny(gsm8k_texts("train.jsonl", 0, 150) + gsm8k_texts("test.jsonl", 0, 50), tok, eval_base / "dirty")
    sets = {"train": _raw_lines("train.jsonl", 0, 150, tmp_path / "train.jsonl"),
            "test": _raw_lines("test.jsonl", 0, 50, tmp_path / "test.jsonl"),
            "ref": _raw_lines("train.jsonl", 1000, 1050, tmp_path / "ref.jsonl")}
    a, a_text = _leakage(clean, sets, tmp_path / "clean", capsys)
    b, b_text = _leakage(dirty, sets, tmp_path / "dirty", capsys)
    for r in (a, b):
        assert set(r) >= {"L_train", "L_test", "L_ref", "delta1", "delta2", "delta1_ci", "delta2_ci", "verdict"}
        assert r["delta1"] == pytest.approx(r["L_test"] - r["L_ref"]) and r["delta2"] == pytest.approx(r["L_test"] - r["L_train"])
        assert r["delta1_ci"][0] <= r["delta1"] <= r["delta1_ci"][1] and r["delta2_ci"][0] <= r["delta2"] <= r["delta2_ci"][1]
        assert [r["sets"][k]["n_docs"] for k in ("train", "test", "ref")] == [150, 50, 50]
    # clean: test problems are as unfamiliar as fresh ones; the train problems it was fitted on are easier
    assert abs(a["delta1"]) < 0.1 and a["delta1_ci"][0] < 0 < a["delta1_ci"][1]
    assert a["delta2"] > 0.3 and a["delta2_ci"][0] > 0.1
    assert a["verdict"] == "train_leak" and "test split looks no more familiar" in a_text
    # contaminated: the test problems are far easier than fresh ones of the same kind
    assert b["delta1"] < -0.3 and b["delta1_ci"][1] < -0.1
    assert b["verdict"] in ("test_leak", "train_and_test_leak") and "test split" in b["explanation"]
    assert b["L_test"] < a["L_test"] - 0.3 and abs(b["L_ref"] - a["L_ref"]) < 0.2
    # the two confidence intervals of Δ1 do not even overlap
    assert b["delta1_ci"][1] < a["delta1_ci"][0]


def test_defaults_read_the_shared_gsm8k_and_mock_sets(eval_base, shared, tmp_path, capsys):
    shared("gsm8k", "skywork-mock", "mock_gsm8k_test_public.jsonl")
    clean, _ = clean_run(eval_base)
    rc = main(["eval", "leakage", "--model", str(clean), "--out", str(tmp_path), "--max-docs", "30", "--bootstrap", "200",
               "--no-progress"])
    assert rc == 0
    r = json.loads((tmp_path / "leakage.json").read_text())
    assert r["sets"]["ref"]["path"].endswith("mock_gsm8k_test_public.jsonl") and r["sets"]["train"]["path"].endswith("train.jsonl")
    assert [r["sets"][k]["n_docs"] for k in ("train", "test", "ref")] == [30, 30, 30]
    assert all(1.0 < r[k] < 6.0 for k in ("L_train", "L_test", "L_ref"))
    assert r["verdict"] in ("no_evidence", "train_leak", "test_leak", "train_and_test_leak")
    assert "verdict: " + r["verdict"] in capsys.readouterr().out
    assert main(["eval", "leakage", "--model", str(clean), "--out", str(tmp_path), "--ref", str(tmp_path / "none.jsonl")]) == 2


def test_bootstrap_interval_covers_the_loss_and_shrinks_with_more_documents():
    rng = np.random.default_rng(1)
    docs = [DocScore(nll=float(n) * rng.uniform(1.5, 2.5), n_tokens=int(n), n_chars=4 * int(n))
            for n in rng.integers(50, 300, size=400)]
    loss = sum(d.nll for d in docs) / sum(d.n_tokens for d in docs)
    few = bootstrap_losses(docs[:40], 500, np.random.default_rng(0))
    many = bootstrap_losses(docs, 500, np.random.default_rng(0))
    lo, hi = np.percentile(many, [2.5, 97.5])
    assert lo < loss < hi
    assert np.std(many) < np.std(few) / 2  # 10x the documents: about 1/sqrt(10) the spread
    assert np.array_equal(bootstrap_losses(docs, 50, np.random.default_rng(3)), bootstrap_losses(docs, 50, np.random.default_rng(3)))


def test_verdict_needs_both_size_and_significance():
    assert verdict(-0.5, [-0.6, -0.4], 0.0, [-0.05, 0.05], 0.1)[0] == "test_leak"
    assert verdict(-0.5, [-0.9, 0.02], 0.0, [-0.05, 0.05], 0.1)[0] == "no_evidence"  # large but not significant
    assert verdict(-0.05, [-0.06, -0.04], 0.0, [-0.05, 0.05], 0.1)[0] == "no_evidence"  # significant but small
    assert verdict(0.0, [-0.1, 0.1], 0.4, [0.3, 0.5], 0.1)[0] == "train_leak"
    label, words = verdict(-0.5, [-0.6, -0.4], 0.4, [0.3, 0.5], 0.1)
    assert label == "train_and_test_leak" and "test split" in words and "train split" in words
