"""Helpers for tests that run whole jobs and compare what two runs wrote (executors, runners, kills)."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from skypile.cli import main
from skypile.readers.warc_builder import Page, shared_pages, write_warc

# what may differ between two runs of the same job: times, the executor's name, paths in the config
VOLATILE = ("seconds", "docs_per_s", "wall_seconds", "executor", "config", "reused")


def run_job(cmd: str, inputs: list[str], out: Path, *extra: str, tokenizer: str | None = None,
            shard_size: str = "48KB", output_uri: bool = False) -> tuple[int, dict]:
    """``skypile CMD`` in this process (output ``out``, as a ``file://`` URI with ``output_uri``);
    returns its exit code and ``stats.json`` (``{}`` when not written)."""
    output = f"file://{out}" if output_uri else str(out)
    args = [cmd, "--output", output, "--shard-size", shard_size, "--no-progress", *(["--tokenizer", tokenizer] if tokenizer else []), *extra]
    for i in inputs:
        args += ["--input", i]
    rc = main(args)
    stats_file = out / "stats.json"
    return rc, json.loads(stats_file.read_text()) if stats_file.exists() else {}


def comparable(stats: dict) -> dict:
    out = {k: v for k, v in stats.items() if k not in VOLATILE}
    out["stages"] = {s: {k: v for k, v in c.items() if k not in VOLATILE} for s, c in stats["stages"].items()}
    return out


def shard_hashes(out: Path) -> list[tuple[str, str]]:
    return [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted((out / "shards").iterdir())]


def dead_letters(out: Path) -> Counter:
    rows = [json.loads(line) for f in (out / "dropped").glob("*.jsonl") for line in f.read_text().splitlines()]
    return Counter((r["stage"], r["reason"], r["id"]) for r in rows)


def dead_letter_bytes(out: Path) -> dict[str, bytes]:
    """Every dead-letter file, by name: the same job writes the same files, byte for byte, on every runner."""
    return {f.name: f.read_bytes() for f in sorted((out / "dropped").glob("*.jsonl"))}


def report_rows(out: Path, stage: str) -> list[tuple]:
    """A corpus stage's report rows, sorted (runners write them in their own order)."""
    return sorted(tuple(r.values()) for r in pq.read_table(out / "reports" / f"{stage}.parquet").to_pylist())


def shard_ids(out: Path) -> list[str]:
    return [i for s in sorted((out / "shards").glob("*.parquet")) for i in pq.read_table(s, columns=["id"]).column("id").to_pylist()]


def mirrored_warcs(d: Path, first: int, mirrored: int, new: int) -> list[str]:
    """Two WARCs of real pages: the first ``first`` pages, then ``mirrored`` of those re-served under
    mirror URLs (planted exact duplicates across files, so verdicts must reach the right task) and
    ``new`` further pages."""
    pages = list(shared_pages(limit=first + new))
    with open(d / "a.warc.gz", "wb") as f:
        write_warc(f, pages[:first], f"first {first} real pages")
    mirrors = [Page(url=p.url.replace("://", "://mirror."), body=p.body, charset=p.charset) for p in pages[first - mirrored:first]]
    with open(d / "b.warc.gz", "wb") as f:
        write_warc(f, mirrors + pages[first:], f"{mirrored} mirrored + {new} new pages")
    return [str(d / "a.warc.gz"), str(d / "b.warc.gz")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")
