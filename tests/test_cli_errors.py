"""Every console script, walked with bad inputs: one line on stderr naming the file or option, exit 2, no
traceback, nothing destroyed; and where a run happens on odd but valid input, records in = kept + dropped.

The tables grow with every user error found (issue 22 probed 95 hostile inputs; the ones that failed are
here).  Calls are in process (``main(argv)``), except the torchrun case, which needs real ranks.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from skypile.cli import main as skypile

READ_ONLY = "/sys/kernel"  # sysfs takes no new files, not even from root


@pytest.fixture(scope="module")
def docs(shared) -> list[dict]:
    """Ten real Dolma web documents."""
    path = shared("web", "en", "dolma", "cc_en_head-0091.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def ws(tmp_path_factory, docs, tokenizer_model) -> dict:
    """The bad and odd inputs, and a small shard directory for the trainer."""
    d = tmp_path_factory.mktemp("inputs")
    lines = "".join(json.dumps(x) + "\n" for x in docs)
    (d / "docs.jsonl").write_text(lines)
    (d / "notes").mkdir()
    (d / "notes" / "keep.md").write_text("a user's notes")
    (d / "a-file").write_text("not a directory")
    (d / "binary.yaml").write_bytes(bytes(range(256)))
    (d / "list.yaml").write_text("- input\n- output\n")
    (d / "table.jsonl").write_text("id,text\n1,hello\n2,world\n")  # a CSV by another name
    (d / "empty.txt").write_text("\n\n")
    (d / "s.yaml").write_text("sources:\n  - {name: wiki/en, lang: en, tokens: 1000, tier: high}\n"
                              "  - {name: code, lang: code, tokens: 1000, tier: web, stem: true}\n")
    (d / "big-stage2.yaml").write_text("target: {en: 0.9, code: 0.1}\nstage2: {tokens: 100000}\n")
    (d / "zero.yaml").write_text("target: {en: 0.9, code: 0.1}\ntotal_tokens: 0\n")
    (d / "frac.yaml").write_text("sources:\n  - {name: a, lang: en, tokens: 1.5, tier: web}\n")
    (d / "pair.zh").write_text("一\n二\n三\n")
    (d / "pair.en").write_text("one\ntwo\n")
    data = d / "data"
    assert skypile(["export", "--input", str(d / "docs.jsonl"), "--output", str(data), "--tokenizer", tokenizer_model,
                    "--no-progress"]) == 0
    bad = d / "bad-shard"
    bad.mkdir()
    (bad / "manifest.json").write_text((data / "manifest.json").read_text())
    (bad / "shards").mkdir()
    for shard in (data / "shards").iterdir():
        (bad / "shards" / shard.name).write_bytes(shard.read_bytes()[:-100])  # truncated
    (d / "corrupt").mkdir()
    (d / "corrupt" / "manifest.json").write_text('{"shards": [')
    return {"d": d, "tok": tokenizer_model, "data": data}


def _fmt(args: list[str], ws: dict) -> list[str]:
    return [a.format(d=ws["d"], tok=ws["tok"], data=ws["data"], ro=READ_ONLY) for a in args]


EXPORT = ["export", "--input", "{d}/docs.jsonl", "--tokenizer", "{tok}", "--no-progress"]

# (id, argv, what the one line must say)
SKYPILE_ERRORS = [
    ("config-is-a-directory", [*EXPORT, "--output", "{d}/o1", "--config", "{d}/notes"], "config file {d}/notes cannot be read"),
    ("config-is-binary", [*EXPORT, "--output", "{d}/o1", "--config", "{d}/binary.yaml"], "is not UTF-8 text"),
    ("config-is-a-list", [*EXPORT, "--output", "{d}/o1", "--config", "{d}/list.yaml"], "holds a mapping of sections"),
    ("set-bad-yaml", [*EXPORT, "--output", "{d}/o1", "--set", "lang_filter.keep=[en"], "--set 'lang_filter.keep=[en': the value is not valid YAML"),
    ("set-nan", [*EXPORT, "--output", "{d}/o1", "--set", "lang_filter.min_score=.nan"], "lang_filter.min_score: expected a finite number"),
    ("set-out-of-range", [*EXPORT, "--output", "{d}/o1", "--set", "lang_filter.min_score=1.5"], "lang_filter.min_score: must be between 0 and 1"),
    ("negative-payload", [*EXPORT, "--output", "{d}/o1", "--set", "input.max_payload_bytes=-1"], "input.max_payload_bytes: must be at least 1"),
    ("negative-workers", [*EXPORT, "--output", "{d}/o1", "--workers", "-3"], "exec.workers: must be at least 0"),
    ("float-for-int", [*EXPORT, "--output", "{d}/o1", "--set", "length.min_words=30.5"], "length.min_words: expected an integer"),
    ("unknown-key", [*EXPORT, "--output", "{d}/o1", "--set", "length.min_wrds=3"], "unknown config key 'length.min_wrds'"),
    ("output-is-a-file", [*EXPORT, "--output", "{d}/a-file"], "is a file, not a directory"),
    ("output-read-only", [*EXPORT, "--output", "{ro}/skypile-out"], "cannot create output {ro}/skypile-out"),
    ("output-exists-read-only", [*EXPORT, "--output", "{ro}"], "cannot write to output {ro}"),
    ("not-json", ["export", "--input", "{d}/table.jsonl", "--output", "{d}/o1", "--tokenizer", "{tok}"], "neither JSON lines nor a JSON array"),
    ("bad-runner", [*EXPORT, "--output", "{d}/o1", "--runner", "Nope"], "argument --runner: invalid choice"),
    ("score-output-is-a-directory", ["score", "--input", "{d}/docs.jsonl", "--output", "{d}/notes", "--models", "{d}/nowhere"],
     "--output {d}/notes is a directory"),
    ("score-output-read-only", ["score", "--input", "{d}/docs.jsonl", "--output", "{ro}/scores.jsonl", "--models", "{d}/nowhere"],
     "--output {ro}/scores.jsonl cannot be written"),
    ("extract-output-is-a-directory", ["extract", "{d}/docs.jsonl", "--jsonl", "{d}/notes"], "--jsonl {d}/notes is a directory"),
    ("extract-no-input", ["extract", "{d}/nothing-*.html"], "no file matches"),
    ("mix-output-is-a-directory", ["mix", "--sources", "{d}/s.yaml", "--out", "{d}/notes"], "--out {d}/notes is a directory"),
    ("mix-stage2-too-big", ["mix", "--sources", "{d}/s.yaml", "--target", "{d}/big-stage2.yaml", "--out", "{d}/mix.json"],
     "leave no room for stage 1"),
    ("mix-total-zero", ["mix", "--sources", "{d}/s.yaml", "--target", "{d}/zero.yaml", "--out", "{d}/mix.json"], "total_tokens must be positive"),
    ("mix-fractional-tokens", ["mix", "--sources", "{d}/frac.yaml", "--out", "{d}/mix.json"], "not a whole number of tokens: 1.5"),
    ("mix-no-sources", ["mix", "--sources", "{d}/missing.yaml", "--out", "{d}/mix.json"], "file not found: {d}/missing.yaml"),
    ("leakage-max-docs-0", ["eval", "leakage", "--model", "{d}/nowhere", "--out", "{d}/ev", "--max-docs", "0"], "--max-docs must be at least 1"),
    ("eval-out-is-a-file", ["eval", "ppl", "--model", "{d}/nowhere", "--sets", "{d}/docs.jsonl", "--out", "{d}/a-file"],
     "--out {d}/a-file is a file"),
    ("tokenizer-no-text", ["tokenizer", "train", "--input", "{d}/empty.txt", "--out", "{d}/tok"], "no training text found in {d}/empty.txt"),
    ("tokenizer-out-read-only", ["tokenizer", "train", "--input", "{d}/docs.jsonl", "--out", "{ro}/tok"],
     "tokenizer output {ro}/tok cannot be written"),
    ("tokenizer-missing-input", ["tokenizer", "train", "--input", "{d}/missing.txt", "--out", "{d}/tok"], "{d}/missing.txt"),
    ("parallel-unequal-lines", ["parallel", "--input", "{d}/pair.zh", "--output", "{d}/o1", "--tokenizer", "{tok}"],
     "aligned files differ in length ({d}/pair.zh: 3 lines, {d}/pair.en: 2 lines)"),
]


@pytest.mark.parametrize("name, argv, message", SKYPILE_ERRORS, ids=[c[0] for c in SKYPILE_ERRORS])
def test_skypile_user_errors_are_one_line_and_exit_2(name, argv, message, ws, capsys):
    rc = skypile(_fmt(argv, ws))
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines() or [""]
    assert rc == 2 and line.startswith("error: ") and message.format(d=ws["d"], ro=READ_ONLY) in line, err
    assert not (ws["d"] / "o1" / "shards").exists() and (ws["d"] / "notes" / "keep.md").exists()


def test_overwrite_never_deletes_an_input_that_lies_under_the_output(ws, capsys):
    out = ws["d"] / "reexport"
    base = ["export", "--output", str(out), "--tokenizer", ws["tok"], "--no-progress"]
    assert skypile([*base, "--input", str(ws["d"] / "docs.jsonl")]) == 0
    shards = sorted((out / "shards").glob("*.parquet"))
    assert skypile([*base, "--input", str(out / "shards" / "*.parquet"), "--overwrite"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: --overwrite would delete input {shards[0]}") and sorted((out / "shards").glob("*.parquet")) == shards


TRAIN_ERRORS = [
    ("no-data", [], "no data: pass --data SHARD_DIR [SHARD_DIR ...], or mix=mix.json"),
    ("data-missing", ["--data", "{d}/nowhere"], "no manifest.json in {d}/nowhere"),
    ("manifest-corrupt", ["--data", "{d}/corrupt"], "{d}/corrupt/manifest.json is not valid JSON"),
    ("shard-truncated", ["--data", "{d}/bad-shard"], "shard(s) do not match {d}/bad-shard/manifest.json"),
    ("unknown-key", ["--data", "{data}", "stepz=3"], "unknown config key 'stepz'"),
    ("not-key-value", ["--data", "{data}", "steps"], "override 'steps' is not key=value"),
    ("bad-int", ["--data", "{data}", "steps=abc"], "steps: cannot read 'abc' as int"),
    ("nan-float", ["--data", "{data}", "lr=nan"], "lr: cannot read 'nan' as float"),
    ("bad-json", ["--data", "{data}", "data_weights={{web: 1"], "data_weights: cannot read"),
    ("unknown-preset", ["--config", "huge", "--data", "{data}"], "unknown --config 'huge'"),
    ("mix-missing", ["--data", "{data}", "mix={d}/nowhere.json"], "cannot read mix {d}/nowhere.json"),
    ("resume-missing", ["--data", "{data}", "--run-dir", "{d}/r1", "resume={d}/nowhere/step-00000001"], "resume={d}/nowhere/step-00000001: checkpoint is not intact"),
    ("run-dir-read-only", ["--data", "{data}", "--run-dir", "{ro}/run"], "run_dir {ro}/run cannot be written"),
    ("run-dir-is-a-file", ["--data", "{data}", "--run-dir", "{d}/a-file"], "run_dir {d}/a-file is a file"),
    ("bad-mesh", ["--data", "{data}", "--run-dir", "{d}/r2", "dp_replicate=3"], "world size 1 is not divisible by dp_replicate 3"),
]


@pytest.mark.parametrize("name, argv, message", TRAIN_ERRORS, ids=[c[0] for c in TRAIN_ERRORS])
def test_skypile_train_user_errors_are_one_line_and_exit_2(name, argv, message, ws, capsys):
    from skypile.trainer.train import main as train

    rc = train(_fmt(["--config", "tiny", "--run-dir", "{d}/run", "seq_len=64", "steps=2", *argv], ws))
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert rc == 2 and len(errors) == 1 and err[-1] == errors[0], err
    assert message.format(d=ws["d"], ro=READ_ONLY) in errors[0] and not any("Traceback" in line for line in err), err


EXPORT_ERRORS = [
    ("checkpoint-missing", ["--checkpoint", "{d}/nowhere/step-00000001", "--out", "{d}/hf"], "not an intact checkpoint"),
    ("out-holds-notes", ["--checkpoint", "{d}/nowhere/step-00000001", "--out", "{d}/notes"],
     "--out {d}/notes is not empty and not an earlier export (it holds keep.md): nothing there is deleted"),
    ("out-is-a-file", ["--checkpoint", "{d}/nowhere/step-00000001", "--out", "{d}/a-file"], "--out {d}/a-file is a file"),
    ("out-read-only", ["--checkpoint", "{d}/nowhere/step-00000001", "--out", "{ro}/hf"], "--out {ro} cannot be written"),
    ("bad-dtype", ["--checkpoint", "{d}/nowhere/step-00000001", "--out", "{d}/hf", "--dtype", "int8"], "unknown dtype 'int8'"),
]


@pytest.mark.parametrize("name, argv, message", EXPORT_ERRORS, ids=[c[0] for c in EXPORT_ERRORS])
def test_skypile_train_export_user_errors_are_one_line_and_exit_2(name, argv, message, ws, capsys):
    from skypile.trainer.train import main as train

    rc = train(["export", *_fmt(argv, ws)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and message.format(d=ws["d"], ro=READ_ONLY) in err[0], err
    assert (ws["d"] / "notes" / "keep.md").read_text() == "a user's notes"


def test_under_torchrun_every_rank_exits_2_and_rank_0_says_why(ws, tmp_path):
    logs = tmp_path / "logs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--log-dir", str(logs),
           "--redirects", "3", "-m", "skypile.trainer.train", "--config", "tiny", "--data", str(ws["d"] / "corrupt"),
           "--run-dir", str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0
    report = proc.stderr[proc.stderr.index("Failures:"):] if "Failures:" in proc.stderr else proc.stderr
    assert report.count("exitcode  : 2 ") == 2, proc.stderr[-3000:]  # both ranks, neither killed by a signal
    streams = {int(p.parent.name): p.read_text() for p in logs.rglob("stderr.log")}
    assert sorted(streams) == [0, 1]
    assert streams[0].strip() == f"error: {ws['d'] / 'corrupt' / 'manifest.json'} is not valid JSON " \
                                 "(Expecting value: line 1 column 13 (char 12))"
    assert streams[1].strip() == ""


# -- runs on odd but valid input: every record counted -------------------------------------------------


def _export(ws: dict, out: Path, *inputs: Path) -> dict:
    args = ["export", "--output", str(out), "--tokenizer", ws["tok"], "--no-progress"]
    for i in inputs:
        args += ["--input", str(i)]
    assert skypile(args) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["balanced"] and stats["records_in"] == stats["kept"] + stats["dropped_total"]
    return stats


def test_formats_are_read_from_the_bytes_and_every_record_counts(ws, docs, tmp_path):
    """A plain JSONL named .jsonl.gz was one truncated_input; a .json holding a JSON array was one bad_json."""
    lines = "".join(json.dumps(x) + "\n" for x in docs).encode()
    (tmp_path / "plain.jsonl.gz").write_bytes(lines)
    (tmp_path / "packed.jsonl").write_bytes(gzip.compress(lines))
    (tmp_path / "array.json").write_text(json.dumps(docs, indent=1))
    (tmp_path / "array-bad.json").write_text("[" + ", ".join([json.dumps(x) for x in docs[:3]] + ['"not an object"', "[1, 2]"]) + "]")
    many = [{**x, "id": f"{x['id']}-{i}"} for i in range(30) for x in docs]  # 300 documents, ~1.5 MB
    (tmp_path / "cut.json.gz").write_bytes(gzip.compress(json.dumps(many).encode())[:-20000])
    stats = _export(ws, tmp_path / "o1", tmp_path / "plain.jsonl.gz", tmp_path / "packed.jsonl", tmp_path / "array.json")
    assert stats["records_in"] == stats["kept"] == 30
    stats = _export(ws, tmp_path / "o2", tmp_path / "array-bad.json", tmp_path / "cut.json.gz")
    read = stats["stages"]["read"]
    assert read["dropped"] == {"bad_json": 2, "truncated_input": 1} and 3 + 200 < read["kept"] < 3 + 300


def test_reexporting_output_next_to_its_source_keeps_ids_unique(ws, tmp_path):
    """A re-export renamed `a` to `a#<hash8>`, an id the input already held: two rows with one id."""
    src = tmp_path / "dup.jsonl"
    src.write_text("".join(json.dumps({"id": "a", "text": f"document {i}: " + "words " * 20}) + "\n" for i in range(3)))
    _export(ws, tmp_path / "first", src)
    second = tmp_path / "second"
    stats = _export(ws, second, src, *sorted((tmp_path / "first" / "shards").glob("*.parquet")))
    ids = [i for s in sorted((second / "shards").iterdir()) for i in pq.read_table(s).column("id").to_pylist()]
    assert len(ids) == len(set(ids)) == stats["kept"] == 6


def test_code_does_not_follow_symlink_loops(ws, shared, tmp_path):
    """18 files became 1,337 records through a link back up the tree."""
    rows = [json.loads(line) for line in gzip.open(shared("code", "linguist-samples.jsonl.gz"), "rt")]
    repo = tmp_path / "repo"
    written = 0
    for row in rows:
        name = Path(row["path"]).name
        if name.endswith((".py", ".go", ".rs", ".c", ".js")) and written < 18:
            sub = repo / ("src" if written % 2 else "lib")
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"{written:02d}-{name}").write_text(row["content"])
            written += 1
    assert written == 18
    os.symlink("..", repo / "src" / "up")
    os.symlink("../src", repo / "lib" / "sideways")
    out = tmp_path / "out"
    assert skypile(["code", "--input", str(repo), "--output", str(out), "--tokenizer", ws["tok"], "--no-progress"]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["records_in"] == 18 and stats["balanced"]
