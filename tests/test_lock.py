"""The install is the lock: setup.cfg's ranges, the committed locks and the venv agree.

A release published after the last landing (apache-beam 2.78) broke both README commands when the
install floated to it. These tests catch the three ways a lock goes wrong: setup.cfg changed and
the lock was not refreshed, the floor lock no longer holds the floor, and the venv the suite runs
in is not the lock it claims to be.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from skypile.data_paths import REPO_ROOT

REQS = REPO_ROOT / "requirements"
LOCKED_EXTRAS = ("train", "eval", "test", "quality", "dask")  # what requirements/lock.txt installs
# the floor lock leaves out `dask`: Beam's Dask runner needs 2.78 (setup.cfg), the floor is 2.77
LOCKS = {"lock.txt": LOCKED_EXTRAS, "beam-floor-lock.txt": tuple(e for e in LOCKED_EXTRAS if e != "dask")}


def _check_lock():
    spec = importlib.util.spec_from_file_location("check_lock", REPO_ROOT / "scripts" / "check_lock.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _requirements(extras=LOCKED_EXTRAS) -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO_ROOT / "setup.cfg")

    def lines(text: str) -> list[str]:
        return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]

    reqs = [Requirement(r) for r in lines(cfg["options"]["install_requires"])]
    for extra in extras:
        reqs += [Requirement(r) for r in lines(cfg["options.extras_require"][extra])]
    return reqs


def _base_version(v: str) -> str:
    return v.split("+", 1)[0]  # torch==2.13.0+cpu satisfies torch>=2.13 like 2.13.0 does


@pytest.mark.parametrize("lock", list(LOCKS))
def test_every_range_in_setup_cfg_is_pinned_inside_its_range(lock):
    pins = _check_lock().read_pins(REQS / lock)
    for req in _requirements(LOCKS[lock]):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is in setup.cfg but not in requirements/{lock}: run bash scripts/lock.sh --keep"
        assert req.specifier.contains(_base_version(pins[name]), prereleases=True), (
            f"requirements/{lock} pins {name}=={pins[name]}, outside setup.cfg's {req}: run bash scripts/lock.sh --keep")


def test_the_worker_lock_agrees_with_the_install_lock():
    mod = _check_lock()
    main, worker = mod.read_pins(REQS / "lock.txt"), mod.read_pins(REQS / "worker-lock.txt")
    assert "torch" not in worker and "apache-beam" in worker
    differ = {n: (main[n], v) for n, v in worker.items() if n in main and main[n] != v}
    assert not differ, f"worker-lock.txt and lock.txt disagree: {differ}"


def test_the_floor_lock_holds_apache_beam_at_setup_cfg_s_lower_bound():
    beam = next(r for r in _requirements(()) if r.name == "apache-beam")
    floor = next(s.version for s in beam.specifier if s.operator == ">=")
    pins = _check_lock().read_pins(REQS / "beam-floor-lock.txt")
    assert tuple(map(int, pins["apache-beam"].split("."))) == tuple(map(int, (floor + ".0").split(".")[:3]))


def test_every_pin_has_a_hash():
    """pip installs the locks with --require-hashes: a pin without a hash would stop the install."""
    for lock in ("lock.txt", "worker-lock.txt", "beam-floor-lock.txt", "datatrove-lock.txt"):
        lines = (REQS / lock).read_text().splitlines()
        pins = [i for i, ln in enumerate(lines) if ln and ln[0] not in " #"]
        assert len(pins) == len(_check_lock().read_pins(REQS / lock)) > 0, lock
        unhashed = [lines[i] for i in pins if not lines[i + 1].lstrip().startswith("--hash=sha256:")]
        assert not unhashed, (lock, unhashed[:3])


def test_this_venv_is_exactly_the_lock_it_was_installed_from():
    """scripts/install.sh copies the lock it installed into the venv; the venv must still match it."""
    copy = Path(sys.prefix) / "skypile-lock.txt"
    if not copy.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{copy} missing: CI must install with scripts/install.sh")
        pytest.skip("this venv was not made by scripts/install.sh")
    mod = _check_lock()
    lock = mod.read_pins(copy)
    allowed = {"skypile", "pip"} | set(mod.read_pins(REQS / "nodeps.txt"))
    have = mod.installed()
    skip = set()
    if os.environ.get("SKYPILE_TORCH"):
        skip = {"torch"}
        allowed |= {n for n in have if n not in lock}
    assert mod.differences(lock, have, allowed, skip) == []


def test_the_worker_image_is_built_on_the_locked_beam_release():
    """The SDK harness in the image and the client that submits the job must be the same Beam."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    beam = _check_lock().read_pins(REQS / "worker-lock.txt")["apache-beam"]
    assert f"ARG BEAM_VERSION={beam}\n" in dockerfile
    assert "-r requirements/worker-lock.txt" in dockerfile and "--require-hashes" in dockerfile
