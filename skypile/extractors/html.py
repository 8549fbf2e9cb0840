"""HTML (or WET plain text) record → main-text :class:`Document`, stage ``extract``.

Order of checks, cheapest first, each a counted drop reason:

* ``too_large``   payload over ``max_bytes`` (checked before decoding, so a
  50 MB page costs nothing but a ``len``);
* ``empty``       no bytes, or only whitespace;
* ``not_html``    Content-Type is not HTML and the bytes do not sniff as HTML
  (images, PDFs, JSON …);
* ``undecodable`` no charset decodes the bytes cleanly (:func:`decode_html`);
* ``no_main_text`` trafilatura finds no main content;
* ``boilerplate_only`` main content (or WET text) existed but the line cleanup
  (:mod:`skypile.extractors.lines`) removed all of it;
* ``extract_error`` anything else that raised: a bad page must never stop a run.

trafilatura settings were chosen on the shared ground truth (see
``bench/extraction_quality.py`` and ``bench/results/extraction_quality.md``):
comments off (on trafilatura-eval they add boilerplate leakage for almost no
recall; CleanEval, whose gold keeps forum comments, gains a little from them),
tables and the fallback extractors on (``fast=True`` loses recall on CleanEval).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import trafilatura

from skypile.document import DocMetadata, Document, Dropped, RawRecord
from skypile.extractors.charset import UndecodableError, decode_html
from skypile.extractors.lines import DEFAULT_LINE_FILTER, LineFilter

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

# trafilatura logs an ERROR for every page it cannot parse ("empty HTML tree"); each such page
# is already a counted drop (no_main_text), so at crawl scale the log lines are only noise.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)


def looks_like_html(payload: bytes) -> bool:
    """Markup near the start of the payload, and no binary file signature."""
    head = payload[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(_BINARY_MAGIC):
        return False
    return bool(_HTML_SNIFF_RE.search(head))


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
    include_comments: bool = False
    include_tables: bool = True
    fast: bool = False  # True skips trafilatura's fallback extractors: ~30% faster, slightly lower recall
    line_filter: LineFilter | None = field(default=DEFAULT_LINE_FILTER)
    name: str = STAGE

    def _drop(self, rec: RawRecord, reason: str, detail: str = "") -> Dropped:
        return Dropped(stage=self.name, reason=reason, id=rec.id, url=rec.url, detail=detail[:500])

    def __call__(self, rec: RawRecord) -> Document | Dropped:
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
            text = html
        else:
            text = trafilatura.extract(
                html,
                url=rec.url or None,
                fast=self.fast,
                include_comments=self.include_comments,
                include_tables=self.include_tables,
                deduplicate=False,
            )
            if not text or not text.strip():
                return self._drop(rec, "no_main_text")
        text = _normalize_text(text)
        if self.line_filter is not None:
            text = self.line_filter(text)
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
        )
        return Document(id=rec.id, text=text, source=rec.source, url=rec.url, metadata=meta)
