"""The run's page: built after real runs on ../shared/data, every number on it checked against the file it
comes from (parsing the page a browser gets, not the code that made it), and opened in headless Chromium
with the network off."""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from skypile.cli import main
from skypile.dedup.segments import normalize_segment, segment_hash
from skypile.document import Document, Dropped
from skypile.evaluation import dedup as ev
from skypile.readers.warc_builder import Page, shared_pages, write_warc
from skypile.report.clusters import LARGEST, first_line
from skypile.report.page import get
from skypile.report.sketches import DROPPED_SAMPLES, KEPT_SAMPLES, SCORE_BINS, RunSketch, sample_hash
from skypile.stage import StageStats

MIX = {"target": {"en": 0.498, "zh": 0.396, "code": 0.08, "other": 0.026}}


# --- runs --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def web_run(tmp_path_factory, shared, tokenizer_model, quality_models) -> Path:
    """The web recipe on 60 real pages (10 re-served under mirror URLs) and the shared crawl samples."""
    shared("html-en", "trafilatura-eval")
    d = tmp_path_factory.mktemp("web")
    pages = list(shared_pages(limit=60))
    with open(d / "a.warc.gz", "wb") as f:
        write_warc(f, pages[:40], "first 40 real pages")
    with open(d / "b.warc.gz", "wb") as f:
        write_warc(f, [Page(p.url.replace("://", "://mirror."), p.body, p.charset) for p in pages[30:40]] + pages[40:60], "mirrors")
    out = d / "run"
    args = ["run", "--runner", "local", "--output", str(out), "--tokenizer", tokenizer_model, "--shard-size", "64KB", "--no-progress"]
    for i in (d / "a.warc.gz", d / "b.warc.gz", f"{shared('warc', 'dolma')}/*.warc.gz"):
        args += ["--input", str(i)]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def dedup_run(tmp_path_factory, shared) -> Path:
    """``skypile dedup`` on real articles (en, zh) with planted exact, syndicated and templated copies."""
    shared("html-en", "cleaneval", "gold")
    shared("domains", "zh", "skywork-eval-loss")
    d = tmp_path_factory.mktemp("dedup")
    docs = [doc for lang, texts in (("en", ev.base_articles("en")[:60]), ("zh", ev.base_articles("zh", limit=120)[:60]))
            for doc in ev.plant(texts, lang, seed=3).docs]
    (d / "docs.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in docs), encoding="utf-8")
    out = d / "run"
    assert main(["dedup", "--input", str(d / "docs.jsonl"), "--output", str(out), "--no-progress"]) == 0
    return out


# --- reading the page as a browser gets it -------------------------------------------------------------

class PageNumbers(HTMLParser):
    """Every element carrying a source address (``data-key`` & co.) with its text; every SVG artist whose id
    names a stats value, with its drawn geometry and the axes it sits in."""

    ADDRESSES = ("data-key", "data-sum", "data-share", "data-manifest", "data-mix")

    def __init__(self) -> None:
        super().__init__()
        self.numbers: list[tuple[str, object, str]] = []  # (attribute, address, shown text)
        self.artists: list[dict] = []  # {"path", "value", "axes", "figure", "d"}
        self.figures = 0
        self._open: list[list] = []  # [tag, depth, attribute, address, text parts]
        self._depth = 0
        self._axes: list[tuple[int, str]] = []
        self._artist: dict | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self._depth += 1
        if tag == "figure":
            self.figures += 1
        for name in self.ADDRESSES:
            if name in a:
                self._open.append([tag, self._depth, name, json.loads(a[name]), []])
        gid = a.get("id", "") or ""
        if tag == "g" and re.fullmatch(r"axes_\d+", gid):
            self._axes.append((self._depth, gid))
        if tag == "g" and gid.startswith("v["):
            path, _, value = gid[1:].rpartition("=")
            self._artist = {"path": json.loads(path), "value": json.loads(value), "figure": self.figures,
                            "axes": self._axes[-1][1] if self._axes else "", "d": None, "depth": self._depth}
            self.artists.append(self._artist)
        if tag == "path" and self._artist is not None and self._artist["d"] is None:
            self._artist["d"] = a.get("d")

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open[-1][1] == self._depth:
            t, _, name, address, parts = self._open.pop()
            self.numbers.append((name, address, "".join(parts)))
        if self._axes and self._axes[-1][0] == self._depth:
            self._axes.pop()
        if self._artist is not None and self._artist["depth"] == self._depth:
            self._artist = None
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        for entry in self._open:
            entry[4].append(data)


def read_page(path: Path) -> PageNumbers:
    parser = PageNumbers()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def assert_shows(value: object, text: str, where: object) -> None:
    """``text`` is how the page writes ``value``: ints exactly, floats to the digits shown, None as a dash,
    text as it is."""
    if isinstance(value, str):  # (HTML reads CR LF and CR as LF)
        assert text == value.replace("\r\n", "\n").replace("\r", "\n"), (where, text, value)
        return
    shown = None if text.strip() == "–" else text.strip()
    if value is None:
        assert shown is None, (where, text)
    elif isinstance(value, bool):
        assert shown == ("yes" if value else "no"), (where, text)
    elif isinstance(value, int):
        assert int(shown.replace(",", "")) == value, (where, text, value)
    elif isinstance(value, float):
        digits = len(shown.split(".")[1]) if "." in shown else 0
        assert abs(float(shown.replace(",", "")) - value) <= 0.5 * 10 ** -digits + 1e-9, (where, text, value)
    else:
        assert shown == str(value), (where, text, value)


def _bar_size(d: str) -> tuple[float, float]:
    nums = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", d)]
    xs, ys = nums[0::2], nums[1::2]
    return max(xs) - min(xs), max(ys) - min(ys)


def check_page(page: Path, stats: dict, manifest: dict, mix: dict | None = None) -> PageNumbers:
    """Every number on ``page`` is the one in the run's files; every bar is drawn to scale from one."""
    p = read_page(page)
    sources = {"data-key": stats, "data-manifest": manifest, "data-mix": mix or {}}
    for name, address, text in p.numbers:
        if name in sources:
            assert_shows(get(sources[name], address), text, address)
        elif name == "data-sum":
            assert_shows(sum(get(stats, q, 0) for q in address), text, address)
        else:  # data-share: a percentage of two sums
            num, den = (sum(get(stats, q, 0) for q in address[k]) for k in ("num", "den"))
            if den == 0:
                assert text == "–", (address, text)
            else:
                assert text.endswith("%") and abs(float(text[:-1]) - 100.0 * num / den) <= 0.05 + 1e-9, (address, text)
    for artist in p.artists:
        path = artist["path"]
        source = mix if path[0] == "@mix" else stats
        assert get(source, path[1:] if path[0] == "@mix" else path) == artist["value"], path
    # bars: in each axes, every bar's length (width or height) is its value times one scale
    by_axes: dict[tuple, list] = {}
    for artist in p.artists:
        if artist["d"] and artist["value"] and min(_bar_size(artist["d"])) > 0:  # a bar (a line has no width)
            by_axes.setdefault((artist["figure"], artist["axes"]), []).append(artist)
    for key, bars in by_axes.items():
        w = [_bar_size(b["d"])[0] / b["value"] for b in bars]
        h = [_bar_size(b["d"])[1] / b["value"] for b in bars]
        assert max(w) <= min(w) * 1.01 or max(h) <= min(h) * 1.01, (key, [b["path"] for b in bars])
    assert {a["figure"] for a in p.artists} == set(range(1, p.figures + 1))  # every figure is drawn from the stats
    return p


def _files(run: Path) -> tuple[dict, dict]:
    return json.loads((run / "stats.json").read_text()), json.loads((run / "manifest.json").read_text())


# --- tests ---------------------------------------------------------------------------------------------

def test_every_number_on_the_web_runs_page_is_the_one_in_its_files(web_run):
    stats, manifest = _files(web_run)
    p = check_page(web_run / "report.html", stats, manifest)
    keys = {json.dumps(a) for n, a, _ in p.numbers if n == "data-key"}
    # the funnel: every stage's documents, characters, seconds and each of its drop reasons
    for stage, s in stats["stages"].items():
        for what in ("in", "kept", "seconds"):
            assert json.dumps(["stages", stage, what]) in keys
        for reason in s["dropped"]:
            assert json.dumps(["stages", stage, "dropped", reason]) in keys
    assert stats["stages"]["extract"]["chars"]["kept"] > 0 and "in" not in stats["stages"]["extract"]["chars"]  # raw records
    assert stats["stages"]["write"]["tokens"]["kept"] == stats["tokens"] == manifest["tokens"]
    # chars a stage removed = chars in - chars kept (documents dropped, segments cut)
    for stage in ("lang_filter", "exact_dedup", "quality_bucket"):
        s = stats["stages"][stage]
        assert s["chars"]["in"] - s["chars"]["kept"] == s.get("chars_removed", 0)
    # quality: a histogram bar per filled bin, per language and score; thresholds drawn; bucket counts
    bars = Counter((a["path"][1], a["path"][3]) for a in p.artists if a["path"][0] == "scores")
    for score in ("perplexity", "ref_prob"):
        hist = stats["scores"][score][score]["en"]
        assert hist["n"] == stats["stages"][score]["in"]  # every document scored is in the histogram
        assert bars[(score, "en")] == len(hist["counts"])
        assert sum(hist["counts"].values()) + hist["below"] + hist["above"] + hist["missing"] == hist["n"]
    lines = {tuple(a["path"][3:]) for a in p.artists if a["path"][0] == "stage_info"}
    assert {("perplexity", "en", "head"), ("perplexity", "en", "middle"), ("ref_prob", "en", "head")} <= lines
    buckets = stats["values"]["quality_bucket"]["bucket"]
    assert sum(buckets["en"].values()) == stats["stages"]["quality_bucket"]["in"]
    assert sum(n for b in buckets.values() for k, n in b.items() if k == "tail") == stats["stages"]["quality_bucket"]["dropped"]["bucket_tail"]
    # languages: langid's counts add up to what it kept; the token mix to what was written
    assert sum(stats["values"]["langid"]["lang"]["*"].values()) == stats["stages"]["langid"]["kept"]
    written = stats["written"]
    assert sum(c["tokens"] for langs in written.values() for c in langs.values()) == manifest["tokens"]
    assert sum(c["docs"] for langs in written.values() for c in langs.values()) == manifest["rows"]
    # samples: every one is on the page, with its text
    texts = {json.dumps(a): t for n, a, t in p.numbers if n == "data-key"}
    shown = 0
    for stage, s in stats["samples"].items():
        assert len(s["kept"]) <= KEPT_SAMPLES and all(len(v) <= DROPPED_SAMPLES for v in s["dropped"].values())
        for i, e in enumerate(s["kept"]):
            assert texts[json.dumps(["samples", stage, "kept", i, "text"])] == e["text"]
            shown += 1
    assert shown >= 3 * (len(stats["stages"]) - 2)  # kept samples of every stage but read and write
    assert {"lang_de", "exact_duplicate", "bucket_tail"} <= {r for s in stats["samples"].values() for r in s["dropped"]}
    # the largest exact-duplicate clusters: the mirrored pages, sizes as in the report file
    sizes = Counter(pq.read_table(web_run / "reports" / "exact_dedup.parquet").column("cluster_id").to_pylist())
    clusters = stats["examples"]["exact_dedup"]["cluster"]
    assert {c: e["size"] for c, e in clusters.items()} == dict(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:LARGEST])
    for cluster, e in clusters.items():
        assert e["items"][0][0] == cluster and len(e["items"]) == 2  # the survivor first, and one removed copy
        assert e["items"][0][1] == e["items"][1][1]  # exact copies: the same first line


