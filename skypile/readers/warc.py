"""WARC / WET file → one :class:`RawRecord` or :class:`Dropped` per WARC record (stage ``read``).

Every record read yields exactly one item, so ``stats.json`` can account for
each one: ``response`` records with an HTTP 200 become :class:`RawRecord` (HTML
body, HTTP Content-Type and charset), WET ``conversion`` records become
plain-text :class:`RawRecord`, and everything else is dropped with a reason:

* ``warc_type_<type>``     warcinfo, request, metadata, revisit, resource, …
* ``http_status_<code>``   a response that is not 200 (redirects, errors)
* ``not_http_response``    a response record without an HTTP message (e.g. ``dns:``)
* ``bad_http_headers``     the HTTP header block does not parse
* ``payload_too_large``    record bigger than ``max_payload_bytes`` (never read into memory)
* ``bad_content_encoding`` gzip/deflate/br body that does not inflate (gzip/deflate: or is cut off)
* ``bad_content_length``   Content-Length missing or not a number; in gzip files also one
  smaller than the record (the rest of the record would be lost silently)
* ``truncated_record``     gzip: the record's data ends before its Content-Length does
  (a length too large, or a record cut short in the middle of the file)
* ``truncated_input``      the file ends inside a record (a gzip member or plain file cut off)
* ``read_error``           a corrupt gzip member, bytes that are no WARC record, a header
  that does not end

A damaged record is one drop, with its byte offset in ``detail``, and reading
goes on at the next record: in gzip files at the next gzip member that inflates
to ``WARC/`` (Common Crawl writes one member per record, so a member's end is
where its record really ends, whatever Content-Length says), in plain files at
the next ``WARC/x.y`` line after a blank line.  Nothing raises.  Plain files are
read leniently instead: a wrong numeric Content-Length is *repaired* by cutting
at the next record start, as cc_net's WET files (which count characters, not
bytes) need.  A record without ``WARC-Record-ID`` gets an id derived from file
name, byte offset and URI, the same on every read.

Byte ranges (:func:`warc_ranges`) let several workers share one big file:
``read_warc(path, start=a, end=b)`` yields the records whose start lies in
``[a, b)``, where a record starts at its gzip member (plain files: at its
``WARC/x.y`` line).  Reading the ranges of any partition of a file one after
the other gives exactly the items of reading it whole.

Framing is done here (:class:`_Framer`), on data inflated by
:mod:`skypile.readers.streams`; each record is then parsed by FastWARC.  zstd
and lz4 files are left to FastWARC whole.
"""

from __future__ import annotations

import hashlib
import io
import re
import zlib
from typing import BinaryIO, Callable, Iterator

from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType

from skypile.document import Dropped, RawRecord
from skypile.readers.streams import GZIP_MAGIC, WARC_MAGIC, GzipMembers, WarcGroups, open_input

STAGE = "read"
DEFAULT_MAX_PAYLOAD_BYTES = 64 << 20
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_CHUNK = 1 << 20
_LOOKBEHIND = 8  # bytes kept before a record start: enough to see the blank line before it
_MAX_HEADER = 256 << 10
_OVERLAP = 64  # bytes searched again after a refill, so that no match is split by one
_SPLIT_PROBE = 1 << 20  # compressed bytes in which a splittable gzip file's first member must end
_VERSION_LINE_RE = re.compile(rb"WARC/\d+\.\d+(\r?\n)?")
_CUT_VERSION_LINE_RE = re.compile(rb"W(?:A(?:R(?:C(?:/\d*(?:\.\d*)?\r?)?)?)?)?")
_SYNC_RE = re.compile(rb"\n\r?\n(WARC/\d+\.\d+\r?\n)")  # a record start that a scan can find
_HEADER_END_RE = re.compile(rb"\n\r?\n")
_LENGTH_RE = re.compile(rb"\ncontent-length[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?\n", re.I)
_RECORD_ID_RE = re.compile(rb"\nwarc-record-id[ \t]*:([^\n]*)\n", re.I)  # whole lines only
_TARGET_URI_RE = re.compile(rb"\nwarc-target-uri[ \t]*:([^\n]*)\n", re.I)
_SPACE_RE = re.compile(rb"[ \t\r\n]*")
_CHARSET_RE = re.compile(r"charset\s*=\s*[\"']?\s*([^\s;\"',]+)", re.I)
_REASON_SAFE_RE = re.compile(r"[^a-z0-9_]+")


