"""HTML (or WET plain text) record → main-text :class:`Document`, stage ``extract``.

Order of checks, cheapest first, each a counted drop reason:

* ``too_large``   payload over ``max_bytes`` (checked before decoding, so a
  50 MB page costs nothing but a ``len``);
* ``empty``       no bytes, or only whitespace;
* ``not_html``    Content-Type is not HTML and the bytes do not sniff as HTML
  (images, PDFs, JSON …);
* ``undecodable`` no charset decodes the bytes cleanly (:func:`decode_html`);
* ``no_main_text`` trafilatura finds no main content;
* ``boilerplate_only`` main content (or WET text) existed but the block rules
  and the line cleanup removed all of it;
* ``too_deep`` / ``too_complex`` the parsed tree is nested deeper or holds more
  elements than trafilatura can handle whole (:mod:`skypile.extractors.tree`);
* ``extract_timeout`` the page took longer than ``timeout_s``: extraction runs in a
  helper process that is killed then (:mod:`skypile.extractors.bounded`);
* ``extract_crash`` the helper died on the page (a segfault, the OS killing it);
* ``extract_error`` anything else that raised, ``MemoryError`` under ``max_memory_mb``
  included: a bad page must never stop a run.

Extraction, per page language (:func:`page_lang`: Chinese when the HTML holds
100+ Han characters, else English rules): the page is parsed once with
``huge_tree`` (:mod:`skypile.extractors.tree`), trafilatura runs on that tree
with the language's switches (:mod:`skypile.extractors.options`: English pages
with comments, Chinese pages with ``favor_precision``), then Chinese pages go
through the block rules on trafilatura's output tree
(:mod:`skypile.extractors.blocks`) and English pages through trafilatura's
text and the line cleanup (:mod:`skypile.extractors.lines`).  English pages
also get a second opinion (:mod:`skypile.extractors.second_opinion`):
resiliparse's main content, cleaned alike, replaces trafilatura's text when it
holds ``rescue_ratio`` times as much (trafilatura kept one post of many); such
pages carry ``metadata.extractor == "resiliparse"`` and count as ``changed.rescued``.  All of it was
chosen on the dev half of the shared ground truth; the held-out half is
reported beside it in ``bench/results/extraction_quality.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trafilatura
from lxml.html import HtmlElement

from skypile.document import DocMetadata, Document, Dropped, RawRecord
from skypile.extractors.blocks import DEFAULT_BLOCK_RULES, BlockRules
from skypile.extractors.bounded import BoundedRunner, Crash, Timeout
from skypile.extractors.charset import UndecodableError, decode_html
from skypile.extractors.lines import DEFAULT_LINE_FILTER, LineFilter
from skypile.extractors.options import DEFAULT_EN, DEFAULT_ZH, TrafilaturaSwitches
from skypile.extractors.second_opinion import EXTRACTOR as SECOND_OPINION, main_content_text
from skypile.extractors.tree import LIBXML2_MAX_DEPTH, TreeRefused, parse_html
from skypile.filters.length import text_units

if TYPE_CHECKING:
    from skypile.config import ExtractConfig

__all__ = ["HtmlExtractor", "decode_html", "looks_like_html", "STAGE"]

STAGE = "extract"
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
_HAN_RE = re.compile("[\u4e00-\u9fff]")
ZH_MIN_HAN = 100  # a page with this many Han characters in its HTML is a Chinese page

_WARMUP_RECORD = RawRecord(
    id="warmup",
    url="http://warmup.skypile.test/",
    payload=b"<html><body><article><p>" + b"A first page loads what trafilatura loads lazily. " * 5 + b"</p></article></body></html>",
    content_type="text/html",
)

# trafilatura logs an ERROR for every page it cannot parse ("empty HTML tree"); each such page
# is already a counted drop (no_main_text), so at crawl scale the log lines are only noise.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)


def looks_like_html(payload: bytes) -> bool:
    """Markup near the start of the payload, and no binary file signature."""
    head = payload[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(_BINARY_MAGIC):
        return False
    return bool(_HTML_SNIFF_RE.search(head))


def page_lang(html: str) -> str:
    """``zh`` for a Chinese page, else ``en`` (every other page gets the English thresholds)."""
    return "zh" if len(_HAN_RE.findall(html, 0, 500_000)) >= ZH_MIN_HAN else "en"


def _normalize_text(text: str) -> str:
    """Collapse runs of spaces (incl. NBSP and ideographic space) inside lines; drop U+FFFD.

    A few replacement characters survive decoding when a page itself holds broken
    bytes (:data:`~skypile.extractors.charset.MAX_BAD_FRACTION`); they carry nothing.
    """
    text = text.replace("\ufffd", "")
    return "\n".join(_WS_RUN_RE.sub(" ", ln).strip() for ln in text.splitlines())


@dataclass
class HtmlExtractor:
    """Stage ``extract``: :class:`RawRecord` → :class:`Document` | :class:`Dropped`.

    ``line_filter=None`` disables the Skywork line cleanup (the benchmark uses it
    to show the cleanup's effect).
    """

    max_bytes: int = 10 * 1024 * 1024
    include_comments: bool = False  # True: comments on every page (else as ``en`` / ``zh`` say)
    include_tables: bool = True
    fast: bool = False  # True: no fallback extractors on any page (else as ``en`` / ``zh`` say)
    line_filter: LineFilter | None = field(default=DEFAULT_LINE_FILTER)
    block_rules: BlockRules | None = field(default=DEFAULT_BLOCK_RULES)  # None: text output, lines only
    en: TrafilaturaSwitches = DEFAULT_EN  # switches for pages that are not Chinese
    zh: TrafilaturaSwitches = DEFAULT_ZH
    precision_retry_units: int = 100  # see _blocks
    precision_retry_ratio: float = 2.0  # see _blocks (0: off)
    timeout_s: float = 15.0  # per page, in a helper process (0: in this process, unbounded)
    max_memory_mb: int = 0  # address-space cap of that helper (0: none)
    max_depth: int = 1000
    max_elements: int = 100_000
    max_row_cells: int = 2000
    name: str = STAGE

    def __post_init__(self) -> None:
        self._runner: BoundedRunner | None = None
        self._rescued = 0

    @classmethod
    def from_config(cls, c: ExtractConfig) -> HtmlExtractor:
        """The stage as the run config's ``extract`` section describes it (pipeline and ``skypile extract``)."""
        from skypile.config import ConfigError

        if c.timeout_s < 0 or c.max_memory_mb < 0:
            raise ConfigError("extract.timeout_s and extract.max_memory_mb must be >= 0")
        if not 1 <= c.max_depth < LIBXML2_MAX_DEPTH:
            raise ConfigError(f"extract.max_depth must be in 1..{LIBXML2_MAX_DEPTH - 1} (libxml2 drops deeper text)")
        return cls(
            max_bytes=c.max_page_bytes,
            include_comments=c.include_comments,
            include_tables=c.include_tables,
            fast=c.fast,
            line_filter=c.lines if c.line_cleanup else None,
            block_rules=c.blocks if c.block_rules else None,
            en=c.en,
            zh=c.zh,
            precision_retry_units=c.precision_retry_units,
            precision_retry_ratio=c.precision_retry_ratio,
            timeout_s=c.timeout_s,
            max_memory_mb=c.max_memory_mb,
            max_depth=c.max_depth,
            max_elements=c.max_elements,
            max_row_cells=c.max_row_cells,
        )

    def _drop(self, rec: RawRecord, reason: str, detail: str = "") -> Dropped:
        return Dropped(stage=self.name, reason=reason, id=rec.id, url=rec.url, detail=detail[:500])

    def __call__(self, rec: RawRecord) -> Document | Dropped:
        out = self._bounded(rec)
        if isinstance(out, Document) and out.metadata.extractor == SECOND_OPINION:
            self._rescued += 1
        return out

    def drain_changes(self) -> dict[str, int]:
        """Pages whose text came from the second opinion since the last call (stats: ``changed.rescued``)."""
        n, self._rescued = self._rescued, 0
        return {"rescued": n} if n else {}

    def _bounded(self, rec: RawRecord) -> Document | Dropped:
        if self.timeout_s > 0 and len(rec.payload) <= self.max_bytes:
            if self._runner is None:
                self._runner = BoundedRunner(
                    dataclasses.replace(self, timeout_s=0), self.timeout_s, self.max_memory_mb, _WARMUP_RECORD
                )
            try:
                return self._runner(rec)
            except Timeout:
                return self._drop(rec, "extract_timeout", f"over {self.timeout_s:g} s")
            except Crash as e:
                return self._drop(rec, "extract_crash", str(e))
        return self.extract_here(rec)

    def close(self) -> None:
        """Stop this thread's helper process (it also stops by itself when this process exits)."""
        if self._runner is not None:
            self._runner.close()

    def extract_here(self, rec: RawRecord) -> Document | Dropped:
        """Extract in this process, without the time bound (what the helper process runs)."""
        try:
            return self._extract(rec)
        except Exception as e:  # noqa: BLE001 - a bad page must never stop the run
            return Dropped(
                stage=self.name,
                reason="extract_error",
                id=str(getattr(rec, "id", "")),
                url=str(getattr(rec, "url", "")),
                detail=f"{type(e).__name__}: {e}"[:500],
            )

    def _clean(self, text: str) -> str:
        """Spaces normalized, then the line cleanup (when on)."""
        text = _normalize_text(text)
        return self.line_filter(text) if self.line_filter is not None else text

    def _blocks(self, html: str, tree: HtmlElement, options: dict, lang: str) -> str | None:
        """trafilatura's output tree through the block rules (None: no main text).

        ``favor_precision`` sometimes picks a teaser list or the comment section
        instead of the article (GNE's 163.com pages).  The page is extracted again
        without it when the precise result keeps fewer than ``precision_retry_units``
        words/characters (the retry is kept if larger), or when resiliparse's main
        content holds over ``precision_retry_ratio`` times as much (the retry is kept
        if it also holds that much more: the precise pass missed the article).
        """
        # Links are kept for their text (link density), never their targets: without a base URL
        # trafilatura skips resolving every relative href (~7% of a Chinese page's time, same text).
        doc = trafilatura.bare_extraction(tree, include_links=True, **dict(options, url=None))
        text = None
        if doc is not None and (doc.text or "").strip():
            text = _normalize_text(self.block_rules([doc.body, doc.commentsbody], self.line_filter, lang))
        if not options["favor_precision"]:
            return text
        units = text_units(text) if text is not None else 0
        if units < self.precision_retry_units:
            bar = units
        elif self.precision_retry_ratio > 0 and text_units(main_content_text(html)) > self.precision_retry_ratio * units:
            bar = self.precision_retry_ratio * units
        else:
            return text
        again = self._blocks(html, parse_html(html, self.max_depth, self.max_elements, self.max_row_cells),
                             dict(options, favor_precision=False), lang)
        if again is not None and (text is None or text_units(again) > bar):
            return again
        return text

    def _extract(self, rec: RawRecord) -> Document | Dropped:
        payload = rec.payload
        if len(payload) > self.max_bytes:
            return self._drop(rec, "too_large", f"{len(payload)} bytes > {self.max_bytes}")
        if not payload or payload.isspace():  # no copy, unlike strip(), on a 10 MB page
            return self._drop(rec, "empty")
        ctype = (rec.content_type or "").split(";")[0].strip().lower()
        if not rec.is_plain_text and ctype not in HTML_TYPES and not looks_like_html(payload):
            return self._drop(rec, "not_html", ctype or "no content type")
        if not rec.is_plain_text and payload[:8].startswith(_BINARY_MAGIC):
            return self._drop(rec, "not_html", f"binary payload labelled {ctype}")
        try:
            html, charset = decode_html(payload, rec.http_charset)
        except UndecodableError as e:
            return self._drop(rec, "undecodable", str(e))
        if rec.is_plain_text:
            text, extractor = self._clean(html), ""
        else:
            extractor = "trafilatura"
            try:
                tree = parse_html(html, self.max_depth, self.max_elements, self.max_row_cells)
            except TreeRefused as e:
                return self._drop(rec, e.reason, str(e))
            lang = page_lang(html)
            switches = self.zh if lang == "zh" else self.en
            options = dict(
                url=rec.url or None,
                fast=self.fast or switches.fast,
                include_comments=self.include_comments or switches.include_comments,
                favor_precision=switches.favor_precision,
                favor_recall=switches.favor_recall,
                include_tables=self.include_tables,
                deduplicate=False,
            )
            if self.block_rules is None or lang not in self.block_rules.languages:
                out = trafilatura.extract(tree, **options)
                text = self._clean(out) if out and out.strip() else None
            else:
                text = self._blocks(html, tree, options, lang)
            if switches.rescue_ratio > 0:
                need = switches.rescue_ratio * (text_units(text) if text else 0)
                other = main_content_text(html)
                # the cleanup only removes text: a raw second opinion under the bar cannot clear it
                if text_units(other) > need:
                    other = self._clean(other)
                    if text_units(other) > need:
                        text, extractor = other, SECOND_OPINION
            if text is None:
                return self._drop(rec, "no_main_text")
        text = text.strip()
        if not text:
            return self._drop(rec, "boilerplate_only")
        meta = DocMetadata(
            warc_record_id=rec.id,
            warc_date=rec.warc_date,
            content_type=ctype,
            charset=charset,
            n_chars=len(text),
            source_path=rec.source_path,
            extractor=extractor,
        )
        return Document(id=rec.id, text=text, source=rec.source, url=rec.url, metadata=meta)
