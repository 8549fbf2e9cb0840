"""Check that this interpreter's environment holds exactly a lock file's versions.

    python scripts/check_lock.py requirements/lock.txt [--skip torch]

Exit 0 when every pinned package is installed at its pinned version and nothing else is
installed but SkyPile itself and requirements/nodeps.txt; else one line per difference and
exit 1. Used by scripts/install.sh after installing, and by tests/test_lock.py in CI, so a venv
that drifted from its lock (a package upgraded by hand, a dependency pulled in from outside
the lock) is caught instead of tested as if it were the lock.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)")
REPO = Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of every ``name==version`` line (hash and comment lines ignored)."""
    pins = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins[canonical(m.group(1))] = m.group(2)
    return pins


def installed() -> dict[str, str]:
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def differences(lock: dict[str, str], have: dict[str, str], allowed_extra: set[str], skip: set[str]) -> list[str]:
    out = []
    for name, want in sorted(lock.items()):
        if name in skip:
            continue
        got = have.get(name)
        if got is None:
            out.append(f"{name}: not installed, lock has {want}")
        elif got != want:
            out.append(f"{name}: installed {got}, lock has {want}")
    for name in sorted(set(have) - set(lock) - allowed_extra - skip):
        out.append(f"{name}: installed {have[name]}, not in the lock")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lock", type=Path)
    ap.add_argument("--skip", action="append", default=[],
                    help="a package chosen outside the lock (SKYPILE_TORCH); its own dependencies are then not checked for being extra")
    args = ap.parse_args(argv)
    lock = read_pins(args.lock)
    # SkyPile itself, the --no-deps extras, and pip where a lock does not pin the installer
    allowed = {"skypile", "pip"} | set(read_pins(REPO / "requirements" / "nodeps.txt"))
    skip = {canonical(s) for s in args.skip}
    have = installed()
    if skip:  # a torch build chosen at install time brings its own dependencies (nvidia-*, triton, ...)
        allowed |= {n for n in have if n not in lock}
    bad = differences(lock, have, allowed, skip)
    for line in bad:
        print(f"lock mismatch: {line}", file=sys.stderr)
    if not bad:
        print(f"environment matches {args.lock} ({len(lock)} packages)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
