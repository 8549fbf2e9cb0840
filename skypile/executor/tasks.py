"""One task: one pass over one split, streamed end to end.

The same function runs inside the in-process executor and inside a Beam DoFn:
read the split (the source for pass 0, the previous pass's part file after
that), apply the corpus stage's verdicts, run the per-document stages fused,
write the survivors to this pass's part file a row group at a time, and compute
the next corpus stage's facts on the way.  Every record that enters leaves as a
part row or a dead letter; an exception inside a stage for one document is a
``stage_error`` dead letter, never the end of the task.

Outputs are committed atomically and the task file last, so a killed run
resumes by skipping finished tasks (their facts are replayed from disk).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from skypile import io
from skypile.corpus import DocRef
from skypile.document import Document, Dropped
from skypile.executor.plan import Pass
from skypile.executor.rundir import PartInfo, RunDir
from skypile.readers.sources import Split
from skypile.schema import DOCUMENT_SCHEMA, documents_to_table, shard_schema, table_to_documents
from skypile.stage import CHARS_REMOVED, StageStats, drop

log = logging.getLogger(__name__)
READ_BATCH_ROWS = 256
ROW_GROUP_MAX_BYTES = 64 << 20  # a row group is also closed at this much text, so huge documents stay bounded
PROGRESS_EVERY = 256


@dataclass
class TaskDone:
    """Last item a task yields (after its facts)."""

    part: PartInfo
    stats: StageStats


class PartWriter:
    """Documents → one Parquet file, a row group at a time (memory: one row group)."""

    def __init__(self, out: Any, tokenized: bool, row_group_rows: int, max_row_group_bytes: int = ROW_GROUP_MAX_BYTES,
                 token_type: str = "uint16"):
        self.max_row_group_bytes = max_row_group_bytes
        self.schema = shard_schema(token_type) if tokenized else DOCUMENT_SCHEMA
        self.tokenized, self.token_type = tokenized, token_type
        self.writer = pq.ParquetWriter(out, self.schema, compression="zstd")
        self.row_group_rows = row_group_rows
        self.buf: list[Document] = []
        self.buf_bytes = 0
        self.rows = 0

    def write(self, doc: Document) -> int:
        """Buffer ``doc``; returns its row index in the file.

        A document that would take the row group past its byte bound starts a new one, so a
        large document never shares a row group with small ones (packing spreads a row
        group's bytes evenly over its rows).
        """
        size = len(doc.text) + 4 * len(doc.tokens or ())
        if self.buf and self.buf_bytes + size > self.max_row_group_bytes:
            self._flush()
        self.buf.append(doc)
        self.buf_bytes += size
        if len(self.buf) >= self.row_group_rows:
            self._flush()
        self.rows += 1
        return self.rows - 1

    def _flush(self) -> None:
        if self.buf:
            table = documents_to_table(self.buf, with_tokens=self.tokenized, token_type=self.token_type)
            self.writer.write_table(table, row_group_size=len(self.buf))
            self.buf, self.buf_bytes = [], 0

    def __enter__(self) -> "PartWriter":
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None and self.writer.is_open:
            self.writer.close()  # the output is discarded by the caller's atomic_output; just release it

    def close(self) -> list[tuple[int, int]]:
        self._flush()
        self.writer.close()
        md = self.writer.writer.metadata
        groups = []
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            groups.append((rg.num_rows, sum(rg.column(c).total_compressed_size for c in range(rg.num_columns))))
        return groups


def read_part(run: RunDir, rel: str) -> Iterator[Document]:
    """The documents of a part file, streamed a batch at a time."""
    fs, path = io.filesystem_and_path(run.uri(rel))
    with fs.open_input_file(path) as f:
        # pre_buffer=False: read a row group when it is reached (pre-buffering fetches the whole file's columns)
        for batch in pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=READ_BATCH_ROWS, use_threads=False):
            yield from table_to_documents(pa.Table.from_batches([batch]))


class _Task:
    def __init__(self, pass_: Pass, run: RunDir, split: Split, progress: Callable[[StageStats], None] | None):
        self.pass_, self.run, self.split, self.progress = pass_, run, split, progress
        self.stats = StageStats()
        self.outputs: contextlib.ExitStack | None = None
        self.dead: Any = None  # dead-letter file, opened on the first drop

    def _drop(self, d: Dropped, doc: Any = None) -> None:
        self.stats.record_drop(d)
        self.stats.sketch.sample_dropped(d, doc)
        if self.dead is None:
            assert self.outputs is not None
            self.dead = self.outputs.enter_context(io.atomic_output(self.run.dropped_uri(self.pass_.index, self.split.name)))
        self.dead.write((json.dumps(d.to_json(), ensure_ascii=False) + "\n").encode("utf-8", "replace"))

    def _error(self, stage: str, doc: Any, exc: Exception) -> Dropped:
        log.warning("stage %s failed on %s: %r", stage, getattr(doc, "id", "?"), exc)
        return drop(stage, "stage_error", doc, f"{type(exc).__name__}: {exc}")

    def _step(self, stage: Any, fn: Callable[[], Any], doc: Any) -> Any:
        """Run one stage on one item: count, time, and turn an exception into a dead letter.

        A stage that changes documents without dropping them may report how many
        (``drain_changes() -> {what: n}``); those are counted as ``changed.<what>``,
        except ``chars_removed``, the text a stage removed, which also counts the
        text of every document it drops.

        For the run's page (:mod:`skypile.report.sketches`): the characters and tokens in and
        out, the fields the stage ``measures`` (scores binned per language), a seeded sample of
        what it kept and dropped, and the examples it hands back (``drain_examples()``).
        """
        name = stage.name
        self.stats.record_in(name)
        is_doc = isinstance(doc, Document)
        if is_doc:
            self.stats.add_volume(name, "in", doc)
        t0 = time.perf_counter()
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - one bad document must not end the task
            out = self._error(name, doc, exc)
        self.stats.add_time(name, time.perf_counter() - t0)
        drain = getattr(stage, "drain_changes", None)
        if drain is not None:
            for what, n in drain().items():
                self.stats.add(name, what if what == CHARS_REMOVED else f"changed.{what}", n)
        examples = getattr(stage, "drain_examples", None)
        if examples is not None:
            self.stats.sketch.add_examples(name, examples())
        measures = getattr(stage, "measures", ())
        if isinstance(out, Dropped):
            if is_doc:
                self.stats.add(name, CHARS_REMOVED, len(doc.text))
                if measures and out.reason != "stage_error":
                    self.stats.sketch.measure(name, measures, doc, only_set=True)
            self._drop(out, doc)
            return None
        self.stats.record_kept(name)
        if isinstance(out, Document):
            self.stats.add_volume(name, "kept", out)
            self.stats.sketch.sample_kept(name, out)
            if measures:
                self.stats.sketch.measure(name, measures, out)
        return out

    def _facts(self, stage: Any, doc: Document, ref: DocRef) -> list | None:
        """The corpus stage's facts for ``doc``; None (and a counted ``stage_error``) if that raises."""
        t0 = time.perf_counter()
        try:
            return list(stage.facts(doc, ref))
        except Exception as exc:  # noqa: BLE001
            self.stats.record_in(stage.name)
            self.stats.add_volume(stage.name, "in", doc)
            self.stats.add(stage.name, CHARS_REMOVED, len(doc.text))
            self._drop(self._error(stage.name, doc, exc), doc)
            return None
        finally:
            self.stats.add_time(stage.name, time.perf_counter() - t0)

    def _inputs(self, source: Any, prev: PartInfo | None) -> Iterator[Any]:
        """Pass 0: the source's records (counted as ``read``); later: the previous part's documents."""
        if prev is not None:
            yield from read_part(self.run, prev.path) if prev.rows else ()
            return
        it = iter(source.read(self.split))
        name = source.name
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - a reader bug: the rest of this split is lost, counted once
                log.exception("reader failed on %s", self.split.path)
                self.stats.add_time(name, time.perf_counter() - t0)
                self.stats.record_in(name)
                self._drop(Dropped(stage=name, reason="read_error", detail=f"{self.split.path}: {type(exc).__name__}: {exc}"[:500]))
                break
            self.stats.add_time(name, time.perf_counter() - t0)
            self.stats.record_in(name)
            if isinstance(item, Dropped):
                self._drop(item)
            else:
                self.stats.record_kept(name)
                yield item

    def execute(self, source: Any, prev: PartInfo | None, verdicts: Mapping[int, Any], table: Any, row_group_rows: int,
                shard_size: int) -> Iterator[Any]:
        p, run, split = self.pass_, self.run, self.split
        rel = run.part_rel(p.index, split.name)
        facts_for = p.facts_for
        with contextlib.ExitStack() as self.outputs:
            part_out = self.outputs.enter_context(io.atomic_output(run.uri(rel)))
            facts = self.outputs.enter_context(run.facts_writer(p.index, split.name)) if facts_for is not None else None
            # the last pass's row groups are what packing plans with: keep them small next to a shard
            rg_bytes = max(1, min(ROW_GROUP_MAX_BYTES, shard_size // 16)) if p.last else ROW_GROUP_MAX_BYTES
            writer = self.outputs.enter_context(PartWriter(part_out, p.tokenized, row_group_rows, rg_bytes, p.token_type))
            for row, doc in enumerate(self._inputs(source, prev)):
                if p.apply is not None:
                    doc = self._step(p.apply, lambda: p.apply.apply(doc, verdicts.get(row), table), doc)
                for stage in p.stages:
                    if doc is None:
                        break
                    doc = self._step(stage, lambda: stage(doc), doc)
                doc_facts = self._facts(facts_for, doc, DocRef(split.name, writer.rows)) if doc is not None and facts_for else ()
                if doc is not None and doc_facts is not None:
                    if p.last:
                        self.stats.record_in("write")
                        self.stats.add_volume("write", "in", doc)
                        self.stats.add_volume("write", "kept", doc)
                        self.stats.sketch.write(doc)
                    writer.write(doc)
                    for fact in doc_facts:
                        facts.add(fact)
                        yield fact
                if self.progress is not None and (row + 1) % PROGRESS_EVERY == 0:
                    self.progress(self.stats)
            row_groups = writer.close()
            n_facts = facts.count if facts is not None else 0
        part = PartInfo(split, rel, writer.rows, row_groups)
        run.commit_task(p.index, split.name, self.stats, part, n_facts)
        if self.progress is not None:
            self.progress(self.stats)
        yield TaskDone(part, self.stats)


def run_task(
    pass_: Pass,
    run: RunDir,
    split: Split,
    *,
    source: Any = None,
    prev: PartInfo | None = None,
    verdicts: Mapping[int, Any] | None = None,
    table: Any = None,
    row_group_rows: int = 1024,
    shard_size: int = 512 * 1000 * 1000,
    progress: Callable[[StageStats], None] | None = None,
) -> Iterator[Any]:
    """Yield the facts of one pass over one split, then a :class:`TaskDone`.

    A task already committed by an earlier attempt is not redone: its facts are
    replayed from disk and its stats reused.
    """
    done = run.load_task(pass_.index, split.name)
    if done is not None:
        stats, part, n_facts = done
        if pass_.facts_for is not None and n_facts:
            yield from run.read_facts(pass_.index, split.name)
        if progress is not None:
            progress(stats)
        yield TaskDone(part, stats)
        return
    yield from _Task(pass_, run, split, progress).execute(source, prev, verdicts or {}, table, row_group_rows, shard_size)
