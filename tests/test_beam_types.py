"""The Beam translation of ``Coll`` does not depend on Beam's type inference.

Beam 2.78 began rejecting the exact-dedup decision (``TypeCheckError`` from the annotations of a
stage function) that 2.77 ran. These tests give ``BeamColl`` functions whose annotations are
wrong for the elements they get, as a stage's documentation-only annotations can be, and check
the pipeline is built and runs on every Beam release CI installs (the lock's, and setup.cfg's
floor through ``scripts/test.sh --beam-floor``). Every real corpus stage's decision is built under
Beam's construction-time type check by tests/test_pipeline_beam.py and tests/test_executors.py.

No ``from __future__ import annotations`` here: 2.77 ignores postponed (string) annotations and
2.78 evaluates them, but both read real ones, so these functions are checked on either release.
"""

from typing import Iterator, Tuple

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from skypile.pipelines.beam import BeamColl, _Labels


def _swap(kv: Tuple[bytes, str]) -> Tuple[str, bytes]:  # annotated wrong on purpose: gets (int, int)
    return kv[1], kv[0]


def _spread(kv: Tuple[bytes, str]) -> Iterator[Tuple[str, bytes]]:  # wrong on purpose, as above
    for _ in range(kv[1]):
        yield kv[0], 1


def _big(value: str) -> bool:  # gets an int
    return value > 1


def _plus(kv: Tuple[bytes, str], total: str) -> Tuple[bytes, str]:  # gets (int, int) and an int side value
    return kv[0], kv[1] + total


class _Sum:
    def create(self):
        return 0

    def add(self, acc, x):
        return acc + x

    def merge(self, accs):
        return sum(accs)

    def extract(self, acc):
        return acc


def test_misannotated_functions_run_through_every_coll_operation():
    with beam.Pipeline("DirectRunner", options=beam.options.pipeline_options.PipelineOptions(["--pipeline_type_check"])) as p:
        coll = BeamColl(p | beam.Create([(1, 2), (3, 1), (1, 3)]), _Labels("t"))
        swapped = coll.map(_swap)  # (2, 1), (1, 3), (3, 1)
        spread = coll.flat_map(_spread)  # (1, 1) x2, (3, 1), (1, 1) x3
        grouped = spread.group_by_key().map(lambda kv: (kv[0], sorted(kv[1])))
        summed = spread.combine_per_key(_Sum()).filter_values(_big)
        total = coll.map(lambda kv: kv[1]).combine_globally(_Sum())
        both = swapped.filter(lambda kv: kv[0] != 2).flatten(summed)
        with_side = coll.map(_plus, side=total)
        assert_that(grouped.pcoll, equal_to([(1, [1, 1, 1, 1, 1]), (3, [1])]), label="grouped")
        assert_that(total.pcoll, equal_to([6]), label="total")
        assert_that(both.pcoll, equal_to([(1, 3), (3, 1), (1, 5)]), label="both")
        assert_that(with_side.pcoll, equal_to([(1, 8), (3, 7), (1, 9)]), label="with_side")


def test_a_wrongly_annotated_function_is_what_beam_rejects_without_the_opt_out():
    """The guard above tests something: plain Beam refuses the same function (else the test is moot)."""
    with pytest.raises(beam.typehints.decorators.TypeCheckError):
        with beam.Pipeline("DirectRunner") as p:
            _ = p | beam.Create([(1, 2)]) | "swap" >> beam.Map(_swap) | "again" >> beam.Map(_swap)
