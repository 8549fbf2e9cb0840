#!/usr/bin/env bash
# The README's "From crawl to trained model", run as written, on the shared data:
#   WARC + code + parallel -> three shard directories -> skypile mix -> skypile-train mix=mix.json
#   -> skypile eval ppl -> skypile-train export.
# Every number the README quotes comes from here: the summary is printed and written to
# bench/results/walkthrough.md (RESULTS=... to write it elsewhere).
#   WORK (default runs/walkthrough: the commands run inside it, with the README's relative paths)
#   SKYPILE_SHARED_DATA (default ../shared/data)
# Needs the venv (bash scripts/install.sh) and the models (skypile models build, run here if missing).
# About 5-10 minutes on 2 CPUs, most of it the 128 training steps of the tiny model's 65,536-piece head.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
. .venv/bin/activate
SHARED=$(cd "${SKYPILE_SHARED_DATA:-../shared/data}" && pwd)
WORK=${WORK:-runs/walkthrough}
RESULTS=${RESULTS:-$REPO/bench/results/walkthrough.md}
skypile models build >/dev/null  # the default tokenizer and the quality models (nothing to do when built)
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"

echo "== 1/5 three outputs: web pages, code, parallel text"
skypile run --runner local --workers 2 --input "$SHARED/warc/**/*" --output out/web --no-progress
skypile code --input "$SHARED/code/linguist-samples.jsonl.gz" --output out/code --no-progress
skypile parallel --input "$SHARED/parallel/wmt-newstest-zh2en/newstest-zh2en-wmt19.csv" --output out/par --no-progress

echo "== 2/5 the mix: names are the outputs' source values (printed above)"
cat > sources.yaml <<'EOF'
sources:
  - {name: web/warc, lang: en, manifest: out/web, tier: web}
  - {name: parallel/en-zh, lang: zh, manifest: out/par, tier: high}
  - {name: code/github, lang: code, manifest: out/code, tier: web, stem: true}
EOF
cat > target.yaml <<'EOF'
target: {en: 0.5, zh: 0.3, code: 0.2}
EOF
skypile mix --sources sources.yaml --target target.yaml --out mix.json

echo "== 3/5 train the tiny model on the mix, each source read where it lies (no --data)"
# 128 steps x 512 tokens = 65,536 tokens: the mix's stage 1 and its stage-2 STEM ramp
skypile-train --config tiny mix=mix.json steps=128 log_every=16 val_every=32 \
  "val_sets={\"web_en\": \"$SHARED/web/en/dolma/cc_en_head-0091.jsonl\", \"zh_news\": \"$SHARED/domains/zh/skywork-eval-loss/zh_news.jsonl\", \"wiki_en\": \"$SHARED/wiki/en/wikitext-2-raw-test.txt\"}"

echo "== 4/5 domain perplexity (the Skywork paper's table), from the run directory alone"
skypile eval ppl --model runs/tiny --sets "$SHARED/domains/zh/skywork-eval-loss" --max-docs 20 --out eval --no-progress

echo "== 5/5 a Hugging Face LLaMA directory"
skypile-train export --checkpoint runs/tiny/checkpoints/step-00000128 --out hf/tiny 2>&1 | tail -1

python - "$RESULTS" <<'EOF'
"""Every number the README's walkthrough quotes, from the files the commands above wrote."""
import json, sys
from pathlib import Path

lines = ["# From crawl to trained model (scripts/walkthrough.sh)", "",
         "The README's worked example, run as written on ../shared/data; every number there is from this file.", ""]
lines += ["## 1. Outputs", "", "| output | records in | kept | tokens | sources | trainable |", "|---|---|---|---|---|---|"]
for name in ("web", "code", "par"):
    stats, manifest = (json.loads(Path(f"out/{name}/{f}.json").read_text()) for f in ("stats", "manifest"))
    sources = ", ".join(f"{k} ({v['rows']:,} docs)" for k, v in manifest["sources"].items())
    lines.append(f"| out/{name} | {stats['records_in']:,} | {stats['kept']:,} | {manifest['tokens']:,} | {sources} | "
                 f"{'yes' if manifest['trainable'] else 'no'} |")
