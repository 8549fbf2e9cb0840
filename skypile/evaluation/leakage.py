"""``skypile eval leakage``: did a model see a benchmark in pretraining?  (The Skywork-13B paper's test.)

The model's mean token loss on three sets of the same kind of text:

* ``L_train``: the benchmark's train split (GSM8K train);
* ``L_test``: its test split (GSM8K test);
* ``L_ref``: a reference set of similar problems written fresh, that no model can have seen
  (the paper's mock GSM8K: ``../shared/data/gsm8k/skywork-mock/``).

``Δ1 = L_test − L_ref`` and ``Δ2 = L_test − L_train``.  A model that saw none of the three has
``L_train ≈ L_test ≈ L_ref``.  A clearly **positive Δ2** (train loss well below test loss) says
the train split, or close copies of it, was in its training data.  A clearly **negative Δ1**
(test loss well below the reference) says the test split itself may have leaked.  "Clearly"
here: beyond ``margin`` nats (default 0.1, a modest bar: the contamination the paper points
out shows as several tenths of a nat) *and* the 95% bootstrap confidence interval excludes
zero.  The intervals resample documents with replacement within each set (``bootstrap``
times, seeded) and recompute the token-weighted losses.

**Building a reference set.**  Any JSONL file of problems like the benchmark's, written (or
collected) after the model's training data was frozen and never published before: GSM8K's own
``question``/``answer`` fields (scored as ``question + "\\n" + answer``, exactly like the train
and test splits) or a ``text`` field.  Keep the benchmark's format: the same answer style
(``<<48/2=24>>`` calculator annotations, a final ``#### N`` line), similar length and
difficulty, a few hundred problems or more; every difference in style shows up in Δ1.  The
default is the set the paper published, ``mock_gsm8k_test_public.jsonl`` (706 ``text``
solutions with annotations and ``####`` lines, problem and solution in one paragraph).
``mock_gsm8k_eval.jsonl`` (1,419 ``question``/``answer`` problems) has GSM8K's fields but
almost no annotations (2% against 99%), so its Δ1 mostly measures style.  A small model trained
on GSM8K text notices even the published set's prose form (0.26 nats on the 2-layer test model):
for such models, or for a training set known to hold only part of a benchmark, held-out problems
of the benchmark itself (say, train-split problems known to be unseen) are the best reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skypile import io
from skypile.evaluation.models import EvalError, ScoringModel
from skypile.evaluation.scoring import DocScore, read_set, score_texts

def _loss(nll: np.ndarray, tokens: np.ndarray) -> float:
    return float(nll.sum() / tokens.sum())


def bootstrap_losses(scores: list[DocScore], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` token-weighted mean losses of the set resampled (documents, with replacement)."""
    nll = np.array([s.nll for s in scores])
    tokens = np.array([s.n_tokens for s in scores], dtype=np.float64)
    out = np.empty(n)
    for start in range(0, n, 100):  # 100 resamples at a time bounds the index matrix
        idx = rng.integers(0, len(scores), size=(min(100, n - start), len(scores)))
        out[start : start + len(idx)] = nll[idx].sum(axis=1) / tokens[idx].sum(axis=1)
    return out


def verdict(delta1: float, delta1_ci: list[float], delta2: float, delta2_ci: list[float], margin: float) -> tuple[str, str]:
    """(label, plain-words explanation) as the Skywork paper reads Δ1 and Δ2."""
    test_leak = delta1 < -margin and delta1_ci[1] < 0
    train_leak = delta2 > margin and delta2_ci[0] > 0
    d1 = f"Δ1 = L_test − L_ref = {delta1:+.3f} (95% CI {delta1_ci[0]:+.3f} .. {delta1_ci[1]:+.3f})"
    d2 = f"Δ2 = L_test − L_train = {delta2:+.3f} (95% CI {delta2_ci[0]:+.3f} .. {delta2_ci[1]:+.3f})"
    parts = []
    if test_leak:
        parts.append(f"{d1}: the model finds the test problems clearly easier than freshly written problems of the "
                     f"same kind, so the test split (or close copies of it) was probably in its training data; "
                     f"its score on this benchmark overstates its ability. (First check that the reference set "
                     f"is written like the benchmark: a difference in style or format shows up as Δ1 too.)")
    else:
        parts.append(f"{d1}: the test split looks no more familiar to the model than freshly written problems "
                     f"(within {margin} nats or not significant): no sign that the test split leaked.")
    if train_leak:
        parts.append(f"{d2}: the train problems are clearly easier for the model than the test problems, so the "
                     f"train split (or close copies) was in its training data. That is not cheating by itself, "
                     f"but the model was tuned toward this benchmark's distribution.")
    else:
        parts.append(f"{d2}: train and test problems are about equally hard for the model (within {margin} nats "
                     f"or not significant): no sign that the train split was trained on.")
    label = {(True, True): "train_and_test_leak", (True, False): "test_leak", (False, True): "train_leak",
             (False, False): "no_evidence"}[(test_leak, train_leak)]
    return label, " ".join(parts)


