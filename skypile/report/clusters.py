"""What dedup stages report: cluster members for ``clusters.parquet``, and their largest clusters for the page.

A corpus stage's :class:`~skypile.corpus.Decision` may carry a ``report``: rows
``(doc_id, cluster_id, rule)`` for every member of a duplicate cluster, its survivor
(``doc_id == cluster_id``) included.  Both executors write them with
:func:`write_stage_report` to ``DIR/reports/<stage>.parquet``; ``skypile dedup``
concatenates them into ``DIR/clusters.parquet`` (:func:`merge_reports`).

For the run's page a dedup stage also folds its report into a small table, the
:data:`LARGEST` largest clusters and their sizes (:func:`largest_clusters`, an
order-free top-k), which every task of the next pass receives; when ``apply`` meets
a member of one of them it keeps that member's first line (:class:`ClusterExamples`),
and the task hands it on to the run's stats.  So the page shows the largest clusters
with the first lines of two members without reading a report file or a shard.
"""

from __future__ import annotations

from typing import Any, Iterable

import pyarrow as pa

from skypile import io
from skypile.corpus import REPORT_FIELDS, Coll, Sum
from skypile.document import Document

REPORT_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in REPORT_FIELDS])
REPORTS_DIR = "reports"
CLUSTERS_FILE = "clusters.parquet"
LARGEST = 10  # clusters per dedup stage on the page
FIRST_LINE_CHARS = 160
BATCH_ROWS = 65536


def stage_report_uri(root: str, stage: str) -> str:
    """``DIR/reports/<stage>.parquet``."""
    return io.join(root, REPORTS_DIR, f"{stage}.parquet")


def write_stage_report(uri: str, rows: Iterable[tuple]) -> int:
    """A corpus stage's report rows to one Parquet file, a batch at a time; returns the rows written."""
    import pyarrow.parquet as pq

    batch: list[tuple] = []
    n = 0
    with io.atomic_output(uri) as out, pq.ParquetWriter(out, REPORT_SCHEMA) as writer:
        def flush() -> None:
            if batch:
                writer.write_table(pa.Table.from_arrays([pa.array(col, pa.string()) for col in zip(*batch)], schema=REPORT_SCHEMA))
                batch.clear()

        for row in rows:
            batch.append(row)
            n += 1
            if len(batch) >= BATCH_ROWS:
                flush()
        flush()
        if n == 0:
            writer.write_table(REPORT_SCHEMA.empty_table())
    return n


def merge_reports(root: str, stages: list[str]) -> int:
    """Write ``root/clusters.parquet`` from the reports of ``stages`` that have one, a row group at a time; returns its rows."""
    import pyarrow.parquet as pq

    n = 0
    with io.atomic_output(io.join(root, CLUSTERS_FILE)) as out, pq.ParquetWriter(out, REPORT_SCHEMA) as writer:
        for stage in stages:
            uri = stage_report_uri(root, stage)
            if not io.exists(uri):
                continue
            fs, path = io.filesystem_and_path(uri)
            with fs.open_input_file(path) as f:
                pf = pq.ParquetFile(f)
                for i in range(pf.num_row_groups):
                    table = pf.read_row_group(i).select(list(REPORT_SCHEMA.names)).cast(REPORT_SCHEMA)
                    writer.write_table(table)
                    n += table.num_rows
        if n == 0:
            writer.write_table(REPORT_SCHEMA.empty_table())
    return n


def report_rows(uri: str) -> int | None:
    """Rows of a report file, from its footer (None: no such file)."""
    import pyarrow.parquet as pq

    if not io.exists(uri):
        return None
    fs, path = io.filesystem_and_path(uri)
    with fs.open_input_file(path) as f:
        return pq.ParquetFile(f).metadata.num_rows


class LargestClusters:
    """Combiner: ``(cluster_id, size)`` → ``{"largest": [[cluster_id, size], ...]}``, the ``k`` largest (ties: smaller id)."""

    def __init__(self, k: int = LARGEST):
        self.k = k

    def _trim(self, items: list) -> list:
        return sorted(items, key=lambda cs: (-cs[1], cs[0]))[: self.k]

    def create(self) -> list:
        return []

    def add(self, acc: list, item: tuple) -> list:
        acc.append((item[0], int(item[1])))
        return self._trim(acc) if len(acc) > 4 * self.k else acc

    def merge(self, accs: Iterable[list]) -> list:
        out: list = []
        for acc in accs:
            out = self._trim(out + list(acc))
        return out

    def extract(self, acc: list) -> dict:
        return {"largest": [[c, s] for c, s in self._trim(acc)]}


def largest_clusters(report: Coll, rule: str | None = None, k: int = LARGEST) -> Coll:
    """The one-element table of a report's ``k`` largest clusters (rows of ``rule`` only, when given)."""
    rows = report.filter(lambda r: r[2] == rule) if rule is not None else report
    return rows.map(lambda r: (r[1], 1)).combine_per_key(Sum()).combine_globally(LargestClusters(k))


def first_line(text: str, limit: int = FIRST_LINE_CHARS) -> str:
    for line in text.split("\n"):
        if line.strip():
            return line.strip()[:limit].rstrip()
    return ""


class ClusterExamples:
    """In a dedup stage's ``apply``: the first lines of members of the table's largest clusters.

    ``survivor(doc, table)`` for a document without a verdict (it survives when its id names
    a cluster), ``member(cluster_id, doc, table)`` for a removed one; ``drain()`` hands what was
    found to the task (``drain_examples``), as :class:`skypile.report.sketches.RunSketch` examples.
    """

    def __init__(self) -> None:
        self._table: Any = None
        self._sizes: dict[str, int] = {}
        self._found: dict[str, dict] = {}

    def _largest(self, table: Any) -> dict[str, int]:
        if table is not self._table:  # read once per table, not per document
            self._table = table
            self._sizes = {c: s for c, s in (table or {}).get("largest", [])}
        return self._sizes

    def _add(self, cluster: str, doc: Document, table: Any) -> None:
        size = self._largest(table).get(cluster)
        if size is None:
            return
        e = self._found.setdefault(cluster, {"items": [], "n": 0, "size": size})
        e["items"].append([doc.id, first_line(doc.text)])
        e["n"] += 1

    def survivor(self, doc: Document, table: Any) -> None:
        self._add(doc.id, doc, table)

    def member(self, cluster: str, doc: Document, table: Any) -> None:
        self._add(cluster, doc, table)

    def drain(self) -> dict:
        found, self._found = self._found, {}
        return {"cluster": found} if found else {}
