"""Scale-out of the web job: in process, Beam on Dask, and datatrove, 1 and 2 workers, 1x and 4x input.

    python bench/scale_out.py [--pages 300] [--rounds 2] [--rounds-4x 3] [--engines local dask datatrove]
        [--out bench/results/scale_out.md] [--datatrove-python DT_VENV/bin/python]   (DT_VENV default: ../dt-venv, bench/datatrove_setup.sh)

Input: the first ``--pages`` real pages of ../shared/data as one WARC split round-robin into 4
files (1x), and those 4 files copied 4 times (4x; exact dedup keeps a quarter).

Time and memory are taken in separate runs.  ../shared/tools/peak-mem reads every process's
``smaps_rollup`` and every thread's ``children`` file 5 times a second; a Dask job has more
processes and threads (scheduler, nannies, workers, client) than the others, so the sampler
costs its rows more CPU: peak-mem's own CPU was 8-12% of a core beside a Dask job against 3.5-5%
beside an in-process one (``bench/results/dask_trace.md``; the ``sampler CPU s`` column of the
memory runs reports it), on a 2-CPU machine a share the 2-worker rows lose.  Timing runs are
not wrapped: ``--rounds`` interleaved rounds at 1x (best reported) and ``--rounds-4x`` at 4x
(every run and the median reported), every configuration once per round.  Then one memory run
per configuration and size under peak-mem, which sums the PSS of the whole process tree: for
Dask the driver (``bench/scale_out.py --dask-job``) starts the scheduler and workers as its own
children, so they are counted.  Rows:

* ``--runner local --workers 1|2``;
* ``--runner DaskRunner`` on a scheduler + 1|2 ``dask worker`` processes (``--nthreads 1``) on
  127.0.0.1; the job's time excludes starting the cluster (a cluster is up before a job), its
  memory includes it;
* datatrove's comparable pipeline (bench/datatrove_web.py: reader → trafilatura → langid →
  length → Parquet, no dedup, quality or tokenizer) with 1|2 workers, in its own venv.

pages/s = input response records / job seconds (best of ``--rounds`` at 1x, median of
``--rounds-4x`` at 4x); scaling = 2-worker rate / 1-worker rate of the same engine, at 1x and at
4x (a Dask job's client costs ~10 CPU seconds whatever the input, its scheduler 3-8:
``bench/dask_cpu.py``, ``bench/dask_trace.py``).  For Dask, each timing run also reads the scheduler's task stream and
reports each worker's busy fraction: the seconds it had a task computing over the span from the
job's first task to its last (``bench/dask_trace.py``'s ``busy``).  The rounds are interleaved (every
configuration once per round), and ``uptime``'s load is recorded with each round: on a shared
machine wall-clock ratios are noisy.  The 1x local 1-worker run is also kept (``--keep-work``) to
report per-stage rates per core (stats.json: documents in / stage seconds) and the bytes of facts
each corpus stage gets per document (the task facts files, pickled as Beam's pickling coder
sends them): what docs/scale.md's 1-billion-page estimate is built from.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skypile.config import default_tokenizer_path
from skypile.data_paths import REPO_ROOT, shared_data_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_memory import build_inputs  # noqa: E402

SAMPLER_RE = re.compile(r"^sampler-cpu: ([\d.]+)$", re.M)
BUSY_RE = re.compile(r"^busy: (.*)$", re.M)
# peak-mem run as a module of this interpreter, reporting its own CPU seconds when it exits
SELF_CPU = ("import atexit, resource, runpy, sys; atexit.register(lambda: print('sampler-cpu: %.2f' % sum("
            "resource.getrusage(resource.RUSAGE_SELF)[:2]), file=sys.stderr)); sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
PEAK_RE = re.compile(r"peak-mem: (\d+) MiB peak PSS of the process tree, ([\d.]+) s, exit (-?\d+)")
JOB_RE = re.compile(r"^job-seconds: ([\d.]+)$", re.M)
SKYPILE = str(Path(sys.executable).with_name("skypile"))
ENGINES = ("local", "dask", "datatrove")


def dask_job(workers: int, cmd: list[str]) -> int:
    """Start a scheduler and ``workers`` workers as children, run ``cmd`` against them, stop them.

    Prints the job's seconds and each worker's busy fraction (from the scheduler's task stream).
    """
    from distributed import Client, get_task_stream

    from dask_trace import busy
    from skypile.pipelines.dask_cluster import LocalDaskCluster

    with LocalDaskCluster(workers=workers, threads=1) as cluster, Client(cluster.address) as client:
        with get_task_stream(client=client) as ts:
            t0 = time.time()
            rc = subprocess.run([*cmd, "--runner", "DaskRunner", f"--dask_client_address={cluster.address}"],
                                stdout=subprocess.DEVNULL).returncode
            t1 = time.time()
        print(f"job-seconds: {t1 - t0:.2f}", flush=True)
        if rc == 0:
            print("busy: " + " ".join(f"{frac:.3f}" for _, frac, _ in busy(ts.data, t0, t1)["workers"].values()), flush=True)
    return rc


def measured(cmd: list[str], sample: bool) -> tuple[int | None, float, str, float | None]:
    """Peak MiB of the process tree (``sample``: under peak-mem), seconds, stdout, and peak-mem's own CPU seconds."""
    tool = shared_data_dir().parent / "tools" / "peak-mem"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", SELF_CPU, str(tool), *cmd] if sample else cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if not sample:
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        return None, seconds, proc.stdout, None
    m = PEAK_RE.search(proc.stdout + proc.stderr)
    if not m or m.group(3) != "0":
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    cpu = SAMPLER_RE.search(proc.stderr)
    return int(m.group(1)), seconds, proc.stdout, float(cpu.group(1)) if cpu else None


def run_once(engine: str, workers: int, inputs: list[str], out: Path, tokenizer: str, datatrove: str,
             keep_work: bool = False, sample: bool = False) -> dict:
    """One run: seconds, kept documents; with ``sample``, under peak-mem: peak MiB and the sampler's CPU seconds."""
    if engine == "datatrove":
        script = str(REPO_ROOT / "bench" / "datatrove_web.py")
        mib, wall, stdout, cpu = measured([datatrove, script, "--input", *inputs, "--output", str(out), "--workers", str(workers)], sample)
        return {"mib": mib, "sampler_cpu": cpu, "seconds": wall, "kept": json.loads(stdout.strip().splitlines()[-1])["docs_out"]}
    cmd = [SKYPILE, "run", "--output", str(out), "--tokenizer", tokenizer, "--no-progress", *(["--keep-work"] if keep_work else [])]
    for i in inputs:
        cmd += ["--input", i]
    res = {}
    if engine == "local":
        mib, wall, _, cpu = measured([*cmd, "--runner", "local", "--workers", str(workers)], sample)
        seconds = wall
    else:
        mib, _, stdout, cpu = measured([sys.executable, __file__, "--dask-job", str(workers), "--", *cmd], sample)
        seconds = float(JOB_RE.search(stdout).group(1))
        busy = BUSY_RE.search(stdout)
        res["busy"] = [float(x) for x in busy.group(1).split()] if busy else []
    stats = json.loads((out / "stats.json").read_text())
    return {**res, "mib": mib, "sampler_cpu": cpu, "seconds": seconds, "kept": stats["kept"], "stats": stats}


def facts_bytes(out: Path, stats: dict) -> list[tuple[str, int, float]]:
    """Per corpus stage: documents that reach it, and pickled facts bytes per such document."""
    work = out / "_work"
    rows = []
    for pdir in sorted((p for p in work.glob("p*") if p.name[1:].isdigit()), key=lambda p: int(p.name[1:])):
        facts = list(pdir.glob("*.facts.pkl"))
        if not facts:
            continue
        n = 0
        for f in facts:
            with open(f, "rb") as fh:
                while True:
                    try:
                        n += len(pickle.load(fh))
                    except EOFError:
                        break
        rows.append((pdir.name, sum(f.stat().st_size for f in facts), n))
    stages = [s for s in stats["stages"] if s in ("unique_ids", "exact_dedup", "segments", "near_dedup", "semantic_dedup", "buckets")]
    out_rows = []
    for (pname, size, n_facts), stage in zip(rows, stages):
        docs = stats["stages"][stage]["in"]
        out_rows.append((stage, docs, size / max(docs, 1), n_facts / max(docs, 1)))
    return out_rows


def uptime() -> str:
    return open("/proc/loadavg").read().split()[0]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dask-job", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2, help="timing rounds at 1x (the best is reported)")
    ap.add_argument("--rounds-4x", type=int, default=3, help="timing rounds at 4x (every run and the median are reported)")
    ap.add_argument("--out", default=str(REPO_ROOT / "bench" / "results" / "scale_out.md"))
    ap.add_argument("--tokenizer", default=default_tokenizer_path())
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    ap.add_argument("--datatrove-python", default=os.environ.get("DT_VENV", str(REPO_ROOT.parent / "dt-venv")) + "/bin/python")
    args, rest = ap.parse_known_args()
    if args.dask_job is not None:
        return dask_job(args.dask_job, rest[1:] if rest[:1] == ["--"] else rest)
    if not Path(args.tokenizer).exists():
        print("build the models first: skypile models build", file=sys.stderr)
        return 2
    engines = [e for e in args.engines if e != "datatrove" or Path(args.datatrove_python).exists()]
    configs = [(e, w) for e in engines for w in (1, 2)]
    results: dict[tuple[str, int, str], list[dict]] = {}
    memory: dict[tuple[str, int, str], dict] = {}
    loads: list[str] = []
    per_stage: dict = {}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        one, four, n = build_inputs(tmp, args.pages)
        rounds = [("1x", one)] * args.rounds + [("4x", four)] * args.rounds_4x + [("1x", one, "mem"), ("4x", four, "mem")]
        for r, (scale, inputs, *mem) in enumerate(rounds):
            sample = bool(mem)
            loads.append(f"round {r + 1} ({scale}{', memory' if sample else ''}): load {uptime()} at start")
            for engine, workers in configs:
                out = tmp / f"{engine}-{workers}-{scale}-{r}"
                keep = engine == "local" and workers == 1 and r == 0
                res = run_once(engine, workers, inputs, out, args.tokenizer, args.datatrove_python, keep_work=keep, sample=sample)
                res["load"] = uptime()
                if sample:
                    memory[(engine, workers, scale)] = res
                else:
                    results.setdefault((engine, workers, scale), []).append(res)
                print(f"{scale} {engine} {workers}{' (memory)' if sample else ''}: {res['seconds']:.1f} s, {res['mib']} MiB, "
                      f"kept {res['kept']}, busy {res.get('busy')}, sampler CPU {res['sampler_cpu']}, load {res['load']}", flush=True)
                if keep:
                    per_stage = {"stats": res["stats"], "facts": facts_bytes(out, res["stats"])}
                shutil.rmtree(out, ignore_errors=True)
            loads[-1] += f", {uptime()} at end"
    text = report(results, memory, per_stage, loads, n, args)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


def report(results: dict, memory: dict, per_stage: dict, loads: list[str], n: int, args: argparse.Namespace) -> str:
    names = {"local": "in process (`--runner local`)", "dask": "Beam on Dask (`--runner DaskRunner`)", "datatrove": "datatrove"}
    lines = [
        "# Scale-out: in process, Beam on Dask, datatrove",
        "",
        f"Generated by `python bench/scale_out.py --pages {args.pages} --rounds {args.rounds} --rounds-4x {args.rounds_4x}`.",
        "",
        f"Input: {n} real pages of ../shared/data as 4 WARC.gz files (1x) and those files copied 4 times (4x);",
        f"{os.cpu_count()} CPUs (load below). Job seconds from runs without a memory sampler: best of {args.rounds}",
        f"interleaved rounds at 1x, median of {args.rounds_4x} at 4x. Memory: peak PSS of the whole process tree (Dask: scheduler",
        "and workers included) in one more run per size under peak-mem, whose own CPU seconds are the sampler column.",
        "Busy: each Dask worker's seconds with a task computing over the job's task span (median of the 4x runs).",
        "",
        "| engine | workers | 1x s | 1x pages/s | scaling 1→2 | 4x s (median) | 4x pages/s | scaling 1→2 (4x) | busy per worker (4x) "
        "| 1x MiB | 4x MiB | 4x vs 1x MiB | sampler CPU s 1x / 4x | kept 1x / 4x |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for engine in ENGINES:
        rate1 = rate4 = None
        for workers in (1, 2):
            one, four = results.get((engine, workers, "1x")), results.get((engine, workers, "4x"))
            if not one or not four:
                continue
            best = min(one, key=lambda r: r["seconds"])
            rate = n / best["seconds"]
            scaling = f"{rate / rate1:.2f}x" if workers == 2 and rate1 else "—"
            rate1 = rate if workers == 1 else rate1
            med = statistics.median(r["seconds"] for r in four)
            four_rate = 4 * n / med
            scaling4 = f"{four_rate / rate4:.2f}x" if workers == 2 and rate4 else "—"
            rate4 = four_rate if workers == 1 else rate4
            busy = "—"
            if engine == "dask" and all(r.get("busy") for r in four):
                busy = " / ".join(f"{statistics.median(sorted(r['busy'])[i] for r in four):.0%}" for i in range(workers))
            m1, m4 = memory.get((engine, workers, "1x"), {}), memory.get((engine, workers, "4x"), {})
            mib1, mib4 = m1.get("mib"), m4.get("mib")
            growth = f"{100 * (mib4 - mib1) / mib1:+.0f}%" if mib1 and mib4 else "—"
            sampler = " / ".join(f"{m['sampler_cpu']:.1f}" if m.get("sampler_cpu") is not None else "—" for m in (m1, m4))
            lines.append(f"| {names[engine]} | {workers} | {best['seconds']:.1f} | {rate:.1f} | {scaling} | {med:.1f} | {four_rate:.1f} | "
                         f"{scaling4} | {busy} | {mib1 or '—'} | {mib4 or '—'} | {growth} | {sampler} | {best['kept']} / {four[0]['kept']} |")
    lines += ["", "Every timing run, in order (seconds, busy per worker for Dask, load average when it ended):", ""]
    for (engine, workers, scale), runs in results.items():
        lines.append(f"- {scale} {engine} {workers}: " + "; ".join(
            f"{r['seconds']:.1f} s" + (f" busy {'/'.join(f'{b:.0%}' for b in r['busy'])}" if r.get("busy") else "") + f" load {r['load']}"
            for r in runs))
    lines += ["", "Memory runs (under peak-mem: seconds, MiB, the sampler's own CPU seconds, load):", ""]
    for (engine, workers, scale), r in memory.items():
        lines.append(f"- {scale} {engine} {workers}: {r['seconds']:.1f} s {r['mib']} MiB sampler {r['sampler_cpu']} s load {r['load']}")
    lines += ["", *[f"- {x}" for x in loads]]
    if per_stage:
        stats = per_stage["stats"]
        lines += ["", "## Per stage, one core (1x, in process, 1 worker)", "",
                  "| stage | in | s | docs/s per core |", "|---|---|---|---|"]
        for stage, s in stats["stages"].items():
            if s.get("seconds"):
                lines.append(f"| {stage} | {s['in']} | {s['seconds']:.2f} | {s['in'] / s['seconds']:.0f} |")
        lines += ["", "## What each corpus stage shuffles", "",
                  "Facts per document that reaches the stage, pickled (what enters its first shuffle):", "",
                  "| corpus stage | documents | facts bytes / document | facts / document |", "|---|---|---|---|"]
        for stage, docs, bpd, fpd in per_stage["facts"]:
            lines.append(f"| {stage} | {docs} | {bpd:.0f} | {fpd:.2f} |")
    lines += ["", "Wall-clock ratios on a shared machine are noisy: re-run on a quiet one before quoting them.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
