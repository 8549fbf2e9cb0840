"""Sources: what a recipe reads, and how its input files are cut into tasks (splits).

A :class:`Split` is the unit of work of the first pass: one input file, or one
byte range of a large per-record-gzip WARC.  Split names are deterministic and
sort in input order, so every executor writes the same part files and packs
them into the same shards.

Inputs are checked before any work starts (:meth:`check`): a path that does not
exist, a format we cannot read, or a Parquet file without a text column is a
one-line :class:`InputError` naming the file, not a traceback an hour in.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import pyarrow.fs as pafs

from skypile import io
from skypile.document import Document, Dropped, RawRecord
from skypile.errors import UserError

STAGE = "read"
DOCUMENT_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".json", ".parquet")


class InputError(UserError):
    """An input the user must fix: missing, unreadable, or not in a format we read."""


@dataclass(frozen=True, order=True)
class Split:
    name: str  # "<file index>-<range index>": sorts in input order
    path: str
    start: int = 0
    end: int | None = None  # None: to the end of the file


def _has_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Local globs (``**`` allowed) and object-store URIs (``gs://b/crawl/*.warc.gz``) → sorted files."""
    out: list[str] = []
    for pat in patterns:
        if "://" in pat and not pat.startswith("file://"):
            matches = _expand_uri(pat)
        else:
            local = pat.removeprefix("file://")
            found = _walk_glob(local) if "**" in local else glob.glob(local)
            matches = sorted({os.path.abspath(p) for p in found if os.path.isfile(p)})
        if not matches:
            raise InputError(f"no input file matches {pat!r}")
        out.extend(m for m in matches if m not in out)
    return out


def _walk_glob(pattern: str) -> Iterator[str]:
    """``glob.glob(pattern, recursive=True)``, except that ``**`` never enters a symbolic link to a directory.

    ``glob`` follows them, so a link back up the tree repeats every file below it until the path is too
    long (18 files read as 1,337), and two such links make the walk exponential.  As in ``glob``,
    names starting with a dot match only a pattern part that starts with one.
    """
    parts = pattern.split(os.sep)
    root = os.sep if pattern.startswith(os.sep) else os.curdir
    yield from _match(root, [p for p in parts if p] if pattern.startswith(os.sep) else parts, root == os.curdir)


def _match(base: str, parts: list[str], relative: bool) -> Iterator[str]:
    def child(name: str) -> str:
        return name if relative and base == os.curdir else os.path.join(base, name)

    if not parts:
        yield base
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        yield from _match(base, rest, relative)  # ** as no directory at all
        for entry in _scan(base):
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from _match(child(entry.name), parts, relative)
            elif not rest:
                yield child(entry.name)
    elif glob.has_magic(head):
        for entry in _scan(base):
            if fnmatch.fnmatchcase(entry.name, head) and (head.startswith(".") or not entry.name.startswith(".")):
                yield from _match(child(entry.name), rest, relative)
    elif os.path.lexists(child(head)):
        yield from _match(child(head), rest, relative)


def _scan(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError:  # not a directory, or unreadable: matches nothing, as in glob
        return []


def _expand_uri(pattern: str) -> list[str]:
    """Object-store files matching ``pattern``: list below its last glob-free folder, then match."""
    scheme, base = pattern.split("://", 1)
    if not _has_glob(base):
        fs, path = pafs.FileSystem.from_uri(pattern)
        return [pattern] if fs.get_file_info(path).type == pafs.FileType.File else []
    root = base[: min(base.find(c) for c in "*?[" if c in base)].rsplit("/", 1)[0]
    fs, path = pafs.FileSystem.from_uri(f"{scheme}://{root}")
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    glob_pat = base.replace("**/", "*")
    return sorted(f"{scheme}://{i.path}" for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatch(i.path, glob_pat))


def file_identity(path: str) -> dict:
    """Name, size and modification time: what the run's fingerprint takes from an input file."""
    fs, p = io.filesystem_and_path(path)
    info = fs.get_file_info(p)
    if info.type != pafs.FileType.File:
        raise InputError(f"input {path} is not a readable file")
    return {"path": path, "size": info.size, "mtime_ns": info.mtime_ns}


class WarcSource:
    """WARC/WET files → :class:`RawRecord` | :class:`Dropped`, one item per WARC record."""

    name = STAGE
    kind = "warc"

    def __init__(self, source: str = "web/warc", max_payload_bytes: int = 64 << 20, split_size: int = 0):
        self.source = source or "web/warc"
        self.max_payload_bytes = max_payload_bytes
        self.split_size = split_size

    def check(self, paths: Sequence[str]) -> None:
        for path in paths:
            try:
                fs, p = io.filesystem_and_path(path)
                with fs.open_input_stream(p) as f:
                    f.read(4)
            except Exception as exc:  # noqa: BLE001 - reported as a user error naming the file
                raise InputError(f"cannot read input {path}: {exc}") from None

    def splits(self, paths: Sequence[str]) -> list[Split]:
        out = []
        for i, path in enumerate(paths):
            ranges = [(0, None)]
            if self.split_size > 0 and "://" not in path and os.path.getsize(path) > self.split_size:
                from skypile.readers.warc import warc_ranges

                ranges = [(s, e) for s, e in warc_ranges(path, self.split_size)] or [(0, None)]
            for j, (start, end) in enumerate(ranges):
                end = None if len(ranges) == 1 else end
                out.append(Split(name=f"{i:05d}-{j:04d}", path=path, start=start, end=end))
        return out

    def read(self, split: Split) -> Iterator[RawRecord | Dropped]:
        from skypile.readers.warc import read_warc

        if split.start or split.end is not None:
            return read_warc(split.path, self.source, max_payload_bytes=self.max_payload_bytes, start=split.start, end=split.end)
        return read_warc(split.path, self.source, max_payload_bytes=self.max_payload_bytes)


class DocumentSource:
    """JSONL(.gz) / Parquet documents (``text`` or ``content``, optional id/url/source/lang)."""

    name = STAGE
    kind = "documents"

    def __init__(self, source: str = ""):
        self.source = source

    def check(self, paths: Sequence[str]) -> None:
        from skypile.readers.jsonl import check_document_file

        for path in paths:
            check_document_file(path)

    def splits(self, paths: Sequence[str]) -> list[Split]:
        return [Split(name=f"{i:05d}-0000", path=path) for i, path in enumerate(paths)]

    def read(self, split: Split) -> Iterator[Document | Dropped]:
        from skypile.readers.jsonl import read_documents

        return read_documents(split.path, self.source)
