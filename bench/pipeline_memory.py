"""Peak memory of whole runs (every process of the run, Beam workers included) on 1x and 4x the input.

    python bench/pipeline_memory.py [--out bench/results/pipeline_memory.md] [--datatrove-python DT_VENV/bin/python]  (DT_VENV default: ../dt-venv, made by bench/datatrove_setup.sh)

Measured with ``../shared/tools/peak-mem`` (peak PSS summed over the process
tree, sampled every 0.2 s):

* ``skypile run`` on the ~625 real pages of ../shared/data packed as 4 WARC
  files, and on 4x that (the same 4 files copied 4 times: 2,500 records, of
  which exact dedup keeps a quarter), with the DirectRunner (1 and 2 workers)
  and the in-process executor;
* ``skypile export`` of a ~200 MB JSONL built from the shared Wikipedia and web
  text;
* datatrove's comparable web pipeline (bench/datatrove_web.py) on the same 1x
  and 4x WARCs, when its venv exists (bench/datatrove_setup.sh).

Target (issue: corpus-wide stages): 1x → 4x grows less than 25%, and stays
under 1 GiB with 2 workers; export of 200 MB stays under 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from skypile.config import default_tokenizer_path
from skypile.data_paths import REPO_ROOT, shared_data_dir, shared_path
from skypile.readers.warc_builder import build_warc_from_shared

sys.path.insert(0, str(Path(__file__).resolve().parent))
from warc_split import split_warc  # noqa: E402

PEAK_RE = re.compile(r"peak-mem: (\d+) MiB peak PSS of the process tree, ([\d.]+) s, exit (-?\d+)")
SKYPILE = str(Path(sys.executable).with_name("skypile"))


def peak(cmd: list[str]) -> tuple[int, float]:
    tool = shared_data_dir().parent / "tools" / "peak-mem"
    proc = subprocess.run([sys.executable, str(tool), *cmd], capture_output=True, text=True)
    m = PEAK_RE.search(proc.stdout + proc.stderr)
    if not m or m.group(3) != "0":
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return int(m.group(1)), float(m.group(2))


def build_inputs(tmp: Path, pages: int | None = None) -> tuple[list[str], list[str], int]:
    """The shared real pages (all, or the first ``pages``) as 4 WARC files (1x), and those copied 4 times (4x)."""
    whole = tmp / "pages.warc.gz"
    n = build_warc_from_shared(str(whole), limit=pages)
    one = split_warc(str(whole), str(tmp / "x1"), 4)
    four = []
    for copy in range(4):
        for path in one:
            dst = tmp / "x4" / f"copy{copy}-{Path(path).name}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dst)
            four.append(str(dst))
    return one, four, n


def build_jsonl(path: Path, target_bytes: int) -> int:
    """~``target_bytes`` of JSONL from the shared en/zh Wikipedia and web text, repeated with fresh ids."""
    texts: list[str] = []
    raw = shared_path("wiki", "en", "wikitext-2-raw-test.txt").read_text(encoding="utf-8")
    texts += [t for t in re.split(r"\n = [^=\n]+ =\n", raw) if len(t) > 500]
    zh = shared_path("wiki", "zh", "zhwiki-extract-AA-wiki_00.txt").read_text(encoding="utf-8")
    texts += [t for t in re.findall(r"<doc [^>]*>(.*?)</doc>", zh, flags=re.S) if len(t) > 300]
    for f in sorted(shared_path("web", "en", "dolma").glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in f.read_text().splitlines() if line.strip()]
    written = n = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < target_bytes:
            for t in texts:
                line = json.dumps({"id": f"doc-{n}", "text": f"[{n}] {t}"}, ensure_ascii=False) + "\n"
                out.write(line)
                written += len(line.encode("utf-8"))
                n += 1
                if written >= target_bytes:
                    break
    return n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO_ROOT / "bench" / "results" / "pipeline_memory.md"))
    ap.add_argument("--tokenizer", default=default_tokenizer_path())
    ap.add_argument("--datatrove-python", default=os.environ.get("DT_VENV", str(REPO_ROOT.parent / "dt-venv")) + "/bin/python")
    ap.add_argument("--export-mb", type=int, default=200)
    args = ap.parse_args()
    if not Path(args.tokenizer).exists():
        print("build the tokenizer first: skypile models build", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        one, four, n = build_inputs(tmp)
        runs = [("DirectRunner, 2 workers", ["--runner", "DirectRunner", "--workers", "2"]), ("DirectRunner, 1 worker", ["--runner", "DirectRunner", "--workers", "1"]),
                ("in-process (--runner local), 2 workers", ["--runner", "local", "--workers", "2"]),
                ("in-process (--runner local), 1 worker", ["--runner", "local", "--workers", "1"])]
        for label, extra in runs:
            result = []
            for scale, inputs in (("1x", one), ("4x", four)):
                out = tmp / f"out-{len(rows)}-{scale}"
                cmd = [SKYPILE, "run", "--output", str(out), "--tokenizer", args.tokenizer, "--no-progress", *extra]
                for i in inputs:
                    cmd += ["--input", i]
                mib, secs = peak(cmd)
                stats = json.loads((out / "stats.json").read_text())
                result.append((mib, secs, stats["records_in"], stats["kept"]))
                shutil.rmtree(out)
            (m1, s1, r1, k1), (m4, s4, r4, k4) = result
            rows.append(f"| skypile run, {label} | {r1} → {k1} | {m1} | {r4} → {k4} | {m4} | {100 * (m4 - m1) / m1:+.0f}% |")
            print(rows[-1], flush=True)
        dt = Path(args.datatrove_python)
        if dt.exists():
            script = str(REPO_ROOT / "bench" / "datatrove_web.py")
            for workers in (2, 1):
                result = []
                for scale, inputs in (("1x", one), ("4x", four)):
                    out = tmp / f"dt-{workers}-{scale}"
                    mib, secs = peak([str(dt), script, "--input", *inputs, "--output", str(out), "--workers", str(workers)])
                    shutil.rmtree(out)
                    result.append(mib)
                rows.append(f"| datatrove (reader → trafilatura → langid → length → Parquet), {workers} worker(s) | {n} | {result[0]} | {4 * n} | {result[1]} | {100 * (result[1] - result[0]) / result[0]:+.0f}% |")
                print(rows[-1], flush=True)
        jsonl = tmp / "export.jsonl"
        docs = build_jsonl(jsonl, args.export_mb * 10**6)
        size_mb = jsonl.stat().st_size / 1e6
        mib, secs = peak([SKYPILE, "export", "--input", str(jsonl), "--output", str(tmp / "export"), "--tokenizer", args.tokenizer, "--no-progress"])
        export_row = f"| skypile export, {size_mb:.0f} MB JSONL ({docs} docs) | {mib} MiB | {secs:.0f} s |"
        print(export_row, flush=True)
    report = [
        "# Peak memory of whole runs",
        "",
        f"Peak PSS of the whole process tree (../shared/tools/peak-mem), {os.cpu_count()} CPUs. Input: {n} real pages of",
        "../shared/data as 4 WARC.gz files (1x), and those 4 files copied 4 times (4x; exact dedup keeps a quarter).",
        "",
        "| run | 1x records → kept | 1x MiB | 4x records → kept | 4x MiB | 4x vs 1x |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "| export | peak | wall |",
        "|---|---|---|",
        export_row,
        "",
        "Targets: 4x within +25% of 1x and under 1 GiB with 2 workers; export of 200 MB under 1 GiB.",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(report))
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
