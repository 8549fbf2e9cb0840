"""Peak memory of ``skypile eval ppl`` scoring: the loss over full logits against the loss in chunks.

    python bench/eval_memory.py [--docs 10] [--out bench/results/eval_memory.md]

The model is the trainer's ``tiny`` decoder at the default 65,536-piece vocabulary (2 layers x 64,
8.5M parameters, nearly all of them the embedding and the output head; random weights: memory does
not depend on what they learned), context 128, saved as a trainer run directory and loaded the way
``skypile eval`` loads any run, with the default tokenizer (``skypile models build``).  Texts: the
first ``--docs`` documents of each Skywork Chinese domain set (``../shared/data/domains/zh/skywork-eval-loss``).

Each variant scores the same texts in its own process, run under ``/work/shared/tools/peak-mem``
(peak PSS of the process tree, sampled every 0.2 s; ``--peak-mem`` points elsewhere):

* ``baseline``: what ``skypile eval`` did before: 8,192-token batches, the logits of the whole
  batch (fp32, 8,192 x 65,536 = 2 GiB) and the cross-entropy over all of them at once;
* ``chunked, 8192``: the same batches, the output head and the loss applied to the scored
  positions ~256 MiB of logits at a time (``skypile.evaluation.scoring``);
* ``chunked, default batch``: what ``skypile eval`` does now (the batch sized to the free memory).

The per-domain losses must agree to 1e-5 (checked).  Prints a table and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/eval_ppl.py: write_run

VARIANTS = {"baseline": "baseline: full logits, 8192-token batches", "chunked-8192": "chunked, 8192-token batches",
            "chunked": "chunked, default batch (sized to memory)"}


def build_run(base: Path) -> Path:
    from eval_ppl import write_run

    from skypile.config import default_tokenizer_path
    from skypile.trainer.config import get_config

    cfg = get_config("tiny")
    cfg.model.vocab_size, cfg.tokenizer = 65536, default_tokenizer_path()
    return write_run(cfg, base / "run")


def score(run: str, variant: str, docs: int, out: str) -> None:
    """One variant in this process: per-domain losses to ``out`` (JSON)."""
    import torch

    from skypile.data_paths import shared_path
    from skypile.evaluation import scoring
    from skypile.evaluation.models import load_model

    torch.set_num_threads(2)
    model = load_model(run, device="cpu")
    batch_tokens = None if variant == "chunked" else 8192
    if variant == "baseline":  # the old path: whole-batch logits, one cross-entropy over all of them
        model = dataclasses.replace(model, hidden=None, head=None)
        scoring.LOGITS_BYTES = 2**62
    sets = [scoring.read_set(f) for f in scoring.expand_sets([str(shared_path("domains", "zh", "skywork-eval-loss"))])]
    t0 = time.perf_counter()
    losses, tokens = {}, 0
    for s in sets:
        summary = scoring.summarize(scoring.score_texts(model, s.texts[:docs], batch_tokens=batch_tokens, progress=False))
        losses[s.name], tokens = summary["loss"], tokens + summary["n_tokens"]
    Path(out).write_text(json.dumps({"losses": losses, "tokens": tokens, "seconds": time.perf_counter() - t0,
                                     "batch_tokens": batch_tokens or scoring.default_batch_tokens(model)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=10, help="documents per domain")
    ap.add_argument("--peak-mem", default="/work/shared/tools/peak-mem")
    ap.add_argument("--out", default=None, help="write the table here (markdown)")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        score(args.run, args.variant, args.docs, args.result)
        return
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        run = build_run(Path(tmp))
        for variant in VARIANTS:
            result = Path(tmp) / f"{variant}.json"
            cmd = [args.peak_mem, sys.executable, __file__, "--variant", variant, "--run", str(run), "--docs", str(args.docs),
                   "--result", str(result)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
            if proc.returncode:
                raise SystemExit(f"{variant} failed:\n{proc.stderr[-3000:]}")
            peak = float(re.search(r"peak-mem: (\d+) MiB", proc.stderr).group(1))
            rows[variant] = {**json.loads(result.read_text()), "peak_mib": peak}
            print(f"{variant}: {peak:.0f} MiB, {rows[variant]['seconds']:.1f} s", flush=True)
    base = rows["baseline"]
    for variant, r in rows.items():
        for name, loss in base["losses"].items():
            assert abs(r["losses"][name] - loss) <= 1e-5 * abs(loss), (variant, name, loss, r["losses"][name])
    lines = ["| variant | batch tokens | tokens scored | peak PSS (MiB) | vs baseline | scoring s |", "|---|---|---|---|---|---|"]
    for variant, r in rows.items():
        lines.append(f"| {VARIANTS[variant]} | {r['batch_tokens']} | {r['tokens']} | {r['peak_mib']:.0f} | "
                     f"{r['peak_mib'] / base['peak_mib']:.2f}x | {r['seconds']:.1f} |")
    table = "\n".join(lines)
    print(table)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "losses"} for k, v in rows.items()}))
    if args.out:
        Path(args.out).write_text(
            "# `skypile eval` peak memory (bench/eval_memory.py)\n\n"
            f"Model: the trainer's `tiny` decoder at 65,536 pieces (8.5M parameters), context 128, CPU, 2 torch threads; "
            f"texts: the first {args.docs} documents of each of the seven Skywork zh domain sets. Peak PSS of the whole "
            "process (interpreter, torch, model and data included) from `/work/shared/tools/peak-mem`; per-domain losses "
            "agree to 1e-5 (checked).\n\n" + table + "\n")


if __name__ == "__main__":
    main()
