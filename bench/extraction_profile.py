"""Where an extracted page's milliseconds go, how often a page is parsed, and what the helper process costs.

    python bench/extraction_profile.py [--rounds 2] [--out bench/results/extraction_profile.md]

Pages: the English article sets (readability, trafilatura-eval) and CleanEval-en,
and the Chinese sets (cleaneval-zh, all 62 GNE pages), as
``bench/extraction_quality.py`` loads them.

1. **Parses per page**: :class:`~skypile.extractors.html.HtmlExtractor` (in
   process) with counters on every parser and tree copy it reaches: our lxml
   parse (``parse_html``), lxml parses inside trafilatura (a string handed to
   it), lxml tree copies inside trafilatura (``copy``/``deepcopy`` of a tree or
   element), resiliparse's lexbor parses, and trafilatura passes.
2. **CPU ms per page by component**: the same run with every call the stage
   makes timed (exclusive CPU time: a component nested in another is
   subtracted from it), beside trafilatura's defaults and ``fast`` on the same
   pages (bytes in).  ``rest`` is the stage's own glue.
3. **The helper process**: each page through the default stage (its time
   bound in a helper process) and through the same stage in process
   (``timeout_s=0``), interleaved; CPU of this process plus the helper's
   (``/proc``), and wall time.  Pickling alone (record there, result back) is
   timed apart, and so is the helper's start.

CPU time (``time.process_time``) is the measure: the machine is shared, wall
time is noisy.  Each figure is the median over ``--rounds`` passes (spread
beside it).
"""

from __future__ import annotations

import argparse
import copy as copy_module
import os
import pickle
import platform
import statistics
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import trafilatura

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extraction_quality import cpu_now, load_sets  # noqa: E402

import skypile.extractors.page as page_mod  # noqa: E402
from skypile.evaluation.extraction import GoldPage, load_gne_pages  # noqa: E402
from skypile.extractors.html import HtmlExtractor  # noqa: E402
from skypile.io import atomic_write_text  # noqa: E402


def page_groups() -> dict[str, list[GoldPage]]:
    sets = {s.name: s.pages for s in load_sets()}
    return {
        "English articles (readability + trafilatura-eval)": sets["readability"] + sets["trafilatura-eval"],
        "CleanEval-en": sets["CleanEval-en"],
        "Chinese (cleaneval-zh + GNE)": sets["cleaneval-zh"] + load_gne_pages(),
    }


class Clock:
    """Exclusive CPU time per component: entering a nested component pauses the enclosing one."""

    def __init__(self) -> None:
        self.seconds: Counter = Counter()
        self.calls: Counter = Counter()
        self._stack: list[str] = []
        self._last = 0.0
        self.active = False  # counts and times only while the stage runs (not the baselines beside it)

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            if not self.active:
                return fn(*args, **kwargs)
            now = time.process_time()
            if self._stack:
                self.seconds[self._stack[-1]] += now - self._last
            self._stack.append(name)
            self._last = now
            self.calls[name] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                now = time.process_time()
                self.seconds[self._stack.pop()] += now - self._last
                self._last = now

        return timed


class _Proxy:
    """``obj`` with some methods replaced (for frozen dataclasses and modules)."""

    def __init__(self, obj, **methods):
        self._obj, self._methods = obj, methods

    def __getattr__(self, name):
        return self._methods.get(name) or getattr(self._obj, name)

    def __call__(self, *a, **k):
        return self._methods["__call__"](*a, **k)


@contextmanager
def instrumented(clock: Clock, ex: HtmlExtractor) -> Iterator[None]:
    """Time the stage's calls; count parses and tree copies (``clock.calls``)."""
    import resiliparse.parse.html as lexbor
    import trafilatura.core as tcore
    import trafilatura.main_extractor as tmain
    import trafilatura.utils as tutils

    saved_page = {k: getattr(page_mod, k) for k in ("decode_html", "parse_html", "page_lang", "main_content_text")}
    saved_traf = (trafilatura.extract, trafilatura.bare_extraction)
    saved_lexbor = lexbor.HTMLTree
    saved_t = (tcore.copy, tmain.deepcopy, tutils.fromstring)
    saved_ex = (ex.line_filter, ex.block_rules)
    try:
        for k in ("decode_html", "parse_html", "page_lang"):
            setattr(page_mod, k, clock.wrap(k, saved_page[k]))
        page_mod.main_content_text = clock.wrap("resiliparse main content", saved_page["main_content_text"])
        trafilatura.extract = clock.wrap("trafilatura", saved_traf[0])
        trafilatura.bare_extraction = clock.wrap("trafilatura", saved_traf[1])
        lexbor.HTMLTree = _Proxy(saved_lexbor, parse=clock.wrap("lexbor parse", saved_lexbor.parse))

        def counted(name, fn):
            def run(*a, **k):
                clock.calls[name] += clock.active
                return fn(*a, **k)

            return run

        tcore.copy = counted("trafilatura tree copy", copy_module.copy)
        tmain.deepcopy = counted("trafilatura tree copy", copy_module.deepcopy)
        tutils.fromstring = counted("trafilatura lxml parse", saved_t[2])
        if ex.line_filter is not None:
            lf = ex.line_filter
            ex.line_filter = _Proxy(lf, __call__=clock.wrap("line cleanup", lf.__call__),
                                    filter_lines=clock.wrap("line cleanup", lf.filter_lines),
                                    article=clock.wrap("line cleanup", lf.article))
        if ex.block_rules is not None:
            br = ex.block_rules
            ex.block_rules = _Proxy(br, __call__=clock.wrap("block rules", br.__call__))
        yield
    finally:
        for k, v in saved_page.items():
            setattr(page_mod, k, v)
        trafilatura.extract, trafilatura.bare_extraction = saved_traf
        lexbor.HTMLTree = saved_lexbor
        tcore.copy, tmain.deepcopy, tutils.fromstring = saved_t
        ex.line_filter, ex.block_rules = saved_ex


