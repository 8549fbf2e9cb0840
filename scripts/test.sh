#!/usr/bin/env bash
# The README's test command: install the lock into ./.venv, then run the whole suite.
#
#   bash scripts/test.sh [PYTEST_ARGS]               the lock (requirements/lock.txt): what CI runs
#   bash scripts/test.sh --beam-floor [PYTEST_ARGS]  apache-beam at setup.cfg's lower bound
#                                                    (requirements/beam-floor-lock.txt) in .venv-beam-floor;
#                                                    by default the Beam tests only (CI runs this too)
#   bash scripts/test.sh --latest [PYTEST_ARGS]      the newest versions setup.cfg's ranges allow, resolved
#                                                    now (scripts/lock.sh --out), in a throw-away venv; run it
#                                                    before refreshing the lock, and to see the next upstream
#                                                    release break something before users do
set -euo pipefail
cd "$(dirname "$0")/.."

# tests/test_report.py opens the run's page in Debian's Chromium (headless, network off); as root with
# apt-get (CI, the project's machines) it is installed here, elsewhere that test skips (and fails in CI)
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing Debian's chromium for the report page's browser test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
      echo "warning: chromium could not be installed: tests/test_report.py's browser test will fail in CI" >&2
  else
    echo "note: no chromium (apt-get install chromium): the report page's browser test skips here"
  fi
}

MODE=lock
case "${1:-}" in
  --latest) MODE=latest; shift ;;
  --beam-floor) MODE=floor; shift ;;
esac

case "$MODE" in
  lock)
    bash scripts/install.sh
    ensure_chromium
    VENV=.venv ;;
  floor)
    VENV=.venv-beam-floor
    SKYPILE_VENV=$VENV SKYPILE_LOCK=requirements/beam-floor-lock.txt bash scripts/install.sh
    [ $# -gt 0 ] || set -- tests/test_beam_types.py tests/test_pipeline_beam.py tests/test_executors.py ;;
  latest)
    WORK=$(mktemp -d)
    VENV=$WORK/venv
    trap 'rm -rf "$WORK"' EXIT
    bash scripts/lock.sh --out "$WORK/locks"
    SKYPILE_VENV=$VENV SKYPILE_LOCK=$WORK/locks/lock.txt bash scripts/install.sh
    ensure_chromium
    newer=$(diff <(grep -E '^[A-Za-z0-9_.-]+==' requirements/lock.txt | sed 's/ .*//') \
                 <(grep -E '^[A-Za-z0-9_.-]+==' "$WORK/locks/lock.txt" | sed 's/ .*//') | grep -E '^[<>]' || true)
    echo "== against requirements/lock.txt (< locked, > newest allowed):"
    echo "${newer:-   the same: the lock is current}" ;;
esac
. "$VENV/bin/activate"
# pytest's exit code 5 (no tests collected) fails this script like any other failure.
python -m pytest -q -p no:cacheprovider "$@"
