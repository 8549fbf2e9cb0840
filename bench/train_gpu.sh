#!/usr/bin/env bash
# GPU benchmark of the trainer (issue 4): the `1b` config at context 4096 in bf16 on one H100/H200,
# FSDP2 (bf16 params, fp32 reduce), SDPA flash kernel (flash_attn when installed), AdamW, clipping.
# Prints tokens/s, TFLOP/s and MFU against 989 TFLOP/s; JSON + logs go to $OUT (device tool) or bench/results/.
#
#   bash bench/train_gpu.sh                      # eager, then torch.compile
#   MODES=compile BATCH=8 bash bench/train_gpu.sh --ac
#
# Env: MODES ("eager compile"), BATCH (4), STEPS (20 timed), WARMUP (5), PYTHON (python),
#      EAGER_TIMEOUT (240 s), COMPILE_TIMEOUT (360 s).  Extra arguments go to bench/train_gpu.py.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS="${OUT:-bench/results}"
mkdir -p "$RESULTS"
PY="${PYTHON:-python}"
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-8}"

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || true
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu",
torch.cuda.get_device_name() if torch.cuda.is_available() else None)'
} | tee "$RESULTS/train_gpu-env.txt"

status=0
for mode in ${MODES:-eager compile}; do
  flag=""
  limit="${EAGER_TIMEOUT:-240}"
  if [ "$mode" = compile ]; then flag="--compile"; limit="${COMPILE_TIMEOUT:-360}"; fi
  echo "== 1b seq 4096 bf16 $mode (timeout ${limit}s)"
  timeout "$limit" "$PY" bench/train_gpu.py --config 1b --seq-len 4096 --batch-size "${BATCH:-4}" \
      --steps "${STEPS:-20}" --warmup "${WARMUP:-5}" $flag --tag "$mode" \
      --out "$RESULTS/train_gpu-1b-$mode.json" "$@" 2>&1 | tee "$RESULTS/train_gpu-1b-$mode.log"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "!! $mode run failed (exit $rc)"; status=1; }
done
echo "== summary"
grep -h '^RESULT' "$RESULTS"/train_gpu-1b-*.log || echo "no result"
exit $status