def read_warc(
    path: str | BinaryIO,
    source: str = "web/warc",
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    start: int = 0,
    end: int | None = None,
) -> Iterator[RawRecord | Dropped]:
    """Stream the records of a WARC/WET file (local path, ``gs://``/``s3://`` URI, or binary file object).

    ``.gz`` (per-record or whole-file gzip), zstd/lz4 (via FastWARC) and plain
    files are detected from their first bytes.  ``source`` is stamped on every
    :class:`RawRecord` (and so on every document built from it).  ``start`` and
    ``end`` select the records that start in ``[start, end)`` (see the module
    docstring); a file object must then be seekable.  A whole-file gzip, zstd or
    lz4 file has one record start, at 0.
    """
    start = max(start, 0)
    if end is not None and end <= start:
        return
    offset = max(start - _LOOKBEHIND, 0)
    try:
        stream, name, head = open_input(path, offset)
    except Exception as e:  # noqa: BLE001 - unreadable input is a counted drop, not a crash
        yield Dropped(stage=STAGE, reason="read_error", detail=f"cannot open {path}: {type(e).__name__}: {e}"[:500])
        return
    reader = _Reader(name or "<stream>", source, max_payload_bytes)
    try:
        if head.startswith(GZIP_MAGIC):
            yield from reader.from_gzip(stream, offset, start, end)
        elif head.startswith((_ZSTD_MAGIC, _LZ4_MAGIC)):
            if start == 0:
                yield from reader.from_fastwarc(io.BufferedReader(stream, _CHUNK))
        elif head:
            yield from reader.from_plain(stream, offset, start, end)
    except Exception as e:  # noqa: BLE001
        yield Dropped(stage=STAGE, reason="read_error", detail=f"{reader.source_path}: {type(e).__name__}: {e}"[:500])
    finally:
        stream.close()


def warc_ranges(path: str, split_bytes: int) -> list[tuple[int, int]]:
    """Cut ``path`` into byte ranges ``[(0, s), (s, 2s), ...]`` covering it, one task each for :func:`read_warc`.

    One range ``(0, size)`` when the file is no bigger than ``split_bytes`` or
    cannot be split: only per-record gzip and plain files can (a whole-file
    gzip, zstd or lz4 file has a single record start).  The first bytes tell:
    a plain file starts with ``WARC/``; in a per-record gzip file the first
    member (the warcinfo record, typically) ends within the first MiB and
    another member follows.
    """
    from skypile.io import filesystem_and_path

    fs, p = filesystem_and_path(path)
    size = fs.get_file_info(p).size or 0
    if size <= split_bytes or split_bytes <= 0:
        return [(0, size)]
    with fs.open_input_file(p) as f:
        head = f.read(_SPLIT_PROBE)
    if not (head.startswith(WARC_MAGIC) or _first_member_ends(head)):
        return [(0, size)]
    return [(a, min(a + split_bytes, size)) for a in range(0, size, split_bytes)]


def _first_member_ends(head: bytes) -> bool:
    """Whether ``head`` is gzip data whose first member inflates to ``WARC/`` and ends inside it, another following."""
    if not head.startswith(GZIP_MAGIC):
        return False
    d = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        out = d.decompress(head, 64 << 20)
    except zlib.error:
        return False
    return d.eof and d.unused_data.startswith(GZIP_MAGIC) and out.startswith(WARC_MAGIC)


