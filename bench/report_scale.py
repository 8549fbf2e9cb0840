"""The run page at scale: what the page costs a run, and what building it costs, as the input grows.

    python bench/report_scale.py [--sizes 4000,16000] [--repeats 2] [--out FILE]

Input: ``bench/dedup_memory.py``'s corpus (paragraphs of real English and Chinese sentences
from ../shared/data drawn at random, plus 10% planted copies), run through ``skypile dedup``
(exact, segments, MinHash: every dedup section of the page has work) in process, one worker.

1. **Recording** (the summaries each task keeps for the page: volumes, score histograms,
   samples, examples): the same run with the recording switched off (its methods replaced by
   no-ops) and on, interleaved, ``--repeats`` times each; CPU time of this process (the run is
   in process), so the ratio on/off is the overhead.  That ratio is within the noise of a run,
   so the cost of one stage's recording on one document (chars and tokens in and out, the
   sample candidate, two scores binned) is also timed alone, over the corpus's documents.
2. **Building** the page from each finished run (``skypile report``), in a fresh interpreter,
   the sizes' builds interleaved, ``--builds`` times each: CPU time of the build (imports
   included: matplotlib's is most of it), peak RSS, and the sizes of the page and of
   ``stats.json``.  The page reads only
   stats, manifest and report footers, so these should not grow with the input (the manifest
   grows with the shards: here one per 64 MB).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_memory import write_corpus  # noqa: E402

from skypile.cli import main  # noqa: E402
from skypile.report.sketches import RunSketch  # noqa: E402
from skypile.stage import StageStats  # noqa: E402

# peak RSS from VmHWM (this process image's own high-water mark; getrusage's ru_maxrss would carry the
# forking parent's over the exec)
BUILD = """
import re, sys, time
t0 = time.perf_counter()
from skypile.report.page import write_report_page
path = write_report_page(sys.argv[1], sys.argv[2])
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(time.perf_counter() - t0, hwm)
"""


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@contextlib.contextmanager
def recording(on: bool):
    """The page's recording as is, or every recording method a no-op (and no page written at the end)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch("skypile.executor.job.write_page", lambda root: None))
        if not on:
            for name in ("measure", "write", "sample_kept", "sample_dropped", "add_examples"):
                stack.enter_context(mock.patch.object(RunSketch, name, lambda *a, **k: None))
            stack.enter_context(mock.patch.object(StageStats, "add_volume", lambda *a, **k: None))
        yield


def run_once(src: Path, out: Path, on: bool) -> float:
    with recording(on):
        t0 = cpu()
        with contextlib.redirect_stdout(io.StringIO()):
            rc = main(["dedup", "--input", str(src), "--output", str(out), "--overwrite", "--no-progress", "--workers", "1"])
        spent = cpu() - t0
    assert rc == 0
    return spent


def recording_us(src: Path, stages: int = 12) -> float:
    """CPU microseconds of what the task records per document and stage (what _Task._step adds)."""
    from skypile.document import Document

    docs = []
    for i, line in enumerate(src.read_text(encoding="utf-8").splitlines()):
        d = Document(id=json.loads(line)["id"], text=json.loads(line)["text"], source="bench", lang="en")
        d.metadata.perplexity, d.metadata.ref_prob = 100.0 + i % 900, (i % 100) / 100
        docs.append(d)
    stats = StageStats()
    names = [f"stage{s}" for s in range(stages)]
    t0 = cpu()
    for d in docs:
        for name in names:
            stats.add_volume(name, "in", d)
            stats.add_volume(name, "kept", d)
            stats.sketch.sample_kept(name, d)
            stats.sketch.measure(name, ("perplexity", "ref_prob"), d)
    return (cpu() - t0) / (len(docs) * stages) * 1e6


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def build_page(run: Path) -> tuple[float, float, int]:
    """One build in a fresh interpreter: (CPU s, wall s, peak RSS kB)."""
    t0 = children_cpu()
    out = subprocess.run([sys.executable, "-c", BUILD, str(run), str(run / "bench-report.html")], check=True,
                         capture_output=True, text=True)
    wall, kb = out.stdout.split()
    return children_cpu() - t0, float(wall), int(kb)


def main_() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="4000,16000")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--builds", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="skypile-report-bench-") as tmp:
        for n in [int(x) for x in args.sizes.split(",")]:
            src = Path(tmp) / f"docs-{n}.jsonl"
            write_corpus(src, n)
            off, on = [], []
            for i in range(args.repeats):  # interleaved: off, on, off, on
                off.append(run_once(src, Path(tmp) / f"off-{n}", on=False))
                on.append(run_once(src, Path(tmp) / f"on-{n}", on=True))
            stats = json.loads((Path(tmp) / f"on-{n}" / "stats.json").read_text())
            row = {"docs": n, "recording_us_per_doc_stage": recording_us(src), "records_in": stats["records_in"], "run_cpu_off_s": statistics.median(off),
                   "run_cpu_on_s": statistics.median(on), "overhead": statistics.median(on) / statistics.median(off)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        builds: dict[int, list] = {r["docs"]: [] for r in rows}
        for _ in range(args.builds):  # interleaved: every size once, then again
            for r in rows:
                builds[r["docs"]].append(build_page(Path(tmp) / f"on-{r['docs']}"))
        for r in rows:
            run = Path(tmp) / f"on-{r['docs']}"
            b = builds[r["docs"]]
            r.update(build_cpu_s=statistics.median(x[0] for x in b), build_wall_s=statistics.median(x[1] for x in b),
                     peak_rss_mib=max(x[2] for x in b) / 1024, page_kib=(run / "bench-report.html").stat().st_size / 1024,
                     stats_kib=(run / "stats.json").stat().st_size / 1024)
            print(json.dumps(r), flush=True)
    base = rows[0]
    lines = ["| documents | run CPU s, recording off | on | on/off | page build CPU s | wall s | build peak RSS MiB | page KiB | stats.json KiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['docs']:,} | {r['run_cpu_off_s']:.1f} | {r['run_cpu_on_s']:.1f} | {r['overhead']:.3f} | "
                     f"{r['build_cpu_s']:.2f} | {r['build_wall_s']:.2f} | {r['peak_rss_mib']:.0f} | {r['page_kib']:.0f} | "
                     f"{r['stats_kib']:.0f} |")
    last = rows[-1]
    lines.append("")
    lines.append(f"Recording alone: {statistics.median(r['recording_us_per_doc_stage'] for r in rows):.1f} µs of CPU per document "
                 "and stage (the web recipe runs 12 stages on a document that extraction alone spends ~30-100 ms on).")
    lines.append(f"{last['docs'] // base['docs']}x the input: page build CPU x{last['build_cpu_s'] / base['build_cpu_s']:.2f}, "
                 f"peak RSS x{last['peak_rss_mib'] / base['peak_rss_mib']:.2f}, page size x{last['page_kib'] / base['page_kib']:.2f}, "
                 f"stats.json x{last['stats_kib'] / base['stats_kib']:.2f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main_()
