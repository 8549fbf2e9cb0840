"""Rows of JSONL(.gz) and Parquet files as dicts, streamed: what the code and parallel readers build on.

:mod:`skypile.readers.jsonl` turns rows into documents with fixed field names;
the code reader needs ``path`` + ``content`` and the parallel reader two text
columns, so they share this lower layer.  A bad line is a ``read`` drop with a
reason, and a truncated or corrupt file keeps what was read and counts the rest
once, as in the document reader.
"""

from __future__ import annotations

import gzip
import io as pyio
import json
from pathlib import PurePosixPath
from typing import Any, Iterator

import pyarrow.parquet as pq

from skypile import io
from skypile.document import Dropped
from skypile.stage import drop

ROW_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".parquet")
PARQUET_BATCH_ROWS = 256


def is_row_file(path: str) -> bool:
    return path.endswith(ROW_SUFFIXES)


def row_columns(path: str) -> list[str]:
    """Column names of a Parquet file, or the keys of a JSONL file's first object (``[]`` if none)."""
    fs, p = io.filesystem_and_path(path)
    if path.endswith(".parquet"):
        with fs.open_input_file(p) as f:
            return list(pq.ParquetFile(f).schema_arrow.names)
    for _, row in iter_rows(path):
        return list(row) if isinstance(row, dict) else []
    return []


def iter_rows(path: str) -> Iterator[tuple[int, dict[str, Any] | Dropped]]:
    """``(row number from 1, row dict or Dropped)`` for every row of a JSONL(.gz) or Parquet file."""
    name = PurePosixPath(path).name
    fs, p = io.filesystem_and_path(path)
    row = 0
    if path.endswith(".parquet"):
        try:
            with fs.open_input_file(p) as f:
                for batch in pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
                    for rec in batch.to_pylist():
                        row += 1
                        yield row, rec
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt: what was read stays, the rest is one drop
            yield row + 1, drop("read", "read_error", detail=f"{name} after row {row}: {type(exc).__name__}: {exc}")
        return
    with fs.open_input_stream(p, compression=None) as raw:
        binary = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
        f = pyio.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace")
        try:
            for row, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield row, drop("read", "bad_json", detail=f"{name}:{row}: {exc}")
                    continue
                yield row, rec if isinstance(rec, dict) else drop("read", "bad_json", detail=f"{name}:{row}: not a JSON object")
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            yield row + 1, drop("read", "truncated_input", detail=f"{name} after line {row}: {type(exc).__name__}: {exc}")