class _Reader:
    """Turns framed WARC records into items; one instance per input file."""

    def __init__(self, source_path: str, source: str, max_payload_bytes: int):
        self.source_path = source_path
        self.source = source
        self.max_payload = max_payload_bytes
        self._file_key = source_path.rstrip("/").rsplit("/", 1)[-1]

    def _drop(self, reason: str, rec_id: str = "", url: str = "", detail: str = "") -> Dropped:
        return Dropped(stage=STAGE, reason=reason, id=rec_id, url=url, detail=detail[:500])

    def record_id(self, rec_id: str, loc: str, url: str) -> str:
        """``rec_id``, or for a record without WARC-Record-ID one derived from file name, offset and URI.

        The file's base name (not its path) keeps the id the same whichever
        mount or URI the file is read through.
        """
        if rec_id:
            return rec_id
        key = f"{self._file_key}\0{loc}\0{url}".encode("utf-8", "surrogateescape")
        return f"<urn:skypile:{hashlib.sha1(key).hexdigest()}>"

    def from_gzip(self, f: BinaryIO, offset: int, start: int, end: int | None) -> Iterator[RawRecord | Dropped]:
        """gzip: frame the records of each record group; after damage, rescan for the next record member."""
        members = GzipMembers(f, offset)
        groups = WarcGroups(members)
        if start > 0 and not members.seek_warc_member(start):
            return
        while True:
            at = groups.next_group()
            if at is None:
                if groups.damage is None:
                    return
                yield self._drop(groups.damage[0], detail=f"{self.source_path}: {groups.damage[1]}")
            elif end is not None and at >= end:
                return
            else:
                framer = _Framer(self, _Window(groups.read), lenient=False, locate=_group_locator(at), group=groups)
                yield from framer.frames(0)
                if groups.damage is None:
                    continue
            if not groups.resync():
                return

    def from_plain(self, f: BinaryIO, offset: int, start: int, end: int | None) -> Iterator[RawRecord | Dropped]:
        """Uncompressed WARC: frame leniently from ``start`` (or the first record start after it)."""
        framer = _Framer(self, _Window(f.read, offset), lenient=True, end=end)
        pos = framer.next_sync(start, release=True) if start > 0 else 0
        if pos is not None:
            yield from framer.frames(pos)

    def from_fastwarc(self, stream: BinaryIO) -> Iterator[RawRecord | Dropped]:
        """zstd/lz4: FastWARC reads the file whole; damage ends it with one drop."""
        it = iter(ArchiveIterator(stream, record_types=WarcRecordType.any_type, parse_http=False))
        while True:
            try:
                rec = next(it)
            except StopIteration:
                return
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # noqa: BLE001 - FastWARC raises OSError or a pyo3 PanicException
                yield self._drop("read_error", detail=f"{self.source_path}: {type(e).__name__}: {e}")
                return
            if not (rec.headers.get("Content-Length", "") or "").strip().isdigit():
                detail = f"{self.source_path}: WARC header without Content-Length"
                yield self._drop("read_error", rec.record_id or "", detail=detail)
                return
            yield self._convert(rec, str(rec.stream_pos))

    def item(self, data: bytes, loc: str, head: "_Head") -> RawRecord | Dropped:
        """One framed record (header + body bytes) → its item, parsed by FastWARC."""
        try:
            rec = WarcRecord.from_bytes(data)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001
            rec_id = self.record_id(head.rec_id, loc, head.url)
            detail = f"{self.source_path}: record at byte {loc}: {type(e).__name__}: {e}"
            return self._drop("read_error", rec_id, head.url, detail)
        return self._convert(rec, loc)

    def _convert(self, rec: WarcRecord, loc: str) -> RawRecord | Dropped:
        headers = rec.headers
        url = (headers.get("WARC-Target-URI", "") or "").strip().strip("<>")
        rec_id = self.record_id((headers.get("WARC-Record-ID", "") or "").strip(), loc, url)
        rtype = str(rec.record_type)
        if rtype == "unknown":
            rtype = headers.get("WARC-Type", "") or "unknown"
        if rtype not in ("response", "conversion"):
            return self._drop(f"warc_type_{_REASON_SAFE_RE.sub('_', rtype.lower())}", rec_id, url)
        if rec.content_length > self.max_payload:
            return self._drop("payload_too_large", rec_id, url, f"{rec.content_length} bytes")
        content_type, charset, encoding, chunked = "", "", "", False
        if rtype == "response":
            if not rec.is_http:
                return self._drop("not_http_response", rec_id, url, headers.get("Content-Type", "") or "")
            try:
                rec.parse_http(auto_decode="none", quirks_mode=True)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # noqa: BLE001
                return self._drop("bad_http_headers", rec_id, url, f"{type(e).__name__}: {e}")
            http = rec.http_headers
            status = http.status_code if http is not None else 0
            if status != 200:
                return self._drop(f"http_status_{status}", rec_id, url)
            content_type, charset = _split_content_type(http.get("Content-Type", "") or "")
            encoding = (http.get("Content-Encoding", "") or "").strip().lower()
            chunked = "chunked" in (http.get("Transfer-Encoding", "") or "").lower()
        else:
            content_type, charset = _split_content_type(headers.get("Content-Type", "") or "text/plain")
            charset = charset or "utf-8"  # WET text is UTF-8 by definition
        expected = rec.content_length
        payload = rec.reader.read() if rec.reader is not None else b""
        if len(payload) < expected:
            return self._drop("truncated_input", rec_id, url, f"record has {len(payload)} of {expected} bytes")
        if chunked:
            payload = _dechunk(payload)
        if encoding and encoding != "identity":
            decoded = _decode_content(payload, encoding, self.max_payload)
            if decoded is None:
                return self._drop("bad_content_encoding", rec_id, url, encoding)
            payload = decoded
        return RawRecord(
            id=rec_id,
            url=url,
            payload=payload,
            content_type=content_type,
            http_charset=charset,
            warc_date=headers.get("WARC-Date", "") or "",
            source_path=self.source_path,
            is_plain_text=rtype == "conversion",
            source=self.source,
        )


