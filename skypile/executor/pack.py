"""Pack the last pass's part files into shards of about ``output.shard_size`` bytes.

Parts are as many and as large as the input splits happen to be; a trainer
wants shards of one size.  Planning needs only small facts (each part's row
groups: rows and compressed bytes), so it is one cheap global step; each shard
is then written by its own task, which copies row ranges of the parts a row
group at a time.

* The plan walks the parts in split order and cuts a new shard when the next
  rows would take it past the bound (a row group's bytes are spread evenly over
  its rows); a single document larger than the bound becomes a shard of its own.
* Names are deterministic: ``shards/part-00000-of-00012.parquet``.
* Each shard records in its footer which rows of which parts it holds, under
  which run fingerprint; a re-run reuses a shard whose record matches and
  rewrites any other, so a killed job resumes and never keeps a stale shard.

The manifest lists the shards, the documents and tokens of each value of the
``source`` column (the names ``skypile mix`` and the trainer's weights refer to)
and whether the shards are ``trainable``: only shards with a ``tokens`` column are
(``skypile dedup`` writes text only; ``skypile export`` tokenizes its output).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from skypile import io
from skypile.document import SCHEMA_VERSION
from skypile.executor.rundir import PartInfo, RunDir
from skypile.schema import DOCUMENT_SCHEMA, shard_schema

SHARDS_DIR = "shards"
MANIFEST_NAME = "manifest.json"
FILE_OVERHEAD = 5120  # footer: Arrow schema, Parquet schema, file metadata (measured ~5-6 KB)
SEGMENT_OVERHEAD = 48  # each (part, rows) segment recorded in the footer
ROW_GROUP_OVERHEAD = 1536  # column-chunk metadata per row group, roughly
_META_KEY = b"skypile.shard"


@dataclass(frozen=True)
class ShardPlan:
    name: str  # relative path, e.g. shards/part-00000-of-00012.parquet
    segments: tuple[tuple[str, int, int], ...]  # (part path, first row, end row)
    est_bytes: int
    fingerprint: str

    def identity(self) -> str:
        return json.dumps({"fingerprint": self.fingerprint, "segments": [list(s) for s in self.segments]})


@dataclass(frozen=True)
class ShardInfo:
    path: str  # relative to the output directory
    rows: int
    tokens: int
    bytes: int
    sha256: str
    sources: dict = field(default_factory=dict)  # source column value -> {"rows", "tokens"}


def count_sources(table: pa.Table, into: dict | None = None) -> dict:
    """Rows and tokens (``n_tokens``, 0 without it) per ``source`` value of ``table``, added to ``into``."""
    into = {} if into is None else into
    if "source" not in table.column_names or table.num_rows == 0:
        return into
    tokens = "n_tokens" in table.column_names
    grouped = table.group_by("source").aggregate([("source", "count")] + ([("n_tokens", "sum")] if tokens else []))
    for row in grouped.to_pylist():
        _add_counts(into, str(row["source"]), int(row["source_count"]), int(row.get("n_tokens_sum") or 0))
    return into


def _add_counts(into: dict, name: str, rows: int, tokens: int) -> None:
    entry = into.setdefault(name, {"rows": 0, "tokens": 0})
    entry["rows"] += rows
    entry["tokens"] += tokens


def shard_name(index: int, num_shards: int) -> str:
    return f"{SHARDS_DIR}/part-{index:05d}-of-{num_shards:05d}.parquet"


def plan_shards(parts: list[PartInfo], shard_bytes: int, fingerprint: str, row_group_rows: int = 1024) -> list[ShardPlan]:
    """Contiguous row ranges of the parts (in split order) → shards of at most ~``shard_bytes``."""
    shards: list[tuple[list[tuple[str, int, int]], float]] = []
    cur: list[tuple[str, int, int]] = []
    cur_bytes, cur_rows = float(FILE_OVERHEAD), 0

    def cost(n: int, per_row: float, new_segment: float) -> float:
        groups = -(-(cur_rows + n) // row_group_rows) - -(-cur_rows // row_group_rows)
        return n * per_row + groups * ROW_GROUP_OVERHEAD + new_segment

    for part in sorted(parts, key=lambda p: p.split.name):
        row = 0
        for rg_rows, rg_bytes in part.row_groups:
            per_row = rg_bytes / rg_rows if rg_rows else 0.0
            left = rg_rows
            while left:
                extends = bool(cur) and cur[-1][0] == part.path and cur[-1][2] == row
                seg = 0.0 if extends else SEGMENT_OVERHEAD + len(part.path)
                room = shard_bytes - cur_bytes
                n = max(0, min(left, int(room // per_row) if per_row else left))
                while n > 0 and cost(n, per_row, seg) > room:
                    n -= 1
                if n == 0 and cur_rows:
                    shards.append((cur, cur_bytes))
                    cur, cur_bytes, cur_rows = [], float(FILE_OVERHEAD), 0
                    continue
                n = max(n, 1)  # one document larger than the bound: a shard of its own
                cur_bytes += cost(n, per_row, seg)
                cur = cur[:-1] + [(part.path, cur[-1][1], row + n)] if extends else cur + [(part.path, row, row + n)]
                cur_rows += n
                row += n
                left -= n
    if cur:
        shards.append((cur, cur_bytes))
    total = len(shards)
    return [ShardPlan(shard_name(i, total), tuple(segs), int(size), fingerprint) for i, (segs, size) in enumerate(shards)]


def _slices(run: RunDir, rel: str, start: int, end: int) -> Iterator[pa.Table]:
    """Rows ``[start, end)`` of a part file, one row group at a time."""
    fs, path = io.filesystem_and_path(run.uri(rel))
    with fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f, pre_buffer=False)
        first = 0
        for i in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(i).num_rows
            lo, hi = max(start, first), min(end, first + n)
            if lo < hi:
                yield pf.read_row_group(i).slice(lo - first, hi - lo)
            first += n
            if first >= end:
                break


def describe_shard(root: str, rel: str) -> ShardInfo:
    """Rows, tokens (per source too), size and sha256 of a finished shard file ``root/rel``."""
    uri = io.join(root, rel)
    fs, path = io.filesystem_and_path(uri)
    with fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f)
        rows = pf.metadata.num_rows
        columns = [c for c in ("source", "n_tokens") if c in pf.schema_arrow.names]
        table = pf.read(columns=columns)
        tokens = int(pc.sum(table.column("n_tokens")).as_py() or 0) if "n_tokens" in columns else 0
    return ShardInfo(rel, rows, tokens, fs.get_file_info(path).size, io.sha256_of(uri), count_sources(table))


def _is_complete(run: RunDir, plan: ShardPlan) -> bool:
    """The shard exists and its footer says it holds exactly this plan's rows, for this run."""
    uri = run.uri(plan.name)
    if not io.exists(uri):
        return False
    fs, path = io.filesystem_and_path(uri)
    try:
        with fs.open_input_file(path) as f:
            meta = pq.ParquetFile(f).schema_arrow.metadata or {}
    except Exception:  # noqa: BLE001 - unreadable: rewrite it
        return False
    return meta.get(_META_KEY, b"").decode() == plan.identity()


