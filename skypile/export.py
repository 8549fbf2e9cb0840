"""``skypile export``: documents already in JSONL or Parquet → tokenized shards + manifest.

For clean sources that need no crawl processing (Wikipedia dumps, books, the
output of another tool, held-out evaluation sets).  Runs in-process with the
same stages, shard writer and stats report as the Beam job.
"""

from __future__ import annotations

import json
from typing import Iterator

from tqdm import tqdm

from skypile import io
from skypile.document import Document, Dropped
from skypile.readers.jsonl import read_documents
from skypile.stage import StageStats, run_stage
from skypile.tokenizer.spm import Tokenize, tokenizer_info
from skypile.writers.parquet import shard_index, write_manifest, write_shard


def export_shards(
    inputs: list[str],
    output: str,
    tokenizer: str,
    *,
    source: str = "",
    num_shards: int = 1,
    overwrite: bool = False,
) -> dict:
    stats = StageStats()
    dropped_lines: list[str] = []

    def on_drop(d: Dropped) -> None:
        dropped_lines.append(json.dumps(d.to_json(), ensure_ascii=False))

    def read_all() -> Iterator[Document]:
        for path in inputs:
            for item in read_documents(path, source):
                stats.record_in("read")
                if isinstance(item, Dropped):
                    stats.record_drop(item)
                    on_drop(item)
                else:
                    stats.record_kept("read")
                    yield item

    buckets: list[list[Document]] = [[] for _ in range(num_shards)]
    for doc in tqdm(run_stage(Tokenize(tokenizer), read_all(), stats, on_drop), desc="export", unit="doc"):
        buckets[shard_index(doc.id, num_shards)].append(doc)
    infos = []
    for i, docs in enumerate(buckets):
        if docs:
            stats.add("write", "in", len(docs))
            info = write_shard(docs, output, i, num_shards, overwrite=overwrite)
            stats.add("write", "kept", info.rows)
            infos.append(info)
    manifest = write_manifest(output, infos, tokenizer_info(tokenizer))
    io.atomic_write_text(io.join(output, "dropped", "dropped.jsonl"), "".join(line + "\n" for line in dropped_lines))
    return stats.write_json(
        io.join(output, "stats.json"),
        first_stage="read",
        final_kept=manifest["rows"],
        extra={"inputs": inputs, "tokens": manifest["tokens"], "num_shards": manifest["num_shards"]},
    )
