"""Run reports: what a run hands back beyond its documents, and the page a person reads.

Below the stages and the executors (both import it; it imports neither):
:mod:`.sketches` (the bounded, mergeable summaries every task keeps in its stats:
score histograms, samples, the token mix, stage examples) and :mod:`.clusters` (what
dedup stages report: ``DIR/reports/<stage>.parquet``, ``clusters.parquet``, their
largest clusters).  :mod:`.page` builds ``DIR/report.html`` from a finished run's
files (:mod:`.figures` draws its plots with matplotlib).
"""
