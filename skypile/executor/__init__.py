"""Executors: run a declared recipe in process (:mod:`.local`) or on Beam (``skypile.pipelines.beam``).

Both share everything but the scheduling: the pass plan (:mod:`.plan`), the
per-task work (:mod:`.tasks`), the run directory (:mod:`.rundir`), shard packing
(:mod:`.pack`) and the end of a run (:func:`.job.finish`: ``stats.json`` and the run's
page, :mod:`skypile.report`).  So they write the same parts, the same shards and the
same stats on the same input.
"""
