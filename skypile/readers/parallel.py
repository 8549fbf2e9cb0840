"""en–zh pairs as documents: CSV/TSV with a Chinese and an English column, JSONL/Parquet rows, or two aligned files.

* CSV/TSV (``.csv``, ``.tsv``, optionally ``.gz``): RFC-4180 quoting, a header row.
  The columns are ``zh_column`` / ``en_column`` (a header name or a 0-based
  index); when not given, the Chinese column is the one with most Han
  characters in the first rows and the English one the one with most Latin
  letters among the others (WMT's ``0,1`` files need no setting).
* JSONL/Parquet: fields ``zh``/``en`` (or the configured names), or a
  ``translation: {en, zh}`` object as in Hugging Face's WMT sets.
* Two aligned files ``NAME.zh`` and ``NAME.en`` (line *i* translates line *i*):
  give either or both; the pair is one split.  Files of unequal length are
  read to the shorter one and the rest is one ``read`` drop (``misaligned``).

Each pair becomes one document (:func:`skypile.parallel.pairs.pair_text`); a row
missing a side is a ``read`` drop (``empty_side``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io as pyio
import itertools
import re
from pathlib import PurePosixPath
from typing import Any, Iterator, Sequence

from skypile import io
from skypile.document import DocMetadata, Document, Dropped
from skypile.parallel.pairs import LANG, han_share, pair_text
from skypile.readers.rows import ROW_SUFFIXES, iter_rows, row_columns
from skypile.readers.sources import STAGE, InputError, Split

DEFAULT_SOURCE = "parallel/en-zh"
TABLE_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
ALIGNED = re.compile(r"^(.*)\.(zh|en)(\.gz)?$")
DETECT_ROWS = 200
_LATIN_RE = re.compile("[A-Za-z]")


def _id(*parts: object) -> str:
    return hashlib.blake2b(":".join(map(str, parts)).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def _open_text(path: str) -> Any:
    fs, p = io.filesystem_and_path(path)
    raw = fs.open_input_stream(p, compression=None)
    binary = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
    return pyio.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")


def _sibling(path: str, lang: str) -> str:
    m = ALIGNED.match(path)
    assert m is not None
    return f"{m.group(1)}.{lang}{m.group(3) or ''}"


class ParallelSource:
    """Pairs from CSV/TSV, JSONL/Parquet or aligned ``.zh``/``.en`` files → :class:`Document` (one per pair)."""

    name = STAGE
    kind = "parallel"

    def __init__(self, source: str = "", zh_column: str = "", en_column: str = ""):
        self.source = source or DEFAULT_SOURCE
        self.zh_column, self.en_column = zh_column, en_column

    # -- planning
    def check(self, paths: Sequence[str]) -> None:
        for path in paths:
            try:
                if path.endswith(TABLE_SUFFIXES):
                    with _open_text(path) as f:
                        header = next(csv.reader(f, delimiter=self._delimiter(path)), [])
                    self._columns(path, header)
                elif path.endswith(ROW_SUFFIXES):
                    cols = row_columns(path)
                    if cols and "translation" not in cols and not {self.zh_column or "zh", self.en_column or "en"} <= set(cols):
                        raise InputError(f"input {path}: rows need zh and en fields or a translation object (found: {', '.join(cols)})")
                elif ALIGNED.match(path):
                    for side in (_sibling(path, "zh"), _sibling(path, "en")):
                        if not io.exists(side):
                            raise InputError(f"input {path}: aligned file {side} is missing")
                else:
                    raise InputError(f"input {path}: unknown format (expected .csv, .tsv, .jsonl, .parquet, or NAME.zh + NAME.en)")
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - unreadable: a user error naming the file
                raise InputError(f"cannot read input {path}: {type(exc).__name__}: {exc}") from None

    def splits(self, paths: Sequence[str]) -> list[Split]:
        out: list[Split] = []
        seen: set[str] = set()
        for path in paths:
            if ALIGNED.match(path) and not path.endswith(TABLE_SUFFIXES + ROW_SUFFIXES):
                path = _sibling(path, "zh")  # the pair is read from its .zh file
                if path in seen:
                    continue
            seen.add(path)
            out.append(Split(name=f"{len(out):05d}-0000", path=path))
        return out

    # -- reading
    def read(self, split: Split) -> Iterator[Document | Dropped]:
        path = split.path
        if path.endswith(TABLE_SUFFIXES):
            return self._table(path)
        if path.endswith(ROW_SUFFIXES):
            return self._rows(path)
        return self._aligned(path)

    def _pair(self, path: str, where: int, en: Any, zh: Any) -> Document | Dropped:
        doc_id = _id(path, where)
        if not isinstance(en, str) or not isinstance(zh, str) or not en.strip() or not zh.strip():
            return Dropped(stage=STAGE, reason="empty_side", id=doc_id, detail=f"{PurePosixPath(path).name}:{where}")
        text = pair_text(en, zh)
        return Document(id=doc_id, text=text, source=self.source, lang=LANG,
                        metadata=DocMetadata(n_chars=len(text), source_path=path))

    @staticmethod
    def _delimiter(path: str) -> str:
        return "\t" if ".tsv" in PurePosixPath(path).name else ","

    def _columns(self, path: str, header: list[str], sample: list[list[str]] | None = None) -> tuple[int, int]:
        """Indices of the Chinese and English columns (from the settings, or detected from ``sample``)."""

        def index(spec: str) -> int:
            if spec in header:
                return header.index(spec)
            if spec.isdigit() and int(spec) < len(header):
                return int(spec)
            raise InputError(f"input {path}: no column {spec!r} (header: {', '.join(header)})")

        if len(header) < 2:
            raise InputError(f"input {path}: needs a Chinese and an English column (header: {', '.join(header)})")
        if self.zh_column and self.en_column:
            return index(self.zh_column), index(self.en_column)
        if sample is None:
            return 0, 1  # settled when the rows are read
        han = [sum(han_share(r[i]) for r in sample if len(r) > i) for i in range(len(header))]
        latin = [sum(len(_LATIN_RE.findall(r[i])) for r in sample if len(r) > i) for i in range(len(header))]
        zh = index(self.zh_column) if self.zh_column else max(range(len(header)), key=lambda i: (han[i], -i))
        en = index(self.en_column) if self.en_column else max((i for i in range(len(header)) if i != zh), key=lambda i: (latin[i], -i))
        return zh, en

    def _table(self, path: str) -> Iterator[Document | Dropped]:
        with _open_text(path) as f:
            rows = csv.reader(f, delimiter=self._delimiter(path))
            header = next(rows, [])
            head = list(itertools.islice(rows, DETECT_ROWS))
            zh, en = self._columns(path, header, head)
            row = 1
            try:
                for row, rec in enumerate(itertools.chain(head, rows), 2):
                    if len(rec) <= max(zh, en):
                        yield Dropped(stage=STAGE, reason="empty_side", id=_id(path, row), detail=f"{PurePosixPath(path).name}:{row}")
                        continue
                    yield self._pair(path, row, rec[en], rec[zh])
            except (csv.Error, OSError, EOFError) as exc:
                yield Dropped(stage=STAGE, reason="read_error", detail=f"{PurePosixPath(path).name} after row {row}: {type(exc).__name__}: {exc}")

    def _rows(self, path: str) -> Iterator[Document | Dropped]:
        zh_key, en_key = self.zh_column or "zh", self.en_column or "en"
        for row, rec in iter_rows(path):
            if isinstance(rec, Dropped):
                yield rec
                continue
            pair = rec.get("translation") if isinstance(rec.get("translation"), dict) else rec
            yield self._pair(path, row, pair.get(en_key), pair.get(zh_key))

    def _aligned(self, path: str) -> Iterator[Document | Dropped]:
        en_path = _sibling(path, "en")
        rest = 0
        with _open_text(path) as zh_f, _open_text(en_path) as en_f:
            for row, (zh, en) in enumerate(itertools.zip_longest(zh_f, en_f), 1):
                if zh is None or en is None:
                    rest += 1
                    continue
                yield self._pair(path, row, en, zh)
        if rest:
            yield Dropped(stage=STAGE, reason="misaligned", detail=f"{path} / {en_path}: {rest} lines have no counterpart")
