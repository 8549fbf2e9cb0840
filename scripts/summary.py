"""What a run of scripts/quickstart.sh or scripts/walkthrough.sh produced, as markdown: the numbers the README quotes.

    python scripts/summary.py --outputs out/web out/code --mix mix.json --run runs/tiny --ppl eval --export hf/tiny [--write FILE]

Every part is optional: shard outputs (records in, kept, tokens, sources, trainable, and the
records dropped by stage and reason), the mix (per-source epochs and weights), a trainer run
(token shares as trained against the mix as planned, train and validation losses), an
``eval ppl`` report and an export directory.  Read from the files the commands wrote.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def outputs(dirs: list[str]) -> list[str]:
    lines = ["| output | records in | kept | tokens | sources | trainable |", "|---|---|---|---|---|---|"]
    drops = []
    for d in dirs:
        stats, manifest = (json.loads((Path(d) / f"{name}.json").read_text()) for name in ("stats", "manifest"))
        sources = ", ".join(f"{k} ({v['rows']:,} docs)" for k, v in manifest["sources"].items())
        lines.append(f"| {d} | {stats['records_in']:,} | {stats['kept']:,} | {manifest['tokens']:,} | {sources} | "
                     f"{'yes' if manifest['trainable'] else 'no'} |")
        reasons = sorted(((n, f"{stage}: {reason}") for stage, s in stats["stages"].items() for reason, n in s["dropped"].items()),
                         reverse=True)
        drops.append(f"* {d}: " + ", ".join(f"{what} {n:,}" for n, what in reasons))
    return lines + ["", "Dropped, by stage and reason:", "", *drops, ""]


def planned_shares(mix: dict) -> dict[str, float]:
    """Each source's share of the whole plan, stage 1 and stage 2 together."""
    tokens = {s["name"]: s["epochs_total"] * s["available_tokens"] for s in mix["sources"]}
    total = sum(tokens.values()) or 1.0
    return {k: v / total for k, v in tokens.items()}


def mix_table(mix: dict) -> list[str]:
    lines = ["| source | lang | tier | available tokens | stage-1 epochs | stage-1 tokens | epochs with stage 2 | stage-1 weight |",
             "|---|---|---|---|---|---|---|---|"]
    for s in mix["sources"]:
        lines.append(f"| {s['name']} | {s['lang']} | {s['tier']} | {s['available_tokens']:,} | {s['epochs']:.2f} | "
                     f"{s['tokens']:,} | {s['epochs_total']:.2f} | {s['weight']:.3f} |")
    s2 = mix.get("stage2")
    lines += ["", f"Stage 1: {mix['total_tokens']:,} tokens (limited by {mix.get('limited_by', 'total_tokens')})"
              + (f"; stage 2: {s2['tokens']:,} tokens in {len(s2['phases'])} phases from token {s2['phases'][0]['start']:,}, "
                 f"STEM share {s2['stem_start']:.0%} → {s2['stem_end']:.0%}." if s2 else "; no stage 2."), ""]
    return lines


def training(run: Path, mix: dict | None) -> list[str]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["type"] == "train"]
    val = [r for r in rows if r["type"] == "val"]
    last = train[-1]
    lines = [f"{last['step']} steps, {last['tokens']:,} tokens.", ""]
    if mix:
        planned = planned_shares(mix)
        lines += ["| source | share as trained | share planned (stages 1 + 2) | stage-1 weight |", "|---|---|---|---|"]
        lines += [f"| {k} | {last['data_shares'].get(k, 0.0):.3f} | {v:.3f} | {mix['weights'].get(k, 0.0):.3f} |"
                  for k, v in planned.items()]
        lines.append("")
    lines += ["| step | train loss (one batch) | lr | grad norm | data epochs |", "|---|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['loss']:.2f} | {r['lr']:.2e} | {r['grad_norm']:.2f} | "
              + ", ".join(f"{k} {v:.2f}" for k, v in r["data_epochs"].items()) + " |" for r in train]
    if val:
        names = [k for k in val[0] if k.startswith("val/")]
        lines += ["", "| step | " + " | ".join(f"val {n[4:]}" for n in names) + " |", "|---|" + "---|" * len(names)]
        lines += [f"| {r['step']} | " + " | ".join(f"{r[n]:.2f}" for n in names) + " |" for r in val]
    return lines + [""]


def ppl_table(out: Path) -> list[str]:
    report = json.loads((out / "ppl.json").read_text())
    cols = list(report["domains"])
    lines = ["| | " + " | ".join(cols) + " | Average |", "|---|" + "---|" * (len(cols) + 1)]
    for metric, fmt in (("ppl", "{:,.0f}"), ("loss", "{:.2f}"), ("bpc", "{:.2f}")):
        lines.append(f"| {metric} | " + " | ".join(fmt.format(report["domains"][c][metric]) for c in cols)
                     + f" | {fmt.format(report['average'][metric])} |")
    return lines + ["", f"{report['average']['n_docs']} documents, {report['average']['n_tokens']:,} tokens; "
                        f"settings {report['settings']}", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--title", default="Run summary")
    ap.add_argument("--outputs", nargs="*", default=[])
    ap.add_argument("--mix")
    ap.add_argument("--run")
    ap.add_argument("--ppl")
    ap.add_argument("--export")
    ap.add_argument("--write", help="also write the markdown here")
    args = ap.parse_args()
    lines = [f"# {args.title}", ""]
    if args.outputs:
        lines += ["## Outputs", "", *outputs(args.outputs)]
    mix = json.loads(Path(args.mix).read_text()) if args.mix else None
    if mix:
        lines += ["## Mix", "", *mix_table(mix)]
    if args.run:
        lines += [f"## Training ({args.run})", "", *training(Path(args.run), mix)]
    if args.ppl:
        lines += ["## eval ppl", "", *ppl_table(Path(args.ppl))]
    if args.export:
        lines += ["## Export", "", f"{args.export}: " + ", ".join(sorted(p.name for p in Path(args.export).iterdir())), ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        Path(args.write).write_text(text)


if __name__ == "__main__":
    main()
