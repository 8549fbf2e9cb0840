"""``skypile eval ppl``: per-domain perplexity and bits per character, in the Skywork paper's table layout.

For each domain test set (one file; a directory contributes each of its set files), with the
model's own tokenizer:

* ``loss``: mean NLL per token (nats) over all the set's tokens; ``ppl = exp(loss)``;
* ``bpc``: summed NLL in bits over all tokens / characters of the texts.  Token perplexities
  of models with different tokenizers are not comparable (a tokenizer with longer tokens has
  fewer, harder predictions); bits per character are, because every text is scored in full
  (first token included, see ``models.py``) and divided by a count that does not depend on
  the tokenizer.

The **average** follows the Skywork-13B paper's domain table (Tech, Movie, Gov., Game, Finance,
General, Average): its Average is ``exp(mean of the per-domain losses)``, the geometric mean of
the domain perplexities (Skywork-13B's row: exp(mean(ln 11.58, ln 21.84, ln 4.76, ln 17.28,
ln 4.92, ln 6.82)) = 9.42, as printed), so each domain weighs the same however many tokens
it has.  ``average.bpc`` is the mean of the domain bpcs likewise; ``n_tokens`` / ``n_docs`` sum.

Outputs (written atomically): ``OUT/ppl.json``, ``OUT/ppl.png`` (a bar chart; skipped with a
message when matplotlib is not installed) and the table on the terminal.
"""

from __future__ import annotations

import io as pyio
import json
import math
import time
from pathlib import Path

from skypile import io
from skypile.evaluation.models import ScoringModel
from skypile.evaluation.scoring import default_batch_tokens, expand_sets, read_set, score_texts, summarize

# The paper's column order and labels; other domains follow in file order.
PAPER_DOMAINS = {"tech": "Tech", "movie": "Movie", "government": "Gov.", "game": "Game", "finance": "Finance",
                 "general": "General"}


def _domain_key(name: str) -> str:
    key = name.lower()
    for prefix in ("zh_", "en_"):
        key = key.removeprefix(prefix)
    return key


def column_label(name: str) -> str:
    key = _domain_key(name)
    return PAPER_DOMAINS.get(key, key.replace("_", " ").title())


def paper_order(names: list[str]) -> list[str]:
    """Paper domains first, in the paper's order; then the others as given."""
    rank = {k: i for i, k in enumerate(PAPER_DOMAINS)}
    return sorted(names, key=lambda n: (rank.get(_domain_key(n), len(rank)), names.index(n)))


def average(domains: dict[str, dict]) -> dict:
    losses = [d["loss"] for d in domains.values()]
    loss = sum(losses) / len(losses)
    return {"loss": loss, "ppl": math.exp(loss), "bpc": sum(d["bpc"] for d in domains.values()) / len(domains),
            "n_tokens": sum(d["n_tokens"] for d in domains.values()),
            "n_docs": sum(d["n_docs"] for d in domains.values()), "domains": list(domains)}


def evaluate_ppl(model: ScoringModel, sets: list[str], *, stride: int | None = None, batch_tokens: int | None = None,
                 max_docs: int | None = None, seed: int = 0, progress: bool = True) -> dict:
    """The ``ppl.json`` report for ``model`` on every set named by ``sets`` (files or directories)."""
    files = expand_sets(sets)
    text_sets = [read_set(f, max_docs=max_docs, seed=seed) for f in files]  # every set is read (and checked) first
    domains, dropped = {}, {}
    t0 = time.perf_counter()
    for ts in text_sets:
        domains[ts.name] = {**summarize(score_texts(model, ts.texts, stride=stride, batch_tokens=batch_tokens,
                                                      desc=ts.name, progress=progress)), "path": ts.path}
        if ts.dropped:
            dropped[ts.name] = dict(ts.dropped)
    order = paper_order(list(domains))
    domains = {name: domains[name] for name in order}
    return {
        "model": {"name": model.name, "kind": model.kind, "path": model.path, **model.info},
        "settings": {"context": model.context, "stride": stride or max(1, model.context // 2),
                     "batch_tokens": batch_tokens or default_batch_tokens(model),
                     "start_token": model.start_id, "max_docs": max_docs, "seed": seed, "device": str(model.device)},
        "domains": domains,
        "average": average(domains),
        "dropped": dropped,
        "seconds": time.perf_counter() - t0,
    }


def format_table(report: dict) -> str:
    """The paper's layout: one column per domain, then Average; rows ppl, loss and bpc."""
    names = list(report["domains"])
    labels = [column_label(n) for n in names] + ["Average"]
    width = max(9, *(len(label) + 2 for label in labels))
    model = report["model"]["name"]
    head = f"{model:<24}" + "".join(f"{label:>{width}}" for label in labels)
    rows = [head, "-" * len(head)]
    for metric, fmt in (("ppl", "{:.2f}"), ("loss", "{:.4f}"), ("bpc", "{:.4f}")):
        cells = [report["domains"][n][metric] for n in names] + [report["average"][metric]]
        rows.append(f"{metric:<24}" + "".join(f"{fmt.format(c):>{width}}" for c in cells))
    tokens = [report["domains"][n]["n_tokens"] for n in names] + [report["average"]["n_tokens"]]
    docs = [report["domains"][n]["n_docs"] for n in names] + [report["average"]["n_docs"]]
    rows.append(f"{'tokens':<24}" + "".join(f"{t:>{width}}" for t in tokens))
    rows.append(f"{'docs':<24}" + "".join(f"{d:>{width}}" for d in docs))
    return "\n".join(rows)


def bar_chart(report: dict) -> bytes | None:
    """PNG bytes of the per-domain perplexity bars (+ Average); None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = list(report["domains"])
    labels = [column_label(n) for n in names] + ["Average"]
    colors = ["#4878a8"] * len(names) + ["#c8553d"]
    fig, axes = plt.subplots(1, 2, figsize=(2 * (0.9 * len(labels) + 1.5), 4))
    for ax, metric, ylabel, fmt in ((axes[0], "ppl", "perplexity (per token)", "%.2f"),
                                    (axes[1], "bpc", "bits per character", "%.3f")):
        values = [report["domains"][n][metric] for n in names] + [report["average"][metric]]
        bars = ax.bar(labels, values, color=colors)
        ax.bar_label(bars, fmt=fmt, fontsize=7)
        ax.set_ylabel(ylabel)
        ax.tick_params(axis="x", labelrotation=45)
    fig.suptitle(f"{report['model']['name']}: domain perplexity (per token) and bits per character (any tokenizer)")
    fig.tight_layout()
    buf = pyio.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def write_report(report: dict, out: str | Path) -> dict[str, str]:
    """``OUT/ppl.json`` and ``OUT/ppl.png`` (atomic); returns what was written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": str(out / "ppl.json")}
    io.atomic_write_text(written["json"], json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    png = bar_chart(report)
    if png is not None:
        written["png"] = str(out / "ppl.png")
        io.atomic_write_bytes(written["png"], png)
    return written
