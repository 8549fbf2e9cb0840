"""The README's worked example, crawl to trained model, end to end on CPU (scripts/walkthrough.sh at test size).

Real inputs, made small: one shared WARC (the web recipe without its quality stages, whose
models other tests build), 150 of the Linguist code files, 400 WMT19 sentence pairs; the
session's 4,000-piece tokenizer; the tiny model for 120 CPU steps on one torch thread (two
threads on a busy 2-core machine spin 10x the CPU time).  Three outputs,
``skypile mix`` over their manifests, ``skypile-train mix=mix.json`` with no ``--data`` (each
source read where it lies), then ``eval ppl`` and ``export`` from another working directory.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("torch")

from skypile.cli import main  # noqa: E402

WEB_STEPS = "steps=[extract,langid,lang_filter,length,unique_ids,exact_dedup,tokenize]"
TRAIN_STEPS = 120


@contextlib.contextmanager
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _small_inputs(shared, base: Path) -> dict[str, Path]:
    code = base / "code.jsonl.gz"
    with gzip.open(shared("code", "linguist-samples.jsonl.gz"), "rt", encoding="utf-8") as src, \
            gzip.open(code, "wt", encoding="utf-8") as out:
        small = [line for line in src if json.loads(line)["size"] <= 2500]
        out.writelines(small[:150])
    pairs = base / "newstest-400.csv"
    with open(shared("parallel", "wmt-newstest-zh2en", "newstest-zh2en-wmt19.csv"), encoding="utf-8", newline="") as src, \
            open(pairs, "w", encoding="utf-8", newline="") as out:
        rows = list(csv.reader(src))
        csv.writer(out).writerows(rows[:401])  # header + 400 pairs
    # sample-0001: pages of at most a few thousand tokens (sample-0000 holds one of 50,000 with this tokenizer)
    return {"warc": shared("warc", "dolma", "sample-0001.warc.gz"), "code": code, "parallel": pairs}


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory, shared, tokenizer_model):
    import os

    base = tmp_path_factory.mktemp("walkthrough")
    inputs = _small_inputs(shared, base)
    out = base / "out"
    common = ["--tokenizer", tokenizer_model, "--no-progress"]
    assert main(["run", "--runner", "local", "--input", str(inputs["warc"]), "--output", str(out / "web"), "--set", WEB_STEPS,
                 *common]) == 0
    assert main(["code", "--input", str(inputs["code"]), "--output", str(out / "code"), *common]) == 0
    assert main(["parallel", "--input", str(inputs["parallel"]), "--output", str(out / "par"), *common]) == 0
    (base / "sources.yaml").write_text(
        "sources:\n"
        "  - {name: web/warc, lang: en, manifest: out/web, tier: web}\n"
        "  - {lang: zh, manifest: out/par/manifest.json, tier: high}\n"  # no name: the manifest's one source
        "  - {name: code/github, lang: code, manifest: out/code, tier: web, stem: true}\n")
    (base / "target.yaml").write_text("target: {en: 0.5, zh: 0.3, code: 0.2}\nstage2: {tokens: 0}\n")
    cwd = os.getcwd()
    os.chdir(base)  # relative paths, as a user types them; the run directory lands in ./runs/tiny
    try:
        assert main(["mix", "--sources", "sources.yaml", "--target", "target.yaml", "--out", "mix.json"]) == 0
        from skypile.trainer.train import main as train_main

        with one_thread():
            assert train_main(["--config", "tiny", "mix=mix.json", f"steps={TRAIN_STEPS}", "log_every=50"]) == 0
    finally:
        os.chdir(cwd)
    return base


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def test_each_output_names_its_source_and_is_trainable(walkthrough, capsys):
    out = walkthrough / "out"
    for name, source in (("web", "web/warc"), ("code", "code/github"), ("par", "parallel/en-zh")):
        manifest = _manifest(out / name)
        assert manifest["trainable"] is True and list(manifest["sources"]) == [source]
        assert manifest["sources"][source]["tokens"] == manifest["tokens"] > 0
    mix = json.loads((walkthrough / "mix.json").read_text())
    assert [s["name"] for s in mix["sources"]] == ["web/warc", "parallel/en-zh", "code/github"]
    assert all(Path(s["manifest"]).is_absolute() for s in mix["sources"])


def test_the_trained_token_shares_follow_the_mix(walkthrough):
    """The trainer read all three outputs where they lie and took each source at its weight, to
    within a window (the mix picks a source before each document and at each window's start)."""
    run = walkthrough / "runs" / "tiny"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if r["type"] == "train"][-1]
    weights = json.loads((walkthrough / "mix.json").read_text())["weights"]
    assert set(last["data_shares"]) == set(weights) and last["step"] == TRAIN_STEPS
    config = json.loads((run / "config.json").read_text())
    window = config["seq_len"] + 1
    for source, weight in weights.items():
        assert last["data_shares"][source] == pytest.approx(weight, abs=window / last["tokens"]), source
    import pyarrow.parquet as pq

    largest = max(max(pq.read_table(p, columns=["n_tokens"]).column(0).to_pylist())
                  for p in (walkthrough / "out").glob("*/shards/*.parquet"))
    assert largest > 10 * window  # documents span many windows: picking only between documents would not do
    # the model learned: the last training losses are far below the uniform ln(vocabulary)
    assert last["loss"] < math.log(config["model"]["vocab_size"]) - 2


