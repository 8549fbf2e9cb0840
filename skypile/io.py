"""Atomic file output on local disks and object stores (via ``pyarrow.fs``).

Every output SkyPile writes goes to ``<name>.tmp-<random>`` first and is renamed
into place only when complete, so a killed job never leaves a half-written shard
that a re-run would mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from typing import IO, Iterator

import pyarrow.fs as pafs


def filesystem_and_path(uri: str) -> tuple[pafs.FileSystem, str]:
    """Resolve a local path or URI (``gs://``, ``s3://``, ``hdfs://``) to a pyarrow filesystem."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    import os

    return pafs.LocalFileSystem(), os.path.abspath(uri)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def exists(uri: str) -> bool:
    fs, path = filesystem_and_path(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def makedirs(uri: str) -> None:
    fs, path = filesystem_and_path(uri)
    fs.create_dir(path, recursive=True)


@contextlib.contextmanager
def atomic_output(uri: str) -> Iterator[IO[bytes]]:
    """Open ``uri`` for writing; it appears under its name only if the block succeeds."""
    fs, path = filesystem_and_path(uri)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with fs.open_output_stream(tmp) as out:
            yield out
        fs.move(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.delete_file(tmp)
        raise


def atomic_write_bytes(uri: str, data: bytes) -> None:
    with atomic_output(uri) as out:
        out.write(data)


def atomic_write_text(uri: str, text: str) -> None:
    atomic_write_bytes(uri, text.encode("utf-8"))


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem_and_path(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def sha256_of(uri: str, chunk: int = 1 << 20) -> str:
    fs, path = filesystem_and_path(uri)
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()
