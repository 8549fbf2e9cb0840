"""Split one WARC(.gz) into k WARC.gz files, records dealt round-robin.

    python bench/warc_split.py SRC OUT_DIR K      # prints the written paths

Used by the datatrove baseline (bench/datatrove_web.py), whose executor parallelises
over files: k files give k tasks.  Every record (warcinfo, request, response, ...)
is copied byte for byte -- header block, content block and the closing CRLF CRLF --
and written as its own gzip member, as Common Crawl does.  Records are delimited by
their ``Content-Length`` header, so the parse depends on no WARC library and never
re-serialises a header.  The input may be gzipped (one or many members) or plain.
"""

from __future__ import annotations

import gzip
import os
import sys
from typing import BinaryIO, Iterator

__all__ = ["iter_raw_records", "split_warc"]


def _open(src: str) -> BinaryIO:
    with open(src, "rb") as f:
        magic = f.read(2)
    return gzip.open(src, "rb") if magic == b"\x1f\x8b" else open(src, "rb")


def iter_raw_records(src: str) -> Iterator[bytes]:
    """The exact bytes of each record of ``src`` (headers + block + trailing CRLF CRLF)."""
    with _open(src) as f:
        while True:
            line = f.readline()
            while line in (b"\r\n", b"\n"):  # tolerate stray blank lines between records
                line = f.readline()
            if not line:
                return
            if not line.startswith(b"WARC/"):
                raise ValueError(f"{src}: expected a WARC version line, got {line[:40]!r}")
            head = [line]
            length = None
            while True:
                line = f.readline()
                if not line:
                    raise ValueError(f"{src}: truncated WARC header")
                head.append(line)
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length is None:
                raise ValueError(f"{src}: WARC record without Content-Length")
            block = f.read(length)
            if len(block) != length:
                raise ValueError(f"{src}: truncated WARC record ({len(block)} of {length} bytes)")
            trailer = f.read(4)
            if trailer != b"\r\n\r\n":
                raise ValueError(f"{src}: record not followed by CRLF CRLF (got {trailer!r})")
            yield b"".join(head) + block + trailer


def split_warc(src: str, out_dir: str, k: int) -> list[str]:
    """Copy the records of ``src`` into ``k`` WARC.gz files in ``out_dir``, round-robin.

    Returns the paths ``out_dir/<stem>-<i>-of-<k>.warc.gz`` (all k, even if some get no
    record because ``src`` has fewer than k).  Each record is its own gzip member.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.basename(src)
    for ext in (".gz", ".warc"):
        stem = stem.removesuffix(ext)
    paths = [os.path.join(out_dir, f"{stem}-{i:05d}-of-{k:05d}.warc.gz") for i in range(k)]
    outs = [open(p, "wb") for p in paths]
    try:
        for n, rec in enumerate(iter_raw_records(src)):
            outs[n % k].write(gzip.compress(rec, compresslevel=6, mtime=0))
    finally:
        for o in outs:
            o.close()
    return paths


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("out_dir")
    ap.add_argument("k", type=int)
    args = ap.parse_args(argv)
    for p in split_warc(args.src, args.out_dir, args.k):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
