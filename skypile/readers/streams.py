"""Byte streams for the WARC reader: open any path/URI or file object at an offset, walk gzip members.

A crawl file is read as it was written: Common Crawl gzips each WARC record as
its own gzip member, so the member is where a record really ends, whatever its
``Content-Length`` says, and the start of the next member whose data begins
with ``WARC/`` is where reading can pick up again after damage.
:class:`GzipMembers` inflates member by member and knows each member's file
offset; damage (a member cut off by the end of the file, corrupt deflate data,
bytes that are no gzip member) is *recorded* in :attr:`GzipMembers.damage`,
never raised, and :meth:`GzipMembers.seek_warc_member` scans forward to the next
record member, which also finds the first record of a byte range that starts
mid-file.  :class:`WarcGroups` hands the inflated data out one record group at a
time (see there).  Memory stays bounded: zlib is fed 64 KiB at a time and asked
for at most what the caller reads.
"""

from __future__ import annotations

import io
import zlib
from collections import deque
from typing import BinaryIO

from skypile.io import filesystem_and_path

READ_CHUNK = 1 << 20
FEED = 64 << 10  # compressed bytes per zlib call: zlib copies what it leaves over, so keep this small
PROBE_BYTES = 64 << 10  # compressed bytes tried when testing whether an offset starts a WARC member
KEEP_MEMBER = 4 << 20  # compressed bytes of a damaged member kept so that the rescan can start at it
GZIP_MAGIC = b"\x1f\x8b"
GZIP_MEMBER_MAGIC = b"\x1f\x8b\x08"  # magic + "deflate": every gzip member starts so
WARC_MAGIC = b"WARC/"


class InputStream(io.RawIOBase):
    """Read-only raw stream over anything with ``read(n)``: a working ``tell()`` (FastWARC calls it, and
    pyarrow's object-store streams refuse it), the sniffed first bytes handed back first, and ``read(n)``
    passing the inner stream's bytes through without another copy."""

    def __init__(self, inner: BinaryIO, owns: bool = True, prefix: bytes = b"", pos: int = 0):
        self._inner = inner
        self._owns = owns
        self._prefix = prefix
        self._pos = pos

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._owns and not self.closed:
            self._inner.close()
        super().close()

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        if self._prefix:
            out = self._prefix if n < 0 else self._prefix[:n]
            self._prefix = self._prefix[len(out) :]
        else:
            out = self._inner.read() if n < 0 else self._inner.read(n)
        self._pos += len(out)
        return out

    def readinto(self, buf) -> int:  # type: ignore[override]
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._pos


