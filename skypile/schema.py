"""The Arrow schema of :class:`~skypile.document.Document` rows, and documents to and from Arrow tables.

Apart from :mod:`skypile.document` so that the record types load without
pyarrow: only what writes or reads tables (the executors, the shard writer,
the readers of Parquet and JSONL) pays for importing it.
"""

from __future__ import annotations

import dataclasses
from array import array
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from skypile.document import SCHEMA_VERSION, UINT16_VOCAB, DocMetadata, Document

TOKEN_TYPES = {"uint16": pa.uint16(), "uint32": pa.uint32()}

METADATA_TYPE = pa.struct(
    [
        pa.field("warc_record_id", pa.string()),
        pa.field("warc_date", pa.string()),
        pa.field("content_type", pa.string()),
        pa.field("charset", pa.string()),
        pa.field("lang_score", pa.float64()),
        pa.field("n_chars", pa.int64()),
        pa.field("source_path", pa.string()),
        pa.field("bucket", pa.string()),
        pa.field("perplexity", pa.float64()),
        pa.field("ref_prob", pa.float64()),
        pa.field("extractor", pa.string()),
    ]
)

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("lang", pa.string()),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("metadata", METADATA_TYPE),
    ],
    metadata={"skypile.schema_version": str(SCHEMA_VERSION)},
)


def shard_schema(token_type: str = "uint16") -> pa.Schema:
    """Tokenized shards add the token ids; n_tokens lets readers plan without decoding lists."""
    if token_type not in TOKEN_TYPES:
        raise ValueError(f"token type {token_type!r} is not one of {sorted(TOKEN_TYPES)}")
    return DOCUMENT_SCHEMA.append(pa.field("tokens", pa.list_(TOKEN_TYPES[token_type]), nullable=False)).append(
        pa.field("n_tokens", pa.int32(), nullable=False)
    )


SHARD_SCHEMA = shard_schema("uint16")  # every SkyPile vocabulary (65,536 pieces) fits two bytes an id


def _doc_row(doc: Document) -> dict[str, Any]:
    return {
        "id": doc.id,
        "source": doc.source,
        "url": doc.url,
        "lang": doc.lang,
        "text": doc.text,
        "metadata": dataclasses.asdict(doc.metadata),
    }


def tokens_column(docs: list[Document], token_type: str = "uint16") -> pa.ListArray:
    """The ``tokens`` column, built from int32 buffers (never one Python object per token).

    Ids are checked against ``token_type`` (a vocabulary above 65,536 pieces needs
    ``uint32``): an id that does not fit is an error, never a silent wrap-around.
    """
    import numpy as np

    parts = []
    for doc in docs:
        if doc.tokens is None:
            raise ValueError(f"document {doc.id} has no tokens; run the tokenize stage first")
        parts.append(np.frombuffer(doc.tokens, dtype=np.int32) if isinstance(doc.tokens, array) else np.asarray(doc.tokens, dtype=np.int32))
    offsets = np.zeros(len(parts) + 1, dtype=np.int32)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    dtype = np.dtype(token_type)  # "uint16" / "uint32", as in TOKEN_TYPES
    if values.size and (values.min() < 0 or values.max() > np.iinfo(dtype).max):
        bad = int(values.min() if values.min() < 0 else values.max())
        raise ValueError(f"token id {bad} does not fit {token_type}; a vocabulary above {UINT16_VOCAB} pieces writes uint32")
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.astype(dtype), type=TOKEN_TYPES[token_type]))


def documents_to_table(docs: Iterable[Document], *, with_tokens: bool = False, token_type: str = "uint16") -> pa.Table:
    """Documents to an Arrow table in :data:`DOCUMENT_SCHEMA` (or :func:`shard_schema` of ``token_type``)."""
    docs = list(docs)
    table = pa.Table.from_pylist([_doc_row(doc) for doc in docs], schema=DOCUMENT_SCHEMA)
    if not with_tokens:
        return table
    tokens = tokens_column(docs, token_type)
    n_tokens = pa.compute.list_value_length(tokens).cast(pa.int32())
    return pa.Table.from_arrays([*table.columns, tokens, n_tokens], schema=shard_schema(token_type))


def table_to_documents(table: pa.Table) -> list[Document]:
    """Inverse of :func:`documents_to_table`; tokens are kept when present."""
    has_tokens = "tokens" in table.column_names
    docs = []
    for row in table.to_pylist():
        meta = DocMetadata(**(row.get("metadata") or {}))
        docs.append(
            Document(
                id=row["id"],
                text=row["text"],
                source=row["source"],
                url=row.get("url") or "",
                lang=row.get("lang") or "",
                metadata=meta,
                tokens=row["tokens"] if has_tokens else None,
            )
        )
    return docs
