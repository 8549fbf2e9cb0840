"""Files on local disks and object stores (via ``pyarrow.fs``): atomic output, and local copies of models.

Every output SkyPile writes goes to ``<name>.tmp-<random>`` first and is renamed
into place only when complete, so a killed job never leaves a half-written shard
that a re-run would mistake for a finished one.

``pyarrow.fs`` is imported on first use (~0.2 s of CPU): a plain local path is
checked and written with ``os`` alone, so a light command (``skypile extract``,
``skypile mix``, ``--help``) never loads pyarrow.

Models are named by path or URI (``gs://``, ``s3://``, ``hdfs://``, ``file://``);
libraries that load only from a local path (fastText, KenLM) get
:func:`local_copy`, so a cluster worker needs no path that exists only on the
machine that submitted the job.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import uuid
from typing import IO, TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import pyarrow.fs as pafs


def filesystem_and_path(uri: str) -> tuple[pafs.FileSystem, str]:
    """Resolve a local path or URI (``gs://``, ``s3://``, ``hdfs://``) to a pyarrow filesystem."""
    import pyarrow.fs as pafs

    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def is_uri(path: str) -> bool:
    return "://" in path


def local_path(uri: str) -> str | None:
    """The local path of a plain path or ``file://`` URI; None for an object-store URI."""
    if not is_uri(uri):
        return os.path.abspath(uri)
    return filesystem_and_path(uri)[1] if uri.startswith("file://") else None


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def exists(uri: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem_and_path(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def makedirs(uri: str) -> None:
    fs, path = filesystem_and_path(uri)
    fs.create_dir(path, recursive=True)


@contextlib.contextmanager
def atomic_output(uri: str) -> Iterator[IO[bytes]]:
    """Open ``uri`` for writing; it appears under its name only if the block succeeds.

    A local path is written with ``os`` alone (no filesystem layer to load); a URI through pyarrow's
    filesystem.  Either way: a temp name beside the target, renamed into place when complete.
    """
    if is_uri(uri):
        fs, path = filesystem_and_path(uri)
        parent = path.rsplit("/", 1)[0]
        if parent:
            fs.create_dir(parent, recursive=True)
        open_tmp, commit, discard = fs.open_output_stream, fs.move, fs.delete_file
    else:
        path = os.path.abspath(uri)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open_tmp, commit, discard = (lambda p: open(p, "wb")), os.replace, os.unlink
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with open_tmp(tmp) as out:
            yield out
        commit(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            discard(tmp)
        raise


def check_output_file(uri: str, option: str) -> None:
    """Before any work: ``uri`` can be written as a file (not a directory; its folder exists or can be made, and
    takes a new file), else :class:`~skypile.errors.OutputError` naming ``option``.  Object stores are not probed."""
    path = local_path(uri)
    if path is None:
        return
    if os.path.isdir(path):
        raise _output_error(option, path, "is a directory, not a file")
    _probe_dir(os.path.dirname(path), option, path)


def check_output_dir(uri: str, option: str) -> None:
    """Before any work: ``uri`` is a directory (made if missing) that takes new files, else
    :class:`~skypile.errors.OutputError` naming ``option``.  Object stores are not probed."""
    path = local_path(uri)
    if path is None:
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise _output_error(option, path, "is a file, not a directory")
    _probe_dir(path, option, path)


def _probe_dir(folder: str, option: str, path: str) -> None:
    """Make ``folder`` and create (then remove) a file in it: the one test that also catches read-only mounts."""
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


def local_copy(uri: str, cache_dir: str | None = None) -> str:
    """A local file with the content of ``uri``: the path itself for a plain path, else a cached copy.

    A URI (``file://`` included, so that path is exercised where there is no object store) is
    copied once per machine into ``cache_dir`` (default: ``$TMPDIR/skypile-models``) under a
    name taken from the URI, its size and its modification time, so a changed file is fetched
    again; the copy is written to a temporary name and renamed, so processes racing for it
    never load half a file. Raises ``FileNotFoundError`` when ``uri`` does not exist.
    """
    if not is_uri(uri):
        return uri
    import pyarrow.fs as pafs

    fs, path = filesystem_and_path(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"{uri} does not exist or is not a file")
    key = hashlib.sha256(f"{uri}\0{info.size}\0{info.mtime_ns}".encode()).hexdigest()[:16]
    cache = cache_dir or os.path.join(tempfile.gettempdir(), "skypile-models")
    local = os.path.join(cache, f"{key}-{info.base_name}")
    if os.path.isfile(local) and os.path.getsize(local) == info.size:
        return local
    os.makedirs(cache, exist_ok=True)
    tmp = f"{local}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with fs.open_input_stream(path, compression=None) as src, open(tmp, "wb") as dst:
            while True:
                block = src.read(1 << 20)
                if not block:
                    break
                dst.write(block)
        os.replace(tmp, local)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return local


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
