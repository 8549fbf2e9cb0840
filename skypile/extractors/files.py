"""``skypile extract``: the extract stage alone, on local ``.html`` / ``.html.gz`` files.

Each file becomes one :class:`RawRecord` and goes through the very
:class:`~skypile.extractors.html.HtmlExtractor` the pipeline builds from the
run config (same checks, same time bound), so what this prints is what a run
would keep.  One JSON object per input page::

    {"path": ..., "text": ... | null, "lang": "en" | "zh" | "" | null, "reason": null | "<drop reason>"}

``lang`` is the script the text is written in (CJK characters vs words), not
the fastText language ID the ``langid`` stage adds later.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import sys
import zlib
from typing import IO, Iterable, Iterator

from skypile.document import Document, RawRecord
from skypile.extractors.html import HtmlExtractor
from skypile.filters.units import cjk_count, word_count


def script_lang(text: str) -> str:
    """``zh`` when CJK characters outnumber words, ``en`` when the words are mostly ASCII, else ``""``."""
    n_cjk, n_words = cjk_count(text), word_count(text)
    if n_cjk > n_words:
        return "zh"
    sample = text[:20_000]
    ascii_letters = sum(1 for ch in sample if ch.isascii() and ch.isalpha())
    letters = sum(1 for ch in sample if ch.isalpha())
    return "en" if letters and ascii_letters >= 0.9 * letters else ""


def expand(patterns: Iterable[str]) -> list[str]:
    """Files named or matched (``**`` recursive), in order, each once; a pattern matching nothing is an error.

    "Once" is by the file's real path: ``**`` follows symbolic links, so a link to a parent folder
    would otherwise name every page again under each of its ~40 nested spellings.
    """
    out: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        found = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        found = [p for p in found if os.path.isfile(p)]
        if not found:
            raise FileNotFoundError(f"no file matches {pattern!r}")
        for path in found:
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                out.append(path)
    return out


def read_page(path: str, max_bytes: int) -> bytes:
    """The page's bytes, gunzipped for ``.gz``; at most ``max_bytes + 1`` (the stage then drops it as too_large)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read(max_bytes + 1)


def extract_files(paths: list[str], extractor: HtmlExtractor, progress: bool = True) -> Iterator[dict]:
    """One result dict per file (see the module docstring)."""
    if progress:  # tqdm costs ~25 ms of start-up (importlib.metadata): only when it shows
        from tqdm import tqdm

        paths = tqdm(paths, desc="extract", unit="page", file=sys.stderr)
    for path in paths:
        try:
            payload = read_page(path, extractor.max_bytes)
        except (OSError, EOFError, zlib.error) as e:
            yield {"path": path, "text": None, "lang": None, "reason": "unreadable", "detail": f"{type(e).__name__}: {e}"}
            continue
        url = "file://" + os.path.abspath(path)
        res = extractor(RawRecord(id=path, url=url, payload=payload, content_type="text/html", source_path=path))
        if isinstance(res, Document):
            yield {"path": path, "text": res.text, "lang": script_lang(res.text), "reason": None}
        else:
            yield {"path": path, "text": None, "lang": None, "reason": res.reason, "detail": res.detail}


def write_jsonl(results: Iterable[dict], out: IO[str]) -> dict[str, int]:
    """Write the results, one JSON object a line; returns counts by outcome (``kept`` or the drop reason)."""
    counts: dict[str, int] = {}
    for r in results:
        out.write(json.dumps(r, ensure_ascii=False) + "\n")
        key = r["reason"] or "kept"
        counts[key] = counts.get(key, 0) + 1
    return counts


def run_extract(patterns: list[str], jsonl: str | None, extractor: HtmlExtractor, progress: bool = True) -> int:
    """``skypile extract``: results to ``jsonl`` (written atomically) or stdout; a summary on stderr."""
    import io as _io

    from skypile.io import atomic_output

    paths = expand(patterns)
    results = extract_files(paths, extractor, progress=progress and jsonl is not None)
    if jsonl:
        with atomic_output(jsonl) as raw, _io.TextIOWrapper(raw, encoding="utf-8") as out:
            counts = write_jsonl(results, out)
    else:
        counts = write_jsonl(results, sys.stdout)
    extractor.close()
    summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    print(f"{len(paths)} pages: {summary}" + (f"; wrote {jsonl}" if jsonl else ""), file=sys.stderr)
    return 0