class GzipMembers:
    """Inflates a gzip file one member at a time, knowing the file offset where each member starts.

    ``start_member()`` begins the member at the current offset, ``read(n)``
    inflates it (``b""`` once it ends, cleanly or not), ``seek_warc_member(pos)``
    scans for the next member that inflates to ``WARC/``.  Nothing here raises
    on bad data: :attr:`damage` says what went wrong and :attr:`damage_offset`
    where, so the caller can count it and rescan from just after it.
    """

    def __init__(self, f: BinaryIO, offset: int = 0):
        self._f = f
        self._buf = b""  # compressed bytes, self._buf[0] being at file offset self._base
        self._base = offset
        self._i = 0  # index in _buf of the next byte to inflate or scan
        self._eof = False
        self._d = None  # decompressor of the current member; None between members
        self.member_offset = -1
        self.is_warc = False  # whether the current member's data starts with WARC/
        self._pending = b""  # inflated by the WARC/ test, not yet handed out
        self._out = 0  # inflated bytes of the current member handed out
        self.damage: tuple[str, str] | None = None  # (reason, detail)
        self.damage_offset = -1

    def _available(self, n: int) -> int:
        """Read until ``n`` bytes from the cursor are buffered (or the file ends); how many are."""
        while len(self._buf) - self._i < n and not self._eof:
            chunk = self._f.read(READ_CHUNK)
            if not chunk:
                self._eof = True
                break
            keep = self._i
            start = self.member_offset - self._base
            if self._d is not None and 0 <= start and self._i - start <= KEEP_MEMBER:
                keep = start  # so that a rescan after damage can begin right after the member start
            self._buf = self._buf[keep:] + chunk
            self._base += keep
            self._i -= keep
        return len(self._buf) - self._i

    def _fail(self, reason: str, detail: str, offset: int) -> None:
        self._d = None
        self.damage, self.damage_offset = (reason, detail), offset

    def start_member(self) -> bool:
        """Begin inflating the member at the current offset.

        False at the end of the data (NUL padding after the last member is
        harmless) or when the bytes there are not a gzip member (then
        :attr:`damage` is set).
        """
        self._d, self.damage = None, None
        while True:
            n = self._available(len(GZIP_MEMBER_MAGIC))
            if n == 0:
                return False
            if self._buf[self._i] != 0:
                break
            rest = self._buf[self._i :].lstrip(b"\x00")
            self._i = len(self._buf) - len(rest)
        offset = self._base + self._i
        head = self._buf[self._i : self._i + len(GZIP_MEMBER_MAGIC)]
        if head == GZIP_MEMBER_MAGIC:
            self._d = zlib.decompressobj(zlib.MAX_WBITS | 16)
            self.member_offset, self._out, self._pending = offset, 0, b""
            try:
                self._pending, used = self._head_of(self._d)
            except zlib.error as e:
                self._fail("read_error", f"corrupt gzip member at byte {offset}: {e}", offset)
                used = 0
            self._i += used
            self.is_warc = self._pending == WARC_MAGIC
            return True
        if len(head) < len(GZIP_MEMBER_MAGIC) and GZIP_MEMBER_MAGIC.startswith(head):
            self._fail("truncated_input", f"file ends inside the gzip member at byte {offset}", offset)
        else:
            self._fail("read_error", f"bytes that are no gzip member at byte {offset}: {head!r}", offset)
        return False

    def read(self, n: int) -> bytes:
        """Up to ``n`` inflated bytes of the current member; ``b""`` once it has ended or is damaged."""
        if self._pending:
            out, self._pending = self._pending, b""
            self._out += len(out)
            return out
        d = self._d
        while d is not None and not d.eof:
            if not self._available(1):
                at = self.member_offset
                self._fail("truncated_input", f"file ends inside the gzip member at byte {at}", at)
                break
            piece = memoryview(self._buf)[self._i : self._i + FEED]
            try:
                out = d.decompress(piece, n)
            except zlib.error as e:
                out = self._salvage()
                at = self.member_offset
                self._fail("read_error", f"corrupt gzip member at byte {at}: {e}", at)
                return out
            self._i += len(piece) - len(d.unused_data if d.eof else d.unconsumed_tail)
            if out:
                self._out += len(out)
                return out
        self._d = None
        return b""

    def _salvage(self) -> bytes:
        """After a zlib error: the member's data up to the error that was not handed out yet.

        zlib drops the output of the call that fails (a bad CRC fails the last
        call, i.e. often the whole record), so inflate again in small steps (a rare path).
        Only possible while the member start is still buffered.
        """
        i = self.member_offset - self._base
        if i < 0:
            return b""
        d, skip, out = zlib.decompressobj(zlib.MAX_WBITS | 16), self._out, []
        try:
            while i < len(self._buf) and not d.eof:
                got = d.decompress(self._buf[i : i + 64])
                i += 64
                if len(got) <= skip:
                    skip -= len(got)
                else:
                    out.append(got[skip:])
                    skip = 0
        except zlib.error:
            pass
        return b"".join(out)

    def seek_warc_member(self, pos: int) -> bool:
        """Move to the first offset >= ``pos`` where a gzip member starts whose data begins with ``WARC/``.

        A ``1f 8b 08`` inside compressed data virtually never inflates to
        ``WARC/``, so candidates are simply tried.  False when there is none.
        """
        self._d = None
        while pos - self._base > len(self._buf):  # skip what lies before pos
            self._i = len(self._buf)
            if not self._available(1):
                return False
        i = max(pos - self._base, 0)
        while True:
            j = self._buf.find(GZIP_MEMBER_MAGIC, i)
            if j < 0:
                self._i = max(len(self._buf) - len(GZIP_MEMBER_MAGIC) + 1, i)
                if self._available(len(self._buf) - self._i + 1) < len(GZIP_MEMBER_MAGIC):
                    return False
                i = self._i
                continue
            self._i = j
            if self._starts_warc_member():
                return True
            i = self._i + 1

    def _starts_warc_member(self) -> bool:
        try:
            return self._head_of(zlib.decompressobj(zlib.MAX_WBITS | 16))[0] == WARC_MAGIC
        except zlib.error:
            return False

    def _head_of(self, d) -> tuple[bytes, int]:
        """Inflate the first 5 bytes of the member at the cursor with ``d``: (bytes, compressed bytes used).

        The one test of whether a member starts a record, both for members met
        in sequence and for candidates found by scanning, so that both ways
        agree on where records start (a member that is corrupt further on
        passes it either way).  Raises ``zlib.error``.
        """
        out, used = b"", 0
        while len(out) < len(WARC_MAGIC) and used < PROBE_BYTES and not d.eof:
            if self._available(used + 1) <= used:
                break
            piece = memoryview(self._buf)[self._i + used : self._i + used + 1024]
            out += d.decompress(piece, len(WARC_MAGIC) - len(out))
            used += len(piece) - len(d.unused_data if d.eof else d.unconsumed_tail)
        return out, used