def test_the_dedup_page_shows_clusters_and_segments_from_the_report_files(dedup_run):
    stats, manifest = _files(dedup_run)
    check_page(dedup_run / "report.html", stats, manifest)
    docs = {}
    for line in (dedup_run.parent / "docs.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        docs[d["id"]] = d["text"]
    for stage in ("exact_dedup", "near_dedup"):
        members = pq.read_table(dedup_run / "reports" / f"{stage}.parquet").to_pylist()
        sizes = Counter(r["cluster_id"] for r in members)
        of = {r["doc_id"]: r["cluster_id"] for r in members}
        clusters = stats["examples"][stage]["cluster"]
        assert clusters and {c: e["size"] for c, e in clusters.items()} == \
            dict(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:LARGEST])
        for cluster, e in clusters.items():
            ids = [i for i, _ in e["items"]]
            assert len(ids) == 2 and ids == sorted(ids) and ids[0] == cluster and all(of[i] == cluster for i in ids)
            for doc_id, line in e["items"]:
                if stage == "exact_dedup":
                    assert line == first_line(docs[doc_id])
                else:  # after segments: the first line left once the site's template lines were cut
                    assert line in {x.strip()[:160].rstrip() for x in docs[doc_id].split("\n")}
    segments = stats["examples"]["segments"]["segment"]
    table = json.loads((dedup_run / "fitted" / "segments.json").read_text())
    assert [k for k, _ in table["top"]] == sorted(segments, key=lambda k: (-segments[k]["size"], k))
    removed = stats["stages"]["segments"]["changed"]["lines_removed"]
    assert sum(e["n"] for e in segments.values()) == removed if table["count"] <= len(segments) else removed
    for key, e in segments.items():
        (line,), = e["items"]
        assert segment_hash(normalize_segment(line)) == int(key, 16)  # the text shown is the segment counted
        assert e["size"] >= 10 and e["n"] >= 1  # in at least segments.min_docs documents