def evaluate_leakage(model: ScoringModel, train: str, test: str, ref: str, *, max_docs: int | None = None,
                     seed: int = 0, bootstrap: int = 1000, margin: float = 0.1, stride: int | None = None,
                     batch_tokens: int | None = None, progress: bool = True) -> dict:
    """The ``leakage.json`` report (see the module docstring)."""
    sets = {"train": read_set(train, max_docs=max_docs, seed=seed), "test": read_set(test, max_docs=max_docs, seed=seed),
            "ref": read_set(ref, max_docs=max_docs, seed=seed)}
    scores = {k: score_texts(model, s.texts, stride=stride, batch_tokens=batch_tokens, desc=k, progress=progress)
              for k, s in sets.items()}
    losses = {k: _loss(np.array([d.nll for d in v]), np.array([d.n_tokens for d in v], dtype=np.float64))
              for k, v in scores.items()}
    broken = [k for k, v in losses.items() if not np.isfinite(v)]
    if broken:  # a NaN would read as "no sign of leakage": no verdict without numbers
        raise EvalError(f"the loss on the {', '.join(broken)} set is not finite ({', '.join(str(losses[k]) for k in broken)}): "
                        "no leakage verdict can be drawn")
    rng = np.random.default_rng(seed)
    boot = {k: bootstrap_losses(scores[k], bootstrap, rng) for k in ("train", "test", "ref")}

    def ci(samples: np.ndarray) -> list[float]:
        lo, hi = np.percentile(samples, [2.5, 97.5])
        return [float(lo), float(hi)]

    delta1, delta2 = losses["test"] - losses["ref"], losses["test"] - losses["train"]
    delta1_ci, delta2_ci = ci(boot["test"] - boot["ref"]), ci(boot["test"] - boot["train"])
    label, explanation = verdict(delta1, delta1_ci, delta2, delta2_ci, margin)
    return {
        "model": {"name": model.name, "kind": model.kind, "path": model.path, **model.info},
        "L_train": losses["train"], "L_test": losses["test"], "L_ref": losses["ref"],
        "delta1": delta1, "delta2": delta2, "delta1_ci": delta1_ci, "delta2_ci": delta2_ci,
        "verdict": label, "explanation": explanation,
        "sets": {k: {"path": s.path, "n_docs": len(s.texts), "n_tokens": sum(d.n_tokens for d in scores[k]),
                     "loss_ci": ci(boot[k]), "dropped": dict(s.dropped)} for k, s in sets.items()},
        "settings": {"margin": margin, "bootstrap": bootstrap, "seed": seed, "max_docs": max_docs,
                     "context": model.context, "stride": stride or max(1, model.context // 2)},
    }


def format_report(report: dict) -> str:
    lines = [f"{'set':<8}{'loss':>9}{'95% CI':>22}{'docs':>8}{'tokens':>10}"]
    for key, name in (("train", "L_train"), ("test", "L_test"), ("ref", "L_ref")):
        s = report["sets"][key]
        ci = f"{s['loss_ci'][0]:.3f} .. {s['loss_ci'][1]:.3f}"
        lines.append(f"{name:<8}{report[name]:>9.4f}{ci:>22}{s['n_docs']:>8}{s['n_tokens']:>10}")
    lines += ["", f"verdict: {report['verdict']}", report["explanation"]]
    return "\n".join(lines)


def write_report(report: dict, out: str | Path) -> str:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = str(out / "leakage.json")
    io.atomic_write_text(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return path