def write_shard(run: RunDir, plan: ShardPlan, tokenized: bool, row_group_rows: int, token_type: str = "uint16") -> ShardInfo:
    """Write one planned shard, or reuse it when a complete one of the same plan is there."""
    if _is_complete(run, plan):
        return describe_shard(run.root, plan.name)
    base = shard_schema(token_type) if tokenized else DOCUMENT_SCHEMA
    schema = base.with_metadata({**(base.metadata or {}), _META_KEY: plan.identity().encode()})
    uri = run.uri(plan.name)
    rows = tokens = 0
    sources: dict = {}
    with io.atomic_output(uri) as out, pq.ParquetWriter(out, schema, compression="zstd") as writer:
        pending: list[pa.Table] = []
        pending_rows = 0

        def flush(final: bool) -> None:
            nonlocal pending, pending_rows
            table = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
            cut = pending_rows if final else (pending_rows // row_group_rows) * row_group_rows
            if cut:
                writer.write_table(table.slice(0, cut), row_group_size=row_group_rows)
            rest = table.slice(cut)
            pending, pending_rows = ([rest], rest.num_rows) if rest.num_rows else ([], 0)

        for rel, start, end in plan.segments:
            for table in _slices(run, rel, start, end):
                rows += table.num_rows
                if tokenized:
                    tokens += int(pc.sum(table.column("n_tokens")).as_py() or 0)
                count_sources(table.select([c for c in ("source", "n_tokens") if c in table.column_names]), sources)
                pending.append(table)
                pending_rows += table.num_rows
                if pending_rows >= row_group_rows:
                    flush(final=False)
        if pending_rows:
            flush(final=True)
    fs, path = io.filesystem_and_path(uri)
    return ShardInfo(plan.name, rows, tokens, fs.get_file_info(path).size, io.sha256_of(uri), sources)


def write_manifest(root: str, shards: list[ShardInfo], tokenized: bool, extra: dict, token_type: str = "uint16") -> dict:
    """``root/manifest.json``: the shards (path, rows, tokens, bytes, sha256, per-source counts), the
    counts per source, whether the trainer can read them, and what made them (``extra``)."""
    shards = sorted(shards, key=lambda s: s.path)
    schema = shard_schema(token_type) if tokenized else DOCUMENT_SCHEMA
    sources: dict[str, dict] = {}
    for shard in shards:
        for name, counts in shard.sources.items():
            _add_counts(sources, name, counts["rows"], counts["tokens"])
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "schema": schema.to_string(show_schema_metadata=False),
        **trainability(tokenized),
        **extra,
        "sources": dict(sorted(sources.items())),
        "num_shards": len(shards),
        "rows": sum(s.rows for s in shards),
        "tokens": sum(s.tokens for s in shards),
        "bytes": sum(s.bytes for s in shards),
        "shards": [asdict(s) for s in shards],
    }
    io.atomic_write_text(io.join(root, MANIFEST_NAME), json.dumps(manifest, indent=2) + "\n")
    return manifest


def trainability(tokenized: bool) -> dict:
    """The manifest's ``trainable`` (can ``skypile-train`` read these shards?) and ``trainable_note`` (why)."""
    if tokenized:
        return {"trainable": True, "trainable_note": "the shards hold SentencePiece token ids: skypile-train --data DIR, "
                                                     "or name their sources in a skypile mix"}
    return {"trainable": False,
            "trainable_note": "text only (this recipe does not tokenize: no tokens column); "
                              "skypile export --input 'DIR/shards/*.parquet' --output NEW_DIR tokenizes them"}


def read_manifest(root: str) -> dict:
    return json.loads(io.read_bytes(io.join(root, MANIFEST_NAME)))
