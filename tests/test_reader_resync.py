"""WARC reader integrity and byte-range splits, on damaged inputs generated here.

Integrity: a damaged record is one counted ``Dropped`` and reading goes on, so
the number of items always equals the number of records written (gzip: at the
next member starting with ``WARC/``; plain files: at the next ``WARC/x.y`` line
after a blank line).  Ranges: for any partition of a file into contiguous byte
ranges, reading the ranges in order gives exactly the items of a whole read.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import tracemalloc
from pathlib import Path

import pytest

from skypile.document import Dropped, RawRecord
from skypile.readers.warc import read_warc, warc_ranges

N = 100  # records per generated file
DAMAGED = 1  # index of the damaged record, unless a test says otherwise


def _page(i: int) -> bytes:
    filler = " ".join(f"word{(i * 7 + k) % 997}" for k in range(20 + (i * 37) % 300))
    return f"<html><body><h1>Page {i}</h1><p>{filler}</p></body></html>\n".encode()


def _url(i: int) -> str:
    return f"http://site.test/page-{i}.html"


def _rec_id(i: int) -> str:
    return f"<urn:uuid:00000000-0000-4000-8000-{i:012d}>"


def _record(i: int, length=lambda n: b"%d" % n, with_id: bool = True) -> bytes:
    """One HTTP response record; ``length(n)`` gives its Content-Length value (None: no such line)."""
    body = _page(i)
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(body)
    block = http + body
    lines = [b"WARC/1.0", b"WARC-Type: response", b"WARC-Target-URI: " + _url(i).encode()]
    if with_id:
        lines.append(b"WARC-Record-ID: " + _rec_id(i).encode())
    lines += [b"WARC-Date: 2024-05-01T12:00:00Z", b"Content-Type: application/http; msgtype=response"]
    value = length(len(block))
    if value is not None:
        lines.append(b"Content-Length: " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + block + b"\r\n\r\n"


DAMAGES = {
    "negative": lambda n: b"-10",
    "too_long": lambda n: b"%d" % (n + 40),
    "too_short": lambda n: b"%d" % (n - 40),
    "not_a_number": lambda n: b"12ab",
    "missing": lambda n: None,
    "one_gib": lambda n: b"%d" % (1 << 30),
}
# gzip: the member says where the record ends, so any disagreement is a damaged record.
GZIP_REASONS = {
    "negative": "bad_content_length",
    "not_a_number": "bad_content_length",
    "missing": "bad_content_length",
    "too_short": "bad_content_length",
    "too_long": "truncated_record",
    "one_gib": "truncated_record",
}
# plain files: a wrong number is repaired at the next record start (None: record kept, whole);
# only a missing or unreadable one is a drop.
PLAIN_REASONS = {
    "negative": "bad_content_length",
    "not_a_number": "bad_content_length",
    "missing": "bad_content_length",
    "too_short": None,
    "too_long": None,
    "one_gib": None,
}


def _records(damage: str | None = None, at: int = DAMAGED, n: int = N, with_id: bool = True) -> list[bytes]:
    return [_record(i, DAMAGES[damage] if damage and i == at else (lambda k: b"%d" % k), with_id) for i in range(n)]


def _pack(records: list[bytes], fmt: str) -> tuple[bytes, list[int]]:
    """File bytes and where each record is (as drop details say): ``gz`` one member per record, ``warc``
    plain, ``whole`` one gzip member for all (a record's place: ``0+<offset in the inflated data>``)."""
    parts = [gzip.compress(r, mtime=0) for r in records] if fmt == "gz" else list(records)
    offsets, pos = [], 0
    for p in parts:
        offsets.append(pos)
        pos += len(p)
    if fmt == "whole":
        return gzip.compress(b"".join(parts), mtime=0), [f"0+{o}" if o else "0" for o in offsets]
    return b"".join(parts), offsets


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _assert_good(item, i: int) -> None:
    assert isinstance(item, RawRecord), item
    assert item.payload == _page(i) and item.url == _url(i) and item.id == _rec_id(i)


# ---------------------------------------------------------------------------------------------- integrity


@pytest.mark.parametrize("fmt", ["gz", "warc", "whole"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("at", [0, DAMAGED, N - 1])
def test_bad_content_length_costs_one_record(tmp_path, fmt, damage, at):
    data, offsets = _pack(_records(damage, at), fmt)
    items = list(read_warc(_write(tmp_path, f"d.{fmt}", data)))
    assert len(items) == N
    for i, item in enumerate(items):
        if i != at:
            _assert_good(item, i)
    expected = (PLAIN_REASONS if fmt == "warc" else GZIP_REASONS)[damage]
    if fmt == "warc" and at == N - 1 and damage in ("too_long", "one_gib"):
        expected = "truncated_input"  # in a plain file the data just ends before the declared length
    bad = items[at]
    if expected is None and at == N - 1:  # repaired up to the end of the file, trailing line ends and all
        assert isinstance(bad, RawRecord) and bad.payload == _page(at).rstrip(b"\n") and bad.id == _rec_id(at)
    elif expected is None:
        _assert_good(bad, at)  # repaired, whole
    else:
        assert isinstance(bad, Dropped) and bad.stage == "read" and bad.reason == expected
        assert bad.id == _rec_id(at) and bad.url == _url(at)
        assert f"record at byte {offsets[at]}:" in bad.detail


@pytest.mark.parametrize("fmt", ["gz", "warc"])
def test_truncated_file_is_one_truncated_input_at_the_end(tmp_path, fmt):
    data, offsets = _pack(_records(), fmt)
    cuts = [offsets[-1] + k for k in (1, 3, 7, 9, 15, 150)] + [len(data) - 300]
    if fmt == "gz":
        cuts.append(len(data) - 3)  # the member's CRC cut off: the record is unverified
    for cut in cuts:
        items = list(read_warc(io.BytesIO(data[:cut])))
        assert len(items) == N
        for i in range(N - 1):
            _assert_good(items[i], i)
        assert isinstance(items[-1], Dropped) and items[-1].reason == "truncated_input"


def test_corrupt_gzip_member_in_the_middle(tmp_path):
    data, offsets = _pack(_records(), "gz")
    k = 50
    bad = bytearray(data)
    mid = (offsets[k] + offsets[k + 1]) // 2
    bad[mid : mid + 20] = bytes(20)
    items = list(read_warc(_write(tmp_path, "c.warc.gz", bytes(bad))))
    assert len(items) == N
    for i, item in enumerate(items):
        if i != k:
            _assert_good(item, i)
    assert items[k].reason == "read_error" and f"corrupt gzip member at byte {offsets[k]}" in items[k].detail
    assert items[k].id == _rec_id(k)


def test_corrupt_gzip_member_header(tmp_path):
    """A member whose very start is destroyed cannot be told from garbage: one drop, the rest read."""
    data, offsets = _pack(_records(), "gz")
    k = 30
    bad = bytearray(data)
    bad[offsets[k] + 10 : offsets[k] + 40] = bytes(30)
    items = list(read_warc(io.BytesIO(bytes(bad))))
    assert len(items) == N
    assert items[k].reason == "read_error"
    assert all(isinstance(it, RawRecord) for i, it in enumerate(items) if i != k)


def test_garbage_between_gzip_members(tmp_path):
    records = _records()
    members = [gzip.compress(r, mtime=0) for r in records]
    data = b"".join(members[:10]) + b"this is not gzip\n" + b"".join(members[10:])
    items = list(read_warc(io.BytesIO(data)))
    assert len(items) == N + 1  # the garbage is counted too
    assert items[10].reason == "read_error" and "no gzip member" in items[10].detail
    for i, item in enumerate(items[:10] + items[11:]):
        _assert_good(item, i)


def test_foreign_gzip_member_costs_no_record(tmp_path):
    """A healthy member that is no WARC record (here a gzipped text) is one drop; the record before it stays."""
    members = [gzip.compress(r, mtime=0) for r in _records()]
    data = b"".join(members[:10]) + gzip.compress(b"just some text\n", mtime=0) + b"".join(members[10:])
    items = list(read_warc(io.BytesIO(data)))
    assert len(items) == N + 1 and items[10].reason == "read_error" and "not a WARC record start" in items[10].detail
    for i, item in enumerate(items[:10] + items[11:]):
        _assert_good(item, i)


def test_garbage_at_the_head_of_a_plain_file(tmp_path):
    data = b"some junk that is no WARC\r\n\r\n" + b"".join(_records())
    items = list(read_warc(io.BytesIO(data)))
    assert len(items) == N + 1 and items[0].reason == "read_error" and "not a WARC record start" in items[0].detail
    for i, item in enumerate(items[1:]):
        _assert_good(item, i)


@pytest.mark.parametrize("fmt", ["gz", "warc"])
def test_record_without_id_gets_a_stable_derived_id(tmp_path, fmt):
    data, _ = _pack(_records(with_id=False, n=20), fmt)
    path = _write(tmp_path, f"noid.{fmt}", data)
    ids = [i.id for i in read_warc(path)]
    assert len(set(ids)) == 20 and all(i.startswith("<urn:skypile:") and i.endswith(">") for i in ids)
    assert [i.id for i in read_warc(Path(path).resolve().as_uri())] == ids  # same file, other name for it
    with open(path, "rb") as f:
        assert [i.id for i in read_warc(f)] == ids
    other = _write(tmp_path, f"other.{fmt}", data)
    assert not set(i.id for i in read_warc(other)) & set(ids)  # the file name is part of it
    ranges = [(0, len(data) // 2), (len(data) // 2, len(data))]
    assert [i.id for a, b in ranges for i in read_warc(path, start=a, end=b)] == ids


@pytest.mark.parametrize("fmt", ["gz", "warc"])
def test_huge_declared_length_allocates_nothing(tmp_path, fmt):
    data, _ = _pack(_records("one_gib"), fmt)
    path = _write(tmp_path, f"big.{fmt}", data)
    tracemalloc.start()
    try:
        items = list(read_warc(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(items) == N and peak < 32 << 20


@pytest.mark.parametrize("fmt", ["gz", "warc"])
def test_payload_over_the_cap_is_skipped_not_held(tmp_path, fmt):
    records = _records()
    big = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + os.urandom(3 << 20)
    head = b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://big.test/\r\nContent-Length: %d\r\n\r\n"
    records[5] = head % len(big) + big + b"\r\n\r\n"
    data, _ = _pack(records, fmt)
    tracemalloc.start()
    try:
        items = list(read_warc(io.BytesIO(data), max_payload_bytes=100_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(items) == N and items[5].reason == "payload_too_large"
    assert all(isinstance(it, RawRecord) for i, it in enumerate(items) if i != 5)
    assert peak < len(data) + (8 << 20)  # the file itself (BytesIO) plus a few read buffers


# ---------------------------------------------------------------------------------------------- byte ranges


def _key(item) -> tuple:
    return (type(item).__name__, getattr(item, "reason", ""), item.id, item.url, getattr(item, "payload", b""),
            getattr(item, "detail", ""))


def _read_partition(path: str, cuts: list[int]) -> list[tuple]:
    return [_key(i) for a, b in zip(cuts, cuts[1:]) for i in read_warc(path, start=a, end=b)]


def _partitions(size: int, seed: str) -> list[list[int]]:
    out = [[size * k // n for k in range(n + 1)] for n in (1, 2, 3, 7)]
    rnd = random.Random(seed)
    for _ in range(4):
        out.append([0, *sorted(rnd.sample(range(1, size), min(size - 1, rnd.randint(1, 15)))), size])
    return out


def _assert_partitions_agree(path: str) -> list[tuple]:
    whole = [_key(i) for i in read_warc(path)]
    for cuts in _partitions(os.path.getsize(path), path):
        assert _read_partition(path, cuts) == whole, cuts
    return whole


@pytest.fixture(scope="module")
def pages_warc(tmp_path_factory, shared):
    """~600 real pages (../shared/data) packed one gzip member per record, plus plain and whole-file gzip copies."""
    from skypile.readers.warc_builder import build_warc_from_shared

    shared("html-en")
    d = tmp_path_factory.mktemp("pages")
    gz = d / "pages.warc.gz"
    assert build_warc_from_shared(str(gz)) > 500
    plain = gz.read_bytes()
    plain = gzip.decompress(plain)
    (d / "pages.warc").write_bytes(plain)
    (d / "pages-whole.warc.gz").write_bytes(gzip.compress(plain, compresslevel=1, mtime=0))
    return d


SHARED_WARCS = [
    "resiliparse/warcfile.warc.gz",
    "resiliparse/clueweb-quirk.warc.gz",
    "resiliparse/clipped.warc.gz",
    "dolma/sample-0000.warc.gz",
    "dolma/sample-0001.warc.gz",
    "whirlwind/whirlwind.warc.gz",
    "whirlwind/whirlwind.warc.wet.gz",
    "whirlwind/whirlwind.warc.wat.gz",
    "warcio/example.warc.gz",
    "warcio/example-iana.org-chunked.warc",
    "warcio/example-resource.warc.gz",
    "warcio/example.arc.gz",
    "cc_net/sample.wet.txt",
]


@pytest.mark.parametrize("rel", SHARED_WARCS)
def test_ranges_partition_shared_warcs(shared, rel):
    _assert_partitions_agree(str(shared("warc", *rel.split("/"))))


@pytest.mark.parametrize("name", ["pages.warc.gz", "pages.warc", "pages-whole.warc.gz"])
def test_ranges_partition_generated_pages(pages_warc, name):
    whole = _assert_partitions_agree(str(pages_warc / name))
    assert len(whole) == len({k[2] for k in whole}) > 600


def test_whole_file_gzip_has_one_record_start(pages_warc):
    path = str(pages_warc / "pages-whole.warc.gz")
    size = os.path.getsize(path)
    whole = [_key(i) for i in read_warc(path)]
    assert [_key(i) for i in read_warc(path, start=0, end=1)] == whole
    assert list(read_warc(path, start=1, end=size)) == []
    assert warc_ranges(path, 1 << 16) == [(0, size)]


def _damaged_files(tmp_path: Path) -> list[tuple[str, int]]:
    """(path, number of items a whole read gives) for each kind of damage."""
    out = []
    for damage in sorted(DAMAGES):
        for fmt in ("gz", "warc", "whole"):
            data, _ = _pack(_records(damage, n=30, at=12), fmt)
            out.append((_write(tmp_path, f"{damage}.{fmt}", data), 30))
    data, offsets = _pack(_records(n=30), "gz")
    bad = bytearray(data)
    bad[offsets[7] + 200 : offsets[7] + 220] = bytes(20)  # corrupt member
    bad[offsets[20] + 5 : offsets[20] + 40] = bytes(35)  # a member start destroyed
    out.append((_write(tmp_path, "corrupt.gz", bytes(bad) + b"trailing junk"), 31))
    out.append((_write(tmp_path, "cut.gz", data[:-500]), 30))
    plain, offsets = _pack(_records(n=30), "warc")
    out.append((_write(tmp_path, "cut.warc", b"junk\r\n\r\n" + plain[:-500]), 31))
    whole_gz = gzip.compress(plain, mtime=0)
    cut = len(whole_gz) // 2  # a whole-file gzip cut: what precedes the cut, then one drop
    n = len([i for i in read_warc(io.BytesIO(whole_gz[:cut])) if isinstance(i, RawRecord)])
    out.append((_write(tmp_path, "whole-cut.gz", whole_gz[:cut]), n + 1))
    return out


def test_ranges_partition_damaged_files(tmp_path):
    for path, n in _damaged_files(tmp_path):
        whole = _assert_partitions_agree(path)
        assert len(whole) == n, path


@pytest.mark.parametrize("fmt", ["gz", "warc"])
def test_ranges_cut_at_every_offset_near_record_starts(tmp_path, fmt):
    """Two ranges split at each record start and the bytes around it: nothing lost, nothing twice."""
    data, offsets = _pack(_records("too_short", n=12, at=5), fmt)
    path = _write(tmp_path, f"cuts.{fmt}", data)
    whole = [_key(i) for i in read_warc(path)]
    for off in offsets[1:]:
        for cut in range(off - 4, off + 5):
            assert _read_partition(path, [0, cut, len(data)]) == whole, cut


def test_ranges_from_a_file_object_match_the_path(tmp_path):
    data, _ = _pack(_records(n=30), "gz")
    path = _write(tmp_path, "obj.warc.gz", data)
    cut = len(data) // 3
    with open(path, "rb") as f:
        by_obj = [i.id for i in read_warc(f, start=cut, end=2 * cut)]
    assert by_obj == [i.id for i in read_warc(path, start=cut, end=2 * cut)] and by_obj


def test_zstd_file_is_not_split(tmp_path):
    path = _write(tmp_path, "x.warc.zst", b"\x28\xb5\x2f\xfd" + os.urandom(5000))
    assert warc_ranges(path, 1000) == [(0, 5004)]
    assert list(read_warc(path, start=1000, end=2000)) == []


def test_warc_ranges(tmp_path):
    data, _ = _pack(_records(n=30), "gz")
    gz = _write(tmp_path, "r.warc.gz", data)
    size = len(data)
    ranges = warc_ranges(gz, 10_000)
    assert ranges[0] == (0, 10_000) and ranges[-1][1] == size and len(ranges) == -(-size // 10_000)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert warc_ranges(gz, size) == [(0, size)]
    plain, _ = _pack(_records(n=30), "warc")
    assert len(warc_ranges(_write(tmp_path, "r.warc", plain), 10_000)) == -(-len(plain) // 10_000)
    whole = _write(tmp_path, "w.warc.gz", gzip.compress(plain))
    assert warc_ranges(whole, 1000) == [(0, os.path.getsize(whole))]
    items = [_key(i) for a, b in warc_ranges(gz, 10_000) for i in read_warc(gz, start=a, end=b)]
    assert items == [_key(i) for i in read_warc(gz)]