def test_every_recipe_writes_its_page(tmp_path, shared, tokenizer_model):
    """export, code and parallel runs end with their page too, and its numbers are their stats'."""
    import gzip
    import itertools

    with gzip.open(shared("code", "linguist-samples.jsonl.gz"), "rt", encoding="utf-8") as f:
        (tmp_path / "code.jsonl").write_text("".join(itertools.islice(f, 200)), encoding="utf-8")
    pairs = shared("parallel", "wmt-newstest-zh2en", "newstest-zh2en-wmt19.csv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "pairs.csv").write_text("\n".join(pairs[:300]) + "\n", encoding="utf-8")
    runs = {"export": shared("web", "en", "dolma", "cc_en_head-0091.jsonl"), "code": tmp_path / "code.jsonl",
            "parallel": tmp_path / "pairs.csv"}
    for cmd, src in runs.items():
        out = tmp_path / cmd
        assert main([cmd, "--input", str(src), "--output", str(out), "--tokenizer", tokenizer_model, "--no-progress"]) == 0
        stats, manifest = _files(out)
        p = check_page(out / "report.html", stats, manifest)
        assert {json.dumps(["stages", s, "kept"]) for s in stats["stages"]} <= {json.dumps(a) for n, a, _ in p.numbers}
        assert sum(c["tokens"] for langs in stats["written"].values() for c in langs.values()) == manifest["tokens"] > 0
    code = json.loads((tmp_path / "code" / "stats.json").read_text())
    assert sum(code["values"]["code_lang"]["lang"]["*"].values()) == code["stages"]["code_lang"]["kept"]  # its language mix


def test_report_command_is_deterministic_and_sets_the_mix_target_beside(web_run, tmp_path, capsys):
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps(MIX))
    out = tmp_path / "page.html"
    assert main(["report", str(web_run), "--out", str(out), "--mix", str(mix)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}"
    stats, manifest = _files(web_run)
    p = check_page(out, stats, manifest, MIX)
    assert sorted(a for n, a, _ in p.numbers if n == "data-mix") == sorted(["target", g] for g in MIX["target"])
    # two builds of one run's page are byte for byte the same (samples, ids, figures)
    again = tmp_path / "again.html"
    assert main(["report", str(web_run) + "/", "--out", str(again)]) == 0
    assert main(["report", str(web_run), "--out", str(tmp_path / "plain.html")]) == 0
    assert again.read_bytes() == (tmp_path / "plain.html").read_bytes() == (web_run / "report.html").read_bytes()
    # no script, no font, nothing to fetch
    html = out.read_text()
    assert "<script" not in html and "@font-face" not in html and not re.search(r"url\((?!#)", html)  # only in-page clip paths
    assert not re.search(r"""(?:src|href)=(?!["']?#)""", html)  # links only to the page's own sections
    # user errors: one line, exit 2
    capsys.readouterr()
    for args, message in ((["report", str(tmp_path)], "has no stats.json"),
                          (["report", str(web_run), "--mix", str(web_run / "stats.json"), "--out", str(out)], "no target shares")):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def test_sketches_merge_to_the_same_summary_in_any_order(shared):
    """Tasks of any size and order give one summary: histograms add, samples are the global bottom-k."""
    texts = [line for line in shared("wiki", "en", "wikitext-2-raw-test.txt").read_text().splitlines() if len(line) > 80][:600]
    rng = random.Random(0)
    docs = []
    for i, text in enumerate(texts):
        d = Document(id=f"doc-{i:04d}", text=text, source="wiki/en", lang=rng.choice(["en", "zh"]))
        d.metadata.perplexity = 10 ** rng.uniform(0.5, 4.5)
        d.metadata.ref_prob = rng.random()
        docs.append(d)

    def task(part: list[Document]) -> StageStats:
        stats = StageStats()
        for d in part:
            stats.sketch.measure("perplexity", ("perplexity", "ref_prob"), d)
            if len(d.text) % 3:
                stats.sketch.sample_kept("length", d)
            else:
                stats.sketch.sample_dropped(Dropped("length", "too_short", d.id, d.url, "short"), d)
            stats.sketch.write(d)
        return StageStats.from_json(json.loads(json.dumps(stats.to_json())))  # as it travels in a task file

    summaries = []
    for n_tasks in (1, 7, 40):
        cuts = sorted(rng.sample(range(1, len(docs)), n_tasks - 1))
        parts = [docs[a:b] for a, b in zip([0, *cuts], [*cuts, len(docs)])]
        rng.shuffle(parts)
        merged = StageStats()
        for t in map(task, parts):
            merged.merge(t)
        summaries.append(json.dumps(merged.to_dict("length", 0)))
    assert summaries[0] == summaries[1] == summaries[2]
    s = json.loads(summaries[0])
    kept = [d for d in docs if len(d.text) % 3]
    assert [e["id"] for e in s["samples"]["length"]["kept"]] == \
        [d.id for d in sorted(kept, key=lambda d: sample_hash("length", d.id))[:KEPT_SAMPLES]]
    bins = SCORE_BINS["perplexity"]
    en = [d for d in docs if d.lang == "en"]
    assert s["scores"]["perplexity"]["perplexity"]["en"]["counts"] == \
        {str(b): n for b, n in sorted(Counter(bins.index(d.metadata.perplexity) for d in en).items())}
    assert s["written"]["wiki/en"]["en"] == {"docs": len(en), "chars": sum(len(d.text) for d in en), "tokens": 0}
    assert RunSketch.from_json(s).to_json() == {k: s[k] for k in ("scores", "values", "written", "samples", "examples")}


def test_the_page_renders_offline_in_chromium_without_errors_or_requests(web_run, tmp_path):
    from browser import find_chromium, open_page

    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("no Chromium in CI: scripts/test.sh installs Debian's chromium package")
        pytest.skip("no Chromium here (apt-get install chromium)")
    page = web_run / "report.html"
    visit = open_page(page, width=1200, max_height=2400)
    assert visit.errors == [], visit.errors
    assert visit.requests == [page.resolve().as_uri()]  # the page itself, and nothing else
    assert visit.title.startswith("SkyPile run report")
    assert visit.screenshot.startswith(b"\x89PNG") and len(visit.screenshot) > 20_000
    assert visit.height > 2400  # the whole page laid out (the screenshot is its top)
    docs = Path(__file__).resolve().parents[1] / "docs" / "report.png"
    target = docs if os.environ.get("SKYPILE_UPDATE_DOCS") or not docs.exists() else tmp_path / "report.png"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(visit.screenshot)