def test_the_run_directory_is_self_contained(walkthrough, tmp_path, monkeypatch, shared, capsys):
    run = walkthrough / "runs" / "tiny"
    config = json.loads((run / "config.json").read_text())
    assert all(Path(p).is_absolute() for p in [config["mix"], config["run_dir"]])
    assert (run / "tokenizer.model").is_file()
    monkeypatch.chdir(tmp_path)  # eval and export from anywhere
    with one_thread():
        assert main(["eval", "ppl", "--model", str(run), "--sets", str(shared("web", "en", "dolma", "cc_en_head-0091.jsonl")),
                     "--out", "eval", "--no-progress"]) == 0
    report = json.loads((tmp_path / "eval" / "ppl.json").read_text())
    assert report["model"]["tokenizer"] == str(run / "tokenizer.model")
    assert report["domains"]["cc_en_head-0091"]["loss"] < math.log(config["model"]["vocab_size"])
    from skypile.trainer.train import main as train_main

    step = sorted((run / "checkpoints").glob("step-*"))[-1]
    assert train_main(["export", "--checkpoint", str(step), "--out", "hf"]) == 0
    assert (tmp_path / "hf" / "tokenizer.model").read_bytes() == (run / "tokenizer.model").read_bytes()


def _one_error(capsys) -> str:
    err = capsys.readouterr().err  # the trainer's log lines go to stderr too
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(errors) == 1, err
    return errors[0]


def test_a_mix_source_the_data_lacks_and_other_data_on_resume_are_one_line_errors(walkthrough, monkeypatch, capsys):
    from skypile.trainer.train import main as train_main

    monkeypatch.chdir(walkthrough)
    capsys.readouterr()
    # the mix names three sources; --data holds one: an error at start-up, not 100% web text
    assert train_main(["--config", "tiny", "--data", "out/web", "mix=mix.json", "--run-dir", "runs/web-only"]) == 2
    err = _one_error(capsys)
    assert "code/github, parallel/en-zh" in err and "out/web holds web/warc" in err
    assert not (walkthrough / "runs" / "web-only").exists()
    # a second run into the same run directory with other data: refused, naming both
    assert train_main(["--config", "tiny", "--data", "out/code", "steps=200"]) == 2
    err = _one_error(capsys)
    assert "trained on other data" in err and "out/code" in err and "--run-dir" in err


def test_dedup_output_is_text_only_and_export_makes_it_trainable(tmp_path, shared, tokenizer_model, monkeypatch, capsys):
    """The README's dedup -> export step: the command and the manifest say the text-only shards
    cannot be trained on and how to fix it; the trainer refuses them in one line."""
    from skypile.trainer.train import main as train_main

    monkeypatch.chdir(tmp_path)
    pages = str(shared("web", "en", "dolma", "cc_en_head-0091.jsonl"))
    assert main(["dedup", "--input", pages, "--output", "dd", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "trainable: no: text only" in printed and "skypile export --input 'dd/shards/*.parquet'" in printed
    dd = _manifest(tmp_path / "dd")
    assert dd["trainable"] is False and list(dd["sources"]) == ["common-crawl"] and dd["tokens"] == 0
    assert train_main(["--config", "tiny", "--data", "dd"]) == 2
    assert "is not trainable: text only" in _one_error(capsys)
    assert main(["export", "--input", "dd/shards/*.parquet", "--output", "tok", "--tokenizer", tokenizer_model,
                 "--no-progress"]) == 0
    tok = _manifest(tmp_path / "tok")
    assert tok["trainable"] is True and tok["sources"]["common-crawl"]["rows"] == dd["sources"]["common-crawl"]["rows"]
    assert tok["tokens"] > 0 and "trainable: yes" in capsys.readouterr().out
