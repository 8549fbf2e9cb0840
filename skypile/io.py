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


def check_output_file(uri: str, option: str) -> None:
    """Before any work: ``uri`` can be written as a file (not a directory; its folder exists or can be made, and
    takes a new file), else :class:`~skypile.errors.OutputError` naming ``option``.  Object stores are not probed."""
    if "://" in uri and not uri.startswith("file://"):
        return
    import os

    path = os.path.abspath(uri.removeprefix("file://"))
    if os.path.isdir(path):
        raise _output_error(option, path, "is a directory, not a file")
    _probe_dir(os.path.dirname(path), option, path)


def check_output_dir(uri: str, option: str) -> None:
    """Before any work: ``uri`` is a directory (made if missing) that takes new files, else
    :class:`~skypile.errors.OutputError` naming ``option``.  Object stores are not probed."""
    if "://" in uri and not uri.startswith("file://"):
        return
    import os

    path = os.path.abspath(uri.removeprefix("file://"))
    if os.path.exists(path) and not os.path.isdir(path):
        raise _output_error(option, path, "is a file, not a directory")
    _probe_dir(path, option, path)


def _probe_dir(folder: str, option: str, path: str) -> None:
    """Make ``folder`` and create (then remove) a file in it: the one test that also catches read-only mounts."""
    import os
    import tempfile

    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".skypile-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _output_error(option, path, f"cannot be written ({exc.strerror or exc})") from None


def _output_error(option: str, path: str, why: str) -> Exception:
    from skypile.errors import OutputError

    return OutputError(f"{option} {path} {why}")


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
