"""Rows of JSON and Parquet files as dicts, streamed: what every JSON/Parquet reader builds on.

:mod:`skypile.readers.jsonl` turns rows into documents with fixed field names;
the code reader needs ``path`` + ``content`` and the parallel reader two text
columns, so they share this lower layer.  The format is read from the bytes,
not the name: gzip by its magic number (a plain file named ``.gz`` is read
plain, a gzip file named ``.jsonl`` is inflated), and JSON lines or one JSON
array by the first character.  Each row is counted once: a bad line or array
element is a ``read`` drop with a reason, and a truncated or corrupt file keeps
what was read and counts the rest once.  Memory does not grow with the file (a
line, an array element or a Parquet record batch at a time).
"""

from __future__ import annotations

import gzip
import io as pyio
import json
from pathlib import PurePosixPath
from typing import IO, Any, Iterator

import pyarrow.parquet as pq

from skypile import io
from skypile.document import Dropped
from skypile.stage import drop

ROW_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".parquet")
PARQUET_BATCH_ROWS = 256
SNIFF_CHARS = 1 << 16  # text read to tell JSON lines from a JSON array
ARRAY_CHUNK = 1 << 16  # characters read at a time from a JSON array (a truncated .gz loses at most the last read)
MAX_ELEMENT_CHARS = 256 << 20  # an array element that does not decode within this many characters is malformed


def is_row_file(path: str) -> bool:
    return path.endswith(ROW_SUFFIXES)


def open_binary(path: str) -> IO[bytes]:
    """``path`` (a local path or URI) for reading, inflated when its bytes are gzip, whatever its name."""
    from skypile.readers.streams import GZIP_MAGIC, open_input

    stream, _, head = open_input(path)
    binary = pyio.BufferedReader(stream, buffer_size=1 << 20)
    return gzip.GzipFile(fileobj=binary) if head.startswith(GZIP_MAGIC) else binary  # type: ignore[return-value]


def open_text(path: str, newline: str | None = None) -> IO[str]:
    """:func:`open_binary` as UTF-8 text (a BOM dropped, undecodable bytes replaced)."""
    return pyio.TextIOWrapper(open_binary(path), encoding="utf-8-sig", errors="replace", newline=newline)  # type: ignore[arg-type]


def json_layout(path: str) -> str:
    """``"array"`` when the file's first non-blank character is ``[``, else ``"lines"`` (JSON lines)."""
    with open_text(path) as f:
        while True:
            chunk = f.read(SNIFF_CHARS)
            if not chunk:
                return "lines"
            rest = chunk.lstrip()
            if rest:
                return "array" if rest[0] == "[" else "lines"


def row_columns(path: str) -> list[str]:
    """Column names of a Parquet file, or the keys of a JSON file's first object (``[]`` if none)."""
    fs, p = io.filesystem_and_path(path)
    if path.endswith(".parquet"):
        with fs.open_input_file(p) as f:
            return list(pq.ParquetFile(f).schema_arrow.names)
    for _, row in iter_rows(path):
        return list(row) if isinstance(row, dict) else []
    return []


def iter_rows(path: str) -> Iterator[tuple[int, dict[str, Any] | Dropped]]:
    """``(row number from 1, row dict or Dropped)`` for every row of a JSON (lines or array) or Parquet file.

    JSON lines are numbered by line (blank lines count, so numbers are line numbers), array elements by position.
    """
    if path.endswith(".parquet"):
        yield from _parquet_rows(path)
        return
    name = PurePosixPath(path).name
    row, layout = 0, "lines"
    try:
        layout = json_layout(path)
        with open_text(path) as f:
            rows = _array_rows(f, name) if layout == "array" else _line_rows(f, name)
            for row, rec in rows:
                yield row, rec
    except (OSError, EOFError, gzip.BadGzipFile) as exc:  # truncated or corrupt .gz: the rest is lost, counted once
        where = "element" if layout == "array" else "line"
        yield row + 1, drop("read", "truncated_input", detail=f"{name} after {where} {row}: {type(exc).__name__}: {exc}")


def _parquet_rows(path: str) -> Iterator[tuple[int, dict[str, Any] | Dropped]]:
    name = PurePosixPath(path).name
    fs, p = io.filesystem_and_path(path)
    row = 0
    try:
        with fs.open_input_file(p) as f:
            for batch in pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
                for rec in batch.to_pylist():
                    row += 1
                    yield row, rec
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt: what was read stays, the rest is one drop
        yield row + 1, drop("read", "read_error", detail=f"{name} after row {row}: {type(exc).__name__}: {exc}")


def _object(rec: Any, name: str, where: str) -> dict[str, Any] | Dropped:
    return rec if isinstance(rec, dict) else drop("read", "bad_json", detail=f"{name}:{where}: not a JSON object")


def _line_rows(f: IO[str], name: str) -> Iterator[tuple[int, dict[str, Any] | Dropped]]:
    for row, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            yield row, drop("read", "bad_json", detail=f"{name}:{row}: {exc}")
            continue
        yield row, _object(rec, name, str(row))


def _array_rows(f: IO[str], name: str) -> Iterator[tuple[int, dict[str, Any] | Dropped]]:
    """Elements of one JSON array, decoded one at a time from a sliding buffer.

    An element that does not decode ends the array: what follows cannot be told apart
    from it, so the rest of the file is one ``bad_json`` drop.
    """
    decoder = json.JSONDecoder()
    buf, i, eof, n = "", 0, False, 0

    def fill() -> bool:
        nonlocal buf, i, eof
        if len(buf) - i > MAX_ELEMENT_CHARS:
            return False  # no element is this large: it is malformed
        more = "" if eof else f.read(max(ARRAY_CHUNK, len(buf) - i))
        eof = eof or not more
        buf, i = buf[i:] + more, 0
        return bool(more)

    def skip_blank() -> str:
        """The next non-blank character ("" at the end of the data)."""
        nonlocal i
        while True:
            while i < len(buf) and buf[i].isspace():
                i += 1
            if i < len(buf) or not fill():
                return buf[i] if i < len(buf) else ""

    if skip_blank() != "[":
        yield 1, drop("read", "bad_json", detail=f"{name}: not a JSON array")
        return
    i += 1
    expect_value = True  # after "[" or ","
    while True:
        c = skip_blank()
        if c == "]" and (n == 0 or not expect_value):
            return  # anything after the closing bracket is ignored, as json.load would refuse it
        if not expect_value:
            if c != ",":
                yield n + 1, drop("read", "bad_json", detail=f"{name}: element {n + 1}: expected ',' or ']', got {c or 'end of file'!r}")
                return
            i += 1
            expect_value = True
            continue
        while True:
            try:
                rec, end = decoder.raw_decode(buf, i)
            except json.JSONDecodeError as exc:
                if fill():
                    continue  # the element may go on in the next chunk
                yield n + 1, drop("read", "bad_json", detail=f"{name}: element {n + 1}: {exc}; the rest of the array is lost")
                return
            if end == len(buf) and fill():
                continue  # a number cut at the chunk's end: decode it whole
            break
        n += 1
        i = end
        expect_value = False
        yield n, _object(rec, name, f"element {n}")