def _group_locator(group_offset: int) -> Callable[[int], str]:
    """Where a record in a gzip group is: the group's file offset, ``+`` the record's place in its data."""
    return lambda pos: str(group_offset) if pos == 0 else f"{group_offset}+{pos}"


class _Window:
    """A byte stream buffered for framing, addressed by absolute position (file offset, or place in a group).

    ``release(pos)`` marks what lies before ``pos`` as done; it is dropped at
    the next refill, so the buffer holds the record being framed plus one read.
    """

    __slots__ = ("_read", "data", "base", "eof", "_done")

    def __init__(self, read: Callable[[int], bytes], base: int = 0):
        self._read = read
        self.data = b""
        self.base = base  # position of data[0]
        self.eof = False
        self._done = base

    @property
    def end(self) -> int:
        return self.base + len(self.data)

    def release(self, pos: int) -> None:
        self._done = max(self._done, pos)

    def fill(self, upto: int) -> bool:
        """Buffer the stream up to position ``upto``; False if it ends before."""
        end = self.base + len(self.data)
        if upto <= end:
            return True
        if self.eof:
            return False
        cut = self._done - _LOOKBEHIND - self.base
        parts = [self.data[cut:] if cut > 0 else self.data]
        self.base += max(cut, 0)
        while end < upto:
            chunk = self._read(max(upto - end, _CHUNK))
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            end += len(chunk)
        self.data = b"".join(parts) if len(parts) > 1 else parts[0]
        return end >= upto

    def startswith(self, prefix: bytes, pos: int) -> bool:
        self.fill(pos + len(prefix))
        return self.data.startswith(prefix, pos - self.base)

    def search(
        self, regex: re.Pattern, pos: int, limit: int | None = None, group: int = 0, release: bool = False
    ) -> tuple[int, int] | None:
        """(start, end) of ``group`` in the first match of ``regex`` from ``pos`` on, reading on as needed.

        None if there is none before ``limit`` (or the end).  ``release`` drops
        what has been searched, for scans through data nobody will keep.
        """
        while True:
            m = regex.search(self.data, max(pos - self.base, 0))
            if m is not None:
                found = self.base + m.start(group)
                return None if limit is not None and found >= limit else (found, self.base + m.end(group))
            if self.eof or (limit is not None and self.end >= limit + _OVERLAP):
                return None
            pos = max(pos, self.end - _OVERLAP)
            if release:
                self.release(pos)
            upto = self.end + max(_CHUNK, len(self.data))  # doubling: linear time for long searches
            self.fill(upto if limit is None else min(upto, limit + _OVERLAP))


