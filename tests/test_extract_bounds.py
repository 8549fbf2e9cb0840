"""The extract stage is bounded on every page: time, depth, size, encodings; and ``skypile extract``."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import pickle

import pytest

from skypile.cli import main as cli_main
from skypile.document import Document, Dropped, RawRecord
from skypile.extractors.bounded import BoundedRunner, Crash
from skypile.extractors.charset import decode_html
from skypile.extractors.html import HtmlExtractor
from skypile.extractors.lines import DEFAULT_LINE_FILTER, _EMAIL_RE

EN = (
    "Stale bread is not simply dry bread. A loaf left on the counter loses some moisture, but the main reason "
    "it turns hard is that the starch inside it slowly recrystallises after baking."
)
ZH = "社区图书馆最近完成了改造，原来狭小的阅览室被打通，增加了三十多个座位，还专门开辟了儿童阅读区。"
ZH2 = "在这条老街上，有一家开了三十多年的手工面店。每天清晨，老板都会亲自和面、揉面，再用竹竿反复压制。"


def _rec(payload: bytes, charset: str = "", rid: str = "<urn:uuid:t>") -> RawRecord:
    return RawRecord(id=rid, url="http://t.test/a", payload=payload, content_type="text/html", http_charset=charset)


def _body(inner: str) -> bytes:
    return f"<html><head><title>t</title></head><body>{inner}</body></html>".encode()


@pytest.fixture(scope="module")
def ex():
    e = HtmlExtractor()  # the default: a helper process, 15 s per page
    yield e
    e.close()


# ---------------------------------------------------------------- time


def test_email_pattern_is_linear_and_still_finds_addresses():
    """The old pattern took 4 s on 50k unspaced characters; now a match can only start where a run starts."""
    assert _EMAIL_RE.findall("write to john.doe+news@example.co.uk or a@b.cn today") == [
        "john.doe+news@example.co.uk",
        "a@b.cn",
    ]
    assert _EMAIL_RE.search("x" * 200_000) is None and _EMAIL_RE.search("x@" * 100_000) is None
    line = "a" * 100_000
    assert DEFAULT_LINE_FILTER(f"{EN}\n{line}") == EN  # one token is not prose


def test_long_unspaced_line_is_extracted_not_timed_out(ex):
    """A page with one 100 KB unspaced line (47 s before): extracted well inside the bound."""
    out = ex(_rec(_body(f"<article><p>{EN}</p><p>{'x' * 100_000}</p><p>{EN}</p></article>")))
    assert isinstance(out, Document) and out.text.count("recrystallises") == 2


def test_page_over_the_time_bound_is_dropped_and_the_worker_goes_on():
    """A 30 MB page of words takes ~10 s in trafilatura; with a 1 s bound it is a counted drop,
    the helper is replaced, and the next page is extracted normally."""
    ex = HtmlExtractor(timeout_s=1.0, max_bytes=40 << 20)
    try:
        assert isinstance(ex(_rec(_body(f"<p>{EN}</p>"))), Document)  # helper up (its start is not counted)
        slow = ex(_rec(_body(f"<p>{EN}</p><p>{'word ' * 6_000_000}</p>"), rid="slow"))
        assert isinstance(slow, Dropped) and slow.reason == "extract_timeout" and slow.id == "slow"
        again = ex(_rec(_body(f"<article><p>{EN}</p></article>"), rid="next"))
        assert isinstance(again, Document) and again.id == "next"
    finally:
        ex.close()


def test_huge_table_row_is_refused_before_trafilatura(ex):
    """trafilatura's table pass is quadratic in the cells of one row (150k cells: minutes)."""
    out = ex(_rec(_body(f"<p>{EN}</p><table><tr>{'<td>c</td>' * 150_000}</tr></table>")))
    assert isinstance(out, Dropped) and out.reason == "too_complex" and "150000 cells" in out.detail
    fine = ex(_rec(_body(f"<article><p>{EN}</p><table><tr>{'<td>cell</td>' * 50}</tr></table></article>")))
    assert isinstance(fine, Document)


