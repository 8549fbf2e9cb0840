"""``skypile eval ppl|leakage``: the parser and the commands (hooked into ``skypile.cli``)."""

from __future__ import annotations

import argparse
import sys

from skypile.data_paths import shared_path

# The shared GSM8K splits and the mock GSM8K set the Skywork paper published: see evaluation/leakage.py.
DEFAULT_TRAIN = ("gsm8k", "train.jsonl")
DEFAULT_TEST = ("gsm8k", "test.jsonl")
DEFAULT_REF = ("gsm8k", "skywork-mock", "mock_gsm8k_test_public.jsonl")


def default_path(parts: tuple[str, ...]) -> str:
    return str(shared_path(*parts))


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="trainer run dir (config.json + checkpoints/), a checkpoint dir (step-N), or a Hugging Face model dir")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda | cuda:N")
    p.add_argument("--dtype", default="auto", help="auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16 | float16")
    p.add_argument("--tokenizer", default=None,
                   help="SentencePiece model to encode with: for a trainer run whose tokenizer moved, or instead of an HF dir's tokenizer")
    p.add_argument("--context", type=int, default=None,
                   help="window in tokens (default: the trainer run's seq_len; an HF model's limit, at most 4096)")
    p.add_argument("--trust-remote-code", action="store_true", help="let an HF directory run its own model code")
    p.add_argument("--stride", type=int, default=None,
                   help="sliding-window step for texts longer than the context (default: half the context)")
    p.add_argument("--batch-tokens", type=int, default=None,
                   help="tokens per forward batch (default: what fits a share of the free memory; the loss over the "
                        "vocabulary runs in chunks, so its memory is bounded either way)")
    p.add_argument("--max-docs", type=int, default=None, help="score a seeded random sample of at most N texts per set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")


def add_eval_parser(sub) -> None:
    ev = sub.add_parser("eval", help="evaluate a model: domain perplexity, benchmark leakage").add_subparsers(dest="ecmd", required=True)
    pp = ev.add_parser("ppl", help="per-domain perplexity and bits per character → OUT/ppl.json, OUT/ppl.png")
    pp.add_argument("--sets", nargs="+", required=True,
                    help="domain test sets: JSONL/Parquet/txt files, or directories of them (one domain per file)")
    _model_args(pp)
    lk = ev.add_parser("leakage", help="GSM8K-style leakage test: L_train, L_test, L_ref, Δ1, Δ2 → OUT/leakage.json")
    lk.add_argument("--train", default=default_path(DEFAULT_TRAIN), help="benchmark train split (default: shared GSM8K train)")
    lk.add_argument("--test", default=default_path(DEFAULT_TEST), help="benchmark test split (default: shared GSM8K test)")
    lk.add_argument("--ref", default=default_path(DEFAULT_REF),
                    help="fresh problems of the same kind (default: the Skywork paper's mock GSM8K test set)")
    lk.add_argument("--margin", type=float, default=0.1, help="nats a delta must exceed to count as clear (default 0.1)")
    lk.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the confidence intervals")
    _model_args(lk)


def run_eval(args: argparse.Namespace) -> int:
    from skypile.evaluation.models import EvalError, load_model
    from skypile.io import check_output_dir

    try:
        for option, value, least in (("--max-docs", args.max_docs, 1), ("--batch-tokens", args.batch_tokens, 1),
                                     ("--stride", args.stride, 1), ("--context", args.context, 2),
                                     ("--bootstrap", getattr(args, "bootstrap", None), 1)):
            if value is not None and value < least:
                raise EvalError(f"{option} must be at least {least}, got {value}")
        if not getattr(args, "margin", 0.0) >= 0:  # NaN too
            raise EvalError(f"--margin must be at least 0, got {args.margin}")
        check_output_dir(args.out, "--out")
        model = load_model(args.model, device=args.device, dtype=args.dtype, tokenizer=args.tokenizer, context=args.context,
                           trust_remote_code=args.trust_remote_code)
        if args.ecmd == "ppl":
            from skypile.evaluation import ppl

            report = ppl.evaluate_ppl(model, args.sets, stride=args.stride, batch_tokens=args.batch_tokens,
                                      max_docs=args.max_docs, seed=args.seed, progress=not args.no_progress)
            written = ppl.write_report(report, args.out)
            print(ppl.format_table(report))
            for name, counts in report["dropped"].items():
                print(f"dropped in {name}: {counts}")
            print(f"\nppl.json: {written['json']}")
            print(f"ppl.png:  {written['png']}" if "png" in written else "ppl.png:  skipped (matplotlib is not installed: pip install -e '.[eval]')")
            return 0
        from skypile.evaluation import leakage

        report = leakage.evaluate_leakage(model, args.train, args.test, args.ref, max_docs=args.max_docs, seed=args.seed,
                                          bootstrap=args.bootstrap, margin=args.margin, stride=args.stride,
                                          batch_tokens=args.batch_tokens, progress=not args.no_progress)
        path = leakage.write_report(report, args.out)
        print(leakage.format_report(report))
        print(f"\nleakage.json: {path}")
        return 0
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