class _Head:
    """A WARC header found by the framer: where it and the body start, and the fields framing needs.

    Only Content-Length is read up front; the id and URI only for a drop.
    """

    __slots__ = ("pos", "end", "raw", "length", "length_text")

    def __init__(self, win: _Window, pos: int, end: int):
        self.pos, self.end = pos, end
        self.raw = win.data[pos - win.base : end - win.base]
        m = _LENGTH_RE.search(self.raw)
        self.length_text = m.group(1) if m else None
        self.length = int(self.length_text) if m and self.length_text.isdigit() else None

    def _field(self, regex: re.Pattern) -> str:
        m = regex.search(self.raw)
        return m.group(1).decode("utf-8", "replace").strip() if m else ""

    @property
    def rec_id(self) -> str:
        return self._field(_RECORD_ID_RE)

    @property
    def url(self) -> str:
        return self._field(_TARGET_URI_RE).strip("<>")

    def is_canonical(self) -> bool:
        """CRLF line ends throughout, as FastWARC needs (cc_net's WET files use bare LF)."""
        raw = self.raw
        return raw.endswith(b"\r\n\r\n") and raw.count(b"\n") == raw.count(b"\r\n")

    def canonical(self, length: int) -> bytes:
        """The header with CRLF line ends and ``Content-Length: length``."""
        lines = [ln.rstrip(b"\r") for ln in self.raw.split(b"\n")]
        kept = [ln for ln in lines if ln and ln.split(b":", 1)[0].strip().lower() != b"content-length"]
        return b"\r\n".join([*kept, b"Content-Length: %d" % length]) + b"\r\n\r\n"


