#!/usr/bin/env bash
# GPU benchmark of the trainer (issues 4, 14): the `1b` config at context 4096 in bf16 on one GPU,
# FSDP2 with bf16 params / fp32 reduce and reshard_after_forward=False (one device: nothing to
# shard), SDPA's cuDNN attention kernel (flash_attn when installed), fused AdamW, clipping.
# Micro batch 8 on cards with >= 120 GiB (H200: 139 GiB), else 4; halved on OOM.
# Target: MFU >= 50% of the device's dense bf16 peak (A100/A800 312, H100/H200 989 TFLOP/s).
#
#   bash bench/train_gpu.sh                      # eager, then torch.compile
#   MODES=compile BATCH=8 bash bench/train_gpu.sh --ac --ac-mode op
#
# Writes train_gpu-<device>.json (every mode: tokens/s, TFLOP/s, MFU, memory and the settings)
# plus per-mode logs to $OUT (device tool) or bench/results/.
# Env: MODES ("eager compile"), BATCH (0 = by memory), STEPS (20 timed), WARMUP (5),
#      PYTHON (python3), EAGER_TIMEOUT (240 s), COMPILE_TIMEOUT (360 s).  Extra arguments go to
#      bench/train_gpu.py.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS="${OUT:-bench/results}"
mkdir -p "$RESULTS"
PY="${PYTHON:-python3}"
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-8}"

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || true
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu",
torch.cuda.get_device_name() if torch.cuda.is_available() else None)'
} | tee "$RESULTS/train_gpu-env.txt"

status=0
runs=()
for mode in ${MODES:-eager compile}; do
  flag=""
  limit="${EAGER_TIMEOUT:-240}"
  if [ "$mode" = compile ]; then flag="--compile"; limit="${COMPILE_TIMEOUT:-360}"; fi
  echo "== 1b seq 4096 bf16 $mode (timeout ${limit}s)"
  timeout "$limit" "$PY" bench/train_gpu.py --config 1b --seq-len 4096 --batch-size "${BATCH:-0}" \
      --steps "${STEPS:-20}" --warmup "${WARMUP:-5}" $flag --tag "$mode" \
      --out "$RESULTS/train_gpu-1b-$mode.json" "$@" 2>&1 | tee "$RESULTS/train_gpu-1b-$mode.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ]; then runs+=("$RESULTS/train_gpu-1b-$mode.json"); else echo "!! $mode run failed (exit $rc)"; status=1; fi
done

echo "== summary"
grep -h '^RESULT' "$RESULTS"/train_gpu-1b-*.log || echo "no result"
if [ "${#runs[@]}" -gt 0 ]; then
  # One file per device: bench/results/train_gpu-<device>.json, every mode's result in "runs".
  "$PY" - "$RESULTS" "${runs[@]}" <<'EOF'
import json, re, sys
from pathlib import Path
out, runs = Path(sys.argv[1]), [json.loads(Path(p).read_text()) for p in sys.argv[2:]]
slug = re.sub(r"[^A-Za-z0-9]+", "-", runs[0]["device"]).strip("-").lower() or "device"
best = max(runs, key=lambda r: r["tokens_per_s"])
keys = ("tokens_per_s", "tflops", "mfu", "max_mem_alloc_gib", "max_mem_reserved_gib", "batch_size", "compile")
summary = {"device": runs[0]["device"], "benchmark": "train_gpu 1b seq 4096 bf16", "target_mfu": 0.5,
           "best": {k: best.get(k) for k in keys}, "runs": runs}
path = out / f"train_gpu-{slug}.json"
path.write_text(json.dumps(summary, indent=2) + "\n")
mfu = "n/a" if best["mfu"] is None else f"{100 * best['mfu']:.1f}%"
print(f"wrote {path}: best {best['tokens_per_s']:.0f} tokens/s, MFU {mfu}")
EOF
fi
exit $status
