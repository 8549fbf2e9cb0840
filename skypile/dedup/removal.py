"""The remove half of every dedup stage: a verdict drops a cluster member, no verdict keeps the document.

Exact, near and semantic dedup identify clusters differently, but they remove alike: ``decide``
gives each removed document the verdict ``(reason, survivor_id)``, and ``apply`` drops it with
the survivor named in the drop's detail, while :class:`~skypile.report.clusters.ClusterExamples`
notes the first lines of members of the largest clusters for the run's page.
"""

from __future__ import annotations

from typing import Any

from skypile.document import Document, Dropped
from skypile.report.clusters import ClusterExamples
from skypile.stage import drop


class RemovesClusterMembers:
    """Mixin for a dedup stage: ``apply`` and ``drain_examples``; the stage sets ``name``, ``member_of`` and ``examples``."""

    name: str
    member_of = "duplicate of"  # the drop's detail: "<member_of> <survivor id>"
    examples: ClusterExamples  # set in the stage's __init__: it holds what one task found

    def apply(self, doc: Document, verdict: Any, table: Any) -> Document | Dropped:
        if verdict is None:
            self.examples.survivor(doc, table)
            return doc
        reason, survivor = verdict
        self.examples.member(survivor, doc, table)
        return drop(self.name, reason, doc, f"{self.member_of} {survivor}")

    def drain_examples(self) -> dict:
        return self.examples.drain()
