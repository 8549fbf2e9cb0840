"""Whole-command extraction speed: ``skypile extract`` vs a plain ``trafilatura.extract`` loop, one core.

    python bench/extraction_speed.py [--rounds 5] [--cpu 0] [--job] [--out bench/results/extraction_speed.md]

The pages of the shared ground truth are written once to a temporary folder as
``.html.gz`` files: English articles (readability + trafilatura-eval, 290) and
Chinese pages (cleaneval-zh + GNE, 97).  Per set and round, these commands run
side by side, each pinned to the same CPU (``--cpu``), in alternating order:

* ``trafilatura``: ``python -c`` with a loop that reads each file and calls
  ``trafilatura.extract(bytes)`` (its defaults), writing one JSON line a page;
* ``skypile extract``: the CLI with the pipeline's extract stage (the per-page
  time bound in its helper process), writing its JSONL atomically;
* ``skypile extract, in process``: the same with ``extract.timeout_s=0`` (no
  helper: what the bound costs).

With ``--before REF`` (a git ref, e.g. ``main``), ``skypile extract (REF)`` runs
beside them: that commit's ``skypile/`` exported to a temporary folder and put
first on ``PYTHONPATH`` (same interpreter and packages), so a change is measured
against its base in the same rounds.  A third page set, one short page, shows
what start-up alone costs each command.

With ``--job``, the web job too: ``skypile run`` (the in-process executor, one
worker; extraction, language ID, dedup, quality, tokenizer) against datatrove's
comparable pipeline (``bench/datatrove_web.py`` in the venv
``bench/datatrove_setup.sh`` makes) on the same ~625 shared pages as four
WARC.gz files, pinned alike.

Each command is timed whole, interpreter start-up and imports included, after
one untimed run of each (disk cache, and bytecode: every command runs with
``PYTHONPYCACHEPREFIX`` in the temporary folder and without
``PYTHONDONTWRITEBYTECODE``, so skypile's modules load compiled, as from an
installed wheel, whatever the calling shell sets; site-packages are compiled
at install either way): CPU
time (user + system of the command and every process it started: this script
adopts orphans (``PR_SET_CHILD_SUBREAPER``), so a helper process that outlives
its job is still counted) is the primary measure on a shared machine, wall time
beside it.  Ratios are pages/s against the baseline's, per round (the commands
of a round ran back to back); the table gives their median and range.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extraction_quality import load_sets  # noqa: E402

from skypile.evaluation.extraction import load_gne_pages  # noqa: E402
from skypile.io import atomic_write_text  # noqa: E402

SKYPILE = str(Path(sys.executable).with_name("skypile"))
TRAFILATURA_LOOP = """
import gzip, json, sys, trafilatura
out, paths = sys.argv[1], sys.argv[2:]
with open(out, "w", encoding="utf-8") as f:
    for path in paths:
        with open(path, "rb") as g:
            html = gzip.decompress(g.read())
        f.write(json.dumps({"path": path, "text": trafilatura.extract(html)}, ensure_ascii=False) + "\\n")
"""


def write_pages(root: Path) -> dict[str, list[str]]:
    sets = {s.name: s.pages for s in load_sets()}
    short = next(p for p in sets["readability"] if p.name == "005-unescape-html-entities")  # one word of text
    groups = {
        "English articles (readability + trafilatura-eval)": sets["readability"] + sets["trafilatura-eval"],
        "Chinese (cleaneval-zh + GNE)": sets["cleaneval-zh"] + load_gne_pages(),
        "start-up (one short page)": [short],
    }
    out = {}
    for i, (name, pages) in enumerate(groups.items()):
        d = root / f"set{i}"
        d.mkdir()
        paths = []
        for j, page in enumerate(pages):
            path = d / f"{j:04d}.html.gz"
            path.write_bytes(gzip.compress(page.html, compresslevel=1))
            paths.append(str(path))
        out[name] = paths
    return out


def adopt_orphans() -> None:
    """Become the reaper of our descendants' orphans (Linux), so their CPU time reaches our rusage."""
    import ctypes

    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def command_env(root: Path, env: dict | None = None) -> dict:
    """The environment every timed command gets: bytecode written to and read from ``root/pycache``."""
    out = dict(env or os.environ, PYTHONPYCACHEPREFIX=str(root / "pycache"))
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    return out


