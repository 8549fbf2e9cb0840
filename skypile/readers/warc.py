"""WARC / WET file → one :class:`RawRecord` or :class:`Dropped` per WARC record (stage ``read``).

Every record read yields exactly one item, so ``stats.json`` can account for
each one: ``response`` records with an HTTP 200 become :class:`RawRecord` (HTML
body, HTTP Content-Type and charset), WET ``conversion`` records become
plain-text :class:`RawRecord`, and everything else is dropped with a reason:

* ``warc_type_<type>``    warcinfo, request, metadata, revisit, resource, …
* ``http_status_<code>``  a response that is not 200 (redirects, errors)
* ``not_http_response``   a response record without an HTTP message (e.g. ``dns:``)
* ``bad_http_headers``    the HTTP header block does not parse
* ``payload_too_large``   record bigger than ``max_payload_bytes`` (not read into memory)
* ``bad_content_encoding`` gzip/deflate/br body that does not inflate
* ``truncated_input``     the file ends inside a record (the last item of the file)
* ``read_error``          corrupt or non-WARC data (the last item of the file)

A damaged file never raises: its good records come out, then one drop.

Framing: gzip files (the Common Crawl format) are inflated by
:class:`~skypile.readers.streams.GunzipStream` and parsed by FastWARC.
Uncompressed files are split by a small lenient parser that accepts LF-only
headers and repairs wrong ``Content-Length`` values (cc_net's WET samples count
characters, not bytes); each record is then handed to FastWARC for HTTP parsing.
"""

from __future__ import annotations

import io
import re
import zlib
from typing import BinaryIO, Iterator

from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType

from skypile.document import Dropped, RawRecord
from skypile.readers.streams import GZIP_MAGIC, GunzipStream, open_binary

STAGE = "read"
DEFAULT_MAX_PAYLOAD_BYTES = 64 << 20
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_VERSION_RE = re.compile(rb"^WARC/\d+\.\d+\r?\n?$")
_RECORD_START_RE = re.compile(rb"\r?\n\r?\nWARC/\d+\.\d+(?:\r?\n|$)")
_CHARSET_RE = re.compile(r"charset\s*=\s*[\"']?\s*([^\s;\"',]+)", re.I)
_REASON_SAFE_RE = re.compile(r"[^a-z0-9_]+")


