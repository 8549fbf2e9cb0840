"""The run page's plots: matplotlib figures, rendered to inline SVG strings.

No pyplot (no global figure state, no GUI backend): each plot is a
:class:`matplotlib.figure.Figure` drawn by the SVG canvas, with text kept as text
(small, selectable, set in the reader's own sans-serif: no font is embedded or
fetched), no date, and ids salted by the figure's name, so a page holds several
figures without clashing ids and two builds of one page are byte for byte equal.

Every bar drawn from a number of the run's stats carries that number's address as
its SVG id (:func:`value_id`: ``v`` + the JSON path into ``stats.json`` + ``=`` +
the value; a path starting ``"@mix"`` points into the ``mix.json`` given), so a test, or
a curious reader, can tie each bar to its source.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any, Sequence

KEPT, DROPPED, ACCENT, MUTED = "#3a7d44", "#c0392b", "#1f5a96", "#8c8c8c"
BUCKET_COLORS = {"head": "#3a7d44", "middle": "#e0a526", "tail": "#c0392b"}
_RC = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
}


def value_id(path: Sequence[Any], value: Any) -> str:
    """The SVG id of an artist drawn from the stats value at ``path``: ``v["stages","read","kept"]=123``."""
    return "v" + json.dumps(list(path), ensure_ascii=False, separators=(",", ":")) + "=" + json.dumps(value)


def _figure(name: str, width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))  # margins set by _margins: a layout engine would cost 2x the drawing
    fig.skypile_name = name  # type: ignore[attr-defined]
    return fig


CHAR_IN = 0.068  # width of an average 9-point character, inches


def text_inches(labels: Sequence[str]) -> float:
    """Room for the longest of ``labels`` as tick labels, inches."""
    return CHAR_IN * max((len(str(s)) for s in labels), default=1) + 0.15


def _margins(fig: Any, left: float, bottom: float = 0.5, top: float = 0.12, right: float = 0.2, wspace: float | None = None) -> None:
    """Margins in inches (matplotlib takes fractions of the figure)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h, wspace=wspace)


