"""Documents already in memory → a shard + manifest, in the pipeline's own format.

For fixtures, tools and notebooks that hold a list of tokenized documents.
Pipelines never use this: their documents stream through part files and are
packed into shards by :mod:`skypile.executor.pack`, whose :class:`ShardInfo` and
manifest this module reuses, so every shard directory looks the same to the
trainer.
"""

from __future__ import annotations

import zlib
from typing import Iterable

from skypile import io
from skypile.document import Document
from skypile.executor.pack import ShardInfo, describe_shard, read_manifest, shard_name
from skypile.executor.pack import write_manifest as _write_manifest
from skypile.executor.tasks import PartWriter

__all__ = ["ShardInfo", "read_manifest", "shard_index", "shard_name", "write_manifest", "write_shard"]


def shard_index(doc_id: str, num_shards: int) -> int:
    """Stable shard assignment (independent of Python's salted ``hash``)."""
    return zlib.crc32(doc_id.encode("utf-8")) % num_shards


def write_shard(
    docs: Iterable[Document],
    output_dir: str,
    index: int,
    num_shards: int,
    *,
    row_group_rows: int = 1024,
    overwrite: bool = False,
    token_type: str = "uint16",
) -> ShardInfo:
    """Write one shard (rows sorted by id) atomically; an existing one is reused unless ``overwrite``.

    ``token_type`` is ``uint16`` for vocabularies up to 65,536 pieces, ``uint32`` above
    (:func:`skypile.document.token_type_for`).
    """
    rel = shard_name(index, num_shards)
    uri = io.join(output_dir, rel)
    if overwrite or not io.exists(uri):
        with io.atomic_output(uri) as out, PartWriter(out, tokenized=True, row_group_rows=row_group_rows, token_type=token_type) as writer:
            for doc in sorted(docs, key=lambda d: d.id):
                writer.write(doc)
            writer.close()
    return describe_shard(output_dir, rel)


def write_manifest(output_dir: str, shards: Iterable[ShardInfo], tokenizer: dict | None = None, token_type: str = "uint16") -> dict:
    return _write_manifest(output_dir, list(shards), tokenized=True, extra={"tokenizer": tokenizer or {}}, token_type=token_type)
