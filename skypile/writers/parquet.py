"""Tokenized Parquet shards and the manifest that describes them.

Layout of an output directory::

    DIR/shards/part-00000-of-00008.parquet   (SHARD_SCHEMA, zstd, sorted by id)
    DIR/manifest.json                        (per shard: rows, tokens, sha256; tokenizer)
    DIR/stats.json                           (written by the run, see skypile.stage)

A shard is written to a temporary name and renamed when complete.  Rows are
sorted by document id so a shard's bytes depend only on which documents it
holds: a re-run that finds a finished shard reuses it instead of rewriting it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Iterable

import pyarrow.compute as pc
import pyarrow.parquet as pq

from skypile import io
from skypile.document import SCHEMA_VERSION, SHARD_SCHEMA, Document, documents_to_table

MANIFEST_NAME = "manifest.json"
SHARDS_DIR = "shards"


@dataclass(frozen=True)
class ShardInfo:
    path: str  # relative to the output directory
    rows: int
    tokens: int
    sha256: str


def shard_name(index: int, num_shards: int) -> str:
    return f"{SHARDS_DIR}/part-{index:05d}-of-{num_shards:05d}.parquet"


def shard_index(doc_id: str, num_shards: int) -> int:
    """Stable shard assignment (independent of Python's salted ``hash``)."""
    import zlib

    return zlib.crc32(doc_id.encode("utf-8")) % num_shards


def _info_from_existing(output_dir: str, rel: str) -> ShardInfo:
    uri = io.join(output_dir, rel)
    fs, path = io.filesystem_and_path(uri)
    with fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f)
        rows = pf.metadata.num_rows
        tokens = int(pc.sum(pf.read(columns=["n_tokens"]).column(0)).as_py() or 0)
    return ShardInfo(path=rel, rows=rows, tokens=tokens, sha256=io.sha256_of(uri))


def write_shard(
    docs: Iterable[Document],
    output_dir: str,
    index: int,
    num_shards: int,
    *,
    row_group_rows: int = 1024,
    overwrite: bool = False,
) -> ShardInfo:
    """Write one shard atomically; a finished shard already on disk is reused unless ``overwrite``."""
    rel = shard_name(index, num_shards)
    uri = io.join(output_dir, rel)
    if not overwrite and io.exists(uri):
        return _info_from_existing(output_dir, rel)
    ordered = sorted(docs, key=lambda d: d.id)
    tokens = 0
    with io.atomic_output(uri) as out:
        with pq.ParquetWriter(out, SHARD_SCHEMA, compression="zstd") as writer:
            for start in range(0, len(ordered), row_group_rows):
                batch = ordered[start : start + row_group_rows]
                tokens += sum(len(d.tokens or ()) for d in batch)
                writer.write_table(documents_to_table(batch, with_tokens=True))
    return ShardInfo(path=rel, rows=len(ordered), tokens=tokens, sha256=io.sha256_of(uri))


def write_manifest(output_dir: str, shards: Iterable[ShardInfo], tokenizer: dict | None = None) -> dict:
    shards = sorted(shards, key=lambda s: s.path)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "schema": SHARD_SCHEMA.to_string(show_schema_metadata=False),
        "tokenizer": tokenizer or {},
        "num_shards": len(shards),
        "rows": sum(s.rows for s in shards),
        "tokens": sum(s.tokens for s in shards),
        "shards": [asdict(s) for s in shards],
    }
    io.atomic_write_text(io.join(output_dir, MANIFEST_NAME), json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(output_dir: str) -> dict:
    return json.loads(io.read_bytes(io.join(output_dir, MANIFEST_NAME)))
