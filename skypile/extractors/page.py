"""One page's bytes → its main text or a drop reason: the work the extract stage bounds.

:class:`PageExtractor` is what runs in the helper process of
:mod:`skypile.extractors.bounded` (or in process with ``timeout_s=0``): it takes
a :class:`PageInput` and returns :class:`Extracted` or :class:`Refused`, plain
tuples, so the helper needs neither the document schema (pyarrow) nor the
stage machinery; :class:`~skypile.extractors.html.HtmlExtractor` turns the
answer into a :class:`~skypile.document.Document` or a counted drop.
trafilatura and resiliparse are imported on first use: a worker whose pages all
go to the helper never loads them (~0.4 s of CPU per process).

Per page language (:func:`page_lang`: Chinese when the HTML holds 100+ Han
characters, else English rules) the page is decoded once
(:mod:`~skypile.extractors.charset`) and parsed once with ``huge_tree``
(:mod:`~skypile.extractors.tree`); trafilatura runs on that tree (it works on
a copy, so a second pass reuses it) with the language's switches
(:mod:`~skypile.extractors.options`).

* English pages (the article convention: body text, not comments, link lists
  or sidebars): trafilatura ``fast`` without comments, its text through the
  line cleanup's boilerplate rule when it reads as an article (:meth:`LineFilter.article
  <skypile.extractors.lines.LineFilter.article>`: the navigation and fragment
  rules cut article headings and list items on every English dev set).  When
  that text is short (under ``rescue_below``, 200 words) a second opinion
  (:mod:`~skypile.extractors.second_opinion`), resiliparse's main content
  through the whole cleanup, replaces it if it holds ``rescue_ratio`` (1.75) times
  as much: trafilatura kept a part of the page (a teaser, half an article, one
  of two repeated paragraphs).
* Chinese pages: ``favor_precision``, the block rules on trafilatura's output
  tree (:mod:`~skypile.extractors.blocks`) and the line cleanup; the pass is
  redone without precision when it kept too little.

All of it was chosen on the dev half of the shared ground truth; the held-out
half is reported beside it in ``bench/results/extraction_quality.md``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from skypile.extractors.blocks import DEFAULT_BLOCK_RULES, BlockRules
from skypile.extractors.charset import UndecodableError, decode_html
from skypile.extractors.lines import DEFAULT_LINE_FILTER, LineFilter
from skypile.extractors.options import DEFAULT_EN, DEFAULT_ZH, TrafilaturaSwitches
from skypile.extractors.second_opinion import EXTRACTOR as SECOND_OPINION, main_content_text
from skypile.extractors.tree import TreeRefused, drop_galleries, parse_html
from skypile.filters.units import text_units

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "application/xhtml", "text/xhtml"})
_BINARY_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"%PDF",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"RIFF",
    b"\x00\x00\x01\x00",
    b"OggS",
    b"ID3",
    b"wOFF",
    b"wOF2",
)
_HTML_SNIFF_RE = re.compile(rb"<(?:!doctype\s+html|html|head|body|title|meta|div|p|table|article|h[1-6])[\s>/]", re.I)
_WS_RUN_RE = re.compile(r"[ \t\u00a0\u3000]+")
_HAN_HIGH_BYTES = bytes(range(0x4E, 0xA0))
ZH_MIN_HAN = 100  # a page with this many Han characters in its HTML is a Chinese page

# trafilatura logs an ERROR for every page it cannot parse ("empty HTML tree"); each such page
# is already a counted drop (no_main_text), so at crawl scale the log lines are only noise.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)


class PageInput(NamedTuple):
    """What extraction needs of a crawl record."""

    payload: bytes
    content_type: str = ""
    http_charset: str = ""
    url: str = ""
    is_plain_text: bool = False


class Extracted(NamedTuple):
    text: str
    charset: str
    content_type: str  # the record's, lowercased, without parameters
    extractor: str  # trafilatura | resiliparse (the second opinion) | "" (WET text)


class Refused(NamedTuple):
    reason: str
    detail: str = ""


WARMUP_PAGE = PageInput(
    b"<html><body><article><p>" + b"A first page loads what trafilatura loads lazily. " * 5 + b"</p></article></body></html>",
    "text/html",
    url="http://warmup.skypile.test/",
)


def looks_like_html(payload: bytes) -> bool:
    """Markup near the start of the payload, and no binary file signature."""
    head = payload[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(_BINARY_MAGIC):
        return False
    return bool(_HTML_SNIFF_RE.search(head))


def han_count(text: str) -> int:
    """Characters in U+4E00..U+9FFF (CJK Unified Ideographs).

    Counted on the UTF-16 code units' high bytes (0x4E..0x9F exactly for those characters;
    surrogate halves are 0xD8..0xDF) with ``bytes.translate``: C passes over the bytes,
    ~3x faster than a regular-expression scan of the page.
    """
    if text.isascii():  # a flag CPython keeps on the string: no scan
        return 0
    high = text.encode("utf-16-le", "surrogatepass")[1::2]
    return len(high) - len(high.translate(None, _HAN_HIGH_BYTES))


def page_lang(html: str) -> str:
    """``zh`` for a Chinese page, else ``en`` (every other page gets the English thresholds)."""
    return "zh" if han_count(html[:500_000]) >= ZH_MIN_HAN else "en"


def normalize_text(text: str) -> str:
    """Collapse runs of spaces (incl. NBSP and ideographic space) inside lines; drop U+FFFD.

    A few replacement characters survive decoding when a page itself holds broken
    bytes (:data:`~skypile.extractors.charset.MAX_BAD_FRACTION`); they carry nothing.
    """
    text = text.replace("\ufffd", "")
    return "\n".join(_WS_RUN_RE.sub(" ", ln).strip() for ln in text.splitlines())


@dataclass
class ExtractionSettings:
    """What decides a page's text, declared once: :class:`PageExtractor` runs it on a page, and
    :class:`~skypile.extractors.html.HtmlExtractor` (the stage) adds the time bound around it."""

    max_bytes: int = 10 * 1024 * 1024  # larger payloads are ``too_large`` before any decoding
    include_comments: bool = False  # True: comments on every page (else as ``en`` / ``zh`` say)
    include_tables: bool = True
    fast: bool = False  # True: no fallback extractors on any page (else as ``en`` / ``zh`` say)
    line_filter: LineFilter | None = field(default=DEFAULT_LINE_FILTER)  # None: no Skywork line cleanup
    block_rules: BlockRules | None = field(default=DEFAULT_BLOCK_RULES)  # None: text output, lines only
    en: TrafilaturaSwitches = DEFAULT_EN  # switches for pages that are not Chinese
    zh: TrafilaturaSwitches = DEFAULT_ZH
    precision_retry_units: int = 100  # see PageExtractor._blocks
    precision_retry_ratio: float = 2.0  # see PageExtractor._blocks (0: off)
    precision_retry_below: int = 1000  # see PageExtractor._blocks (0: no limit)
    max_depth: int = 1000  # deeper trees are ``too_deep`` (skypile.extractors.tree)
    max_elements: int = 100_000  # larger trees are ``too_complex``
    max_row_cells: int = 2000


@dataclass
class PageExtractor(ExtractionSettings):
    """``PageExtractor(...)(page)`` → :class:`Extracted` | :class:`Refused`; never raises."""

    def __call__(self, page: PageInput) -> Extracted | Refused:
        try:
            return self.extract(page)
        except Exception as e:  # noqa: BLE001 - a bad page must never stop the run
            return Refused("extract_error", f"{type(e).__name__}: {e}"[:500])

    def clean(self, text: str, article: bool = False) -> str:
        """Spaces normalized, then the line cleanup (when on): all its rules, or its article form."""
        text = normalize_text(text)
        if self.line_filter is None:
            return text
        return self.line_filter.article(text) if article else self.line_filter(text)

    def extract(self, page: PageInput) -> Extracted | Refused:
        """The checks, cheapest first, then extraction (may raise: :meth:`__call__` catches)."""
        payload = page.payload
        if len(payload) > self.max_bytes:
            return Refused("too_large", f"{len(payload)} bytes > {self.max_bytes}")
        if not payload or payload.isspace():  # no copy, unlike strip(), on a 10 MB page
            return Refused("empty")
        ctype = (page.content_type or "").split(";")[0].strip().lower()
        if not page.is_plain_text and ctype not in HTML_TYPES and not looks_like_html(payload):
            return Refused("not_html", ctype or "no content type")
        if not page.is_plain_text and payload[:8].startswith(_BINARY_MAGIC):
            return Refused("not_html", f"binary payload labelled {ctype}")
        try:
            html, charset = decode_html(payload, page.http_charset)
        except UndecodableError as e:
            return Refused("undecodable", str(e))
        if page.is_plain_text:
            text, extractor = self.clean(html), ""
        else:
            try:
                tree = parse_html(html, self.max_depth, self.max_elements, self.max_row_cells)
            except TreeRefused as e:
                return Refused(e.reason, str(e))
            text, extractor = self._main_text(html, tree, page.url)
            if text is None:
                return Refused("no_main_text")
        text = text.strip()
        if not text:
            return Refused("boilerplate_only")
        return Extracted(text, charset, ctype, extractor)

    def _main_text(self, html: str, tree, url: str) -> tuple[str | None, str]:
        """(main text or None, extractor) of a parsed page, by its language's switches."""
        import trafilatura

        lang = page_lang(html)
        switches = self.zh if lang == "zh" else self.en
        if switches.drop_galleries:
            drop_galleries(tree)
        options = dict(
            url=url or None,
            fast=self.fast or switches.fast,
            include_comments=self.include_comments or switches.include_comments,
            favor_precision=switches.favor_precision,
            favor_recall=switches.favor_recall,
            include_tables=self.include_tables,
            deduplicate=False,
        )
        if self.block_rules is None or lang not in self.block_rules.languages:
            out = trafilatura.extract(tree, **options)
            text = self.clean(out, switches.article_lines) if out and out.strip() else None
        else:
            text = self._blocks(html, tree, options, lang)
        extractor = "trafilatura"
        units = text_units(text) if text and switches.rescue_ratio > 0 else 0
        if switches.rescue_ratio > 0 and (switches.rescue_below <= 0 or units < switches.rescue_below):
            need = switches.rescue_ratio * units
            other = main_content_text(html)
            # the cleanup only removes text: a raw second opinion under the bar cannot clear it
            if text_units(other) > need:
                other = self.clean(other)
                if text_units(other) > need:
                    text, extractor = other, SECOND_OPINION
        return text, extractor

    def _blocks(self, html: str, tree, options: dict, lang: str) -> str | None:
        """trafilatura's output tree through the block rules (None: no main text).

        ``favor_precision`` sometimes picks a teaser list or the comment section
        instead of the article (GNE's 163.com pages).  The page is extracted again
        without it when the precise result keeps fewer than ``precision_retry_units``
        words/characters (the retry is kept if larger), or when it keeps fewer than
        ``precision_retry_below`` and resiliparse's main content holds over
        ``precision_retry_ratio`` times as much (the retry is kept if it also holds
        that much more: the precise pass missed the article).  The wrong picks seen
        held ~300 characters; asking resiliparse only below 1,000 spares half the
        Chinese pages its parse, and the retries it stops never changed a text.
        """
        import trafilatura

        # Links are kept for their text (link density), never their targets: without a base URL
        # trafilatura skips resolving every relative href (~7% of a Chinese page's time, same text).
        # The block rules read the output tree: the "txt" format skips rendering the text from it.
        doc = trafilatura.bare_extraction(tree, include_links=True, output_format="txt", **dict(options, url=None))
        text = None
        if doc is not None and (doc.raw_text or "").strip():
            text = normalize_text(self.block_rules([doc.body, doc.commentsbody], self.line_filter, lang))
        if not options["favor_precision"]:
            return text
        units = text_units(text) if text is not None else 0
        if units < self.precision_retry_units:
            bar = units
        elif (
            self.precision_retry_ratio > 0
            and (self.precision_retry_below <= 0 or units < self.precision_retry_below)
            and text_units(main_content_text(html)) > self.precision_retry_ratio * units
        ):
            bar = self.precision_retry_ratio * units
        else:
            return text
        # trafilatura works on a copy of the tree it is given: the same tree serves the second pass
        again = self._blocks(html, tree, dict(options, favor_precision=False), lang)
        if again is not None and (text is None or text_units(again) > bar):
            return again
        return text
