"""WARC reader: record accounting on real files (checked against warcio), damage handling, inputs."""

from __future__ import annotations

import gzip
import io
import os
from collections import Counter
from pathlib import Path

import pytest

from skypile.document import Dropped, RawRecord
from skypile.readers.warc import _dechunk, _decode_content, read_warc

# Record types per file, as counted by SOURCES.md and re-checked with warcio below.
EXPECTED = {
    "resiliparse/warcfile.warc.gz": {"warcinfo": 1, "request": 17, "response": 16, "metadata": 16},
    "resiliparse/clueweb-quirk.warc.gz": {"warcinfo": 1, "response": 29},
    "dolma/sample-0000.warc.gz": {"warcinfo": 1, "request": 22, "response": 22, "metadata": 1, "resource": 2},
    "dolma/sample-0001.warc.gz": {"warcinfo": 1, "request": 15, "response": 15, "metadata": 1, "resource": 2},
    "whirlwind/whirlwind.warc.gz": {"warcinfo": 1, "request": 1, "response": 1, "metadata": 1},
    "whirlwind/whirlwind.warc.wet.gz": {"warcinfo": 1, "conversion": 1},
    "whirlwind/whirlwind.warc.wat.gz": {"warcinfo": 1, "metadata": 1},
    "warcio/example.warc.gz": {"warcinfo": 2, "request": 2, "response": 1, "revisit": 1},
    "warcio/example-iana.org-chunked.warc": {"warcinfo": 1, "request": 1, "response": 1},
    "warcio/example-resource.warc.gz": {"warcinfo": 2, "resource": 1},
}


def _outcomes(items: list) -> Counter:
    """Map reader output back to WARC types: RawRecord -> response/conversion, drop -> its type."""
    c: Counter = Counter()
    for it in items:
        if isinstance(it, RawRecord):
            c["conversion" if it.is_plain_text else "response"] += 1
        else:
            assert it.stage == "read"
            c[it.reason.removeprefix("warc_type_")] += 1
    return c


def _warcio_types(path: Path) -> Counter:
    warcio = pytest.importorskip("warcio.archiveiterator")
    with open(path, "rb") as f:
        return Counter(r.rec_type for r in warcio.ArchiveIterator(f))


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_record_counts_match_warcio(shared, rel):
    path = shared("warc", *rel.split("/"))
    items = list(read_warc(str(path)))
    assert _outcomes(items) == Counter(EXPECTED[rel])
    assert _warcio_types(path) == Counter(EXPECTED[rel])  # independent parser agrees
    for it in items:
        if isinstance(it, RawRecord):
            assert it.id.startswith("<urn:") and it.url and it.payload and it.warc_date
            assert it.source_path == str(path) and it.source == "web/warc"


def test_response_fields(shared):
    items = [i for i in read_warc(str(shared("warc", "resiliparse", "warcfile.warc.gz"))) if isinstance(i, RawRecord)]
    assert all(r.content_type == "text/html" for r in items)
    assert any(r.url.startswith("http://") and ".cn/" in r.url for r in items)
    assert all(r.payload.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"<" for r in items)


def test_clueweb_quirks_lf_http_headers_and_stored_decoded_gzip(shared):
    """ClueWeb: LF-only HTTP headers, and 'Content-Encoding: gzip' on bodies stored decoded."""
    items = [i for i in read_warc(str(shared("warc", "resiliparse", "clueweb-quirk.warc.gz"))) if isinstance(i, RawRecord)]
    assert len(items) == 29
    assert items[0].http_charset == "EUC-JP"
    assert all(r.payload.lstrip().lower().startswith((b"<", b"\xef\xbb\xbf")) for r in items)


def test_chunked_transfer_encoding_is_undone(shared):
    items = list(read_warc(str(shared("warc", "warcio", "example-iana.org-chunked.warc"))))
    (resp,) = [i for i in items if isinstance(i, RawRecord)]
    assert resp.payload.startswith(b"<!doctype html>")
    assert resp.payload.rstrip().endswith(b"</html>")
    assert resp.http_charset == "UTF-8"


def test_gzip_content_encoding_is_inflated(shared):
    items = list(read_warc(str(shared("warc", "warcio", "example.warc.gz"))))
    (resp,) = [i for i in items if isinstance(i, RawRecord)]
    assert resp.payload.startswith(b"<!doctype html>")
    assert b"Example Domain" in resp.payload


