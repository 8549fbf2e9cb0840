#!/usr/bin/env bash
# Install SkyPile into ./.venv on a fresh machine (Python 3.11 + pip + Debian's apt is all it needs),
# with exactly the versions CI tested: requirements/lock.txt (every package pinned and hashed,
# installed with --no-deps, so nothing outside the lock comes in), then SkyPile itself, editable.
#
#   SKYPILE_TORCH   another torch build, e.g. SKYPILE_TORCH='torch==2.13.0' for PyPI's CUDA wheel
#                   on GPU nodes (default: the lock's CPU build, requirements/torch-cpu.txt)
#   SKYPILE_VENV    the venv (default .venv);  SKYPILE_LOCK  the lock (default requirements/lock.txt)
#
# A second run with the same lock, setup.cfg and torch choice does nothing (a stamp in the venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${SKYPILE_VENV:-.venv}
LOCK=${SKYPILE_LOCK:-requirements/lock.txt}
[ -f "$LOCK" ] || { echo "error: no lock file $LOCK (bash scripts/lock.sh writes one)" >&2; exit 2; }

STAMP="$VENV/skypile-install.sha256"
want=$(cat "$LOCK" requirements/nodeps.txt setup.cfg scripts/install.sh scripts/build_kenlm.sh | sha256sum | cut -c1-64)
want="$want torch=${SKYPILE_TORCH:-lock}"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "skypile: $VENV already installed from $LOCK"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
rm -f "$STAMP"

pin() { grep -E "^$1==" "$LOCK" | sed 's/ .*//'; }
# pip itself and the build backends first, at their locked versions: the sdists in the lock
# (skypile, jieba, kenlm's Python module) build against these, not against the newest release
python -m pip install -q --no-deps $(pin pip) $(pin setuptools) $(pin wheel) $(pin cmake)

# KenLM's lmplz + build_binary for the quality models, compiled from the locked kenlm sdist
# (cached in ~/.cache/skypile/kenlm; apt-gets the compiler and boost/eigen when missing, as root)
KENLM_VERSION=$(pin kenlm | cut -d= -f3) bash scripts/build_kenlm.sh

REQS=$LOCK
if [ -n "${SKYPILE_TORCH:-}" ]; then
  # the chosen torch with its own dependencies (CUDA builds bring nvidia-* packages), the rest from the lock
  python -m pip install -q "$SKYPILE_TORCH"
  REQS=$(mktemp)
  trap 'rm -f "$REQS"' EXIT
  awk '/^torch==/ {skip=1; next} /^[^ #]/ {skip=0} !skip' "$LOCK" >"$REQS"
fi
if ! python -m pip install -q --no-deps --no-build-isolation --require-hashes -r "$REQS"; then
  cat >&2 <<EOF
error: installing $LOCK failed (see above).
  A torch==...+cpu that pip cannot find comes from PyTorch's CPU index:
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/install.sh
  or pick another build:  SKYPILE_TORCH='torch==2.13.0' bash scripts/install.sh
EOF
  exit 1
fi
python -m pip install -q --no-deps --no-build-isolation -e .
python -m pip install -q --no-deps -r requirements/nodeps.txt

# the venv holds exactly the lock (and says which lock: tests/test_lock.py reads this copy)
cp "$LOCK" "$VENV/skypile-lock.txt"
python scripts/check_lock.py "$VENV/skypile-lock.txt" ${SKYPILE_TORCH:+--skip torch}
python -c "import skypile, fasttext, sentencepiece, apache_beam, torch, kenlm; print('skypile installed; apache-beam', apache_beam.__version__, '; torch', torch.__version__)"
echo "$want" >"$STAMP"
