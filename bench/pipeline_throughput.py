"""Throughput of the web job on ~600 real pages, with baselines side by side.

    python bench/pipeline_throughput.py [--out bench/results/pipeline_throughput.md] \
        [--datatrove-python DT_VENV/bin/python]  (DT_VENV default: ../dt-venv, made by bench/datatrove_setup.sh) [--repeat 2]

* read: ``skypile.readers.warc.read_warc`` vs warcio and bare FastWARC on the same WARC.gz;
* per-stage in-process rates (extract, langid, lang_filter, length, tokenize);
* the whole job on the same 4 WARC files (the ~625 pages split round-robin), as pages/s of
  wall time of the whole command (interpreter start-up included, for every row alike):
  the in-process executor, Beam's DirectRunner with 1 and 2 workers, and datatrove's
  comparable pipeline (bench/datatrove_web.py, in its own venv made by
  bench/datatrove_setup.sh) with 1 and 2 workers.  Ratios: Beam vs in-process, and
  SkyPile vs datatrove at the same number of workers.  Best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skypile.config import default_tokenizer_path
from skypile.data_paths import REPO_ROOT
from skypile.document import Dropped
from skypile.extractors.html import HtmlExtractor
from skypile.filters.language import LanguageFilter, LanguageId
from skypile.filters.length import LengthFilter
from skypile.readers.warc import read_warc
from skypile.readers.warc_builder import build_warc_from_shared
from skypile.stage import StageStats, run_stage
from skypile.tokenizer.spm import Tokenize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from warc_split import split_warc  # noqa: E402

SKYPILE = str(Path(sys.executable).with_name("skypile"))


def _best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_read(warc: str) -> list[str]:
    from warcio.archiveiterator import ArchiveIterator

    def ours():
        return [r for r in read_warc(warc) if not isinstance(r, Dropped)]

    def warcio_baseline():
        out = []
        with open(warc, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type == "response":
                    out.append(rec.content_stream().read())
        return out

    def fastwarc_bare():
        from fastwarc.warc import ArchiveIterator as FastIterator, WarcRecordType

        with open(warc, "rb") as f:
            return [r.reader.read() for r in FastIterator(f, record_types=WarcRecordType.response, parse_http=True)]

    t_ours, recs = _best_of(ours)
    t_base, base = _best_of(warcio_baseline)
    t_fast, fast = _best_of(fastwarc_bare)
    mb = sum(len(r.payload) for r in recs) / 1e6
    return [
        "| reader | records | s | MB/s | ratio vs warcio |",
        "|---|---|---|---|---|",
        f"| skypile read_warc (FastWARC + own gzip member handling) | {len(recs)} | {t_ours:.3f} | {mb / t_ours:.1f} | {t_base / t_ours:.2f}x |",
        f"| FastWARC alone (silent on truncation) | {len(fast)} | {t_fast:.3f} | {mb / t_fast:.1f} | {t_base / t_fast:.2f}x |",
        f"| warcio ArchiveIterator | {len(base)} | {t_base:.3f} | {mb / t_base:.1f} | 1.00x |",
    ]


def bench_stages(warc: str, tokenizer: str) -> tuple[list[str], float]:
    records = [r for r in read_warc(warc) if not isinstance(r, Dropped)]
    stages = [HtmlExtractor(), LanguageId(), LanguageFilter(), LengthFilter(), Tokenize(tokenizer)]
    lines = ["| stage | in | kept | s | docs/s | input MB/s |", "|---|---|---|---|---|---|"]
    items: list = records
    total = 0.0
    for stage in stages:
        mb = sum(len(getattr(x, "payload", None) or x.text.encode()) for x in items) / 1e6
        stats = StageStats()
        t0 = time.perf_counter()
        out = list(run_stage(stage, items, stats))
        dt = time.perf_counter() - t0
        total += dt
        lines.append(f"| {stage.name} | {len(items)} | {len(out)} | {dt:.2f} | {len(items) / dt:.0f} | {mb / dt:.2f} |")
        items = out
    return lines, total


def _timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{proc.stderr[-3000:]}")
    return dt, proc.stdout


def bench_jobs(files: list[str], pages: int, tokenizer: str, datatrove: str, repeat: int) -> list[str]:
    runs: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ours = [("in-process (--runner local), 1 worker", ["--runner", "local", "--workers", "1"]),
                ("in-process (--runner local), 2 workers", ["--runner", "local", "--workers", "2"]),
                ("Beam DirectRunner, 1 worker", ["--runner", "DirectRunner", "--workers", "1"]),
                ("Beam DirectRunner, 2 workers", ["--runner", "DirectRunner", "--workers", "2"])]
        for label, extra in ours:
            best, kept = float("inf"), 0
            for r in range(repeat):
                out = os.path.join(tmp, f"out-{len(runs)}-{r}")
                cmd = [SKYPILE, "run", "--output", out, "--tokenizer", tokenizer, "--no-progress", *extra]
                for f in files:
                    cmd += ["--input", f]
                dt, _ = _timed(cmd)
                best = min(best, dt)
                kept = json.loads(Path(out, "stats.json").read_text())["kept"]
            runs[label] = (best, kept)
            print(f"{label}: {best:.1f} s, kept {kept}", flush=True)
        if datatrove and Path(datatrove).exists():
            script = str(Path(__file__).resolve().parent / "datatrove_web.py")
            for workers in (1, 2):
                best, kept = float("inf"), 0
                for r in range(repeat):
                    out = os.path.join(tmp, f"dt-{workers}-{r}")
                    dt, stdout = _timed([datatrove, script, "--input", *files, "--output", out, "--workers", str(workers)])
                    best = min(best, dt)
                    kept = json.loads(stdout.strip().splitlines()[-1])["docs_out"]
                runs[f"datatrove, {workers} worker{'s' if workers > 1 else ''}"] = (best, kept)
                print(f"datatrove {workers}: {best:.1f} s, kept {kept}", flush=True)
    lines = ["| run | kept | s | pages/s | kept docs/s | vs in-process, same workers | vs datatrove, same workers |",
             "|---|---|---|---|---|---|---|"]
    for label, (dt, kept) in runs.items():
        workers = "2 workers" if "2 worker" in label else "1 worker"
        local, dtrove = runs[f"in-process (--runner local), {workers}"], runs.get(f"datatrove, {workers}")
        vs_dt = f"{dtrove[0] / dt:.2f}x" if dtrove and not label.startswith("datatrove") else "—"
        lines.append(f"| {label} | {kept} | {dt:.1f} | {pages / dt:.1f} | {kept / dt:.1f} | {local[0] / dt:.2f}x | {vs_dt} |")
    return lines


NOTES = """## Notes
- Extraction (trafilatura) is the bottleneck, at ~30-40 pages/s per core; the reader runs at
  ~2,400 records/s.