def test_a_gzip_body_cut_short_is_a_counted_drop_not_a_fraction_of_the_page(shared, tmp_path):
    """A Content-Encoding: gzip body cut in half inflated to 43% of the page, kept as if whole and uncounted."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from skypile.readers.warc_builder import shared_pages

    shared("html-en")
    pages = list(shared_pages(limit=2))
    path = tmp_path / "cut.warc.gz"
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for i, page in enumerate(pages):
            body = gzip.compress(page.body)
            body = body[: len(body) // 2] if i == 0 else body
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", "gzip"),
                                               ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(page.url, "response", payload=io.BytesIO(body), http_headers=http))
    items = list(read_warc(str(path)))
    assert len(items) == 2
    assert isinstance(items[0], Dropped) and items[0].reason == "bad_content_encoding" and items[0].url == pages[0].url
    assert isinstance(items[1], RawRecord) and items[1].payload == pages[1].body
    assert _decode_content(gzip.compress(b"x" * 1000)[:-8], "gzip", 2000) is None  # no gzip trailer: cut off
    import zlib

    assert _decode_content(zlib.compress(b"y" * 1000)[:-6], "deflate", 2000) is None


def test_wet_conversion_records(shared):
    items = list(read_warc(str(shared("warc", "whirlwind", "whirlwind.warc.wet.gz"))))
    (doc,) = [i for i in items if isinstance(i, RawRecord)]
    assert doc.is_plain_text and doc.http_charset == "utf-8" and doc.content_type == "text/plain"
    assert "Escopete" in doc.url
    assert "Escopete" in doc.payload.decode("utf-8")


def test_cc_net_plain_wet_with_wrong_content_lengths(shared):
    """cc_net's sample: uncompressed, LF-only, Content-Length counts characters.  All 3 texts come out whole."""
    items = list(read_warc(str(shared("warc", "cc_net", "sample.wet.txt"))))
    assert [i.reason for i in items if isinstance(i, Dropped)] == ["warc_type_warcinfo"]
    docs = [i for i in items if isinstance(i, RawRecord)]
    assert [d.url for d in docs] == ["http://sample_english.com", "http://sample_chinese.zh", "http://sample_russian.ru"]
    texts = [d.payload.decode("utf-8") for d in docs]  # strict: no record was cut inside a character
    assert texts[0].startswith("Famous Mark Twain Quotes") and texts[0].endswith("Truth isn't.")
    assert texts[1].startswith("馬克·吐溫名言") and texts[1].endswith("真理不是。")
    assert texts[2].startswith("Цитаты знаменитого Марка Твена") and texts[2].endswith("Правда нет.")
    assert all(d.is_plain_text for d in docs)


def test_clipped_warc_yields_truncation_drop_without_raising(shared):
    items = list(read_warc(str(shared("warc", "resiliparse", "clipped.warc.gz"))))
    assert len(items) == 1
    (d,) = items
    assert isinstance(d, Dropped) and d.stage == "read" and d.reason == "truncated_input"
    assert d.id.startswith("<urn:uuid:") and d.url.startswith("http://")
    assert "of 88275 bytes" in d.detail  # the record's WARC Content-Length


def test_arc_file_is_a_read_error(shared):
    items = list(read_warc(str(shared("warc", "warcio", "example.arc.gz"))))
    assert len(items) == 1 and items[0].reason == "read_error" and "not a WARC" in items[0].detail


@pytest.fixture(scope="module")
def warcfile_bytes(shared) -> bytes:
    return shared("warc", "resiliparse", "warcfile.warc.gz").read_bytes()


@pytest.mark.parametrize("cut", [2, 100, 300, 5000, 40000, 80000, 120000, 133000, -10])
def test_truncated_gzip_keeps_good_prefix_then_one_drop(warcfile_bytes, cut):
    full = list(read_warc(io.BytesIO(warcfile_bytes)))
    assert not any(isinstance(i, Dropped) and i.reason in ("truncated_input", "read_error") for i in full)
    items = list(read_warc(io.BytesIO(warcfile_bytes[:cut])))
    *good, last = items
    assert isinstance(last, Dropped) and last.reason == "truncated_input"
    assert [(type(i), i.id) for i in good] == [(type(i), i.id) for i in full[: len(good)]]
    assert all(i.payload == f.payload for i, f in zip(good, full) if isinstance(i, RawRecord))


def test_corrupt_gzip_member_is_a_read_error(warcfile_bytes):
    """The corrupt member is one read_error drop; reading resumes at the next member (it used to stop)."""
    bad = bytearray(warcfile_bytes)
    bad[60000:60050] = b"\x00" * 50
    items = list(read_warc(io.BytesIO(bytes(bad))))
    full = list(read_warc(io.BytesIO(warcfile_bytes)))
    assert len(items) == len(full) == 50
    (i,) = [i for i, it in enumerate(items) if isinstance(it, Dropped) and it.reason == "read_error"]
    assert "corrupt gzip member" in items[i].detail and items[i].id == full[i].id
    assert [x.id for x in items[:i] + items[i + 1 :]] == [x.id for x in full[:i] + full[i + 1 :]]


