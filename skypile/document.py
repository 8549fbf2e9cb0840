"""The document record every stage passes along (its one Arrow schema: :mod:`skypile.schema`).

A stage receives a :class:`Document` and either returns it (possibly with new
fields filled in) or returns a :class:`Dropped` that says which stage dropped it
and why.  Metadata is typed (no free-form dict) so that a Parquet shard has one
stable schema from the first run to the billionth page.

The Arrow half (the schema, documents to and from tables) is :mod:`skypile.schema`:
the record types load without pyarrow (~0.3 s of start-up), so a command or a
helper process that never writes a table (``skypile extract``, the extraction
helper) never imports it.  Its names are still importable from here.
"""

from __future__ import annotations

import dataclasses
from array import array
from dataclasses import dataclass, field
from typing import Any

# 2: metadata.bucket.  3: tokens are list<uint16> when the vocabulary has at most 65,536 pieces
# (list<uint32> above; readers accept both), and metadata.perplexity / metadata.ref_prob.
# 4: metadata.extractor (trafilatura, or resiliparse when its second opinion gave the text).
SCHEMA_VERSION = 4
UINT16_VOCAB = 65_536  # ids 0..65535 fit two bytes


@dataclass(slots=True)
class DocMetadata:
    """Provenance and measurements attached by the stages that produce them."""

    warc_record_id: str = ""
    warc_date: str = ""
    content_type: str = ""
    charset: str = ""  # encoding the HTML was decoded with (e.g. gb18030)
    lang_score: float = 0.0  # fastText probability of ``Document.lang``
    n_chars: int = 0
    source_path: str = ""  # input file the record came from
    bucket: str = ""  # quality bucket (head / middle / tail) from a percentile stage
    perplexity: float = 0.0  # KenLM (CCNet) document perplexity; 0 = not scored, inf = unscorable
    ref_prob: float = 0.0  # probability the page could be cited by Wikipedia (fastText classifier)
    extractor: str = ""  # what gave an HTML page's text: trafilatura, or resiliparse (its second opinion)


@dataclass(slots=True)
class Document:
    """One text document on its way through the pipeline."""

    id: str
    text: str
    source: str  # e.g. "web/warc", "wiki/en", "code/github"
    url: str = ""
    lang: str = ""
    metadata: DocMetadata = field(default_factory=DocMetadata)
    tokens: "array[int] | list[int] | None" = None  # filled in by the tokenize stage (an int32 array)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A crawl record before extraction: bytes plus what the crawler told us."""

    id: str
    url: str
    payload: bytes
    content_type: str = ""  # HTTP Content-Type of the response, or WARC's for WET
    http_charset: str = ""  # charset= from the HTTP header, if any
    warc_date: str = ""
    source_path: str = ""
    is_plain_text: bool = False  # WET conversion records carry text, not HTML
    source: str = "web/warc"  # copied to Document.source by the extract stage


@dataclass(frozen=True, slots=True)
class Dropped:
    """A record a stage removed, with the reason that is counted in stats."""

    stage: str
    reason: str
    id: str = ""
    url: str = ""
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def token_type_for(vocab_size: int) -> str:
    """The narrowest id type for a vocabulary: ``uint16`` up to 65,536 pieces, ``uint32`` above."""
    return "uint16" if vocab_size <= UINT16_VOCAB else "uint32"


_SCHEMA_NAMES = frozenset(
    {"TOKEN_TYPES", "METADATA_TYPE", "DOCUMENT_SCHEMA", "SHARD_SCHEMA", "shard_schema", "tokens_column",
     "documents_to_table", "table_to_documents"}
)


def __getattr__(name: str) -> Any:
    """The Arrow names, from :mod:`skypile.schema` on first use (``from skypile.document import DOCUMENT_SCHEMA``)."""
    if name in _SCHEMA_NAMES:
        from skypile import schema

        return getattr(schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