def profile(pages: list[GoldPage], rounds: int) -> tuple[dict[str, list[float]], Counter]:
    """Per component, its ms per page in each round; and the calls per page (first round)."""
    ex = HtmlExtractor(timeout_s=0)
    ex(pages[0].record())  # lazy imports outside the figures
    trafilatura.extract(pages[0].html)
    per_round: dict[str, list[float]] = {}
    calls: Counter = Counter()
    for r in range(rounds):
        clock = Clock()
        base = Counter()
        with instrumented(clock, ex):
            for page in pages:
                clock.active = True
                t0 = time.process_time()
                ex(page.record())
                t1 = time.process_time()
                clock.active = False
                trafilatura.extract(page.html, url=page.url)
                t2 = time.process_time()
                trafilatura.extract(page.html, url=page.url, fast=True)
                base["stage total"] += t1 - t0
                base["trafilatura defaults (bytes in)"] += t2 - t1
                base["trafilatura fast (bytes in)"] += time.process_time() - t2
        clock.seconds["rest"] = base["stage total"] - sum(clock.seconds.values())
        for k, v in (clock.seconds | base).items():
            per_round.setdefault(k, []).append(1000 * v / len(pages))
        if r == 0:
            calls = clock.calls
    return per_round, calls


def helper_cost(pages: list[GoldPage], rounds: int) -> dict[str, list[float]]:
    """ms per page: CPU (this process + helper) and wall, helper vs in process; pickling alone."""
    recs = [p.record() for p in pages]
    inproc, helper = HtmlExtractor(timeout_s=0), HtmlExtractor()
    out: dict[str, list[float]] = {}
    inproc(recs[0])
    t0, c0 = time.perf_counter(), cpu_now()
    helper(recs[0])  # starts the helper (imports, warm-up page)
    out["helper start, wall"] = [1000 * (time.perf_counter() - t0)]
    out["helper start, CPU"] = [1000 * (cpu_now() - c0)]
    for _ in range(rounds):
        acc = Counter()
        for rec in recs:
            for name, ex in (("in process", inproc), ("helper", helper)):
                w, c = time.perf_counter(), cpu_now()
                res = ex(rec)
                acc[f"{name}, CPU"] += cpu_now() - c
                acc[f"{name}, wall"] += time.perf_counter() - w
            c = time.process_time()
            pickle.loads(pickle.dumps(rec, protocol=pickle.HIGHEST_PROTOCOL))
            pickle.loads(pickle.dumps((True, res), protocol=pickle.HIGHEST_PROTOCOL))
            acc["pickling (record there, result back)"] += time.process_time() - c
        for k, v in acc.items():
            out.setdefault(k, []).append(1000 * v / len(recs))
    helper.close()
    return out


def _cell(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:.2f}" if len(values) == 1 else f"{med:.2f} ({min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "extraction_profile.md"))
    args = ap.parse_args(argv)

    groups = page_groups()
    load0 = os.getloadavg()
    results = {name: profile(pages, args.rounds) for name, pages in groups.items()}
    en = groups["English articles (readability + trafilatura-eval)"]
    helper = helper_cost(en, args.rounds)
    load1 = os.getloadavg()

    lines = [
        "# Extraction profile: parses, CPU per component, the helper process",
        "",
        f"Generated by `python bench/extraction_profile.py --rounds {args.rounds}` (Python {platform.python_version()}, "
        f"trafilatura {trafilatura.__version__}, {os.cpu_count()} CPUs shared with other jobs; load average "
        f"{load0[0]:.1f} at the start, {load1[0]:.1f} at the end). CPU ms per page, median over the rounds "
        "(min–max). See the script's docstring.",
        "",
        "## Parses and passes per page (the stage in process)",
        "",
        "| per page | " + " | ".join(f"{g} ({len(p)})" for g, p in groups.items()) + " |",
        "|---|" + "---|" * len(groups),
    ]
    counted = ["parse_html", "trafilatura lxml parse", "trafilatura tree copy", "lexbor parse", "trafilatura",
               "line cleanup", "block rules"]
    for k in counted:
        lines.append(f"| {k} | " + " | ".join(f"{results[g][1][k] / len(p):.2f}" for g, p in groups.items()) + " |")
    lines += [
        "",
        "## CPU ms per page by component (exclusive)",
        "",
        "| component | " + " | ".join(groups) + " |",
        "|---|" + "---|" * len(groups),
    ]
    keys = sorted({k for g in groups for k in results[g][0]}, key=lambda k: (k.startswith(("stage", "trafilatura d", "trafilatura f")), k))
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(_cell(results[g][0].get(k, [0.0])) for g in groups) + " |")
    lines += [
        "",
        f"## The helper process (English article pages, {len(en)}; CPU = this process + the helper)",
        "",
        "| ms per page | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_cell(v)} |" for k, v in helper.items()]
    lines.append("")
    atomic_write_text(args.out, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
