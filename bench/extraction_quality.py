"""Extraction quality and speed on the shared ground truth: ours vs trafilatura vs resiliparse.

    python bench/extraction_quality.py [--out bench/results/extraction_quality.md] [--quick]

Every shared page set with a reference text, split once into a *dev* and a
*held-out* part (a page is held out when crc32 of its name is 0 mod 3; rules and
thresholds were tuned looking at dev pages only), each figure reported on both:

* CleanEval-en (358 pages, human gold) and cleaneval-zh (35 pages, human gold):
  bag-of-tokens precision / recall / F1, micro-averaged (English: lowercased
  ``\\w+`` words; Chinese: characters, whitespace removed);
* trafilatura-eval (170 English pages, snippets that must / must not appear):
  snippet recall, leakage, P, F1;
* GNE (20 Chinese news pages with GNE's own output, *not* human gold): the same
  character bag against that output, as agreement only.

Extractors: trafilatura 2.x with its defaults (bytes in, its own charset
handling), resiliparse ``extract_plain_text(main_content=True)``, and
:class:`skypile.extractors.html.HtmlExtractor` variants exactly as the pipeline
runs them (charset detection, the helper process with its time bound).  A
dropped page counts as empty output.  pages/s is over all pages of all sets (and per language), one
run on a shared machine, the extractors interleaved page by page: compare the ratio
column, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import trafilatura
from tqdm import tqdm

from skypile.document import Document
from skypile.evaluation.extraction import (
    GoldPage,
    OverlapScore,
    SnippetScore,
    load_cleaneval_en,
    load_cleaneval_zh,
    load_gne_pages,
    load_trafilatura_eval,
)
from skypile.data_paths import shared_path
from skypile.extractors.html import HtmlExtractor
from skypile.extractors.options import TrafilaturaSwitches
from skypile.io import atomic_write_text


def is_held_out(page: GoldPage) -> bool:
    return zlib.crc32(page.name.encode()) % 3 == 0


def word_tokens(text: str) -> Counter:
    return Counter(re.findall(r"\w+", text.lower()))


def char_tokens(text: str) -> Counter:
    return Counter("".join(text.split()))


@dataclass
class PageSet:
    name: str
    lang: str
    pages: list[GoldPage]
    kind: str  # "gold" (bag of tokens vs gold_text) | "snippets" | "reference" (bag vs another extractor)


def load_sets() -> list[PageSet]:
    import json

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
        PageSet("CleanEval-en", "en", load_cleaneval_en(), "gold"),
        PageSet("trafilatura-eval", "en", load_trafilatura_eval(), "snippets"),
        PageSet("cleaneval-zh", "zh", load_cleaneval_zh(), "gold"),
        PageSet("GNE (vs GNE output)", "zh", ref_pages, "reference"),
    ]


def trafilatura_default(page: GoldPage) -> str:
    return trafilatura.extract(page.html, url=page.url) or ""


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


@dataclass
class Result:
    name: str
    scores: dict = field(default_factory=dict)  # (set, part) -> score
    seconds: Counter = field(default_factory=Counter)  # lang -> seconds
    pages: Counter = field(default_factory=Counter)  # lang -> pages


def evaluate(variants: list[tuple[str, Callable[[GoldPage], str]]], sets: list[PageSet]) -> list[Result]:
    """Every extractor on every page, page by page (the extractors interleaved, so a change in
    the machine's load hits them alike and the speed ratios stay fair)."""
    results = [Result(name) for name, _ in variants]
    for _, fn in variants:  # warm up: lazy imports and helper processes start outside the timing
        fn(sets[0].pages[0])
    for s in sets:
        tokens = word_tokens if s.lang == "en" else char_tokens
        for r in results:
            for part in ("dev", "held-out"):
                r.scores[(s.name, part)] = SnippetScore() if s.kind == "snippets" else OverlapScore()
        for page in tqdm(s.pages, desc=s.name, unit="page", file=sys.stderr):
            part = "held-out" if is_held_out(page) else "dev"
            for r, (_, fn) in zip(results, variants):
                t0 = time.perf_counter()
                try:
                    text = fn(page)
                except Exception:  # noqa: BLE001 - an extractor that raises scores an empty page
                    text = ""
                r.seconds[s.lang] += time.perf_counter() - t0
                r.pages[s.lang] += 1
                if s.kind == "snippets":
                    r.scores[(s.name, part)].add(text, page)
                else:
                    r.scores[(s.name, part)].add(tokens(text), tokens(page.gold_text))
    return results


def variants(quick: bool) -> list[tuple[str, Callable[[GoldPage], str]]]:
    out: list[tuple[str, Callable[[GoldPage], str]]] = [("trafilatura defaults", trafilatura_default)]
    out.append(("resiliparse main_content", resiliparse_main))
    out.append(("ours (pipeline default)", ours(HtmlExtractor())))
    if not quick:
        plain = TrafilaturaSwitches()
        out += [
            ("ours, no second opinion (English: trafilatura's fallbacks, no resiliparse)",
             ours(HtmlExtractor(en=TrafilaturaSwitches(include_comments=True)))),
            ("ours, no block rules (lines only)", ours(HtmlExtractor(block_rules=None))),
            ("ours, no cleanup at all", ours(HtmlExtractor(block_rules=None, line_filter=None))),
            ("ours before #13 (no blocks, same switches both languages)", ours(HtmlExtractor(block_rules=None, en=plain, zh=plain))),
            ("ours in process (timeout_s=0)", ours(HtmlExtractor(timeout_s=0))),
        ]
    return out


NOTES = [
    "## Notes",
    "",
    "* Split: a page is *held out* when crc32(name) % 3 == 0. Rules, thresholds and trafilatura switches "
    "were chosen looking at dev pages only; the held-out tables were produced once the choices were made.",
    "* Measures: CleanEval-en bag of lowercased words; cleaneval-zh and GNE bag of characters (whitespace "
    "removed); trafilatura-eval snippet P/R/F1 (recall of must-have snippets, precision from leaked "
    "boilerplate snippets). GNE's reference is GNE's own output, so that column is agreement, not quality; "
    "its held-out part is 6 pages.",
    "* `ours (pipeline default)`: `HtmlExtractor()` as `skypile run` builds it: helper process with the "
    "per-page time bound, `huge_tree` parse with depth/size checks, per-language trafilatura switches "
    "(English: comments on, `fast` (no fallback extractors), and resiliparse's main content as a second "
    "opinion that replaces trafilatura's text when it holds 1.5x the words after the same cleanup; Chinese: "
    "`favor_precision` and `fast`, redone without precision when the result is tiny or resiliparse finds 2x "
    "more), block "
    "rules on Chinese pages, line cleanup on every page.",
    "* `ours, no second opinion`: English pages as before this change: trafilatura with its fallback "
    "extractors, no resiliparse.",
    "* The Chinese retry on resiliparse's 2x (`precision_retry_ratio`) changes no dev page; it was found by "
    "reading why text was lost on the 62 GNE pages (most without a reference) and fires on one page of the "
    "82 Chinese pages, a held-out one (gne/163/1: `favor_precision` returned the comment section). Its "
    "held-out GNE gain is therefore not an untouched held-out figure.",
    "* `ours before #13`: the previous defaults' choices (no block rules, comments off, no precision mode) "
    "on today's code (same decoding, parse checks and line cleanup).",
    "* `ours in process`: the same extractor without the helper process. Its pages/s flatters it: it shares "
    "trafilatura's in-process caches with the rows run on the same page before it, while trafilatura's "
    "defaults (first on each page) and `ours (pipeline default)` (its own process) start cold.",
    "* resiliparse is a dependency of SkyPile (the second opinion); its own row is its main-content "
    "extractor alone.",
]


def _fmt(score) -> str:
    return f"{score.precision:.3f} / {score.recall:.3f} / **{score.f1:.3f}**"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "extraction_quality.md"))
    ap.add_argument("--quick", action="store_true", help="only trafilatura, resiliparse and our default")
    args = ap.parse_args(argv)

    sets = load_sets()
    results = evaluate(variants(args.quick), sets)

    base = results[0]
    lines = [
        "# Extraction quality and speed on the shared ground truth",
        "",
        "Generated by `python bench/extraction_quality.py` "
        f"(Python {platform.python_version()}, trafilatura {trafilatura.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, shared with other jobs). See the script's docstring for the measures. "
        "Cells are precision / recall / **F1**; a dropped page counts as empty output.",
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
            lines.append(f"| {r.name} | " + " | ".join(_fmt(r.scores[(s.name, part)]) for s in sets) + " |")
        lines.append("")
    def rate(r: Result, lang: str | None) -> float:
        langs = [lang] if lang else list(r.pages)
        return sum(r.pages[x] for x in langs) / sum(r.seconds[x] for x in langs)

    lines += [
        "## Speed",
        "",
        "| extractor | pages/s, all | × trafilatura | English pages/s | × | Chinese pages/s | × |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = [f"{rate(r, x):.1f} | {rate(r, x) / rate(base, x):.2f}" for x in (None, "en", "zh")]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    lines += ["", *NOTES, ""]
    atomic_write_text(args.out, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
