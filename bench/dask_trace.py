"""One Beam-on-Dask web job traced per process: peak memory, CPU, and how busy each worker was.

    python bench/dask_trace.py [--pages 625] [--copies 1 4] [--workers 2] [--out bench/results/dask_trace.md]

For each input size (``--copies`` of the first ``--pages`` shared pages as 4 WARC.gz
files, ``bench/pipeline_memory.py``'s inputs) it starts a local cluster
(``--nthreads 1`` workers, as ``bench/scale_out.py``), runs ``skypile run --runner
DaskRunner`` against it, and reports per role (the client, i.e. ``skypile run``;
the scheduler; each worker's tree: nanny, worker process, extraction helper):

* peak PSS (sampled every 0.5 s from ``/proc/PID/smaps_rollup``, in this process) and
  the PSS of each role at the moment the whole tree peaked;
* CPU seconds (user + system, psutil before/after; the client's from ``RUSAGE_CHILDREN``);
* each worker's busy fraction: the seconds its tasks computed (Dask's task stream,
  ``distributed.get_task_stream``: every task's start and stop on its worker) over the
  job's span (first task's start to last task's stop), and the job's wall time split
  into: before the first task (the client's start-up and graph), the tasks' span, after
  the last task (the client's report).

What grows from 1x to 4x is what holds data in proportion to the input; CPU that stays the
same is the fixed per-job cost; the idle time is where the cores wait.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dask_cpu import tree_cpu  # noqa: E402
from pipeline_memory import build_inputs  # noqa: E402

from skypile.config import default_tokenizer_path  # noqa: E402
from skypile.pipelines.dask_cluster import LocalDaskCluster  # noqa: E402

SKYPILE = str(Path(sys.executable).with_name("skypile"))


def pss(pid: int) -> int:
    """Bytes of proportional set size of one process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_pss(pid: int) -> tuple[int, int]:
    """Bytes of PSS of a process and its descendants, and how many processes that is."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    return sum(pss(p.pid) for p in procs), len(procs)


class Sampler(threading.Thread):
    """Peak PSS per role and the roles' PSS when their sum peaked; its own CPU cost in ``cpu_s``."""

    def __init__(self, roles: dict[str, int], every_s: float = 0.5):
        super().__init__(daemon=True)
        self.roles, self.every_s = roles, every_s
        self.peak: dict[str, int] = defaultdict(int)
        self.procs: dict[str, int] = defaultdict(int)  # most processes seen at once in each role's tree
        self.at_total_peak: dict[str, int] = {}
        self.total_peak = 0
        self.cpu_s = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.thread_time()
        while not self._halt.is_set():
            now = {}
            for role, pid in list(self.roles.items()):
                now[role], n = tree_pss(pid)
                self.peak[role] = max(self.peak[role], now[role])
                self.procs[role] = max(self.procs[role], n)
            if sum(now.values()) > self.total_peak:
                self.total_peak, self.at_total_peak = sum(now.values()), now
            self._halt.wait(self.every_s)
        self.cpu_s = time.thread_time() - t0

    def stop(self) -> None:
        self._halt.set()
        self.join()


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of the intervals."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def busy(stream: list[dict], t_start: float, t_end: float) -> dict:
    """Per worker: seconds with at least one task computing, as a fraction of the tasks' span; phases of the wall time.

    A worker with ``--nthreads 1`` runs one task at a time unless a task secedes (a nested
    computation from inside a task: Beam's side inputs on Dask); the union of the compute
    intervals counts such overlaps once, and ``most at once`` shows them.
    """
    per: dict[str, list] = defaultdict(list)
    by_prefix: dict[str, float] = defaultdict(float)
    for task in stream:
        key = task["key"][0] if isinstance(task["key"], tuple) else task["key"]
        for ss in task["startstops"]:
            if ss["action"] == "compute":
                per[task.get("worker", "?")].append((ss["start"], ss["stop"]))
                by_prefix[str(key).rsplit("-", 1)[0][:60]] += ss["stop"] - ss["start"]
    first = min((a for iv in per.values() for a, _ in iv), default=t_start)
    last = max((b for iv in per.values() for _, b in iv), default=t_end)
    span = max(last - first, 1e-9)
    workers = {}
    for w, iv in sorted(per.items()):
        events = sorted([(a, 1) for a, _ in iv] + [(b, -1) for _, b in iv])
        now = most = 0
        for _, step in events:
            now += step
            most = max(most, now)
        workers[w] = (union_seconds(iv), union_seconds(iv) / span, most)
    return {"workers": workers, "span": span, "tasks": len(stream), "before": first - t_start, "after": t_end - last,
            "top": sorted(by_prefix.items(), key=lambda kv: -kv[1])[:8]}


