#!/usr/bin/env bash
# End to end on a fresh machine: install, build models from data, run the web job
# (WARC in, tokenized Parquet shards out) in process with one worker per CPU, then train a few steps.
#   OUT (default runs/quickstart)  SKYPILE_SHARED_DATA (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
OUT=${OUT:-runs/quickstart}
SHARED=${SKYPILE_SHARED_DATA:-../shared/data}
mkdir -p "$OUT"

STEPS=()
if [ -d "$SHARED/wiki" ]; then
  echo "== 1/4 models: build from data (tokenizer, KenLM en/zh, Wikipedia-reference classifier, bucket thresholds)"
  skypile models build
else
  # the quality models are trained on Wikipedia text: without the shared data, the web job runs without them
  echo "== 1/4 models: build from data (tokenizer; no shared data, so no quality models)"
  skypile models build --only tokenizer
  STEPS=(--set "steps=[extract,langid,lang_filter,length,unique_ids,exact_dedup,segments,near_dedup,tokenize]")
fi

echo "== 2/4 input"
if [ -d "$SHARED/warc" ]; then
  INPUT="$SHARED/warc/**/*"
  echo "using the shared crawl samples: $INPUT"
else
  INPUT="$OUT/default.warc.gz"
  skypile build-warc --out "$INPUT"
fi

echo "== 3/4 web job (in process, $(nproc) workers; --runner DirectRunner|DaskRunner|DataflowRunner... runs it on Beam)"
skypile run --input "$INPUT" --output "$OUT/web" --overwrite --workers "$(nproc)" "${STEPS[@]}"  # ~512 MB shards: one here

echo "== 4/4 trainer: a few CPU steps of the tiny model on those shards"
# Held-out validation per domain (when the shared data is there): the losses to read, since a
# single step's training loss on a 4-window batch is noisy.
VAL=()
if [ -d "$SHARED/wiki" ]; then
  VAL=("val_sets={\"web_en\": \"$SHARED/web/en/dolma/provided-documents-000.json.gz\", \"wiki_en\": \"$SHARED/wiki/en/wikitext-2-raw-test.txt\", \"zh_news\": \"$SHARED/domains/zh/skywork-eval-loss/zh_news.jsonl\"}" val_every=20)
fi
rm -rf "$OUT/train"  # a fresh run each time (the trainer would otherwise resume its checkpoint)
skypile-train --config tiny --data "$OUT/web" --run-dir "$OUT/train" steps=60 log_every=10 "${VAL[@]}"

echo
python scripts/summary.py --title "quickstart ($OUT)" --outputs "$OUT/web" --run "$OUT/train"  # what the README explains
echo
echo "results:"
echo "  shards + manifest + stats: $OUT/web/{shards/,manifest.json,stats.json,dropped/}"
echo "  the run's page (a browser): $OUT/web/report.html"
echo "  training metrics:          $OUT/train/metrics.jsonl"
echo "  tokenizer:                 models/build/tokenizer/skypile-sp.model"