def read_warc(
    path: str | BinaryIO,
    source: str = "web/warc",
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> Iterator[RawRecord | Dropped]:
    """Stream the records of a WARC/WET file (local path, ``gs://``/``s3://`` URI, or binary file object).

    ``.gz`` (per-record or whole-file gzip), zstd/lz4 (via FastWARC) and plain
    files are detected from their first bytes.  ``source`` is stamped on every
    :class:`RawRecord` (and so on every document built from it).
    """
    try:
        stream, name = open_binary(path)
        name = name or "<stream>"
    except Exception as e:  # noqa: BLE001 - unreadable input is a counted drop, not a crash
        yield Dropped(stage=STAGE, reason="read_error", detail=f"cannot open {path}: {type(e).__name__}: {e}"[:500])
        return
    reader = _Reader(name, source, max_payload_bytes)
    try:
        head = stream.peek(4)[:4]
        if head.startswith(GZIP_MAGIC):
            yield from reader.from_fastwarc(GunzipStream(stream))
        elif head.startswith((_ZSTD_MAGIC, _LZ4_MAGIC)):
            yield from reader.from_fastwarc(stream)
        elif head:
            yield from reader.from_plain(_PushbackReader(stream))
    except Exception as e:  # noqa: BLE001
        yield Dropped(stage=STAGE, reason="read_error", detail=f"{name}: {type(e).__name__}: {e}"[:500])
    finally:
        stream.close()


class _Reader:
    """Turns parsed WARC records into items; one instance per input file."""

    def __init__(self, source_path: str, source: str, max_payload_bytes: int):
        self.source_path = source_path
        self.source = source
        self.max_payload = max_payload_bytes

    def _drop(self, reason: str, rec_id: str = "", url: str = "", detail: str = "") -> Dropped:
        return Dropped(stage=STAGE, reason=reason, id=rec_id, url=url, detail=detail[:500])

    def from_fastwarc(self, raw: BinaryIO) -> Iterator[RawRecord | Dropped]:
        """FastWARC over an (already inflated, for gzip) stream; damage ends the file with one drop."""
        buffered = io.BufferedReader(raw, 1 << 20) if isinstance(raw, io.RawIOBase) else raw
        if isinstance(raw, GunzipStream):
            start = buffered.peek(8)[:8]
            if start and not start.startswith(b"WARC/"):  # e.g. a legacy ARC file
                yield self._damage(raw, "read_error", f"not a WARC file (starts with {start!r})")
                return
        it = iter(ArchiveIterator(buffered, record_types=WarcRecordType.any_type, parse_http=False))
        while True:
            try:
                rec = next(it)
            except StopIteration:
                break
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # noqa: BLE001 - FastWARC raises OSError or a pyo3 PanicException
                yield self._damage(raw, "read_error", f"{type(e).__name__}: {e}")
                return
            if not (rec.headers.get("Content-Length", "") or "").strip().isdigit():
                # only a header cut short by the end of the data lacks Content-Length
                reason = "truncated_input" if getattr(raw, "damage", None) else "read_error"
                yield self._drop(reason, rec.record_id or "", detail=f"{self.source_path}: WARC header without Content-Length")
                return
            item = self._convert(rec)
            yield item
            if isinstance(item, Dropped) and item.reason == "truncated_input":
                return
        damage = getattr(raw, "damage", None)
        if damage is not None:
            yield self._drop(damage[0], detail=f"{self.source_path}: {damage[1]}")

    def _damage(self, raw: BinaryIO, reason: str, detail: str) -> Dropped:
        """The stream's own diagnosis (truncation, corrupt gzip) beats FastWARC's generic error."""
        damage = getattr(raw, "damage", None)
        if damage is not None:
            reason, detail = damage
        return self._drop(reason, detail=f"{self.source_path}: {detail}")

    def from_plain(self, f: "_PushbackReader") -> Iterator[RawRecord | Dropped]:
        """Uncompressed WARC: split leniently, then parse each record with FastWARC."""
        for chunk in _split_plain(f, self.max_payload):
            if isinstance(chunk, Dropped):
                yield Dropped(STAGE, chunk.reason, chunk.id, chunk.url, f"{self.source_path}: {chunk.detail}"[:500])
                if chunk.reason in ("truncated_input", "read_error"):
                    return
                continue
            try:
                rec = WarcRecord.from_bytes(chunk)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # noqa: BLE001
                yield self._drop("read_error", detail=f"{self.source_path}: {type(e).__name__}: {e}")
                return
            yield self._convert(rec)

    def _convert(self, rec: WarcRecord) -> RawRecord | Dropped:
        headers = rec.headers
        rec_id = headers.get("WARC-Record-ID", "") or ""
        url = (headers.get("WARC-Target-URI", "") or "").strip().strip("<>")
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

    Returns ``None`` when the body is encoded but does not decode (or exceeds ``max_out``).
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
        return out if len(out) <= max_out else None
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


class _PushbackReader:
    """Line reader over a binary stream that can take bytes back (for resynchronisation)."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self._buf = b""

    def unread(self, data: bytes) -> None:
        self._buf = data + self._buf

    def readline(self) -> bytes:
        if self._buf:
            i = self._buf.find(b"\n")
            if i >= 0:
                line, self._buf = self._buf[: i + 1], self._buf[i + 1 :]
                return line
            line, self._buf = self._buf, b""
            return line + self._f.readline()
        return self._f.readline()

    def read(self, n: int) -> bytes:
        head, self._buf = self._buf[:n], self._buf[n:]
        if len(head) < n:
            head += self._f.read(n - len(head))
        return head


def _header_field(lines: list[bytes], name: bytes) -> str:
    prefix = name.lower() + b":"
    for line in lines:
        if line.lower().startswith(prefix):
            return line[len(prefix) :].strip().decode("utf-8", "replace")
    return ""


def _split_plain(f: _PushbackReader, max_payload: int) -> Iterator[bytes | Dropped]:
    """Yield each record of an uncompressed WARC as canonical bytes (CRLF header, exact Content-Length).

    ``Content-Length`` is trusted when the next record (or EOF) follows it; when
    it does not, the block is re-cut at the next ``WARC/x.y`` line that follows a
    blank line.  Damage ends the iteration with a ``truncated_input``/``read_error``
    :class:`Dropped`; oversize records yield a ``payload_too_large`` drop and are skipped.
    """
    line = f.readline()
    while line:
        if not _VERSION_RE.match(line):
            if line.strip():
                yield Dropped(STAGE, "read_error", detail=f"not a WARC record start: {line[:80]!r}")
                return
            line = f.readline()
            continue
        header = [line.rstrip(b"\r\n")]
        while True:
            hl = f.readline()
            if not hl:
                yield Dropped(STAGE, "truncated_input", detail="file ends inside a WARC header")
                return
            if not hl.strip(b"\r\n"):
                break
            header.append(hl.rstrip(b"\r\n"))
        rec_id = _header_field(header, b"WARC-Record-ID")
        url = _header_field(header, b"WARC-Target-URI").strip("<>")
        try:
            declared = int(_header_field(header, b"Content-Length") or 0)
        except ValueError:
            declared = 0
        if declared > max_payload:
            _skip(f, declared)
            yield Dropped(STAGE, "payload_too_large", rec_id, url, f"{declared} bytes")
            line = f.readline()
            continue
        block = f.read(declared)
        cut_short = len(block) < declared
        if cut_short and not _RECORD_START_RE.search(block):
            yield Dropped(STAGE, "truncated_input", rec_id, url, f"record has {len(block)} of {declared} bytes")
            return
        seps, nxt = [], f.readline()
        while nxt and not nxt.strip(b"\r\n"):
            seps.append(nxt)
            nxt = f.readline()
        if cut_short or (nxt and not _VERSION_RE.match(nxt)):  # Content-Length is wrong: re-cut
            m = _RECORD_START_RE.search(block)
            if m:  # too long: the block swallowed the start of the next record; give it back
                f.unread(block[m.start() :] + b"".join(seps) + nxt)
                block, nxt = block[: m.start()], f.readline()
            else:  # too short: the block runs on to the next record start
                parts = [block, *seps, nxt]
                while True:
                    nxt = f.readline()
                    if not nxt or (_VERSION_RE.match(nxt) and not parts[-1].strip(b"\r\n")):
                        break
                    parts.append(nxt)
                block = b"".join(parts).rstrip(b"\r\n")
        line = nxt
        fixed = [h for h in header if not h.lower().startswith(b"content-length:")]
        fixed.append(b"Content-Length: %d" % len(block))
        yield b"\r\n".join(fixed) + b"\r\n\r\n" + block + b"\r\n\r\n"


def _skip(f: _PushbackReader, n: int) -> None:
    while n > 0:
        got = len(f.read(min(n, 1 << 20)))
        if not got:
            return
        n -= got
