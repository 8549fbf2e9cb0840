#!/usr/bin/env bash
# Refresh the dependency locks from the ranges in setup.cfg and requirements/*.in:
#
#   bash scripts/lock.sh               # newest versions the ranges allow → requirements/*lock.txt
#   bash scripts/lock.sh --keep        # keep every pin the ranges still allow (after adding a dependency)
#   bash scripts/lock.sh --out DIR     # write the locks to DIR (scripts/test.sh --latest does this)
#
# Before committing a refreshed lock, run `bash scripts/test.sh --latest`: it resolves and tests
# the same newest versions in a throw-away venv. The locks are resolved for what CI runs: CPython
# 3.11 on Linux x86_64 (manylinux_2_28), with PyTorch's CPU build (requirements/torch-cpu.txt).
#
#   requirements/lock.txt           the install: core + train, eval, test, quality, dask extras + build tools
#   requirements/worker-lock.txt    the Beam worker image (Dockerfile): core + quality + dataflow + dask, no torch;
#                                   constrained to lock.txt, so shared packages have the same versions
#   requirements/beam-floor-lock.txt  lock.txt's inputs but `dask`, with apache-beam at setup.cfg's lower bound:
#                                   CI runs the Beam tests on it too (scripts/test.sh --beam-floor)
#   requirements/datatrove-lock.txt the datatrove baseline's own venv (bench/datatrove_setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=requirements
UPGRADE=(--upgrade)
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) UPGRADE=() ;;
    --out) OUT=$2; shift ;;
    *) echo "usage: bash scripts/lock.sh [--keep] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"

# the lock tool, itself pinned
TOOLS=${SKYPILE_TOOLS_VENV:-.venv-tools}
UV_PIN=$(grep -E '^uv==' requirements/tools.txt)
if ! [ -x "$TOOLS/bin/uv" ] || [ "$("$TOOLS/bin/uv" --version | cut -d' ' -f2)" != "${UV_PIN#uv==}" ]; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q "$UV_PIN"
fi
UV="$TOOLS/bin/uv"

# PyTorch's CPU wheel: from a local wheel folder when there is one (this project's CI image has it
# in /opt/wheels), else from PyTorch's CPU index.
TORCH_SRC=()
WHEELS=${SKYPILE_TORCH_WHEELS:-/opt/wheels}
if ls "$WHEELS"/torch-*+cpu-*.whl >/dev/null 2>&1; then
  TORCH_SRC=(--find-links "$WHEELS")
else
  TORCH_SRC=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
fi
COMMON=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --quiet
        --custom-compile-command "bash scripts/lock.sh" "${UPGRADE[@]}")

# uv keeps the pins of an existing output file where allowed: seed --keep runs with the committed locks
seed() { [ "$OUT" = requirements ] || [ ${#UPGRADE[@]} -gt 0 ] || cp "requirements/$1" "$OUT/$1"; }

seed lock.txt
"$UV" pip compile setup.cfg requirements/build.in --extra train --extra eval --extra test --extra quality --extra dask \
  -c requirements/torch-cpu.txt "${TORCH_SRC[@]}" "${COMMON[@]}" -o "$OUT/lock.txt"

PINS=$(mktemp)
trap 'rm -f "$PINS" "$PINS.floor"' EXIT
grep -E '^[A-Za-z0-9_.-]+==' "$OUT/lock.txt" | sed 's/ .*//' >"$PINS"
seed worker-lock.txt
"$UV" pip compile setup.cfg requirements/build.in --extra quality --extra dataflow --extra dask -c "$PINS" \
  "${COMMON[@]}" -o "$OUT/worker-lock.txt"

# the oldest apache-beam setup.cfg admits, everything else as the ranges allow (no `dask` extra: it needs Beam 2.78)
FLOOR=$(grep -oE 'apache-beam>=[0-9.]+' setup.cfg | head -1 | cut -d= -f2)
echo "apache-beam==$FLOOR" >"$PINS.floor"
seed beam-floor-lock.txt
"$UV" pip compile setup.cfg requirements/build.in --extra train --extra eval --extra test --extra quality \
  -c requirements/torch-cpu.txt -c "$PINS.floor" "${TORCH_SRC[@]}" "${COMMON[@]}" -o "$OUT/beam-floor-lock.txt"
sed -i "s|-c $PINS.floor|apache-beam at setup.cfg's lower bound|" "$OUT/beam-floor-lock.txt"

seed datatrove-lock.txt
"$UV" pip compile requirements/datatrove.in "${COMMON[@]}" -o "$OUT/datatrove-lock.txt"

# the constraint file's path would otherwise differ between runs in the comments
sed -i "s|-c $PINS|-c requirements/lock.txt|" "$OUT/worker-lock.txt"
for f in lock.txt worker-lock.txt beam-floor-lock.txt datatrove-lock.txt; do
  echo "$OUT/$f: $(grep -cE '^[A-Za-z0-9_.-]+==' "$OUT/$f") packages"
done
