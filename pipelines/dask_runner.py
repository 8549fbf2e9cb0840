"""Beam's DaskRunner, made to run every sink of a pipeline (``--runner DaskRunner``).

Beam's runner (``apache_beam.runners.dask``, 2.77-2.78) translates each leaf
transform into a ``dask.bag`` operation and then computes only the bag of the
*last* transform visited, on the assumption that it is connected to the whole
graph.  A pipeline with several sinks is not: a SkyPile job writes its fitted
tables, its dedup reports and its manifest from separate branches, and every
branch but the last was skipped without an error (a 4-sink pipeline wrote 1
sink and exited 0).  :class:`DaskRunner` computes every *leaf* bag instead,
the bags that no other transform reads as a main or side input, in one graph,
so shared upstream work runs once.

More things differ from Beam's defaults, because SkyPile's elements are
tasks (one input split each), not records:

* ``Create`` puts 128 elements into one partition unless told otherwise, so a
  job's splits became one Dask task on one worker; here a partition holds one
  element unless ``--dask_partition_size`` or ``--dask_npartitions`` is given.
* A side input is fetched by the task that reads it, with a computation of its
  own (``DaskBagWindowedIterator``); by then the side input's partitions had
  usually been released, so its whole upstream ran again, sinks included (a
  web job of 24 records took 300 s and initialized its report sink 6 times),
  and the waiting task seceded from its worker's thread pool, which started
  another thread (and another extraction helper) meanwhile.  A side input is
  now a dependency of the tasks that read it, in the job's one graph
  (:func:`_pardo_with_sides`).
* The client is closed when the job ends (Beam's stays connected for the life
  of the process).

What the translation itself avoids because Beam's Dask runner lacks it (see
:mod:`skypile.pipelines.beam`): tagged outputs (all outputs of a ``ParDo`` land
in one bag), metrics (stats are data), and ``Reshuffle`` (a no-op there: the
partitioning comes from ``Create``).
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam import DoFn
from apache_beam.runners.common import DoFnContext, DoFnSignature, _OutputHandler
from apache_beam.runners.dask.dask_runner import DaskOptions, DaskRunner as BeamDaskRunner, DaskRunnerResult
from apache_beam.runners.dask.overrides import _Flatten, _GroupByKeyOnly, dask_overrides
from apache_beam.runners.dask.transform_evaluator import OneReceiver, apply_dofn_to_bundle, get_windowed_value
from apache_beam.runners.runner import PipelineState
from apache_beam.transforms.sideinputs import SideInputMap

MIN_BEAM = (2, 78)


def leaf_bags(bags: dict) -> list:
    """The bags no other bag is built on: computing them runs every transform.

    ``bags`` maps each applied transform to its bag.  A transform Beam's runner
    does not translate maps to its input's bag (the same object), so a bag is
    built on another only when it is a different bag made from it.
    """
    built_on = set()
    for node, bag in bags.items():
        for value in [*node.inputs, *(si.pvalue for si in node.side_inputs)]:
            source = bags.get(getattr(value, "producer", None))
            if source is not None and source is not bag:
                built_on.add(id(source))
    return _unique(bag for bag in bags.values() if bag is not None and id(bag) not in built_on)


def _unique(items: Any) -> list:
    out, seen = [], set()
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


class _Result(DaskRunnerResult):
    def wait_until_finish(self, duration: Any = None) -> str:
        try:
            return super().wait_until_finish(duration)
        finally:
            if self._state in (PipelineState.DONE, PipelineState.FAILED):
                self.futures = []
                self.client.close()


def _apply_dofn_with_sides(items: Any, side_values: list, specs: list, invoker_args: list, invoker_kwargs: dict,
                           receivers: Any) -> list:
    """Beam's ``apply_dofn_to_bundle`` with side inputs Dask computed as this task's dependencies."""
    sides = [SideInputMap(view, options, [get_windowed_value(v, window_fn) for v in values])
             for (view, options, window_fn), values in zip(specs, side_values)]
    return apply_dofn_to_bundle(items, invoker_args, {**invoker_kwargs, "side_inputs": sides}, receivers)


def _pardo_with_sides(node: Any, main: Any, sides: list) -> Any:
    """A ``ParDo`` whose side inputs are graph dependencies of its tasks, as Beam's ``ParDo.apply`` otherwise.

    Beam's translation hands each task the side input's bag, which the task computes with a
    nested ``client.compute`` from inside the worker (``DaskBagWindowedIterator``): the task
    secedes from the worker's thread pool and waits, the worker starts another thread for the
    next task, and every thread that runs the extract stage starts its own extraction helper
    (~100 MB each, :mod:`skypile.extractors.bounded`), so a worker's memory grew with the number
    of tasks that waited (the ``InjectDefault`` task of every ``CombineGlobally`` waits from
    the job's start to its combine).  Here the side input is an ordinary dependency: the task
    starts when its side inputs are in memory, on the worker's one thread, and never waits.
    """
    transform = node.transform
    args, kwargs = transform.raw_side_inputs
    main_input = next(iter(node.main_inputs.values()))
    window_fn = main_input.windowing.windowfn if hasattr(main_input, "windowing") else None
    receivers = OneReceiver()
    invoker_args = [
        DoFnSignature(transform.fn),
        _OutputHandler(window_fn=window_fn, main_receivers=receivers[None], tagged_receivers=receivers,
                       per_element_output_counter=None, output_batch_converter=None, process_yields_batches=False,
                       process_batch_yields_elements=False),
    ]
    invoker_kwargs = dict(context=DoFnContext(transform.label, state=None), input_args=list(args), input_kwargs=kwargs,
                          user_state_context=None, bundle_finalizer_param=DoFn.BundleFinalizerParam())
    # each side input whole, one dependency; not optimized: culling copied the side input's whole upstream graph per reader
    values = [bag.repartition(1).to_delayed(optimize_graph=False)[0] for bag in sides]
    specs = [(type(si), si._view_options(), si._window_mapping_fn) for si in node.side_inputs]
    return main.map(get_windowed_value, window_fn).map_partitions(
        _apply_dofn_with_sides, values, specs, invoker_args, invoker_kwargs, receivers)


def _dask_visitor(base: Any, shuffle_partitions: int = 0) -> Any:
    """Beam's bag visitor, with side inputs as task dependencies and partition counts kept in bounds.

    A ``ParDo`` with side inputs is built by :func:`_pardo_with_sides`.  A ``Flatten``
    concatenates its inputs' partitions, and a ``GroupByKey`` keeps its input's count, so the
    partitions of a job with several corpus stages grew pass after pass (each ``CoGroupByKey``
    flattens parts and verdicts) and the task-based shuffles with them (21,551 tasks for a
    24-record web job); a flatten's output is cut back to its largest input's count.  Dask's
    task-based shuffle makes about n² tasks for n partitions (n ≤ 32), so the input of a
    ``GroupByKey`` is cut to the cluster's thread count (``shuffle_partitions``) for that shuffle
    (a 16-file web job: 12,935 tasks, 10,240 of them shuffle splits).  Its output keeps that
    count: splitting it back to the input's (one split per task for the pass after a
    ``CoGroupByKey``) was measured and rejected: 4.7x the tasks (677 → 3,179 at 16 files), the
    scheduler's CPU 6.1 → 8.0 s, and the workers no busier (``bench/results/dask_trace.md``).
    """

    class DaskVisitor(type(base)):  # type: ignore[misc]
        def visit_transform(self, node: Any) -> None:
            producer = next((v.producer for v in node.inputs if getattr(v, "producer", None) is not None), None)
            source = self.bags.get(producer)
            if node.side_inputs and isinstance(node.transform, beam.ParDo) and source is not None:
                self.bags[node] = _pardo_with_sides(node, source, [self.bags[si.pvalue.producer] for si in node.side_inputs])
            elif isinstance(node.transform, _GroupByKeyOnly) and shuffle_partitions and source is not None \
                    and source.npartitions > shuffle_partitions:
                self.bags[producer] = source.repartition(shuffle_partitions)  # for this shuffle only
                try:
                    super().visit_transform(node)
                finally:
                    self.bags[producer] = source
            else:
                super().visit_transform(node)
            bag = self.bags.get(node)
            if isinstance(node.transform, _Flatten) and bag is not None:
                most = max((b.npartitions for v in node.inputs if (b := self.bags.get(v.producer)) is not None), default=1)
                if bag.npartitions > most:
                    self.bags[node] = bag.repartition(most)

    return DaskVisitor()


class DaskRunner(BeamDaskRunner):
    """Beam's DaskRunner computing every leaf bag, side inputs once, one split per partition by default."""

    def run_pipeline(self, pipeline: Any, options: Any) -> _Result:
        import apache_beam
        import dask.distributed as ddist

        if tuple(int(x) for x in apache_beam.__version__.split(".")[:2]) < MIN_BEAM:
            raise RuntimeError(f"--runner DaskRunner needs apache-beam>={'.'.join(map(str, MIN_BEAM))} (this is "
                               f"{apache_beam.__version__}): older releases never call a DoFn's finish_bundle on Dask "
                               "(sinks such as WriteToParquet write nothing) and block worker threads on side inputs")
        dask_options = options.view_as(DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = DaskOptions._extract_bag_kwargs(dask_options) or {"partition_size": 1}
        lazy_side_inputs = dask_options.pop("lazy_side_inputs", False)  # moot: side inputs are dependencies here
        client = ddist.Client(**dask_options)
        pipeline.replace_all(dask_overrides())
        threads = sum(client.nthreads().values())  # a shuffle needs no more partitions than threads to run them
        visitor = _dask_visitor(self.to_dask_bag_visitor(bag_kwargs, lazy_side_inputs), threads)
        pipeline.visit(visitor)
        leaves = client.persist(leaf_bags(visitor.bags))
        return _Result(client, ddist.futures_of(leaves))