def test_dying_helper_is_a_counted_crash_and_the_next_call_restarts_it():
    runner = BoundedRunner(os._exit, timeout_s=30)
    with pytest.raises(Crash):
        runner(3)
    with pytest.raises(Crash):  # a fresh helper each time, same outcome: no hang, no stale pipe
        runner(4)
    # Out of memory in the helper is a drop, not a dead worker: 40 MB is too little to import trafilatura
    # or, where the interpreter alone needs more, to start it. How the allocation failure shows depends on
    # where it strikes (MemoryError, a C extension's SystemError, the helper dying: extract_crash); each is
    # a counted drop, and the next page with room is extracted.
    out = HtmlExtractor(max_memory_mb=40)(_rec(_body(f"<p>{EN}</p>")))
    assert isinstance(out, Dropped) and out.reason in ("extract_crash", "extract_error"), out
    assert isinstance(HtmlExtractor(max_memory_mb=2000)(_rec(_body(f"<article><p>{EN}</p></article>"))), Document)


def _extract_in_worker(args):
    ex, payload = args
    out = ex(_rec(payload))
    return type(out).__name__, getattr(out, "text", "")


def test_stage_pickles_and_works_in_a_forked_pool(ex):
    """Beam pickles the stage; the local executor forks workers: each gets its own helper."""
    page = _body(f"<article><p>{EN}</p></article>")
    assert isinstance(ex(_rec(page)), Document)  # this process's helper is running
    clone = pickle.loads(pickle.dumps(ex))
    assert isinstance(clone(_rec(page)), Document)
    clone.close()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        outs = pool.map(_extract_in_worker, [(ex, page)] * 4)
    assert outs == [("Document", EN)] * 4
    assert isinstance(ex(_rec(page)), Document)  # the parent's helper survived its children


# ---------------------------------------------------------------- no silent damage


def test_text_below_300_nested_divs_is_kept_whole(ex):
    deep = "".join(f"<p>{EN} ({i})</p>" for i in range(14))  # ~2,100 characters
    out = ex(_rec(_body(f"<p>{EN}</p>{'<div>' * 300}{deep}{'</div>' * 300}<p>{EN}</p>")))
    assert isinstance(out, Document)
    assert all(f"{EN} ({i})" in out.text for i in range(14))  # libxml2's default limit kept none of them


def test_10000_levels_of_nesting_is_a_drop(ex):
    out = ex(_rec(_body(f"{'<div>' * 10_000}<p>{EN}</p>{'</div>' * 10_000}")))
    assert isinstance(out, Dropped) and out.reason == "too_deep"


def test_mixed_gbk_and_utf8_page_keeps_both_halves():
    """The HTTP header says UTF-8; the first paragraph is GBK, the second UTF-8."""
    page = b"<html><body><p>" + (ZH * 3).encode("gbk") + b"</p>\n<p>" + (ZH2 * 3).encode("utf-8") + b"</p></body></html>"
    text, cs = decode_html(page, "utf-8")
    assert cs == "utf-8+gb18030" and ZH * 3 in text and ZH2 * 3 in text
    doc = HtmlExtractor(timeout_s=0)(_rec(page, charset="utf-8"))
    assert isinstance(doc, Document) and ZH2 in doc.text and ZH in doc.text
    # A plain GBK page is not mistaken for mixed, with or without a declaration.
    gbk = b"<html><body>" + b"".join(b"<p>" + (s * 4).encode("gbk") + b"</p>\n" for s in (ZH, ZH2) * 20) + b"</body></html>"
    assert decode_html(gbk, "gbk")[1] == "gb18030" and decode_html(gbk)[1] == "gb18030"


def test_utf8_page_declared_gbk_is_read_as_utf8(shared):
    """GNE's qq/2 page declares a GB charset but is UTF-8 throughout: GB18030 would write mojibake."""
    raw = gzip.decompress(shared("html-zh", "gne", "html", "qq", "2.html.gz").read_bytes())
    text, cs = decode_html(raw)
    assert cs == "utf-8" and "第三方数据行业" in text