class WarcGroups:
    """The inflated data of a gzip WARC file, one *record group* at a time.

    A group is a member whose data starts with ``WARC/`` plus the members after
    it that do not (a record split over several members).  In a per-record gzip
    file each group is one member holding one record; a whole-file gzip is one
    group.  The reader frames records inside a group, so a group's end is where
    its last record must end; and byte ranges split on groups: a record belongs
    to the range holding its group's offset.

    ``next_group()`` returns the file offset of the next group, ``read(n)`` its
    data (``b""`` at its end).  A group (or the file head, where no group has
    begun) may end in :attr:`damage`; :attr:`damage_at` is the position in the
    group's data where the damaged member began, which tells whether the record
    being read lies in it.  ``resync()`` then scans on past the damage.
    """

    def __init__(self, members: GzipMembers):
        self._m = members
        self._head = b""  # first inflated bytes of the member that starts the next group
        self._head_is_warc = False
        self._pending = b""  # inflated bytes of this group read ahead, not yet handed out
        self._open = False
        self.pos = 0  # bytes of this group handed out so far
        self.member_starts: deque[int] = deque(maxlen=64)  # where the latest continuation members' data began
        self.damage: tuple[str, str] | None = None
        self.damage_at = 0

    def next_group(self) -> int | None:
        """Start the next group; its file offset, or None at the end of the data or at :attr:`damage`."""
        self.pos, self.damage, self.damage_at, self._open = 0, None, 0, False
        self.member_starts.clear()
        if not self._head_is_warc and not self._begin_member():
            self.damage = self._m.damage
            return None
        head, self._head, is_warc, self._head_is_warc = self._head, b"", self._head_is_warc, False
        if not is_warc:  # only where no group has begun yet: the head of the file
            if self._m.damage is None:
                at = self._m.member_offset
                detail = f"not a WARC file: the gzip member at byte {at} starts with {head[:16]!r}"
                self._m.damage = ("read_error", detail)
                self._m.damage_offset = at
            self.damage = self._m.damage
            return None
        self._pending, self._open = head, True
        return self._m.member_offset

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes more of the current group; ``b""`` at its end."""
        while True:
            if self._pending:
                out, self._pending = self._pending[:n], self._pending[n:]
                self.pos += len(out)
                return out
            if not self._open:
                return b""
            out = self._m.read(n)
            if out:
                self.pos += len(out)
                return out
            self._open = False
            if self._m.damage is not None:  # in a member of this group, which began at damage_at
                self.damage = self._m.damage
                return b""
            at = self.pos
            if not self._begin_member():  # end of data, or damage where a member should begin
                self.damage, self.damage_at = self._m.damage, at
                return b""
            if self._head_is_warc:
                return b""  # the next group begins; its head waits in self._head
            # a member continuing this group: its data is this group's
            self._open, self.damage_at = True, at
            self.member_starts.append(at)
            self._pending, self._head = self._head, b""

    def resync(self) -> bool:
        """After :attr:`damage`: move to the next record member after the damaged bytes; False if none."""
        self._head, self._head_is_warc, self._pending, self._open = b"", False, b"", False
        return self._m.seek_warc_member(self._m.damage_offset + 1)

    def _begin_member(self) -> bool:
        """Start the member at the cursor and inflate its first chunk; False if there is none."""
        if not self._m.start_member():
            return False
        self._head_is_warc = self._m.is_warc
        self._head = self._m.read(READ_CHUNK)
        return True


def open_input(source: str | BinaryIO, start: int = 0) -> tuple[InputStream, str, bytes]:
    """Open a local path, ``gs://``/``s3://`` URI (via pyarrow.fs) or file object at byte ``start``.

    Returns the stream positioned at ``start``, a display name for provenance,
    and the file's first 4 bytes (compression is detected from the bytes, never
    the file name, so pyarrow's own decompression stays off).  ``start > 0``
    needs random access: ``open_input_file`` for paths, ``seek`` for file
    objects.  Closing the stream closes what was opened here, never a caller's
    file object.
    """
    owns = isinstance(source, str) or hasattr(source, "__fspath__")
    if owns:
        name = str(source)
        fs, path = filesystem_and_path(name)
        f = fs.open_input_file(path) if start > 0 else fs.open_input_stream(path, compression=None)
    else:
        name, f = str(getattr(source, "name", "") or ""), source
    if start > 0:
        f.seek(0)
        head = f.read(4)
        f.seek(start)
        return InputStream(f, owns, pos=start), name, head
    head = f.read(4)
    return InputStream(f, owns, prefix=head), name, head
