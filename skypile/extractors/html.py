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

What extraction does with a page is :mod:`skypile.extractors.page`; this module
is the stage around it: the time bound, the documents and drops, and the count
of pages whose text came from the second opinion (``metadata.extractor ==
"resiliparse"``, stats ``changed.rescued``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skypile.document import DocMetadata, Document, Dropped, RawRecord
from skypile.extractors.bounded import BoundedRunner, Crash, Timeout
from skypile.extractors.charset import decode_html
from skypile.extractors.page import (
    WARMUP_PAGE,
    ExtractionSettings,
    Extracted,
    PageExtractor,
    PageInput,
    Refused,
    looks_like_html,
    page_lang,
)
from skypile.extractors.second_opinion import EXTRACTOR as SECOND_OPINION
from skypile.extractors.tree import LIBXML2_MAX_DEPTH

if TYPE_CHECKING:
    from skypile.config import ExtractConfig

__all__ = ["HtmlExtractor", "decode_html", "looks_like_html", "page_lang", "STAGE"]

STAGE = "extract"


@dataclass
class HtmlExtractor(ExtractionSettings):
    """Stage ``extract``: :class:`RawRecord` → :class:`Document` | :class:`Dropped`.

    The extraction fields are :class:`~skypile.extractors.page.ExtractionSettings`; this class
    adds the time and memory bound of the helper process the pages run in.
    """

    timeout_s: float = 15.0  # per page, in a helper process (0: in this process, unbounded)
    max_memory_mb: int = 0  # address-space cap of that helper (0: none)
    name: str = STAGE

    def __post_init__(self) -> None:
        self._runner: BoundedRunner | None = None
        self._rescued = 0

    @property
    def page_extractor(self) -> PageExtractor:
        """What runs per page (in the helper process, or here with ``timeout_s=0``)."""
        return PageExtractor(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ExtractionSettings)})

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
            precision_retry_below=c.precision_retry_below,
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
                self._runner = BoundedRunner(self.page_extractor, self.timeout_s, self.max_memory_mb, WARMUP_PAGE)
            try:
                return self._document(rec, self._runner(_page_input(rec)))
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
        """Extract in this process, without the time bound."""
        return self._document(rec, self.page_extractor(_page_input(rec)))

    def _document(self, rec: RawRecord, out: Extracted | Refused) -> Document | Dropped:
        if not isinstance(out, Extracted):
            return self._drop(rec, out.reason, out.detail)
        meta = DocMetadata(
            warc_record_id=rec.id,
            warc_date=rec.warc_date,
            content_type=out.content_type,
            charset=out.charset,
            n_chars=len(out.text),
            source_path=rec.source_path,
            extractor=out.extractor,
        )
        return Document(id=rec.id, text=out.text, source=rec.source, url=rec.url, metadata=meta)


def _page_input(rec: RawRecord) -> PageInput:
    return PageInput(rec.payload, rec.content_type, rec.http_charset, rec.url, rec.is_plain_text)
