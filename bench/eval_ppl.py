"""Scoring throughput of ``skypile eval ppl``: batched windows against one window per forward.

    python bench/eval_ppl.py [--docs 20] [--device cpu] [--threads 2]

Baseline: one window per forward pass, the way a simple loop (or the Skywork repo's
``eval_loss.py`` with batch size 1) scores a set.  SkyPile: every window of a set sorted by
length and batched up to ``--batch-tokens`` tokens.  Same model, same texts, same windows:
the per-domain losses must agree (checked), only the time differs.

The model is the trainer's decoder (4 layers, 256 wide, random weights: throughput does not
depend on what the weights learned), saved as a trainer run directory and loaded the way
``skypile eval`` loads any run; the tokenizer is a SentencePiece BPE (8,000 pieces) trained
on the Skywork zh_general set.  Texts: the first ``--docs`` documents of each of the seven
Skywork Chinese domain sets (``../shared/data/domains/zh/skywork-eval-loss``).  Prints a
table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from skypile.data_paths import shared_path
from skypile.evaluation.models import load_model
from skypile.evaluation.scoring import expand_sets, read_set, score_texts, summarize


def build_run(base: Path, context: int) -> Path:
    from skypile.tokenizer.spm import train_tokenizer
    from skypile.trainer.config import ModelConfig, TrainConfig

    tok = train_tokenizer([str(shared_path("domains", "zh", "skywork-eval-loss", "zh_general.jsonl"))],
                          str(base / "tokenizer"), vocab_size=8000)
    cfg = TrainConfig(name="bench", model=ModelConfig(dim=256, n_layers=4, n_heads=8, vocab_size=8000, max_seq_len=context),
                      seq_len=context, tokenizer=tok, device="cpu", param_dtype="float32")
    return write_run(cfg, base / "run")


def write_run(cfg, run: Path) -> Path:
    """A trainer run directory (config.json + one DCP checkpoint) of ``cfg``'s model at random weights."""
    from skypile.trainer.checkpoint import Checkpointer
    from skypile.trainer.model import build_model

    model = build_model(cfg.model, "cpu")
    model.init_weights(0)
    run.mkdir()
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    Checkpointer(run / "checkpoints").save(0, model, torch.optim.AdamW(model.parameters()), {"step": 0},
                                           meta={"config": cfg.to_dict()})
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20, help="documents per domain")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(build_run(Path(tmp), args.context), device=args.device)
        sets = [read_set(f) for f in expand_sets([str(shared_path("domains", "zh", "skywork-eval-loss"))])]
        for s in sets:
            s.texts = s.texts[: args.docs]
        rows = {}
        for label, batch_tokens in (("baseline: 1 window per forward", 1), (f"skypile: batched ({args.batch_tokens} tokens)", args.batch_tokens)):
            t0 = time.perf_counter()
            losses = {s.name: summarize(score_texts(model, s.texts, batch_tokens=batch_tokens, progress=False)) for s in sets}
            seconds = time.perf_counter() - t0
            tokens = sum(v["n_tokens"] for v in losses.values())
            rows[label] = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
                           "losses": {k: v["loss"] for k, v in losses.items()}}
        base, ours = rows.values()
        for name, loss in base["losses"].items():
            assert abs(ours["losses"][name] - loss) <= 1e-5 * abs(loss), (name, loss, ours["losses"][name])
    print(f"{'':<36}{'tokens':>10}{'seconds':>10}{'tokens/s':>12}{'ratio':>8}")
    for label, r in rows.items():
        print(f"{label:<36}{r['tokens']:>10}{r['seconds']:>10.1f}{r['tokens_per_s']:>12.0f}"
              f"{r['tokens_per_s'] / base['tokens_per_s']:>8.2f}")
    print(json.dumps({"device": str(model.device), "threads": args.threads, "context": model.context,
                      "docs_per_domain": args.docs, **{k: {kk: vv for kk, vv in v.items() if kk != "losses"} for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
