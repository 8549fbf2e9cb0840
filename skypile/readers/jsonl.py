"""Documents from JSONL(.gz) or Parquet files: clean corpora, held-out sets, other tools' output.

One reader for every place that takes such files (``skypile export``, tokenizer
training, the trainer's validation sets), so they agree on the fields
(``text`` or ``content``, optional ``id``/``url``/``source``/``lang``) and on
what a bad line is.  Both formats are streamed (a line, or a Parquet record
batch, at a time), so memory does not grow with the file.

A bad line or row is a ``read`` drop with a reason, never an exception; text
holding lone surrogates (valid JSON, ``"\\ud800"``, but not encodable as UTF-8)
has them replaced by U+FFFD so no later stage or writer chokes on it.
"""

from __future__ import annotations

import gzip
import hashlib
import io as pyio
import json
import re
from pathlib import PurePosixPath
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from skypile import io
from skypile.document import DocMetadata, Document, Dropped, table_to_documents
from skypile.stage import drop

TEXT_FIELDS = ("text", "content")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
PARQUET_BATCH_ROWS = 256


def _clean(text: str) -> str:
    return _SURROGATE_RE.sub("\ufffd", text)


def _derived_id(path: str, where: int) -> str:
    return hashlib.blake2b(f"{path}:{where}".encode(), digest_size=12).hexdigest()


def check_document_file(path: str) -> None:
    """Raise :class:`~skypile.readers.sources.InputError` unless ``path`` is a readable JSONL/Parquet document file."""
    from skypile.readers.sources import DOCUMENT_SUFFIXES, InputError

    if not path.endswith(DOCUMENT_SUFFIXES):
        raise InputError(f"input {path}: unknown format (expected {', '.join(DOCUMENT_SUFFIXES)})")
    try:
        fs, p = io.filesystem_and_path(path)
        if path.endswith(".parquet"):
            with fs.open_input_file(p) as f:
                names = pq.ParquetFile(f).schema_arrow.names
            if not any(t in names for t in TEXT_FIELDS):
                raise InputError(f"input {path}: Parquet file has no 'text' or 'content' column (columns: {', '.join(names)})")
        else:
            with fs.open_input_stream(p, compression=None) as f:
                f.read(1)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable or corrupt: a user error naming the file
        raise InputError(f"cannot read input {path}: {type(exc).__name__}: {exc}") from None


def read_documents(path: str, source: str = "") -> Iterator[Document | Dropped]:
    """Rows of a JSONL(.gz) file (``text``/``content`` + optional id/url/source/lang) or a Parquet file."""
    if path.endswith(".parquet"):
        yield from _read_parquet(path, source)
        return
    name = PurePosixPath(path).name
    fs, p = io.filesystem_and_path(path)
    with fs.open_input_stream(p, compression=None) as raw:
        binary = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
        f = pyio.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace")
        lineno = 0
        try:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    yield _row_to_document(line, path, name, lineno, source)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:  # truncated or corrupt .gz: the rest is lost, counted once
            yield drop("read", "truncated_input", detail=f"{name} after line {lineno}: {type(exc).__name__}: {exc}")


def _row_to_document(line: str, path: str, name: str, lineno: int, source: str) -> Document | Dropped:
    ref = f"{name}:{lineno}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return drop("read", "bad_json", detail=f"{ref}: {exc}")
    if not isinstance(row, dict):
        return drop("read", "bad_json", detail=f"{ref}: not a JSON object")
    return _document(row, path, name, lineno, source, ref)


def _document(row: dict[str, Any], path: str, name: str, where: int, source: str, ref: str) -> Document | Dropped:
    text = row.get("text")
    if text is None:
        text = row.get("content")
    if not isinstance(text, str) or not text.strip():
        return Dropped(stage="read", reason="no_text", id=str(row.get("id") or ref))
    text = _clean(text)
    return Document(
        id=_clean(str(row.get("id") or _derived_id(path, where))),
        text=text,
        source=str(row.get("source") or source or name),
        url=_clean(str(row.get("url") or "")),
        lang=str(row.get("lang") or ""),
        metadata=DocMetadata(n_chars=len(text), source_path=path),
    )


def _read_parquet(path: str, source: str) -> Iterator[Document | Dropped]:
    name = PurePosixPath(path).name
    fs, p = io.filesystem_and_path(path)
    row = 0
    try:
        with fs.open_input_file(p) as f:
            pf = pq.ParquetFile(f, pre_buffer=False)
            ours = "metadata" in pf.schema_arrow.names and "text" in pf.schema_arrow.names
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
                if ours:  # SkyPile's own documents or shards: keep their typed metadata
                    for doc in table_to_documents(pa.Table.from_batches([batch])):
                        row += 1
                        yield doc
                    continue
                for rec in batch.to_pylist():
                    row += 1
                    yield _document(rec, path, name, row, source, f"{name}:row{row}")
    except Exception as exc:  # noqa: BLE001 - a truncated/corrupt file: what was read stays, the rest is one drop
        yield drop("read", "read_error", detail=f"{name} after row {row}: {type(exc).__name__}: {exc}")


def paragraphs(lines: Iterable[str]) -> Iterator[str]:
    """Plain text as documents: runs of non-blank lines (WikiText-style files, validation and eval sets)."""
    para: list[str] = []
    for line in lines:
        if line.strip():
            para.append(line.rstrip("\n"))
        elif para:
            yield "\n".join(para)
            para = []
    if para:
        yield "\n".join(para)


def iter_texts(path: str) -> Iterator[str]:
    """Just the texts of :func:`read_documents`, bad lines skipped."""
    for item in read_documents(path):
        if isinstance(item, Document):
            yield item.text
