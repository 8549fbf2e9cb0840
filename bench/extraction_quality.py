"""Extraction quality and speed on the shared ground truth: ours vs trafilatura vs resiliparse.

    python bench/extraction_quality.py [--out bench/results/extraction_quality.md] [--quick]

Every shared page set with a reference text, split once into a *dev* and a
*held-out* part (a page is held out when crc32 of its name is 0 mod 3; rules and
thresholds were tuned looking at dev pages only), each figure reported on both.
English sets in their order of weight (the article convention: body text only,
no navigation, comments, link lists or sidebars):

* readability (120 pages of Readability.js's test suite, English or undeclared;
  gold = its expected article text): bag of lowercased words and single CJK
  characters (4 of the pages are Chinese or Japanese);
* trafilatura-eval (170 English pages, snippets that must / must not appear):
  snippet recall, leakage, P, F1;
* CleanEval-en (358 pages, human gold of 2007, which keeps comments and link
  lists: a secondary check): bag of lowercased words.

Chinese: cleaneval-zh (35 pages, human gold) and GNE (20 news pages with GNE's
own output, *not* human gold: agreement only), bags of characters (whitespace
removed).  Bag precision / recall / F1 are micro-averaged over a set's pages;
``mean F1`` is the mean of the pages' own F1 (how the issues quote it).

Extractors: trafilatura 2.x with its defaults and with ``fast`` (bytes in, its own
charset handling), resiliparse ``extract_plain_text(main_content=True)``, and
:class:`skypile.extractors.html.HtmlExtractor` variants exactly as the pipeline
runs them (charset detection, the time bound).  A dropped page counts as empty
output.  Speed is CPU time (this process, plus the extraction helper processes
where a variant uses them), the extractors interleaved page by page so a change
in the machine's load hits them alike: compare the ratio columns.  Whole-command
speed (start-up included) is ``bench/extraction_speed.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import trafilatura
from tqdm import tqdm

from skypile.data_paths import shared_path
from skypile.document import Document
from skypile.evaluation.extraction import (
    GoldPage,
    OverlapScore,
    SnippetScore,
    load_cleaneval_en,
    load_cleaneval_zh,
    load_gne_pages,
    load_readability,
    load_trafilatura_eval,
    unit_bag,
    word_bag,
)
from skypile.extractors import bounded
from skypile.extractors.html import HtmlExtractor
from skypile.extractors.options import DEFAULT_EN
from skypile.io import atomic_write_text


def is_held_out(page: GoldPage) -> bool:
    return zlib.crc32(page.name.encode()) % 3 == 0


def char_bag(text: str) -> Counter:
    return Counter("".join(text.split()))


@dataclass
class PageSet:
    name: str
    lang: str
    pages: list[GoldPage]
    kind: str  # "gold" (bag of tokens vs gold_text) | "snippets" | "reference" (bag vs another extractor)
    tokens: Callable[[str], Counter] | None = None


def load_sets() -> list[PageSet]:
    gne = {p.name: p for p in load_gne_pages()}
    ref_pages = []
    with open(shared_path("html-zh", "gne", "gne-output.jsonl"), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            name = "gne/" + row["file"][len("html/") : -len(".gz")]
            if name in gne:
                p = gne[name]
                ref_pages.append(GoldPage(p.name, p.url, p.html, gold_text=row["title"] + "\n" + row["content"]))
    return [
        PageSet("readability", "en", load_readability(), "gold", unit_bag),
        PageSet("trafilatura-eval", "en", load_trafilatura_eval(), "snippets"),
        PageSet("CleanEval-en", "en", load_cleaneval_en(), "gold", word_bag),
        PageSet("cleaneval-zh", "zh", load_cleaneval_zh(), "gold", char_bag),
        PageSet("GNE (vs GNE output)", "zh", ref_pages, "reference", char_bag),
    ]


def trafilatura_default(page: GoldPage) -> str:
    return trafilatura.extract(page.html, url=page.url) or ""


def trafilatura_fast(page: GoldPage) -> str:
    return trafilatura.extract(page.html, url=page.url, fast=True) or ""


def resiliparse_main(page: GoldPage) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from resiliparse.parse.html import HTMLTree

    html = bytes_to_str(page.html, page.charset or detect_encoding(page.html))
    return extract_plain_text(HTMLTree.parse(html), main_content=True)


def ours(extractor: HtmlExtractor) -> Callable[[GoldPage], str]:
    def run(page: GoldPage) -> str:
        res = extractor(page.record())
        return res.text if isinstance(res, Document) else ""

    return run


_TICK = os.sysconf("SC_CLK_TCK")


def helpers_cpu() -> float:
    """CPU seconds used so far by this thread's live extraction helper processes (0 when none)."""
    total = 0.0
    for helper in bounded._helpers().values():
        try:
            with open(f"/proc/{helper.proc.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def cpu_now() -> float:
    return time.process_time() + helpers_cpu()


@dataclass
class Score:
    """One extractor on one set part: the set's score plus the pages' own F1s."""

    total: OverlapScore | SnippetScore
    page_f1: list[float] = field(default_factory=list)

    def add(self, s: PageSet, page: GoldPage, text: str) -> None:
        if s.kind == "snippets":
            self.total.add(text, page)
            one = SnippetScore()
            one.add(text, page)
        else:
            one = OverlapScore()
            one.add(s.tokens(text), s.tokens(page.gold_text))
            self.total.overlap += one.overlap
            self.total.predicted += one.predicted
            self.total.gold += one.gold
        self.page_f1.append(one.f1)

    @property
    def mean_f1(self) -> float:
        return sum(self.page_f1) / max(len(self.page_f1), 1)


@dataclass
class Result:
    name: str
    scores: dict = field(default_factory=dict)  # (set, part) -> Score
    seconds: Counter = field(default_factory=Counter)  # set name -> CPU seconds
    pages: Counter = field(default_factory=Counter)  # set name -> pages
    texts: dict = field(default_factory=dict)  # (set, page) -> text


def new_score(s: PageSet) -> Score:
    return Score(SnippetScore() if s.kind == "snippets" else OverlapScore())


def evaluate(variants: list[tuple[str, Callable[[GoldPage], str]]], sets: list[PageSet]) -> list[Result]:
    """Every extractor on every page, page by page (the extractors interleaved, so a change in
    the machine's load hits them alike and the speed ratios stay fair)."""
    results = [Result(name) for name, _ in variants]
    for _, fn in variants:  # warm up: lazy imports and helper processes start outside the timing
        fn(sets[0].pages[0])
    for s in sets:
        for r in results:
            for part in ("dev", "held-out"):
                r.scores[(s.name, part)] = new_score(s)
        for page in tqdm(s.pages, desc=s.name, unit="page", file=sys.stderr):
            part = "held-out" if is_held_out(page) else "dev"
            for r, (_, fn) in zip(results, variants):
                t0 = cpu_now()
                try:
                    text = fn(page)
                except Exception:  # noqa: BLE001 - an extractor that raises scores an empty page
                    text = ""
                r.seconds[s.name] += cpu_now() - t0
                r.pages[s.name] += 1
                r.texts[(s.name, page.name)] = text
                r.scores[(s.name, part)].add(s, page, text)
    return results


def variants(quick: bool) -> list[tuple[str, Callable[[GoldPage], str]]]:
    out: list[tuple[str, Callable[[GoldPage], str]]] = [
        ("trafilatura defaults", trafilatura_default),
        ("trafilatura fast", trafilatura_fast),
        ("resiliparse main_content", resiliparse_main),
        ("ours (pipeline default)", ours(HtmlExtractor())),
    ]
    if not quick:
        out += ABLATIONS
    return out


def _en(**changes) -> HtmlExtractor:
    return HtmlExtractor(en=dataclasses.replace(DEFAULT_EN, **changes))


ABLATIONS: list[tuple[str, Callable[[GoldPage], str]]] = [
    ("ours, English: galleries dropped (candidate, not kept)", ours(_en(drop_galleries=True))),
    ("ours, English: no second opinion", ours(_en(rescue_ratio=0.0))),
    ("ours, English: second opinion on every page (no 200-word gate)", ours(_en(rescue_below=0))),
    ("ours, English: every line rule (before)", ours(_en(article_lines=False))),
    ("ours, English: with comments (before)", ours(_en(include_comments=True))),
    ("ours, English as before (comments, every line rule, second opinion at 1.5x on every page)",
     ours(_en(include_comments=True, rescue_ratio=1.5, rescue_below=0, article_lines=False))),
    ("ours, no block rules (Chinese: lines only)", ours(HtmlExtractor(block_rules=None))),
]

NOTES = [
    "## Notes",
    "",
    "* Split: a page is *held out* when crc32(name) % 3 == 0. Rules, thresholds and trafilatura switches "
    "were chosen looking at dev pages only; the held-out tables were produced once the choices were made.",
    "* readability's 120 pages include Readability.js's unit-test pages (a handful of words, or the same "
    "two lorem-ipsum paragraphs with different metadata); they weigh little in the micro F1 and as much as "
    "a news article in the mean F1 per page.",
    "* `ours (pipeline default)`: `HtmlExtractor()` as `skypile run` builds it, the time bound in its helper "
    "process. English pages: trafilatura `fast` without comments (the article convention), its text through "
    "`LineFilter.article` (the boilerplate-line rule alone when the text reads as an article, every rule "
    "otherwise), and, when that text holds under 200 words, resiliparse's main content (every cleanup "
    "rule) instead if it holds 1.75x the words. "
    "Chinese pages: `favor_precision` and `fast`, block rules on trafilatura's output tree and the line "
    "cleanup, the pass redone without precision when it kept too little or resiliparse finds 2x more.",
    "* `(before)` rows put back one English choice of the previous default each; `English as before` puts "
    "back all of them (what main shipped, on today's decoding, parsing and line rules). The 200-word gate "
    "was read off the dev pages (the smallest gate at which both article sets' dev F1 equal the ungated "
    "second opinion's) after the ungated one had lost F1 on the held-out article pages; CleanEval's gold, "
    "which keeps every post of a multi-post page, pays for it.",
    "* `galleries dropped (candidate, not kept)`: the one candidate of issue #24's last round, chosen on dev "
    "pages only: image galleries, slideshows and carousels of 3+ captions (by class name) leave trafilatura's "
    "tree (`extract.en.drop_galleries`; the second opinion still reads the whole page). Dev: readability 0.970 "
    "-> 0.983 micro F1 (0.972 -> 0.981 mean per page; a 50-caption gallery inside a business article, 0.32 -> "
    "0.92, and a one-photo slideshow kept by the 3-caption floor), trafilatura-eval and CleanEval-en dev "
    "unchanged. The held-out tables were then run once with it as the default: readability held-out unchanged "
    "(0.980 / 0.967), trafilatura-eval held-out 0.952 -> 0.947 (0.9524 -> 0.9468, recall 0.963 -> 0.952), over "
    "the 0.005 a rule may lose, so it stays off; this run (the default back as before) repeats those figures. "
    "Tried on dev and not kept before any held-out run: a narrower boilerplate-line rule (10-30 words: "
    "readability flat, trafilatura-eval dev -0.009 to -0.019), trafilatura's `include_images` / "
    "`include_formatting` / `favor_recall` (dev F1 down or flat), figure captions kept as paragraphs "
    "(flat), prose lists turned into paragraphs (trafilatura drops lists outside a recognised content "
    "container: readability dev mean -0.0005, trafilatura-eval -0.002, CleanEval +0.007), Readability.js's "
    "unlikely-candidate class filter (readability dev mean 0.972 -> 0.965: it removed article wrappers), "
    "unwrapping layout tables (English dev flat to -0.003; cleaneval-zh dev +0.013 / +0.016 micro F1, left "
    "for a Chinese issue since the Chinese target is met).",
    "* GNE's reference is GNE's own output, so that column is agreement, not quality; its held-out part is "
    "6 pages. cleaneval-zh has 15 held-out pages here (the set's other 34 pages are withheld from this "
    "repository).",
    "* Speed here is each extractor's own CPU time per page, in process (ours includes its helper's CPU): "
    "whole commands, start-up included, are in `bench/results/extraction_speed.md`; where a page's "
    "milliseconds go is in `bench/results/extraction_profile.md`.",
]


def _fmt(score: Score, kind: str) -> str:
    t = score.total
    cell = f"{t.precision:.3f} / {t.recall:.3f} / **{t.f1:.3f}**"
    return cell if kind == "snippets" else f"{cell} ({score.mean_f1:.3f})"


def report(results: list[Result], sets: list[PageSet], notes: list[str]) -> list[str]:
    lines = [
        "# Extraction quality and speed on the shared ground truth",
        "",
        "Generated by `python bench/extraction_quality.py` "
        f"(Python {platform.python_version()}, trafilatura {trafilatura.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, shared with other jobs; load average at the end: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}). See the script's docstring for the measures. "
        "Cells are precision / recall / **F1** (mean F1 per page); a dropped page counts as empty output.",
        "",
    ]
    for part in ("held-out", "dev"):
        n = {s.name: sum(1 for p in s.pages if is_held_out(p) == (part == "held-out")) for s in sets}
        lines += [
            f"## {part} pages",
            "",
            "| extractor | " + " | ".join(f"{s.name} ({n[s.name]})" for s in sets) + " |",
            "|---|" + "---|" * len(sets),
        ]
        for r in results:
            lines.append(f"| {r.name} | " + " | ".join(_fmt(r.scores[(s.name, part)], s.kind) for s in sets) + " |")
        lines.append("")

    base = results[0]

    def rate(r: Result, names: list[str]) -> float:
        return sum(r.pages[x] for x in names) / max(sum(r.seconds[x] for x in names), 1e-9)

    groups = [(s.name, [s.name]) for s in sets]
    groups += [(f"all {lang}", [s.name for s in sets if s.lang == lang]) for lang in ("en", "zh")]
    lines += [
        "## Speed (pages per CPU second, in process; × = ratio to trafilatura's defaults on the same pages)",
        "",
        "| extractor | " + " | ".join(f"{g} | ×" for g, _ in groups) + " |",
        "|---|" + "---|---|" * len(groups),
    ]
    for r in results:
        cells = [f"{rate(r, names):.1f} | {rate(r, names) / rate(base, names):.2f}" for _, names in groups]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return lines + ["", *notes, ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "extraction_quality.md"))
    ap.add_argument("--quick", action="store_true", help="only trafilatura, resiliparse and our default")
    args = ap.parse_args(argv)

    sets = load_sets()
    results = evaluate(variants(args.quick), sets)
    lines = report(results, sets, NOTES)
    atomic_write_text(args.out, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
