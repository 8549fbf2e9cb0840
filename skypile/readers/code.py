"""Source files as documents: loose files (a directory tree) or rows of JSONL/Parquet with path + content.

The path becomes ``doc.url`` (``code_lang`` reads the language from it), the
content ``doc.text``.  Loose files are grouped into splits of up to
``FILES_PER_SPLIT`` files or ``split_size`` bytes, so a repository of many small
files is a few tasks, not one task per file; a row file is one split.  A group
is a range ``[start, end)`` of the loose input files, which the source keeps from
planning (it travels with the source to every worker).  A file
that is not UTF-8 (a binary, an image) or larger than ``max_file_bytes`` is a
``read`` drop with its reason.  Ids are a hash of the file path (and row), so
they are unique and stable across runs.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import PurePosixPath
from typing import Iterator, Sequence

from skypile import io
from skypile.document import DocMetadata, Document, Dropped
from skypile.readers.rows import is_row_file, iter_rows, row_columns
from skypile.readers.sources import STAGE, InputError, Split

DEFAULT_SOURCE = "code/github"
FILES_PER_SPLIT = 1000
CONTENT_FIELDS = ("content", "text")
PATH_FIELDS = ("path", "filename", "url")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _id(*parts: object) -> str:
    return hashlib.blake2b(":".join(map(str, parts)).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def _first(row: dict, names: Sequence[str]) -> object:
    return next((row[n] for n in names if row.get(n) not in (None, "")), None)


class CodeSource:
    """Loose source files and JSONL/Parquet rows (``path`` + ``content``) → :class:`Document`."""

    name = STAGE
    kind = "code"

    def __init__(self, source: str = "", max_file_bytes: int = 1 << 20, split_size: int = 256 << 20):
        self.source = source or DEFAULT_SOURCE
        self.max_file_bytes = max_file_bytes
        self.split_size = split_size

    def check(self, paths: Sequence[str]) -> None:
        for path in paths:
            if not is_row_file(path):
                continue  # a loose file: any bytes are a candidate, unreadable ones are counted drops
            try:
                cols = row_columns(path)
            except Exception as exc:  # noqa: BLE001 - a user error naming the file
                raise InputError(f"cannot read input {path}: {type(exc).__name__}: {exc}") from None
            if cols and not (set(cols) & set(CONTENT_FIELDS) and set(cols) & set(PATH_FIELDS)):
                raise InputError(f"input {path}: code rows need a content and a path column (found: {', '.join(cols)})")

    def splits(self, paths: Sequence[str]) -> list[Split]:
        """Row files: one split each.  Loose files: consecutive groups, ``[start, end)`` into :attr:`loose`."""
        self.loose = [p for p in paths if not is_row_file(p)]
        out: list[Split] = []
        first, size = 0, 0

        def close(end: int) -> None:
            nonlocal first, size
            if end > first:
                out.append(Split(name=f"{len(out):05d}-0000", path=self.loose[first], start=first, end=end))
            first, size = end, 0

        i = 0
        for path in paths:
            if is_row_file(path):
                close(i)
                out.append(Split(name=f"{len(out):05d}-0000", path=path))
                continue
            i += 1
            size += os.path.getsize(path) if "://" not in path else 0
            if i - first >= FILES_PER_SPLIT or size >= self.split_size > 0:
                close(i)
        close(i)
        return out

    def read(self, split: Split) -> Iterator[Document | Dropped]:
        if is_row_file(split.path):
            yield from self._rows(split.path)
            return
        if split.end is None or getattr(self, "loose", [])[split.start : split.start + 1] != [split.path]:
            raise RuntimeError(f"split {split.name} names loose files this source did not plan (call splits() first)")
        for path in self.loose[split.start : split.end]:
            yield self._file(path)

    def _file(self, path: str) -> Document | Dropped:
        doc_id = _id(path)
        try:
            fs, p = io.filesystem_and_path(path)
            size = fs.get_file_info(p).size
            if size > self.max_file_bytes:
                return Dropped(stage=STAGE, reason="too_large", id=doc_id, url=path, detail=f"{size} > {self.max_file_bytes} bytes")
            data = io.read_bytes(path)
        except OSError as exc:
            return Dropped(stage=STAGE, reason="read_error", id=doc_id, url=path, detail=f"{type(exc).__name__}: {exc}")
        return self._document(doc_id, path, path, data)

    def _document(self, doc_id: str, where: str, source_path: str, content: bytes | str) -> Document | Dropped:
        if isinstance(content, bytes):
            if b"\0" in content:
                return Dropped(stage=STAGE, reason="binary", id=doc_id, url=where)
            try:
                content = content.decode("utf-8")
            except UnicodeDecodeError:
                return Dropped(stage=STAGE, reason="not_utf8", id=doc_id, url=where)
        content = _SURROGATE_RE.sub("\ufffd", content)  # valid JSON, but not encodable as UTF-8
        if len(content.encode("utf-8")) > self.max_file_bytes:
            return Dropped(stage=STAGE, reason="too_large", id=doc_id, url=where, detail=f"> {self.max_file_bytes} bytes")
        if not content.strip():
            return Dropped(stage=STAGE, reason="no_text", id=doc_id, url=where)
        return Document(id=doc_id, text=content, source=self.source, url=where,
                        metadata=DocMetadata(n_chars=len(content), source_path=source_path))

    def _rows(self, path: str) -> Iterator[Document | Dropped]:
        name = PurePosixPath(path).name
        for row, rec in iter_rows(path):
            if isinstance(rec, Dropped):
                yield rec
                continue
            where, content = _first(rec, PATH_FIELDS), _first(rec, CONTENT_FIELDS)
            doc_id = _id(path, row)
            if not isinstance(where, str) or not isinstance(content, str):
                yield Dropped(stage=STAGE, reason="no_path_or_content", id=doc_id, detail=f"{name}:{row}")
                continue
            if rec.get("repo_name") or rec.get("repo"):
                where = f"{rec.get('repo_name') or rec.get('repo')}/{where}"
            yield self._document(doc_id, where, path, content)