class _Framer:
    """Cuts a byte stream (a plain WARC file, or one gzip record group) into records, and those into items.

    Strict (gzip): the group's data ends where its last record really ends, so
    a Content-Length that disagrees with it marks a damaged record.  Lenient
    (plain files): a wrong numeric Content-Length is repaired by cutting at the
    next record start.  ``end`` (plain files) stops at the first record start
    at or after it that a reader of the next range, scanning for record starts,
    finds too; ``group`` says why a gzip group's data ended (damage or not).
    """

    def __init__(
        self,
        reader: _Reader,
        win: _Window,
        *,
        lenient: bool,
        end: int | None = None,
        locate: Callable[[int], str] = str,
        group: WarcGroups | None = None,
    ):
        self.r = reader
        self.win = win
        self.lenient = lenient
        self.end = end
        self.locate = locate
        self.group = group
        self.reported = False  # the group's damage went into a record's drop

    def frames(self, pos: int | None) -> Iterator[RawRecord | Dropped]:
        """The items from ``pos`` to the end of the data (or of the range), then any unclaimed group damage."""
        while pos is not None:
            pos = self._skip_space(pos)
            if pos is None or (self.end is not None and pos >= self.end and self._is_sync(pos)):
                break
            self.win.release(pos)
            if self._is_version_line(pos):
                pos = yield from self._record(pos)
            elif self._in_damaged_member(pos):
                break  # one drop for the damaged member, below
            elif self._is_cut_version_line(pos):
                yield self._cut(pos, None, "the data ends inside a WARC header")
                break
            else:
                yield self._damage("read_error", pos, None, f"not a WARC record start: {self._peek(pos)!r}")
                pos = self.next_sync(pos + 1, release=True)
        g = self.group
        if g is not None and g.damage is not None and not self.reported:
            yield self.r._drop(g.damage[0], detail=f"{self.r.source_path}: {g.damage[1]}")

    def next_sync(self, frm: int, limit: int | None = None, release: bool = False) -> int | None:
        """The first record start at or after ``frm`` that a scan finds: a ``WARC/x.y`` line after a blank line."""
        i = frm - 3
        while True:
            found = self.win.search(_SYNC_RE, max(i, self.win.base), limit, group=1, release=release)
            if found is None or found[0] >= frm:
                return None if found is None else found[0]
            i = found[0] + 1

    def _record(self, pos: int):
        """Frame the record at ``pos`` (a generator); returns where the next one may start, None at the end."""
        found = self.win.search(_HEADER_END_RE, pos, limit=pos + _MAX_HEADER)
        if found is None:
            if self.win.end < pos + _MAX_HEADER:  # id and URI from the lines that are there, if they are
                yield self._cut(pos, _Head(self.win, pos, self.win.end), "the data ends inside its WARC header")
                return None
            yield self._damage("read_error", pos, None, f"WARC header longer than {_MAX_HEADER} bytes")
            return self.next_sync(pos + 1, release=True)
        h = _Head(self.win, pos, found[1])
        if h.length is None:
            yield self._damage("bad_content_length", pos, h, f"Content-Length {h.length_text!r}")
            return self.next_sync(h.end, release=True)
        if self.lenient:
            return (yield from self._lenient_body(h))
        return (yield from self._strict_body(h))

    def _strict_body(self, h: _Head):
        """gzip: the record must end where its group's data ends, or where the group's next record begins."""
        body_end = h.end + h.length
        if h.length > self.r.max_payload:  # skipped unread, unless a record starts inside (one gzip member for all)
            nxt = self.next_sync(h.end, limit=min(body_end, h.end + self.r.max_payload))
            if nxt is not None:
                yield self._damage("truncated_record", h.pos, h, f"record at byte {self.locate(nxt)} starts inside it")
                return nxt
            complete = self._skip_to(body_end)
        else:
            complete = self.win.fill(body_end)
        if not complete:
            yield self._cut(h.pos, h, f"record has {self.win.end - h.end} of {h.length} bytes")
            return None
        data = None if h.length > self.r.max_payload else self._frame(h, body_end)
        after = self._skip_space(body_end)
        if after is not None and not self.win.startswith(WARC_MAGIC, after) and not self._member_ends(body_end, after):
            nxt = self.next_sync(h.end, release=True)
            if nxt is not None and nxt < body_end:  # its Content-Length runs over the next record
                yield self._damage("truncated_record", h.pos, h, f"record at byte {self.locate(nxt)} starts inside it")
            else:
                yield self._damage("bad_content_length", h.pos, h, f"record goes on after its {h.length} bytes")
            return nxt
        g = self.group
        if after is None and g is not None and g.damage is not None and g.damage_at < body_end:
            yield self._cut(h.pos, h, "its gzip member is damaged")  # body complete, but unverified
            return None
        yield self._payload_too_large(h) if data is None else self.r.item(data, self.locate(h.pos), h)
        return after

    def _lenient_body(self, h: _Head):
        """Plain files: trust Content-Length when a record start (or the end) follows it, else re-cut."""
        body_end = h.end + h.length
        if h.length <= self.r.max_payload:
            if self.win.fill(body_end):
                data = self._frame(h, body_end)
                after = self._skip_space(body_end)
                if after is None or self._is_version_line(after) or self._is_cut_version_line(after):
                    yield self.r.item(data, self.locate(h.pos), h)
                    return after
        elif self.next_sync(h.end, limit=h.end + self.r.max_payload) is None:  # as large as it says
            if not self._skip_to(body_end):
                yield self._cut(h.pos, h, f"record has {self.win.end - h.end} of {h.length} bytes")
                return None
            yield self._payload_too_large(h)
            after = self._skip_space(body_end)
            return after if after is None or self._is_version_line(after) else self.next_sync(after, release=True)
        return (yield from self._recut(h))

    def _recut(self, h: _Head):
        """Content-Length disagrees with the data: the record ends at the next record start, or at the end."""
        cap = self.r.max_payload
        nxt = self.next_sync(h.end, limit=h.end + cap + _OVERLAP)
        if nxt is None and not (self.win.eof and self.win.end <= h.end + cap + _OVERLAP):
            yield self._payload_too_large(h)  # no record start within max_payload_bytes
            return self.next_sync(h.end, release=True)
        stop = self.win.end if nxt is None else nxt
        if nxt is None and stop < h.end + h.length:
            yield self._cut(h.pos, h, f"record has {stop - h.end} of {h.length} bytes")
            return None
        body = self.win.data[h.end - self.win.base : stop - self.win.base]
        body = body.rstrip(b"\r\n") if nxt is None else _strip_line_ends(body, 2)  # the record separator
        if len(body) > cap:
            yield self._payload_too_large(h)
        else:
            yield self.r.item(h.canonical(len(body)) + body, self.locate(h.pos), h)
        return nxt

    def _frame(self, h: _Head, body_end: int) -> bytes:
        """Header + body as FastWARC wants them (CRLF header), copied out of the window."""
        base, data = self.win.base, self.win.data
        if h.is_canonical():
            if h.pos == base and len(data) - (body_end - base) <= 4:
                return data  # the usual gzip member: the record and its CRLFs; FastWARC ignores the rest
            return data[h.pos - base : body_end - base]
        return h.canonical(h.length) + data[h.end - base : body_end - base]

    def _skip_to(self, pos: int) -> bool:
        """Read up to ``pos`` without keeping what lies before it (a body too large to hold); False at the end."""
        win = self.win
        while win.end < pos:
            win.release(win.end)
            if not win.fill(min(pos, win.end + _CHUNK)) and win.eof:
                return False
        return True

    def _skip_space(self, pos: int) -> int | None:
        """The first position from ``pos`` on that is not blank; None at the end of the data."""
        win, first = self.win, pos
        while win.fill(pos + 1):
            i = _SPACE_RE.match(win.data, pos - win.base).end()
            if i < len(win.data):
                return win.base + i
            pos = win.base + i
            if pos - first > _CHUNK:  # an endless run of blanks: do not keep it
                win.release(pos)
        return None

    def _is_version_line(self, pos: int) -> bool:
        self.win.fill(pos + 24)
        m = _VERSION_LINE_RE.match(self.win.data, pos - self.win.base)
        return m is not None and (m.group(1) is not None or (self.win.eof and m.end() == len(self.win.data)))

    def _is_cut_version_line(self, pos: int) -> bool:
        """Whether the data ends within the ``WARC/x.y`` line starting at ``pos`` (a file cut there)."""
        self.win.fill(pos + 24)
        rest = self.win.data[pos - self.win.base :]
        return self.win.eof and len(rest) < 24 and _CUT_VERSION_LINE_RE.fullmatch(rest) is not None

    def _member_ends(self, body_end: int, after: int) -> bool:
        """gzip: whether a member ends between a record's body and the next non-blank byte.

        Then the record ended with its member, and what follows is another
        member's business (a foreign or damaged member, counted on its own).
        """
        g = self.group
        return g is not None and any(body_end <= at <= after for at in g.member_starts)

    def _in_damaged_member(self, pos: int) -> bool:
        """gzip: whether ``pos`` lies in a later member of the group that turned out damaged.

        Its data (a member cut off or corrupt at its head) is that member's
        damage, one drop at the end, not the fault of the record before it.
        """
        g = self.group
        if g is None:
            return False
        self.win.fill(pos + _CHUNK)  # far enough to meet the damage, if it is that member's
        return g.damage is not None and 0 < g.damage_at <= pos

    def _is_sync(self, pos: int) -> bool:
        """Whether a scan for record starts (:meth:`next_sync`) finds the one at ``pos``."""
        win = self.win
        win.fill(pos + 24)
        for back in (2, 3):
            if pos - back >= win.base:
                m = _SYNC_RE.match(win.data, pos - back - win.base)
                if m is not None and win.base + m.start(1) == pos:
                    return True
        return False

    def _peek(self, pos: int) -> bytes:
        return self.win.data[pos - self.win.base : pos - self.win.base + 40]

    def _payload_too_large(self, h: _Head) -> Dropped:
        rec_id = self.r.record_id(h.rec_id, self.locate(h.pos), h.url)
        return self.r._drop("payload_too_large", rec_id, h.url, f"{h.length} bytes")

    def _cut(self, pos: int, h: _Head | None, detail: str) -> Dropped:
        """The drop for a record its data ends inside of: why the data ends decides the reason."""
        g = self.group
        if g is None:
            return self._damage("truncated_input", pos, h, detail)
        if g.damage is None:
            return self._damage("truncated_record", pos, h, detail)
        self.reported = True
        return self._damage(g.damage[0], pos, h, f"{detail} ({g.damage[1]})")

    def _damage(self, reason: str, pos: int, h: _Head | None, detail: str) -> Dropped:
        loc = self.locate(pos)
        rec_id = url = ""
        if h is not None:
            url = h.url
            rec_id = self.r.record_id(h.rec_id, loc, url)
        return self.r._drop(reason, rec_id, url, f"{self.r.source_path}: record at byte {loc}: {detail}")


