"""WARC builder: the bundled sample and the shared-pages WARC, read back by us and by warcio."""

from __future__ import annotations

import gzip
import hashlib
from collections import Counter

import pytest

from skypile.document import Dropped, RawRecord
from skypile.extractors.html import HtmlExtractor
from skypile.filters.language import LanguageFilter, LanguageId
from skypile.filters.length import LengthFilter
from skypile.readers.warc import read_warc
from skypile.readers.warc_builder import build_default_warc, build_warc_from_shared, default_pages
from skypile.stage import StageStats, run_stage


def _warcio_records(path) -> list:
    warcio = pytest.importorskip("warcio.archiveiterator")
    out = []
    with open(path, "rb") as f:
        for r in warcio.ArchiveIterator(f):
            out.append((r.rec_type, r.rec_headers.get_header("WARC-Target-URI"), r.content_stream().read()))
    return out


@pytest.fixture(scope="module")
def default_warc(tmp_path_factory):
    path = tmp_path_factory.mktemp("warc") / "default.warc.gz"
    assert build_default_warc(str(path)) == 11
    return path


def test_default_warc_is_valid_and_deterministic(default_warc, tmp_path):
    recs = _warcio_records(default_warc)
    assert Counter(t for t, _, _ in recs) == Counter({"warcinfo": 1, "response": 11})
    pages = {p.url: p.body for p in default_pages()}
    for rtype, url, body in recs[1:]:
        assert body == pages[url]  # warcio sees the original bytes
    again = tmp_path / "again.warc.gz"
    build_default_warc(str(again))
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(default_warc.read_bytes()).digest()
    assert [p.name for p in tmp_path.iterdir()] == ["again.warc.gz"]  # no temp file left behind
    assert gzip.decompress(default_warc.read_bytes()).count(b"WARC/1.1\r\n") == 12  # one gzip member per record


def test_default_warc_end_to_end(default_warc):
    """read -> extract -> langid -> length on the bundled sample: 3 en + 4 zh articles survive."""
    stats = StageStats()
    items = list(read_warc(str(default_warc)))
    raws = []
    for it in items:
        stats.record_in("read")
        if isinstance(it, Dropped):
            stats.record_drop(it)
        else:
            stats.record_kept("read")
            raws.append(it)
    docs = run_stage(HtmlExtractor(), raws, stats)
    docs = run_stage(LanguageId(), docs, stats)
    docs = run_stage(LanguageFilter(), docs, stats)
    docs = list(run_stage(LengthFilter(), docs, stats))
    assert stats.dropped("read") == {"warc_type_warcinfo": 1, "http_status_404": 1}
    assert stats.dropped("extract") == {"boilerplate_only": 1, "not_html": 1, "empty": 1}
    assert stats.dropped("langid") == {} and stats.dropped("lang_filter") == {} and stats.dropped("length") == {}
    assert Counter(d.lang for d in docs) == Counter({"en": 3, "zh": 4})
    by_url = {d.url.rsplit("/", 1)[1]: d for d in docs}
    assert by_url["library-gbk.html"].metadata.charset == "gb18030"
    assert by_url["noodles-big5.html"].metadata.charset == "big5hkscs"
    assert "手工麵店" in by_url["noodles-big5.html"].text
    assert "社区图书馆" in by_url["library-gbk.html"].text
    for d in docs:  # the site chrome around each article is gone
        assert "All rights reserved" not in d.text and "Privacy" not in d.text
    report = stats.to_dict("read", final_kept=len(docs))
    assert report["records_in"] == 12 and report["balanced"]


def test_shared_warc(shared, tmp_path):
    shared("html-en", "trafilatura-eval")
    shared("html-zh", "cleaneval-zh")
    path = tmp_path / "shared.warc.gz"
    n = build_warc_from_shared(str(path))
    assert n == 625  # 170 trafilatura-eval + 358 CleanEval + 62 GNE + 35 cleaneval-zh
    recs = _warcio_records(path)
    assert Counter(t for t, _, _ in recs) == Counter({"warcinfo": 1, "response": 625})
    items = [i for i in read_warc(str(path)) if isinstance(i, RawRecord)]
    assert len(items) == 625 and len({i.id for i in items}) == 625
    # Original bytes: the first trafilatura-eval page, and a CleanEval page without its <text> line.
    assert items[0].payload == gzip.decompress(_traf_file(shared, items[0].url).read_bytes())
    cleaneval = [i for i in items if i.url.startswith("http://1-las-vegas-real-estate.com/")]
    assert len(cleaneval) == 1 and cleaneval[0].payload.lstrip().startswith(b"<html>")
    # A charset is sent only when the dataset states it; GB pages without one must be detected.
    zh = items[-35:]
    assert any(i.http_charset == "" for i in zh) and any(i.http_charset.lower() == "gb2312" for i in zh)
    assert all(i.http_charset == "" for i in items[:170])
    assert build_warc_from_shared(str(tmp_path / "small.warc.gz"), limit=5) == 5


def _traf_file(shared, url: str):
    import json

    with open(shared("html-en", "trafilatura-eval", "ground-truth.jsonl"), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["url"] == url:
                return shared("html-en", "trafilatura-eval", *row["file"].split("/"))
    raise KeyError(url)
