"""Stage runner accounting and exact dedup (in-memory and the Beam group resolver)."""

from __future__ import annotations

import json

from skypile.dedup.exact import ExactDedup, dedup_key, normalize_for_dedup, resolve_group
from skypile.document import Document, Dropped
from skypile.stage import StageStats, drop, run_stage


class EvenOnly:
    name = "even"

    def __call__(self, doc: Document):
        return doc if int(doc.id) % 2 == 0 else drop(self.name, "odd", doc)


def _doc(i: int, text: str = "") -> Document:
    return Document(id=str(i), text=text or f"text {i}", source="t")


def test_run_stage_counts_every_outcome(tmp_path):
    stats = StageStats()
    dropped: list[Dropped] = []
    kept = list(run_stage(EvenOnly(), (_doc(i) for i in range(11)), stats, dropped.append))
    assert [d.id for d in kept] == ["0", "2", "4", "6", "8", "10"]
    assert [d.id for d in dropped] == ["1", "3", "5", "7", "9"]
    report = stats.write_json(str(tmp_path / "stats.json"), first_stage="even", final_kept=len(kept))
    assert report == json.loads((tmp_path / "stats.json").read_text())
    assert report["stages"]["even"] == {"in": 11, "kept": 6, "dropped": {"odd": 5}}
    assert report["balanced"]


def test_stats_balance_detects_lost_records():
    stats = StageStats.from_counters({"a.in": 10, "a.kept": 8, "a.dropped.x": 2, "b.in": 8, "b.kept": 7}, order=["a", "b"])
    report = stats.to_dict(first_stage="a", final_kept=7)
    assert report["dropped_total"] == 2 and not report["balanced"]  # one record vanished in b
    assert list(report["stages"]) == ["a", "b"]


def test_normalization_ignores_case_width_and_spacing():
    assert normalize_for_dedup("Hello   World\n") == normalize_for_dedup("hello world")
    assert normalize_for_dedup("ＡＢＣ１２３") == "abc123"  # full-width forms (NFKC)
    assert dedup_key(_doc(1, "Same  text")) == dedup_key(_doc(2, "same text"))
    assert dedup_key(_doc(1, "same text")) != dedup_key(_doc(2, "same text!"))


def test_exact_dedup_first_wins_and_group_resolution_is_order_free():
    docs = [_doc(3, "A b"), _doc(1, "x"), _doc(2, "a  B"), _doc(4, "a b")]
    stats = StageStats()
    kept = list(run_stage(ExactDedup(), docs, stats))
    assert [d.id for d in kept] == ["3", "1"]
    assert stats.dropped("exact_dedup") == {"exact_duplicate": 2}
    group = [docs[0], docs[2], docs[3]]
    for order in (group, list(reversed(group))):
        survivor, drops = resolve_group(order)
        assert survivor.id == "2"
        assert sorted(d.id for d in drops) == ["3", "4"]
        assert all(d.reason == "exact_duplicate" and "duplicate of 2" in d.detail for d in drops)