def traced_job(workers: int, inputs: list[str], out: Path, extra: list[str]) -> dict:
    from distributed import Client, get_task_stream

    with LocalDaskCluster(workers=workers, threads=1) as cluster, Client(cluster.address) as client:
        roles = {}
        for pid in cluster.pids():
            cmd = psutil.Process(pid).cmdline()
            roles["scheduler" if "scheduler" in cmd else cmd[cmd.index("--name") + 1]] = pid
        before = {role: tree_cpu(pid) for role, pid in roles.items()}
        cmd = [SKYPILE, "run", "--output", str(out), "--overwrite", "--tokenizer", default_tokenizer_path(),
               "--no-progress", "--runner", "DaskRunner", f"--dask_client_address={cluster.address}", *extra]
        for path in inputs:
            cmd += ["--input", path]
        sampler = Sampler(dict(roles))
        sampler.start()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with get_task_stream(client=client) as ts:
            t0 = time.time()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            sampler.roles["client"] = proc.pid
            err = proc.communicate()[1]
            t1 = time.time()
        sampler.stop()
        if os.environ.get("DASK_TRACE_DUMP"):  # the raw task stream, for a closer look
            with open(os.environ["DASK_TRACE_DUMP"] + f".{len(inputs)}.pkl", "wb") as f:
                pickle.dump(ts.data, f)
        if proc.returncode:
            raise RuntimeError(err.decode()[-3000:])
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = {role: tree_cpu(pid) - before[role] for role, pid in roles.items()}
    cpu["client"] = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return {"wall": t1 - t0, "cpu": cpu, "peak": dict(sampler.peak), "procs": dict(sampler.procs), "at_peak": sampler.at_total_peak,
            "total_peak": sampler.total_peak, "sampler_cpu": sampler.cpu_s, "busy": busy(ts.data, t0, t1)}


def report(runs: list[tuple[str, dict]], args: argparse.Namespace) -> list[str]:
    mib = 2**20
    roles = ["client", "scheduler", *sorted(r for r in runs[0][1]["cpu"] if r.startswith("worker"))]
    lines = [f"Generated by `python bench/dask_trace.py --pages {args.pages} --copies {' '.join(map(str, args.copies))} "
             f"--workers {args.workers}{' ' + ' '.join(args.extra) if args.extra else ''}`.", "",
             "| input | role | peak MiB | MiB at the tree's peak | processes (most at once) | CPU s |", "|---|---|---|---|---|---|"]
    for label, r in runs:
        for role in roles:
            lines.append(f"| {label} | {role} | {r['peak'].get(role, 0) / mib:.0f} | {r['at_peak'].get(role, 0) / mib:.0f} | "
                         f"{r['procs'].get(role, 0)} | {r['cpu'].get(role, 0):.1f} |")
        lines.append(f"| {label} | **tree** | **{r['total_peak'] / mib:.0f}** | | | **{sum(r['cpu'].values()):.1f}** |")
    lines += ["", "| input | wall s | before first task s | tasks' span s | after last task s | tasks "
              "| per worker: busy s (fraction of span), most tasks at once | sampler CPU s |",
              "|---|---|---|---|---|---|---|---|"]
    for label, r in runs:
        b = r["busy"]
        workers = "; ".join(f"{s:.1f} ({f:.0%}), {most}" for s, f, most in b["workers"].values())
        lines.append(f"| {label} | {r['wall']:.1f} | {b['before']:.1f} | {b['span']:.1f} | {b['after']:.1f} | {b['tasks']} | "
                     f"{workers} | {r['sampler_cpu']:.2f} |")
    lines += ["", "Task seconds by key prefix (largest first):", ""]
    for label, r in runs:
        lines.append(f"- {label}: " + "; ".join(f"{k} {s:.1f}" for k, s in r["busy"]["top"]))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=625)
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 4], choices=(1, 4))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="append the tables to this markdown file")
    ap.add_argument("extra", nargs="*", help="after --: more `skypile run` options")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        one, four, n = build_inputs(Path(tmp), args.pages)
        runs = []
        for copies in args.copies:
            res = traced_job(args.workers, four if copies == 4 else one, Path(tmp) / "out", args.extra)
            print(copies, res, file=sys.stderr, flush=True)
            runs.append((f"{copies}x ({n * copies} pages)", res))
    lines = report(runs, args)
    print("\n".join(lines))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
