"""Byte streams for the WARC reader: any path/URI or file object in, damage reported, not raised.

FastWARC reads Python file objects but (a) calls ``tell()``, which pyarrow's
object-store streams refuse, and (b) ends silently when a gzip stream is cut off
between records.  So gzip is inflated here, member by member, and a stream that
ends inside a member, or holds corrupt deflate data, is *recorded* as damage
(:attr:`GunzipStream.damage`) while the reader sees a clean EOF: the WARC reader
then reports it as one ``truncated_input`` / ``read_error`` drop.
"""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO

from skypile.io import filesystem_and_path

READ_CHUNK = 1 << 20
MAX_INFLATE_CHUNK = 4 << 20  # bounds memory per read even for a gzip bomb
GZIP_MAGIC = b"\x1f\x8b"


class CountingStream(io.RawIOBase):
    """Read-only raw stream over anything with ``read(n)``, with a working ``tell()``."""

    def __init__(self, inner: BinaryIO, owns: bool = True):
        self._inner = inner
        self._owns = owns
        self._pos = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._owns and not self.closed:
            self._inner.close()
        super().close()

    def readinto(self, buf) -> int:  # type: ignore[override]
        data = self._inner.read(len(buf))
        n = len(data)
        buf[:n] = data
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos


class GunzipStream(io.RawIOBase):
    """Multi-member gzip inflater that turns truncation/corruption into :attr:`damage` + EOF."""

    def __init__(self, inner: BinaryIO):
        self._inner = inner
        self._d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._member_started = False
        self._buf = b""
        self._off = 0
        self._pos = 0
        self._eof = False
        self.damage: tuple[str, str] | None = None  # (reason, detail)

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _fill(self) -> None:
        d = self._d
        if d.eof:  # member complete: the next one starts with the leftover bytes
            pending = d.unused_data
            self._d = d = zlib.decompressobj(zlib.MAX_WBITS | 16)
            self._member_started = False
        else:
            pending = d.unconsumed_tail
        if not pending:
            pending = self._inner.read(READ_CHUNK)
            if not pending:
                if self._member_started:
                    self.damage = ("truncated_input", f"gzip stream ends inside a member at byte {self._pos}")
                self._eof = True
                return
        if not self._member_started and not pending.startswith(GZIP_MAGIC[: len(pending)]):
            if not pending.strip(b"\x00"):  # zero padding after the last member is harmless
                self._eof = True
                return
            self.damage = ("read_error", f"garbage instead of a gzip member at byte {self._pos}")
            self._eof = True
            return
        self._member_started = True
        try:
            self._buf = d.decompress(pending, MAX_INFLATE_CHUNK)
        except zlib.error as e:
            self.damage = ("read_error", f"corrupt gzip data near byte {self._pos}: {e}")
            self._eof = True
            return
        self._off = 0

    def readinto(self, buf) -> int:  # type: ignore[override]
        while self._off >= len(self._buf) and not self._eof:
            self._fill()
        n = min(len(buf), len(self._buf) - self._off)
        buf[:n] = self._buf[self._off : self._off + n]
        self._off += n
        self._pos += n
        return n


def open_binary(source: str | BinaryIO) -> tuple[BinaryIO, str]:
    """Open a local path or ``gs://``/``s3://`` URI (via pyarrow.fs) or wrap a file object.

    Returns a buffered stream (with ``peek``) and a display name for provenance.
    The object store stream is opened *without* pyarrow's own decompression:
    compression is detected from the bytes, not the file name.  Closing the
    result closes what was opened here, never a caller's file object.
    """
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        uri = str(source)
        fs, path = filesystem_and_path(uri)
        raw = CountingStream(fs.open_input_stream(path, compression=None))
        name = uri
    else:
        raw, name = CountingStream(source, owns=False), str(getattr(source, "name", "") or "")
    return io.BufferedReader(raw, READ_CHUNK), name
