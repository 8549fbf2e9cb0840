#!/usr/bin/env bash
# The README's "From crawl to trained model", run as written, on the shared data:
#   WARC + code + parallel -> three shard directories -> skypile mix -> skypile-train mix=mix.json
#   -> skypile eval ppl -> skypile-train export.
# Every number the README quotes comes from here: the summary is printed and written to
# bench/results/walkthrough.md (RESULTS=... to write it elsewhere).
#   WORK (default runs/walkthrough: the commands run inside it, with the README's relative paths)
#   SKYPILE_SHARED_DATA (default ../shared/data)
# Needs the venv (bash scripts/install.sh) and the models (skypile models build, run here if missing).
# About 5-10 minutes on 2 CPUs, most of it the training steps of the tiny model's 65,536-piece head (as many as the mix plans).
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
# as many 512-token steps (tiny: 4 windows of 128) as the mix plans, its stage 1 and stage-2 STEM ramp
# (past the plan the last phase's weights go on and a source may repeat beyond its epochs)
STEPS=$(python -c "import json; m = json.load(open('mix.json')); print((m['total_tokens'] + m['stage2']['tokens']) // 512)")
skypile-train --config tiny mix=mix.json steps="$STEPS" log_every=16 val_every=32 \
  "val_sets={\"web_en\": \"$SHARED/web/en/dolma/cc_en_head-0091.jsonl\", \"zh_news\": \"$SHARED/domains/zh/skywork-eval-loss/zh_news.jsonl\", \"wiki_en\": \"$SHARED/wiki/en/wikitext-2-raw-test.txt\"}"

echo "== 4/5 domain perplexity (the Skywork paper's table), from the run directory alone"
skypile eval ppl --model runs/tiny --sets "$SHARED/domains/zh/skywork-eval-loss" --max-docs 10 --out eval --no-progress

echo "== 5/5 a Hugging Face LLaMA directory"
skypile-train export --checkpoint "runs/tiny/checkpoints/step-$(printf %08d "$STEPS")" --out hf/tiny 2>&1 | tail -1

python "$REPO/scripts/summary.py" --title "From crawl to trained model (scripts/walkthrough.sh)" \
  --outputs out/web out/code out/par --mix mix.json --run runs/tiny --ppl eval --export hf/tiny --write "$RESULTS"
echo
echo "summary: $RESULTS"
