"""Documents from JSONL(.gz) or Parquet files: clean corpora, held-out sets, other tools' output.

One reader for every place that takes such files (``skypile export``, tokenizer
training, the trainer's validation sets), so they agree on the fields
(``text`` or ``content``, optional ``id``/``url``/``source``/``lang``) and on
what a bad line is.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq

from skypile.document import DocMetadata, Document, Dropped, table_to_documents
from skypile.stage import drop


def read_documents(path: str, source: str = "") -> Iterator[Document | Dropped]:
    """Rows of a JSONL(.gz) file (``text``/``content`` + optional id/url/source/lang) or a Parquet file.

    A line that is not JSON, or has no text, comes out as a ``read`` drop, never an exception.
    """
    if path.endswith(".parquet"):
        for doc in table_to_documents(pq.read_table(path)):
            yield doc
        return
    opener = gzip.open if path.endswith(".gz") else open
    name = Path(path).name
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            ref = f"{name}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield drop("read", "bad_json", detail=f"{ref}: {exc}")
                continue
            text = row.get("text") if isinstance(row, dict) else None
            if text is None and isinstance(row, dict):
                text = row.get("content")
            if not isinstance(text, str) or not text.strip():
                yield Dropped(stage="read", reason="no_text", id=str(row.get("id", ref)) if isinstance(row, dict) else ref)
                continue
            doc_id = str(row.get("id") or hashlib.blake2b(f"{path}:{lineno}".encode(), digest_size=12).hexdigest())
            yield Document(
                id=doc_id,
                text=text,
                source=str(row.get("source") or source or name),
                url=str(row.get("url") or ""),
                lang=str(row.get("lang") or ""),
                metadata=DocMetadata(n_chars=len(text), source_path=path),
            )


def iter_texts(path: str) -> Iterator[str]:
    """Just the texts of :func:`read_documents`, bad lines skipped."""
    for item in read_documents(path):
        if isinstance(item, Document):
            yield item.text
