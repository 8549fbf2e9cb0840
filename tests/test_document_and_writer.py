"""Document schema round trip, atomic shard writing, resume, manifest integrity."""

from __future__ import annotations

import hashlib
import json
import os

import pyarrow.parquet as pq
import pytest

from skypile import io
from skypile.document import DOCUMENT_SCHEMA, SHARD_SCHEMA, DocMetadata, Document, documents_to_table, table_to_documents
from skypile.writers.parquet import read_manifest, shard_index, shard_name, write_manifest, write_shard


def _docs(n: int) -> list[Document]:
    return [
        Document(
            id=f"doc-{i:03d}",
            text=f"第{i}篇 document with some text " * (i + 1),
            source="web/warc",
            url=f"http://example.com/{i}",
            lang="zh" if i % 2 else "en",
            metadata=DocMetadata(charset="gb18030", lang_score=0.9, n_chars=10 * i),
            tokens=list(range(i + 1)),
        )
        for i in range(n)
    ]


def test_table_round_trip_keeps_every_field():
    docs = _docs(5)
    table = documents_to_table(docs, with_tokens=True)
    assert table.schema.equals(SHARD_SCHEMA, check_metadata=False)
    back = table_to_documents(table)
    assert back == docs
    plain = documents_to_table(docs)
    assert plain.schema.equals(DOCUMENT_SCHEMA, check_metadata=False)
    assert table_to_documents(plain)[3].tokens is None


def test_untokenized_document_cannot_go_into_a_shard():
    doc = _docs(1)[0]
    doc.tokens = None
    with pytest.raises(ValueError, match="no tokens"):
        documents_to_table([doc], with_tokens=True)


def test_write_shard_is_sorted_hashed_and_counted(tmp_path):
    docs = list(reversed(_docs(7)))
    info = write_shard(docs, str(tmp_path), 0, 2, row_group_rows=3)
    path = tmp_path / shard_name(0, 2)
    assert info.rows == 7 and info.tokens == sum(range(1, 8))
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    pf = pq.ParquetFile(path)
    assert pf.metadata.num_row_groups == 3
    assert pf.read().column("id").to_pylist() == sorted(d.id for d in docs)
    assert not [p for p in os.listdir(path.parent) if ".tmp-" in p]


def test_finished_shard_is_reused_not_rewritten(tmp_path):
    first = write_shard(_docs(4), str(tmp_path), 1, 4)
    path = tmp_path / shard_name(1, 4)
    mtime = path.stat().st_mtime_ns
    again = write_shard(_docs(4), str(tmp_path), 1, 4)
    assert again == first and path.stat().st_mtime_ns == mtime
    forced = write_shard(_docs(2), str(tmp_path), 1, 4, overwrite=True)
    assert forced.rows == 2


def test_failed_write_leaves_no_file(tmp_path):
    bad = _docs(3)
    bad[2].tokens = None
    with pytest.raises(ValueError):
        write_shard(bad, str(tmp_path), 0, 1)
    assert not io.exists(str(tmp_path / shard_name(0, 1)))
    assert not [p for p in (tmp_path / "shards").iterdir()]


def test_manifest_sums_shards(tmp_path):
    docs = _docs(9)
    infos = []
    for i in range(3):
        part = [d for d in docs if shard_index(d.id, 3) == i]
        if part:
            infos.append(write_shard(part, str(tmp_path), i, 3))
    write_manifest(str(tmp_path), infos, {"vocab_size": 100, "eos_id": 2})
    m = read_manifest(str(tmp_path))
    assert m["rows"] == 9 and m["tokens"] == sum(len(d.tokens) for d in docs)
    assert m["tokenizer"]["eos_id"] == 2
    for s in m["shards"]:
        assert hashlib.sha256((tmp_path / s["path"]).read_bytes()).hexdigest() == s["sha256"]
    assert json.loads((tmp_path / "manifest.json").read_text())["num_shards"] == len(infos)


def test_shard_index_is_stable_and_spread():
    counts = [0] * 8
    for i in range(4000):
        counts[shard_index(f"<urn:uuid:{i}>", 8)] += 1
    assert shard_index("abc", 8) == shard_index("abc", 8)
    assert min(counts) > 400  # roughly uniform (expected 500)