def run(cmd: list[str], cpu: int, env: dict | None = None) -> tuple[float, float]:
    """(CPU seconds of the command and every process it started, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                   preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    wall = time.perf_counter() - t0
    while True:  # orphans we adopted (a helper process that outlived its job)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def commands(paths: list[str], out: Path, before: tuple[str, Path] | None = None) -> dict[str, Command]:
    cmds: dict[str, Command] = {
        "trafilatura": [sys.executable, "-c", TRAFILATURA_LOOP, str(out / "t.jsonl"), *paths],
        "skypile extract": [SKYPILE, "extract", *paths, "--jsonl", str(out / "s.jsonl"), "--no-progress"],
        "skypile extract, in process": [SKYPILE, "extract", *paths, "--jsonl", str(out / "i.jsonl"), "--no-progress",
                                        "--set", "extract.timeout_s=0"],
    }
    if before:
        ref, tree = before
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")])))
        cli = "import sys; from skypile.cli import main; sys.exit(main())"  # -P: not the current folder's skypile
        cmds[f"skypile extract ({ref})"] = (
            [sys.executable, "-P", "-c", cli, "extract", *paths, "--jsonl", str(out / "b.jsonl"), "--no-progress"], env)
    return cmds


def export_tree(ref: str, dest: Path) -> Path:
    """``skypile/`` as commit ``ref`` has it, under ``dest`` (for ``PYTHONPATH``)."""
    dest.mkdir()
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", ref, "skypile"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def job_commands(root: Path, datatrove_python: str) -> tuple[int, dict[str, list[str]]]:
    from skypile.config import default_tokenizer_path
    from skypile.readers.warc_builder import build_warc_from_shared
    from warc_split import split_warc

    n = build_warc_from_shared(str(root / "pages.warc.gz"))
    files = split_warc(str(root / "pages.warc.gz"), str(root / "split"), 4)
    ours = [SKYPILE, "run", "--output", str(root / "job"), "--tokenizer", default_tokenizer_path(), "--no-progress",
            "--runner", "local", "--workers", "1", "--overwrite"]
    for f in files:
        ours += ["--input", f]
    datatrove = [datatrove_python, str(Path(__file__).resolve().parent / "datatrove_web.py"), "--input", *files,
                 "--output", str(root / "dt"), "--workers", "1"]
    return n, {"datatrove (1 worker)": datatrove, "skypile run (local, 1 worker)": ours}


Command = list[str] | tuple[list[str], dict]  # argv, or argv and its environment


def compare(cmds: dict[str, Command], n: int, label: str, rounds: int, cpu: int, loads: list[float],
            root: Path, clean: list[Path] = ()) -> list[str]:
    """Interleaved rounds of the commands, after one untimed run of each; table rows against the first one."""
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
    for r in range(-1, rounds):
        for k in list(cmds) if r % 2 == 0 else list(cmds)[::-1]:
            for d in clean:
                shutil.rmtree(d, ignore_errors=True)
            cmd, env = cmds[k] if isinstance(cmds[k], tuple) else (cmds[k], None)
            took = run(cmd, cpu, command_env(root, env))
            if r >= 0:
                times[k].append(took)
        if r < 0:
            continue
        loads.append(os.getloadavg()[0])
        print(label, r, {k: f"{v[-1][0]:.2f}s cpu {v[-1][1]:.2f}s wall" for k, v in times.items()}, file=sys.stderr)
    base = next(iter(times.values()))
    rows = []
    for k, v in times.items():
        cpu_ratio = [b[0] / x[0] for b, x in zip(base, v)]
        wall_ratio = [b[1] / x[1] for b, x in zip(base, v)]
        rows.append(
            f"| {label} ({n}) | {k} | {_range([x[0] for x in v])} | {_range([x[1] for x in v])} | "
            f"{n / statistics.median(x[0] for x in v):.1f} | {_range(cpu_ratio)} | {_range(wall_ratio)} |"
        )
    return rows


def _range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=0, help="the CPU every command is pinned to")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "extraction_speed.md"))
    ap.add_argument("--job", action="store_true", help="also the web job against datatrove's")
    ap.add_argument("--before", default=None, metavar="REF", help="also skypile extract as git ref REF has it (e.g. main)")
    ap.add_argument("--sets", default=None, help="only the page sets whose name contains one of these words (comma-separated)")
    ap.add_argument("--datatrove-python", default=os.environ.get("DT_VENV", str(Path(__file__).resolve().parents[2] / "dt-venv")) + "/bin/python")
    args = ap.parse_args(argv)

    adopt_orphans()
    loads = [os.getloadavg()[0]]
    rows, job_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        before = (args.before, export_tree(args.before, root / "before")) if args.before else None
        for name, paths in write_pages(root).items():
            if args.sets and not any(w.strip().lower() in name.lower() for w in args.sets.split(",")):
                continue
            rows += compare(commands(paths, root, before), len(paths), name, args.rounds, args.cpu, loads, root)
        if args.job:
            n, cmds = job_commands(root, args.datatrove_python)
            job_rows = compare(cmds, n, "web job, shared pages", args.rounds, args.cpu, loads, root,
                               [root / "job", root / "dt"])
    lines = [
        "# Whole-command extraction speed, one core",
        "",
        f"Generated by `python bench/extraction_speed.py --rounds {args.rounds}{' --job' if args.job else ''}"
        f"{f' --before {args.before}' if args.before else ''}{f' --sets {args.sets}' if args.sets else ''}` "
        f"(Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs shared with other jobs, every command pinned to CPU {args.cpu}; load average "
        f"{min(loads):.1f}–{max(loads):.1f} during the run). See the script's docstring. Cells: median (min–max) "
        "over the rounds; × = pages/s against the trafilatura loop's in the same round (> 1: faster).",
        "",
        "| pages | command | CPU s | wall s | pages per CPU s | × by CPU | × by wall |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    if job_rows:
        lines += [
            "## The web job against datatrove (× = pages/s against datatrove's)",
            "",
            "datatrove's pipeline does less (no dedup, quality models or tokenizer; trafilatura 1.11) and keeps "
            "fewer pages (its reader drops pages it cannot decode cleanly).",
            "",
            "| pages | command | CPU s | wall s | pages per CPU s | × by CPU | × by wall |",
            "|---|---|---|---|---|---|---|",
            *job_rows,
            "",
        ]
    atomic_write_text(args.out, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
