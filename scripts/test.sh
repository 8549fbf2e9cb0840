#!/usr/bin/env bash
# The README's test command: install into ./.venv, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
# pytest's exit code 5 (no tests collected) fails this script like any other failure.
python -m pytest -q -p no:cacheprovider "$@"