def test_big_and_binary_pages_are_counted_drops(ex):
    assert ex(_rec(b"<html><body><p>" + b"word " * (10 * 1024 * 1024) + b"</p></body></html>")).reason == "too_large"
    blob = bytes(range(256)) * 4000
    assert ex(_rec(blob)).reason in ("undecodable", "not_html")


# ---------------------------------------------------------------- skypile extract


def test_cli_extract_names_each_file_once_through_symbolic_links(tmp_path, capsys):
    """``**`` follows links: a link back to a parent folder spells every page again at each depth (41
    paths for one file here). Each real file is extracted once, under its shortest name."""
    (tmp_path / "site" / "a").mkdir(parents=True)
    page = tmp_path / "site" / "a" / "p.html"
    page.write_text(f"<html><body><article><p>{EN}</p></article></body></html>", encoding="utf-8")
    (tmp_path / "site" / "a" / "up").symlink_to("..")
    (tmp_path / "site" / "b.html").symlink_to(page)
    pattern = str(tmp_path / "site" / "**")
    assert cli_main(["extract", pattern, "--no-progress"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows] == [str(page)], [r["path"] for r in rows][:5]


def test_cli_extract_writes_one_object_per_page(tmp_path, shared, capsys):
    (tmp_path / "a.html").write_bytes(_body(f"<article><p>{EN}</p></article>"))
    (tmp_path / "b.html.gz").write_bytes(gzip.compress(_body(f"<article><p>{ZH * 2}</p></article>")))
    (tmp_path / "deep.html").write_bytes(_body("<div>" * 3000))
    (tmp_path / "broken.html.gz").write_bytes(b"not gzip")
    (tmp_path / "qq2.html.gz").write_bytes(shared("html-zh", "gne", "html", "qq", "2.html.gz").read_bytes())
    out = tmp_path / "out" / "pages.jsonl"
    assert cli_main(["extract", str(tmp_path / "*.html*"), "--jsonl", str(out), "--no-progress"]) == 0
    rows = {os.path.basename(r["path"]): r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert set(rows) == {"a.html", "b.html.gz", "deep.html", "broken.html.gz", "qq2.html.gz"}
    assert rows["a.html"]["text"] == EN and rows["a.html"]["lang"] == "en" and rows["a.html"]["reason"] is None
    assert ZH in rows["b.html.gz"]["text"] and rows["b.html.gz"]["lang"] == "zh"
    assert rows["deep.html"]["text"] is None and rows["deep.html"]["reason"] == "too_deep"
    assert rows["broken.html.gz"]["reason"] == "unreadable"
    assert rows["qq2.html.gz"]["lang"] == "zh" and "第三方数据行业" in rows["qq2.html.gz"]["text"]
    assert not [p for p in out.parent.iterdir() if p.name != "pages.jsonl"]  # no temp file left
    # Same config as the pipeline: --set reaches the stage; a bad value is a start-up error.
    short = ["--set", "extract.lines.prose_words=100", "--set", "extract.lines.sentence_words=100"]
    assert cli_main(["extract", str(tmp_path / "a.html"), *short]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] is None  # EN (28 words) is the page's whole body
    assert cli_main(["extract", str(tmp_path / "a.html"), *short, "--set", "extract.lines.max_fragment_run=0"]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "boilerplate_only"  # ... unless no fragment is kept
    assert cli_main(["extract", str(tmp_path / "a.html"), "--set", "extract.max_depth=9999"]) == 2
    assert cli_main(["extract", str(tmp_path / "missing*.html")]) == 2


def test_copies_of_a_runner_share_one_helper_process(monkeypatch):
    """Executors unpickle a fresh stage per task: the copies must not each leave a helper interpreter behind.
    Different functions (a benchmark's variants, interleaved) keep one helper each, up to MAX_HELPERS."""
    import pickle

    from skypile.extractors import bounded

    for r in list(bounded._helpers()):  # start from none
        bounded._helpers().pop(r).kill()
    first = BoundedRunner(len, timeout_s=30)
    assert first("abc") == 3
    (helper,) = bounded._helpers().values()
    for _ in range(3):
        copy = pickle.loads(pickle.dumps(first))
        assert copy("abcd") == 4
    assert list(bounded._helpers().values()) == [helper] and helper.proc.poll() is None  # one process served all
    other = BoundedRunner(sorted, timeout_s=30)  # another function: a helper of its own, the first one kept
    assert other("ba") == ["a", "b"] and first("ab") == 2
    assert len(bounded._helpers()) == 2 and helper.proc.poll() is None
    monkeypatch.setattr(bounded, "MAX_HELPERS", 4)
    more = [BoundedRunner(f, timeout_s=30) for f in (min, max, sum)]  # past the cap: least recently used stops
    for r in more:
        assert r([1, 2]) in (1, 2, 3)
    assert len(bounded._helpers()) == 4
    assert helper.proc.poll() is None  # `first` was used after `other`: `other`'s helper went first
    for r in (first, other, *more):
        r.close()
    assert bounded._helpers() == {}


# ---------------------------------------------------------------- one decode, one parse, light helper


def test_parse_repairs_like_trafilatura_and_drops_scripts_without_changing_the_text(shared):
    """parse_html repairs the page as trafilatura would (its fixes on the head, the XML-invalid characters
    on the bytes) and drops scripts and styles before trafilatura copies the tree: same text, JSON-LD kept."""
    import trafilatura
    from lxml.html import fromstring
    from trafilatura.utils import repair_faulty_html

    from skypile.evaluation.extraction import load_readability
    from skypile.extractors.tree import _PARSER, parse_html, repaired_bytes

    shared("html-en", "readability")
    pages = [p for p in load_readability() if p.name in ("aclu", "bbc-1", "cnet", "medium-2", "wapo-1", "yahoo-2")]
    assert len(pages) == 6
    for page in pages:
        html, _ = decode_html(page.html)
        for text in (html, html[:3000] + "\x00\x0b\ufffe" + html[3000:], html[:9000] + "\x01\uffff" + html[9000:]):
            assert repaired_bytes(text) == repair_faulty_html(text, text[:50].lower()).encode("utf-8", "surrogatepass")
        tree = parse_html(html)
        full = fromstring(repaired_bytes(html), parser=_PARSER)  # the same parse, scripts kept
        assert full.xpath("//script") and not tree.xpath('//style|//script[not(@type="application/ld+json")]')
        json_ld = '//script[@type="application/ld+json"]'
        assert len(tree.xpath(json_ld)) == len(full.xpath(json_ld))
        assert trafilatura.extract(tree, fast=True) == trafilatura.extract(full, fast=True), page.name
    tail = parse_html(f"<html><body><p>{EN}<script>var x = 1;</script> and after the script.</p></body></html>")
    assert tail.xpath("string(//p)") == f"{EN} and after the script."


def test_han_count_matches_a_regex_count(shared):
    import re

    from skypile.evaluation.extraction import load_cleaneval_zh, load_readability
    from skypile.extractors.page import han_count

    shared("html-zh", "cleaneval-zh")
    han = re.compile("[\u4e00-\u9fff]")
    texts = ["", "plain ascii", ZH, "\ud800中\udfff", "\U00020000中\u9fff\ua000\u4dff\u4e00", "é" * 10]
    texts += [decode_html(p.html, p.charset)[0] for p in load_cleaneval_zh()[:10] + load_readability()[:10]]
    for text in texts:
        assert han_count(text) == len(han.findall(text))


def test_the_stage_and_its_helper_load_no_schema_and_no_extractor_until_a_page_needs_them():
    """A worker whose pages go to the helper never imports trafilatura or resiliparse (~0.4 s of CPU);
    neither the stage nor the helper's code imports pyarrow (the document schema)."""
    import subprocess
    import sys

    def loaded(module: str) -> list[str]:
        probe = f"import sys, {module}; print(*(k for k in ('trafilatura', 'resiliparse', 'pyarrow') if k in sys.modules))"
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()

    assert loaded("skypile.extractors.html") == []  # the stage builds Documents (their Arrow schema: skypile.schema)
    assert loaded("skypile.extractors.page") == []  # what the helper unpickles
