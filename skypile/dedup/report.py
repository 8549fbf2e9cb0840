"""``clusters.parquet``: the dedup stages' reports as one table a user can audit.

Each dedup stage reports ``(doc_id, cluster_id, rule)`` for every member of a
duplicate cluster, its survivor (``doc_id == cluster_id``) included, to
``DIR/reports/<stage>.parquet`` (:class:`skypile.corpus.Decision`).
:func:`merge_reports` concatenates them a row group at a time.
"""

from __future__ import annotations

from skypile import io
from skypile.executor.job import REPORT_SCHEMA
from skypile.executor.rundir import RunDir


def merge_reports(output: str, stages: list[str]) -> int:
    """Write ``output/clusters.parquet`` from the reports of ``stages`` that have one; returns its rows."""
    import pyarrow.parquet as pq

    run = RunDir(output)
    n = 0
    with io.atomic_output(run.uri("clusters.parquet")) as out, pq.ParquetWriter(out, REPORT_SCHEMA) as writer:
        for stage in stages:
            uri = run.report_uri(stage)
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