def _strip_line_ends(data: bytes, n: int) -> bytes:
    """``data`` without its last ``n`` line ends (CRLF or LF), where it has them."""
    for _ in range(n):
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
    return data


def _split_content_type(value: str) -> tuple[str, str]:
    """``text/html; charset=GBK`` → (``text/html``, ``GBK``)."""
    mime = value.split(";", 1)[0].strip().lower()
    m = _CHARSET_RE.search(value)
    return mime, (m.group(1) if m else "")


def _dechunk(body: bytes) -> bytes:
    """Undo HTTP chunked transfer coding; a body that is not validly chunked is returned as is.

    Crawlers disagree on whether they store the coded or decoded body, and some
    keep the ``Transfer-Encoding`` header either way, so the bytes decide.
    """
    out, pos = [], 0
    while True:
        eol = body.find(b"\n", pos)
        if eol < 0:
            return body
        size_field = body[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            return body
        if size == 0:
            return b"".join(out)
        start = eol + 1
        if start + size > len(body):
            return body
        out.append(body[start : start + size])
        pos = start + size
        if body[pos : pos + 2] == b"\r\n":
            pos += 2
        elif body[pos : pos + 1] == b"\n":
            pos += 1


def _decode_content(body: bytes, encoding: str, max_out: int) -> bytes | None:
    """Inflate a gzip/deflate/br body; bodies already stored decoded are passed through.

    Returns ``None`` when the body is encoded but does not decode, is cut off before the end of its
    compressed stream (a truncated download: keeping the part would keep a fraction of the page as if
    whole), or exceeds ``max_out``.
    """
    try:
        if encoding in ("gzip", "x-gzip"):
            if not body.startswith(GZIP_MAGIC):
                return body  # stored decoded (ClueWeb, many Heritrix WARCs) despite the header
            d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            if not body or body[0] & 0x0F != 8:  # zlib header byte
                d = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send
            else:
                d = zlib.decompressobj()
        elif encoding == "br":
            return _brotli(body, max_out)
        else:
            return body  # unknown coding label: leave the bytes to charset/HTML sniffing
        out = d.decompress(body, max_out + 1)
        return out if len(out) <= max_out and d.eof else None
    except zlib.error:
        return None


def _brotli(body: bytes, max_out: int) -> bytes | None:
    """Brotli via FastWARC's bundled decoder (no extra dependency)."""
    from fastwarc.stream_io import BrotliReader

    try:
        out = BrotliReader(io.BytesIO(body)).read(max_out + 1)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - not brotli after all
        return None
    return out if out and len(out) <= max_out else None