def to_svg(fig: Any) -> str:
    """The figure as an inline ``<svg>`` element: no XML prolog, DOCTYPE or metadata block."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    buf = io.StringIO()
    with rc_context({**_RC, "svg.hashsalt": fig.skypile_name}):
        FigureCanvasSVG(fig).print_svg(buf, metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)


def _tag(bars: Any, paths: Sequence[Sequence[Any]], values: Sequence[Any]) -> None:
    for bar, path, value in zip(bars, paths, values):
        bar.set_gid(value_id(path, value))


def _plain_counts(ax: Any, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fmt = FuncFormatter(lambda v, _: f"{v:,.0f}")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(fmt)
    target.set_major_locator(MaxNLocator(nbins=5, integer=True))


def funnel(stages: list[dict]) -> str:
    """Per stage, a bar of what entered it: kept (green), then each drop reason (red, white-edged), in order.

    ``stages``: ``[{"name", "kept", "drops": [(reason, n)]}]``.
    """
    with _rc():
        names = [s["name"] for s in stages]
        fig = _figure("funnel", 9.5, 0.75 + 0.34 * len(stages))
        _margins(fig, text_inches(names))
        ax = fig.add_subplot()
        y = list(range(len(stages)))[::-1]
        kept = [s["kept"] for s in stages]
        bars = ax.barh(y, kept, color=KEPT, height=0.62, label="kept")
        _tag(bars, [["stages", s["name"], "kept"] for s in stages], kept)
        left = list(kept)
        first = True
        for i, s in enumerate(stages):
            for reason, n in s["drops"]:
                (bar,) = ax.barh([y[i]], [n], left=[left[i]], color=DROPPED, edgecolor="white", linewidth=0.6, height=0.62,
                                 label="dropped (one segment per reason)" if first else None)
                bar.set_gid(value_id(["stages", s["name"], "dropped", reason], n))
                left[i] += n
                first = False
        ax.set_yticks(y, names)
        ax.set_xlabel("documents (or records) entering the stage")
        _plain_counts(ax)
        ax.legend(loc="lower right", frameon=False)
        ax.margins(x=0.02)
        return to_svg(fig)


def horizontal_bars(name: str, labels: list[str], values: list[float], paths: list[list], xlabel: str,
                    color: str = ACCENT) -> str:
    """One bar per label (top to bottom), each tagged with its stats path."""
    with _rc():
        fig = _figure(name, 6.5, 0.65 + 0.26 * len(labels))
        _margins(fig, text_inches(labels))
        ax = fig.add_subplot()
        y = list(range(len(labels)))[::-1]
        bars = ax.barh(y, values, color=color, height=0.66)
        _tag(bars, paths, values)
        ax.set_yticks(y, labels)
        ax.set_xlabel(xlabel)
        _plain_counts(ax)
        return to_svg(fig)


def histograms(name: str, panels: list[dict], xlabel: str, log_x: bool) -> str:
    """Small multiples, one panel per language: the score's fixed-bin histogram with the bucket thresholds.

    ``panels``: ``[{"title", "edges", "counts": [(bin, n, path)], "lines": [(label, x, path, style)]}]``.
    """
    with _rc():
        fig = _figure(name, min(10.0, 3.4 * len(panels) + 0.4), 2.6)
        counts = text_inches([f"{max((n for _, n, _ in p['counts']), default=1):,}" for p in panels])
        width = (min(10.0, 3.4 * len(panels) + 0.4) - counts - 0.2) / len(panels)
        _margins(fig, counts, bottom=0.5, top=0.3, wspace=(counts + 0.25) / max(width - counts - 0.25, 0.5))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, p in zip(axes, panels):
            edges = p["edges"]
            lefts = [edges[b] for b, _, _ in p["counts"]]
            widths = [edges[b + 1] - edges[b] for b, _, _ in p["counts"]]
            values = [n for _, n, _ in p["counts"]]
            bars = ax.bar(lefts, values, width=widths, align="edge", color=ACCENT, linewidth=0)
            _tag(bars, [path for _, _, path in p["counts"]], values)
            for label, x, path, style in p["lines"]:
                line = ax.axvline(x, color=BUCKET_COLORS.get(label, "black"), linestyle=style, linewidth=1.3,
                                  label=f"{label} ≥ {x:,.4g}" if not log_x else f"{label} ≤ {x:,.4g}")
                line.set_gid(value_id(path, x))
            if log_x:
                from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 50, 100, 200: not 10^2, 2x10^2
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlim(*p.get("xlim", (edges[0], edges[-1])))
            ax.set_title(p["title"])
            ax.set_xlabel(xlabel)
            _plain_counts(ax, "y")
            if p["lines"]:
                ax.legend(fontsize=7, frameon=False, loc="best")
        return to_svg(fig)


def stacked_shares(name: str, rows: list[dict], order: Sequence[str]) -> str:
    """One horizontal bar per row, split into ``order``'s parts (e.g. head / middle / tail) by count.

    ``rows``: ``[{"label", "parts": {part: (n, path)}}]``; bars are in documents (not shares), so every
    segment's length is its count.
    """
    with _rc():
        fig = _figure(name, 6.5, 0.75 + 0.32 * len(rows))
        _margins(fig, text_inches([r["label"] for r in rows]), right=1.0)
        ax = fig.add_subplot()
        y = list(range(len(rows)))[::-1]
        left = [0] * len(rows)
        for part in order:
            ns = [r["parts"].get(part, (0, None))[0] for r in rows]
            bars = ax.barh(y, ns, left=left, color=BUCKET_COLORS.get(part, ACCENT), height=0.6, label=part)
            for bar, r, n in zip(bars, rows, ns):
                path = r["parts"].get(part, (0, None))[1]
                if path is not None:
                    bar.set_gid(value_id(path, n))
            left = [a + b for a, b in zip(left, ns)]
        ax.set_yticks(y, [r["label"] for r in rows])
        ax.set_xlabel("documents")
        _plain_counts(ax)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
        return to_svg(fig)


def share_pairs(name: str, labels: list[str], run: list[float], target: list[float]) -> str:
    """The run's share of tokens (percent) beside the mix's target share (a fraction of 1, drawn in percent)."""
    with _rc():
        fig = _figure(name, 6.5, 2.4)
        _margins(fig, 0.55, bottom=0.35)
        ax = fig.add_subplot()
        x = list(range(len(labels)))
        a = ax.bar([i - 0.2 for i in x], run, width=0.4, color=ACCENT, label="this run")
        b = ax.bar([i + 0.2 for i in x], [100.0 * t for t in target], width=0.4, color=MUTED, label="mix.json target")
        for bar, label, v in zip(a, labels, run):
            bar.set_gid(f"share-run-{label}")
        for bar, label, v in zip(b, labels, target):
            bar.set_gid(value_id(["@mix", "target", label], v))
        ax.set_xticks(x, labels)
        ax.set_ylabel("% of tokens")
        ax.legend(frameon=False)
        return to_svg(fig)


def _rc() -> Any:
    from matplotlib import rc_context

    return rc_context(_RC)
