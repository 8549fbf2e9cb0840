"""`skypile export`: JSONL/Parquet in, shards + manifest + balanced stats out."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from skypile.cli import main
from skypile.document import SHARD_SCHEMA
from skypile.readers.jsonl import read_documents


def test_export_real_jsonl_with_bad_rows(tmp_path, shared, tokenizer_model):
    src = shared("web", "en", "dolma", "cc_en_head-0091.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a fine line of English text"}\nnot json\n{"id": "empty", "text": "  "}\n{"no_text": 1}\n')
    out = tmp_path / "out"
    rc = main(["export", "--input", str(src), str(bad), "--output", str(out), "--tokenizer", tokenizer_model, "--source", "web/en", "--no-progress"])
    assert rc == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["records_in"] == 10 + 4
    assert stats["stages"]["read"]["dropped"] == {"bad_json": 1, "no_text": 2}
    assert list(stats["stages"]) == ["read", "unique_ids", "tokenize", "write"] and stats["executor"] == "local"
    assert stats["kept"] == 11 and stats["balanced"]
    manifest = json.loads((out / "manifest.json").read_text())
    rows = 0
    for shard in manifest["shards"]:
        table = pq.read_table(out / shard["path"])
        assert table.schema.equals(SHARD_SCHEMA, check_metadata=False)
        rows += table.num_rows
        assert sum(table.column("n_tokens").to_pylist()) == shard["tokens"]
    assert rows == 11
    dropped = [json.loads(line) for f in sorted((out / "dropped").glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert sorted(d["reason"] for d in dropped) == ["bad_json", "no_text", "no_text"]


def test_read_documents_keeps_ids_and_urls(shared):
    docs = list(read_documents(str(shared("web", "en", "dolma", "cc_en_head-0174.jsonl"))))
    assert len(docs) == 10 and len({d.id for d in docs}) == 10
    assert all(d.text and d.source == "common-crawl" for d in docs)  # the row's own source wins
    assert docs[0].id.startswith("http")


def test_export_survives_odd_rows_and_makes_ids_unique(tmp_path, tokenizer_model):
    src = tmp_path / "odd.jsonl"
    rows = [
        {"id": "a", "text": "Lone surrogate \ud800 in otherwise fine English text."},
        {"id": "a", "text": "A different document that reuses the id a."},
        {"id": "a", "text": "A different document that reuses the id a."},  # same id, same text: exact dedup's job
        {"id": "b", "text": "Plain text."},
        [1, 2, 3],
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main(["export", "--input", str(src), "--output", str(out), "--tokenizer", tokenizer_model, "--no-progress"]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["balanced"] and stats["records_in"] == 5 and stats["kept"] == 4
    assert stats["stages"]["read"]["dropped"] == {"bad_json": 1}
    assert stats["stages"]["unique_ids"]["changed"] == {"id_renamed": 2}
    ids = [i for s in (out / "shards").iterdir() for i in pq.read_table(s).column("id").to_pylist()]
    texts = [t for s in (out / "shards").iterdir() for t in pq.read_table(s).column("text").to_pylist()]
    assert len(ids) == len(set(ids)) == 4 and "a" in ids and "b" in ids and sum(i.startswith("a#") for i in ids) == 2
    assert "\ufffd" in next(t for t in texts if t.startswith("Lone surrogate"))


def test_export_refuses_unusable_inputs_before_any_work(tmp_path, tokenizer_model, capsys):
    import pyarrow as pa

    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "fine"}\n')
    no_text = tmp_path / "no_text.parquet"
    pq.write_table(pa.table({"id": ["x"], "body": ["y"]}), no_text)
    truncated = tmp_path / "truncated.parquet"
    pq.write_table(pa.table({"text": ["z" * 1000] * 100}), truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    for bad, message in ((no_text, "no 'text' or 'content' column"), (truncated, "cannot read input"), (tmp_path / "x.csv", "no input file matches")):
        out = tmp_path / f"out-{bad.stem}"
        rc = main(["export", "--input", str(good), str(bad), "--output", str(out), "--tokenizer", tokenizer_model, "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and str(bad.name) in err, err
        assert not (out / "shards").exists()