- Every job row is the wall time of the whole command, start-up included; datatrove's own
  script also reports its executor time alone (1-2 s less).
- datatrove's pipeline does less: no dedup, no tokenizer, trafilatura 1.11 (it pins <1.12) with
  a 1 s per-page timeout; it also keeps fewer pages (its reader rejects pages that are not
  cleanly decodable, which SkyPile's charset handling keeps).
- Beam's DirectRunner starts its worker processes per run: with 2 workers the first tasks end
  ~3 s later than their own work takes (imports and model loads in fresh processes); the local
  executor forks its workers in milliseconds. With 1 worker the DirectRunner runs in memory
  (no worker process), ~2 s behind the local executor (Beam's import and pipeline set-up).
- The gap to datatrove is work it does not do: SkyPile extracts 625 pages where datatrove's
  reader keeps 567 (+10%), and adds line cleanup (~1.6 s here), charset detection (~0.9 s),
  tokenization (~1.5 s) and the two corpus passes (unique ids, exact dedup; ~0.5 s). The
  trafilatura call itself runs at the same speed in both (13.4-14.1 s over these pages,
  trafilatura 2.3.1 and 1.11 alike)."""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/pipeline_throughput.md")
    ap.add_argument("--tokenizer", default=default_tokenizer_path())
    ap.add_argument("--datatrove-python", default=os.environ.get("DT_VENV", str(REPO_ROOT.parent / "dt-venv")) + "/bin/python")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    if not Path(args.tokenizer).exists():
        print("build the tokenizer first: skypile models build", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        warc = os.path.join(tmp, "shared-pages.warc.gz")
        n = build_warc_from_shared(warc)
        files = split_warc(warc, os.path.join(tmp, "split"), 4)
        size = os.path.getsize(warc) / 1e6
        report = [
            "# Web job throughput",
            "",
            f"Input: {n} real pages from ../shared/data/html-* packed as one WARC.gz ({size:.1f} MB), and the",
            f"same records split round-robin into 4 WARC.gz files for the whole-job rows; machine: {os.cpu_count()} CPUs.",
            "",
            "## Reading",
            *bench_read(warc),
            "",
            "## Stages in process (one core)",
        ]
        stage_lines, _ = bench_stages(warc, args.tokenizer)
        report += [*stage_lines, "", f"## Whole job (best of {args.repeat})",
                   *bench_jobs(files, n, args.tokenizer, args.datatrove_python, args.repeat), "", NOTES, ""]
    text = "\n".join(report)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
