"""Documents from JSON (lines or one array, gzipped or not) or Parquet files: clean corpora, held-out sets, other tools' output.

One reader for every place that takes such files (``skypile export``, tokenizer
training, the trainer's validation sets), so they agree on the fields
(``text`` or ``content``, optional ``id``/``url``/``source``/``lang``) and on
what a bad line is.  Both formats are streamed (a line or array element, or a
Parquet record batch, at a time: :mod:`skypile.readers.rows`), so memory does
not grow with the file.

A bad line or row is a ``read`` drop with a reason, never an exception; text
holding lone surrogates (valid JSON, ``"\\ud800"``, but not encodable as UTF-8)
has them replaced by U+FFFD so no later stage or writer chokes on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import PurePosixPath
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from skypile import io
from skypile.document import DocMetadata, Document, Dropped
from skypile.schema import table_to_documents
from skypile.stage import drop

TEXT_FIELDS = ("text", "content")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
PARQUET_BATCH_ROWS = 256


def _clean(text: str) -> str:
    return _SURROGATE_RE.sub("\ufffd", text)


def _derived_id(path: str, where: int) -> str:
    return hashlib.blake2b(f"{path}:{where}".encode(), digest_size=12).hexdigest()


def check_document_file(path: str) -> None:
    """Raise :class:`~skypile.readers.sources.InputError` unless ``path`` is a readable JSON/Parquet document file."""
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
            check_json_file(path)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable or corrupt: a user error naming the file
        raise InputError(f"cannot read input {path}: {type(exc).__name__}: {exc}") from None


def check_json_file(path: str, probe_lines: int = 20) -> None:
    """Refuse a file that is neither JSON lines nor a JSON array (a CSV or text file by another name), with one
    line: JSON lines whose first ``probe_lines`` non-blank lines all fail to parse.  Later bad lines are counted drops."""
    from skypile.readers.rows import json_layout, open_text
    from skypile.readers.sources import InputError

    if json_layout(path) == "array":
        return
    with open_text(path) as f:
        seen = 0
        for line in f:
            if not line.strip():
                continue
            try:
                json.loads(line)
                return
            except json.JSONDecodeError:
                seen += 1
                if seen >= probe_lines:
                    break
    if seen:
        raise InputError(f"input {path}: neither JSON lines nor a JSON array (its first {seen} non-blank lines are not JSON)")


def read_documents(path: str, source: str = "") -> Iterator[Document | Dropped]:
    """Rows of a JSON file (lines or one array; gzipped or not: ``text``/``content`` + optional id/url/source/lang)
    or a Parquet file, as documents."""
    if path.endswith(".parquet"):
        yield from _read_parquet(path, source)
        return
    from skypile.readers.rows import iter_rows

    name = PurePosixPath(path).name
    for row, rec in iter_rows(path):
        yield rec if isinstance(rec, Dropped) else _document(rec, path, name, row, source, f"{name}:{row}")


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
