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
    assert list(stats["stages"]) == ["read", "tokenize", "write"] and stats["executor"] == "local"
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