web = json.loads(Path("out/web/stats.json").read_text())
drops = {}
for stage, s in web["stages"].items():
    for reason, n in s["dropped"].items():
        drops[f"{stage}: {reason}"] = n
lines += ["", "Web records dropped, by stage and reason: " + ", ".join(f"{k} {v}" for k, v in sorted(drops.items(), key=lambda kv: -kv[1])), ""]
mix = json.loads(Path("mix.json").read_text())
lines += ["## 2. Mix", "", "| source | lang | tier | available tokens | stage-1 epochs | stage-1 tokens | epochs with stage 2 | weight |",
          "|---|---|---|---|---|---|---|---|"]
for s in mix["sources"]:
    lines.append(f"| {s['name']} | {s['lang']} | {s['tier']} | {s['available_tokens']:,} | {s['epochs']:.2f} | {s['tokens']:,} | "
                 f"{s['epochs_total']:.2f} | {s['weight']:.3f} |")
s2 = mix["stage2"]
lines += ["", f"Stage 1: {mix['total_tokens']:,} tokens (limited by {mix.get('limited_by')}); stage 2: {s2['tokens']:,} tokens in "
              f"{len(s2['phases'])} phases, starting at token {s2['phases'][0]['start']:,}, STEM share {s2['stem_start']:.0%} -> "
              f"{s2['stem_end']:.0%}.", ""]
rows = [json.loads(l) for l in Path("runs/tiny/metrics.jsonl").read_text().splitlines()]
train = [r for r in rows if r["type"] == "train"]
val = [r for r in rows if r["type"] == "val"]
last = train[-1]
planned = {s["name"]: s["epochs_total"] * s["available_tokens"] for s in mix["sources"]}
total = sum(planned.values())
lines += ["## 3. Training (tiny, 128 steps x 512 tokens)", "",
          f"Trained {last['tokens']:,} tokens; the mix planned {total:,.0f} (stage 1 + stage 2).", "",
          "| source | share as trained | share planned (stages 1 + 2) | stage-1 weight |", "|---|---|---|---|"]
for name, tokens in planned.items():
    lines.append(f"| {name} | {last['data_shares'].get(name, 0):.3f} | {tokens / total:.3f} | {mix['weights'][name]:.3f} |")
lines += ["", "| step | train loss (one 4-window batch) | lr | grad norm |", "|---|---|---|---|"]
lines += [f"| {r['step']} | {r['loss']:.2f} | {r['lr']:.2e} | {r['grad_norm']:.2f} |" for r in train]
names = [k for k in val[0] if k.startswith("val/")]
lines += ["", "| step | " + " | ".join(n[4:] for n in names) + " |", "|---|" + "---|" * len(names)]
lines += [f"| {r['step']} | " + " | ".join(f"{r[n]:.2f}" for n in names) + " |" for r in val]
ppl = json.loads(Path("eval/ppl.json").read_text())
cols = list(ppl["domains"])
lines += ["", "## 4. eval ppl (20 documents per domain)", "", "| | " + " | ".join(cols) + " | Average |", "|---|" + "---|" * (len(cols) + 1)]
for metric in ("ppl", "loss", "bpc"):
    lines.append(f"| {metric} | " + " | ".join(f"{ppl['domains'][c][metric]:.2f}" for c in cols) + f" | {ppl['average'][metric]:.2f} |")
lines += ["", "## 5. Export", "", "hf/tiny: " + ", ".join(sorted(p.name for p in Path("hf/tiny").iterdir())), ""]
text = "\n".join(lines)
Path(sys.argv[1]).write_text(text)
print(text)
EOF
echo
echo "summary: $RESULTS"