def test_trailing_junk_and_zero_padding(warcfile_bytes):
    assert len(list(read_warc(io.BytesIO(warcfile_bytes + b"\x00" * 64)))) == 50
    items = list(read_warc(io.BytesIO(warcfile_bytes + b"junk" * 10)))
    assert len(items) == 51 and items[-1].reason == "read_error"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world\n",
        b"\x1f",
        b"\x1f\x8b\x08",
        b"WARC/1.0\r\n",
        b"WARC/1.0\r\nContent-Length: 99999\r\n\r\nabc",
        b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 4\r\n\r\nHTTP\r\n\r\n",
        b"\x28\xb5\x2f\xfd" + bytes(range(256)),
    ]
    + [os.urandom(n) for n in (10, 1000)]
    + [gzip.compress(os.urandom(500))],
)
def test_garbage_never_raises(data):
    items = list(read_warc(io.BytesIO(data)))
    assert all(isinstance(i, (RawRecord, Dropped)) for i in items)
    assert len([i for i in items if isinstance(i, Dropped) and i.reason in ("read_error", "truncated_input")]) <= 1


def test_missing_file_is_a_read_error(tmp_path):
    (d,) = list(read_warc(str(tmp_path / "nope.warc.gz")))
    assert d.reason == "read_error" and "nope.warc.gz" in d.detail


def test_uri_file_object_and_path_agree(shared):
    path = shared("warc", "dolma", "sample-0000.warc.gz")
    by_path = [(type(i), i.id) for i in read_warc(str(path))]
    by_uri = [(type(i), i.id) for i in read_warc(path.resolve().as_uri())]  # pyarrow.fs "file://"
    with open(path, "rb") as f:
        by_obj = [(type(i), i.id) for i in read_warc(f)]
        assert not f.closed  # a caller's file object is not closed for them
    assert by_path == by_uri == by_obj and len(by_path) == 48


def test_uncompressed_copy_reads_the_same(shared, tmp_path):
    """The plain-file path (lenient splitter + FastWARC record parsing) matches the gzip path."""
    src = shared("warc", "resiliparse", "warcfile.warc.gz")
    plain = tmp_path / "warcfile.warc"
    plain.write_bytes(gzip.decompress(src.read_bytes()))
    a, b = list(read_warc(str(src))), list(read_warc(str(plain)))
    assert [(type(i), i.id, getattr(i, "payload", None)) for i in a] == [
        (type(i), i.id, getattr(i, "payload", None)) for i in b
    ]


def _plain_record(rtype: str, body: bytes, length: int | None = None, url: str = "http://x.test/") -> bytes:
    n = len(body) if length is None else length
    head = f"WARC/1.0\r\nWARC-Type: {rtype}\r\nWARC-Target-URI: {url}\r\nWARC-Record-ID: <urn:uuid:{url}>\r\n"
    return head.encode() + f"Content-Type: text/plain\r\nContent-Length: {n}\r\n\r\n".encode() + body + b"\r\n\r\n"


def test_plain_splitter_repairs_wrong_content_length():
    a, b, c = "first record text\n\nsecond paragraph", "ünïcödé text body", "last one"
    data = (
        _plain_record("conversion", a.encode(), length=len(a), url="http://a/")  # chars, not bytes: fine here
        + _plain_record("conversion", b.encode(), length=len(b), url="http://b/")  # too short (chars < bytes)
        + _plain_record("conversion", c.encode(), length=len(c) + 30, url="http://c/")  # too long
        + _plain_record("conversion", b"tail", url="http://d/")
    )
    items = list(read_warc(io.BytesIO(data)))
    assert [i.url for i in items] == ["http://a/", "http://b/", "http://c/", "http://d/"]
    assert [i.payload.decode() for i in items] == [a, b, c, "tail"]


def test_payload_cap(shared):
    items = list(read_warc(str(shared("warc", "dolma", "sample-0000.warc.gz")), max_payload_bytes=20_000))
    reasons = Counter(i.reason for i in items if isinstance(i, Dropped))
    assert reasons["payload_too_large"] > 0
    assert all(len(i.payload) <= 20_000 for i in items if isinstance(i, RawRecord))
    assert len(items) == 48


def test_dechunk_and_content_decoding_helpers():
    assert _dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") == b"hello world"
    assert _dechunk(b"<html>not chunked</html>") == b"<html>not chunked</html>"
    assert _decode_content(gzip.compress(b"abc"), "gzip", 100) == b"abc"
    assert _decode_content(b"<html>", "gzip", 100) == b"<html>"  # stored decoded
    assert _decode_content(b"\x1f\x8b\x08garbage", "gzip", 100) is None
    assert _decode_content(gzip.compress(b"x" * 1000), "gzip", 100) is None  # over the cap
    import zlib

    assert _decode_content(zlib.compress(b"deflated"), "deflate", 100) == b"deflated"
