"""en–zh pairs as documents: CSV/TSV with a Chinese and an English column, JSONL/Parquet rows, or two aligned files.

* CSV/TSV (``.csv``, ``.tsv``, optionally gzipped): RFC-4180 quoting, a header
  row unless the first row reads as a pair (a Chinese cell and a Latin one; with
  column names set, the header must hold them).  The columns are ``zh_column`` /
  ``en_column`` (a header name or a 0-based index); when not given, the Chinese
  column is the one with most Han characters in the first rows and the English
  one the one with most Latin letters among the others (WMT's ``0,1`` files need
  no setting).  A malformed row (a stray or unterminated quote) is a ``bad_csv``
  drop; the lines its quote ran over are read again one by one, so it costs its
  own line only, never the rows after it.
* JSONL/Parquet: fields ``zh``/``en`` (or the configured names), or a
  ``translation: {en, zh}`` object as in Hugging Face's WMT sets.
* Two aligned files ``NAME.zh`` and ``NAME.en`` (line *i* translates line *i*):
  give either or both; the pair is one split.  Lines end at ``\n`` only (a lone
  ``\r`` inside a line is text, not a line break), and files whose line counts
  differ are refused before any work (:class:`InputError`): one missing line
  would shift every later pair.

gzip is told by its bytes, not the name.  Each pair becomes one document
(:func:`skypile.parallel.pairs.pair_text`); a row missing a side is a ``read``
drop (``empty_side``).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import re
from pathlib import PurePosixPath
from typing import Any, Iterator, Sequence

from skypile import io
from skypile.document import DocMetadata, Document, Dropped
from skypile.parallel.pairs import LANG, han_share, pair_text
from skypile.readers.rows import ROW_SUFFIXES, iter_rows, open_binary, open_text, row_columns
from skypile.readers.sources import STAGE, InputError, Split

DEFAULT_SOURCE = "parallel/en-zh"
TABLE_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
ALIGNED = re.compile(r"^(.*)\.(zh|en)(\.gz)?$")
DETECT_ROWS = 200
_LATIN_RE = re.compile("[A-Za-z]")


def _id(*parts: object) -> str:
    return hashlib.blake2b(":".join(map(str, parts)).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def _open_text(path: str) -> Any:
    return open_text(path, newline="")  # csv wants the line ends as they are


def aligned_lines(path: str) -> Iterator[str]:
    """The lines of one side of an aligned pair: split at ``\n`` only, line end (``\n``, ``\r\n``) removed."""
    with open_binary(path) as f:
        first = True
        for raw in f:
            line = raw.decode("utf-8", errors="replace").removesuffix("\n").removesuffix("\r")
            if first:
                line, first = line.removeprefix("\ufeff"), False
            yield line


def _count_lines(path: str) -> int:
    return sum(1 for _ in aligned_lines(path))


class _Taken:
    """A line iterator that remembers the lines the csv reader took for the current record."""

    def __init__(self, lines: Iterator[str]):
        self.lines, self.taken = lines, []

    def __iter__(self) -> "_Taken":
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.taken.append(line)
        return line


def csv_records(f: Any, delimiter: str, width: int = 0) -> Iterator[tuple[list[str] | None, str]]:
    """``(fields, "")`` per record, or ``(None, why)`` per malformed one (strict RFC 4180).

    A record that fails, or that runs over several lines without having ``width`` fields (an
    unterminated quote swallowing the next rows), costs its first line only: the lines after
    it are parsed again one by one.  ``width`` 0: the first record's width.
    """
    lines = _Taken(iter(f))
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    while True:
        lines.taken = []
        try:
            rec, why = next(reader), ""
        except StopIteration:
            return
        except csv.Error as exc:
            rec, why = None, str(exc)
        taken = lines.taken
        width = width or (len(rec) if rec else 0)
        if rec is not None and (len(taken) <= 1 or len(rec) == width):
            yield rec, ""
            continue
        yield None, why or f"a quoted field runs over {len(taken)} lines"
        for line in taken[1:]:
            try:
                yield next(csv.reader([line], delimiter=delimiter, strict=True), []), ""
            except csv.Error as exc:
                yield None, str(exc)


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
                    if not self._is_data(header):
                        self._columns(path, header)
                    elif len(header) < 2:
                        raise InputError(f"input {path}: needs a Chinese and an English column (first row: {', '.join(header)})")
                elif path.endswith(ROW_SUFFIXES):
                    cols = row_columns(path)
                    if cols and "translation" not in cols and not {self.zh_column or "zh", self.en_column or "en"} <= set(cols):
                        raise InputError(f"input {path}: rows need zh and en fields or a translation object (found: {', '.join(cols)})")
                elif ALIGNED.match(path):
                    zh_path, en_path = _sibling(path, "zh"), _sibling(path, "en")
                    for side in (zh_path, en_path):
                        if not io.exists(side):
                            raise InputError(f"input {path}: aligned file {side} is missing")
                    n_zh, n_en = _count_lines(zh_path), _count_lines(en_path)
                    if n_zh != n_en:
                        raise InputError(f"input {path}: aligned files differ in length ({zh_path}: {n_zh} lines, "
                                         f"{en_path}: {n_en} lines): line i of one must translate line i of the other")
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

    def _is_data(self, first: list[str]) -> bool:
        """Whether a CSV's first row is a pair, not a header: it has a Chinese cell and a Latin one.  With
        column names set, the first row is the header that must hold them."""
        if any(c and not c.isdigit() for c in (self.zh_column, self.en_column)):
            return False
        han = [i for i, cell in enumerate(first) if han_share(cell) >= 0.5]
        return bool(han) and any(_LATIN_RE.search(cell) for i, cell in enumerate(first) if i not in han)

    def _table(self, path: str) -> Iterator[Document | Dropped]:
        name = PurePosixPath(path).name
        with _open_text(path) as f:
            records = csv_records(f, self._delimiter(path))
            row = 0
            try:
                head: list[tuple[list[str] | None, str]] = list(itertools.islice(records, DETECT_ROWS + 1))
                first = head[0][0] if head else None
                header = [] if first is None or self._is_data(first) else first
                if header:
                    head, row = head[1:], 1
                sample = [rec for rec, _ in head if rec is not None]
                names = header or [str(i) for i in range(max(2, len(sample[0]) if sample else 2))]  # no header: 0, 1, ...
                zh, en = self._columns(path, names, sample)
                for rec, why in itertools.chain(head, records):
                    row += 1
                    if rec is None:
                        yield Dropped(stage=STAGE, reason="bad_csv", id=_id(path, row), detail=f"{name}:{row}: {why}")
                    elif len(rec) <= max(zh, en):
                        yield Dropped(stage=STAGE, reason="empty_side", id=_id(path, row), detail=f"{name}:{row}")
                    else:
                        yield self._pair(path, row, rec[en], rec[zh])
            except (OSError, EOFError) as exc:
                yield Dropped(stage=STAGE, reason="read_error", detail=f"{name} after row {row}: {type(exc).__name__}: {exc}")

    def _rows(self, path: str) -> Iterator[Document | Dropped]:
        zh_key, en_key = self.zh_column or "zh", self.en_column or "en"
        for row, rec in iter_rows(path):
            if isinstance(rec, Dropped):
                yield rec
                continue
            pair = rec.get("translation") if isinstance(rec.get("translation"), dict) else rec
            yield self._pair(path, row, pair.get(en_key), pair.get(zh_key))

    def _aligned(self, path: str) -> Iterator[Document | Dropped]:
        """Checked to be of equal length at planning; a file changed since is read to the shorter one, the rest one drop."""
        en_path = _sibling(path, "en")
        rest = 0
        for row, (zh, en) in enumerate(itertools.zip_longest(aligned_lines(path), aligned_lines(en_path)), 1):
            if zh is None or en is None:
                rest += 1
                continue
            yield self._pair(path, row, en, zh)
        if rest:
            yield Dropped(stage=STAGE, reason="misaligned", detail=f"{path} / {en_path}: {rest} lines have no counterpart")
