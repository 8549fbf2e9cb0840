"""``DIR/report.html``: one self-contained page that shows what a run kept, dropped and why.

It reads what the run wrote and never redoes a stage: ``stats.json`` (counts, chars and
tokens per stage, score histograms, bucket and language counts, the token mix, samples,
dedup examples: all bounded, :mod:`skypile.report.sketches`), ``manifest.json`` (the
shards), the footers of ``reports/<stage>.parquet``, the fitted ``buckets`` table, and
optionally a ``mix.json`` whose target shares it sets beside the run's.  None of these grows
with the number of documents (the manifest grows with the shards), so the page of a
billion-document run is as small and as quick to build as the quickstart's.

The page has no script, no font and no link to fetch: plots are inline SVG
(:mod:`skypile.report.figures`), styles inline.  Every number it shows from a file
carries that number's address (``data-key``: a JSON path into ``stats.json``; ``data-sum``:
several, added; ``data-share``: a share of two sums; ``data-manifest``, ``data-mix``:
paths into those files), so a test can check each one against its source.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from skypile import io
from skypile.errors import UserError
from skypile.report import figures
from skypile.report.clusters import report_rows, stage_report_uri
from skypile.report.sketches import ALL, KEPT_SAMPLES, SCORE_BINS, TEXT_CHARS

PAGE = "report.html"
TOP_LANGS = 12  # languages drawn; the table lists up to TOP_ROWS
TOP_ROWS = 20
MAX_PANELS = 4  # languages with a histogram panel per score
DEDUP_STAGES = ("exact_dedup", "segments", "near_dedup", "semantic_dedup")
SCORE_TITLES = {
    "perplexity": ("perplexity (KenLM, CCNet)", "perplexity (log scale; lower is more Wikipedia-like)", True),
    "ref_prob": ("Wikipedia-reference classifier", "P(page could be cited by Wikipedia)", False),
    "lang_score": ("language ID score", "fastText probability of the top language", False),
}
MIX_GROUPS = ("en", "zh", "code", "other")


class ReportError(UserError):
    """A run directory (or mix file) the page cannot be built from: one line for the user."""


@dataclass
class RunFiles:
    """What the page reads, loaded: every part bounded (see the module doc)."""

    root: str
    stats: dict
    manifest: dict = field(default_factory=dict)
    fitted_buckets: dict | None = None
    report_rows: dict[str, int] = field(default_factory=dict)
    mix: dict | None = None


def _read_json(uri: str, what: str) -> dict:
    try:
        data = json.loads(io.read_bytes(uri))
    except FileNotFoundError:
        raise ReportError(f"{uri} not found: {what}") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{uri} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{uri} is not a JSON object")
    return data


def load_run(root: str, mix: str | None = None) -> RunFiles:
    root = root.rstrip("/") if "://" in root else os.path.abspath(root)  # one page whatever the spelling of the path
    stats_uri = io.join(root, "stats.json")
    if not io.exists(stats_uri):
        raise ReportError(f"{root} has no stats.json: not the output directory of a finished run")
    stats = _read_json(stats_uri, "the run's stats")
    if "stages" not in stats:
        raise ReportError(f"{stats_uri} holds no per-stage stats: not a SkyPile run's stats")
    files = RunFiles(root, stats)
    if io.exists(io.join(root, "manifest.json")):
        files.manifest = _read_json(io.join(root, "manifest.json"), "the run's manifest")
    if "buckets" in stats["stages"] and io.exists(io.join(root, "fitted", "buckets.json")):
        files.fitted_buckets = _read_json(io.join(root, "fitted", "buckets.json"), "the fitted bucket thresholds")
    for stage in DEDUP_STAGES:
        if stage in stats["stages"]:
            n = report_rows(stage_report_uri(root, stage))
            if n is not None:
                files.report_rows[stage] = n
    if mix is not None:
        files.mix = _read_json(mix, "the mix (skypile mix --out)")
        if not isinstance(files.mix.get("target"), dict):
            raise ReportError(f"{mix} has no target shares: not a mix.json written by `skypile mix`")
    return files


# --- HTML helpers ---------------------------------------------------------------------------------

def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _attr(value: Any) -> str:
    return esc(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


def get(data: Any, path: Sequence[Any], default: Any = None) -> Any:
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return default
    return data


class Page:
    """The page's HTML, built section by section; every number through :meth:`num` (or kin)."""

    def __init__(self, files: RunFiles):
        self.files, self.stats = files, files.stats
        self.parts: list[str] = []

    def add(self, *chunks: str) -> None:
        self.parts.extend(chunks)

    def num(self, path: Sequence[Any], digits: int = 1, tag: str = "td", source: str = "key") -> str:
        data = {"key": self.stats, "manifest": self.files.manifest, "mix": self.files.mix or {}}[source]
        value = get(data, path)
        return f'<{tag} class="n" data-{source}="{_attr(list(path))}">{esc(fmt(value, digits))}</{tag}>'

    def total(self, paths: list[list], tag: str = "td") -> str:
        value = sum(get(self.stats, p, 0) or 0 for p in paths)
        return f'<{tag} class="n" data-sum="{_attr(paths)}">{fmt(value)}</{tag}>'

    def share(self, num: list[list], den: list[list], tag: str = "td") -> str:
        a = sum(get(self.stats, p, 0) or 0 for p in num)
        b = sum(get(self.stats, p, 0) or 0 for p in den)
        text = f"{100.0 * a / b:.1f}%" if b else "–"
        return f'<{tag} class="n" data-share="{_attr({"num": num, "den": den})}">{text}</{tag}>'

    def text(self, path: Sequence[Any], tag: str = "span", cls: str = "") -> str:
        value = get(self.stats, path, "")
        c = f' class="{cls}"' if cls else ""
        return f'<{tag}{c} data-key="{_attr(list(path))}">{esc(value)}</{tag}>'

    def figure(self, svg: str, caption: str) -> None:
        self.add(f'<figure>{svg}<figcaption>{caption}</figcaption></figure>')

    def html(self) -> str:
        return "".join(self.parts)


# --- sections -------------------------------------------------------------------------------------

def _header(p: Page) -> None:
    s = p.stats
    inputs = s.get("inputs", [])
    shown = ", ".join(esc(i) for i in inputs[:3]) + (f" and {len(inputs) - 3} more" if len(inputs) > 3 else "")
    p.add(f"<header><h1>SkyPile run report</h1><p class=sub>{esc(p.files.root)}</p>",
          '<table class="facts"><tbody>',
          f"<tr><th>recipe</th><td>{esc(s.get('recipe') or get(s, ['config', 'recipe'], ''))}</td>"
          f"<th>executor</th><td>{esc(s.get('executor', ''))}</td></tr>",
          f"<tr><th>records in</th>{p.num(['records_in'])}<th>kept (written)</th>{p.num(['kept'])}</tr>",
          f"<tr><th>dropped</th>{p.num(['dropped_total'])}<th>balanced</th>{p.num(['balanced'])}</tr>",
          f"<tr><th>tokens</th>{p.num(['tokens'])}<th>shards</th>{p.num(['num_shards'])}</tr>",
          f"<tr><th>wall seconds</th>{p.num(['wall_seconds'])}<th>task splits</th>{p.num(['splits'])}</tr>",
          f"<tr><th>inputs</th><td colspan=3>{shown}</td></tr>",
          "</tbody></table>",
          '<nav><a href="#funnel">funnel</a> · <a href="#languages">languages</a> · <a href="#quality">quality</a> · '
          '<a href="#dedup">dedup</a> · <a href="#mix">token mix</a> · <a href="#samples">samples</a> · '
          '<a href="#outputs">outputs</a></nav></header>')


def _funnel(p: Page) -> None:
    stages = p.stats["stages"]
    rows, plot = [], []
    for name, st in stages.items():
        drops = sorted(st.get("dropped", {}).items(), key=lambda kv: (-kv[1], kv[0]))
        plot.append({"name": name, "kept": st.get("kept", 0), "drops": drops})
        reasons = "".join(f'<li>{esc(r)} {p.num(["stages", name, "dropped", r], tag="span")}</li>' for r, _ in drops)
        changed = "".join(f'<li class=chg>{esc(w)} {p.num(["stages", name, "changed", w], tag="span")}</li>'
                          for w in st.get("changed", {}))
        rows.append(
            f"<tr><th>{esc(name)}</th>{p.num(['stages', name, 'in'])}{p.num(['stages', name, 'kept'])}"
            f"{p.total([['stages', name, 'dropped', r] for r, _ in drops])}"
            f"{p.num(['stages', name, 'chars', 'in'])}{p.num(['stages', name, 'chars', 'kept'])}"
            f"{p.num(['stages', name, 'tokens', 'in'])}{p.num(['stages', name, 'tokens', 'kept'])}"
            f"{p.num(['stages', name, 'seconds'], 1)}{p.num(['stages', name, 'docs_per_s'], 1)}"
            f"<td class=reasons><ul>{reasons}{changed}</ul></td></tr>")
    p.add('<section id="funnel"><h2>Funnel: what entered each stage and how it left</h2>')
    p.figure(figures.funnel(plot), "Green: kept; red: dropped, one segment per reason (the table names them). "
             "<em>read</em> counts input records, later stages documents.")
    p.add('<table><thead><tr><th>stage</th><th>docs in</th><th>kept</th><th>dropped</th><th>chars in</th>'
          '<th>chars kept</th><th>tokens in</th><th>tokens kept</th><th>seconds</th><th>docs/s</th>'
          '<th>drop reasons (and changes to kept documents)</th></tr></thead><tbody>', *rows,
          "</tbody></table><p class=note>Characters and tokens are counted on documents: raw records entering "
          "<em>extract</em> have none, and tokens exist from <em>tokenize</em> on. Seconds are summed over tasks "
          "(CPU time of the stage, not wall time).</p></section>")


def _written_by_lang(stats: dict) -> dict[str, list[list]]:
    """Language → the stats paths of its written documents (over sources)."""
    out: dict[str, list[list]] = {}
    for source, langs in stats.get("written", {}).items():
        for lang in langs:
            out.setdefault(lang, []).append(["written", source, lang])
    return out


def _languages(p: Page) -> None:
    s = p.stats
    # the stage that names documents' languages (langid; code_lang for code), if the recipe has one
    by = next((st for st in s["stages"] if get(s, ["values", st, "lang", ALL])), None)
    identified = get(s, ["values", by, "lang", ALL], {}) if by else {}
    written = _written_by_lang(s)
    if not identified and not written:
        return
    p.add('<section id="languages"><h2>Language mix</h2>')
    if identified:
        top = sorted(identified.items(), key=lambda kv: (-kv[1], kv[0]))
        drawn = top[:TOP_LANGS]
        p.figure(figures.horizontal_bars("langs", [l for l, _ in drawn], [n for _, n in drawn],
                                         [["values", by, "lang", ALL, l] for l, _ in drawn],
                                         f"documents identified (stage {by})"),
                 f"Top {len(drawn)} of {len(top)} languages named by <em>{esc(by)}</em>, before any filter on them.")
    docs = {lang: sum(get(s, q + ["docs"], 0) for q in paths) for lang, paths in written.items()}
    langs = sorted(set(identified) | set(written), key=lambda l: (-identified.get(l, 0), -docs.get(l, 0), l))
    rows = []
    for lang in langs[:TOP_ROWS]:
        idn = p.num(["values", by, "lang", ALL, lang]) if lang in identified else "<td class=n>–</td>"
        paths = written.get(lang, [])
        rows.append(f"<tr><th>{esc(lang)}</th>{idn}{p.total([q + ['docs'] for q in paths])}"
                    f"{p.total([q + ['chars'] for q in paths])}{p.total([q + ['tokens'] for q in paths])}</tr>")
    rest = langs[TOP_ROWS:]
    if rest:
        rows.append(f"<tr><th>{len(rest)} more</th>{p.total([['values', by, 'lang', ALL, l] for l in rest if l in identified])}"
                    f"{p.total([q + ['docs'] for l in rest for q in written.get(l, [])])}<td></td><td></td></tr>")
    p.add("<table><thead><tr><th>language</th><th>identified</th><th>written docs</th><th>written chars</th>"
          "<th>written tokens</th></tr></thead><tbody>", *rows, "</tbody></table>")
    _score_histograms(p, "langid", "lang_score", {"min_score": ["config", "lang_filter", "min_score"]}
                      if "lang_filter" in s["stages"] else {})
    p.add("</section>")


def _thresholds(p: Page, score: str, lang: str) -> list[tuple[str, float, list, str]]:
    """Threshold lines for a score's panel: the quality_bucket stage's (solid when it buckets on this score)."""
    info = get(p.stats, ["stage_info", "quality_bucket"])
    if not info:
        return []
    t = get(info, ["thresholds", score, lang])
    if not t:
        return []
    style = "-" if info.get("score") == score else "--"
    return [(b, t[b], ["stage_info", "quality_bucket", "thresholds", score, lang, b], style) for b in ("head", "middle") if b in t]


def _zoom(edges: list[float], bins: list[int], marks: list[float], pad: int = 4) -> tuple[float, float]:
    """The x range of a panel: its filled bins and its lines, a few bins of margin, within the bins' range."""
    if not bins:
        return edges[0], edges[-1]
    lo, hi = max(0, min(bins) - pad), min(len(edges) - 1, max(bins) + 1 + pad)
    left, right = edges[lo], edges[hi]
    for x in marks:
        left, right = min(left, x), max(right, x)
    return max(edges[0], left), min(edges[-1], right)


def _score_histograms(p: Page, stage: str, score: str, lines: dict[str, list] | None = None) -> bool:
    per_lang = get(p.stats, ["scores", stage, score], {})
    if not per_lang:
        return False
    title, xlabel, log_x = SCORE_TITLES.get(score, (score, score, False))
    bins = SCORE_BINS[score]
    edges = bins.edges()
    langs = sorted(per_lang, key=lambda l: (-per_lang[l]["n"], l))[:MAX_PANELS]
    panels = []
    for lang in langs:
        h = per_lang[lang]
        counts = [(int(b), n, ["scores", stage, score, lang, "counts", b]) for b, n in h["counts"].items()]
        if lines:
            marks = [(name, get(p.stats, path), path, ":") for name, path in lines.items() if get(p.stats, path) is not None]
        else:
            marks = _thresholds(p, score, lang)
        panels.append({"title": f"{lang} ({h['n']:,} documents)", "edges": edges, "counts": counts, "lines": marks,
                       "xlim": _zoom(edges, [b for b, _, _ in counts], [x for _, x, _, _ in marks])})
    p.figure(figures.histograms(f"{stage}-{score}", panels, xlabel, log_x),
             f"{esc(title)} per language ({bins.n} fixed bins; stage <em>{esc(stage)}</em>). "
             + ("Lines: the bucket thresholds (solid: the score buckets are cut on; dashed: the same percentiles of the "
                "other score, for comparison)." if not lines else "Dotted: <em>lang_filter.min_score</em>."))
    rows = []
    for lang in sorted(per_lang, key=lambda l: (-per_lang[l]["n"], l))[:TOP_ROWS]:
        base = ["scores", stage, score, lang]
        rows.append(f"<tr><th>{esc(lang)}</th>{p.num(base + ['n'])}{p.num(base + ['below'])}{p.num(base + ['above'])}"
                    f"{p.num(base + ['missing'])}</tr>")
    lo, hi = (f"{edges[0]:g}", f"{edges[-1]:g}")
    p.add(f"<details><summary>{esc(score)}: documents per language outside the bins</summary><table><thead><tr><th>language"
          f"</th><th>scored</th><th>below {lo}</th><th>above {hi}</th><th>unscorable</th></tr></thead><tbody>",
          *rows, "</tbody></table></details>")
    return True


def _quality(p: Page) -> None:
    s = p.stats
    has = [(st, sc) for st, sc in (("perplexity", "perplexity"), ("ref_prob", "ref_prob")) if get(s, ["scores", st, sc])]
    bucket_stage = next((b for b in ("quality_bucket", "buckets") if get(s, ["values", b, "bucket"])), None)
    if not has and bucket_stage is None:
        return
    p.add('<section id="quality"><h2>Quality: scores and buckets per language</h2>')
    info = get(s, ["stage_info", "quality_bucket"])
    if info:
        p.add(f"<p>Buckets are cut on <strong>{esc(info['score'])}</strong> at the {info['cuts'][0]:g}th and "
              f"{info['cuts'][1]:g}th percentiles of a reference sample (CCNet); kept: {esc(', '.join(info['keep']))}.</p>")
    for stage, score in has:
        _score_histograms(p, stage, score)
    if bucket_stage is not None:
        per_lang = get(s, ["values", bucket_stage, "bucket"])
        langs = sorted(per_lang, key=lambda l: (-sum(per_lang[l].values()), l))[:TOP_ROWS]
        order = [b for b in ("head", "middle", "tail") if any(b in per_lang[l] for l in langs)]
        rows, plot = [], []
        for lang in langs:
            paths = {b: ["values", bucket_stage, "bucket", lang, b] for b in order if b in per_lang[lang]}
            plot.append({"label": lang, "parts": {b: (per_lang[lang][b], q) for b, q in paths.items()}})
            cells = "".join(p.num(paths[b]) + p.share([paths[b]], list(paths.values())) if b in paths else "<td>–</td><td>–</td>"
                            for b in order)
            rows.append(f"<tr><th>{esc(lang)}</th>{cells}</tr>")
        p.figure(figures.stacked_shares("buckets", plot[:TOP_LANGS], order),
                 f"Documents per bucket and language (stage <em>{esc(bucket_stage)}</em>).")
        head = "".join(f"<th>{b}</th><th>share</th>" for b in order)
        p.add(f"<table><thead><tr><th>language</th>{head}</tr></thead><tbody>", *rows, "</tbody></table>")
    p.add("</section>")


def _dedup(p: Page) -> None:
    s = p.stats
    stages = [st for st in DEDUP_STAGES if st in s["stages"]]
    if not stages:
        return
    p.add('<section id="dedup"><h2>Dedup</h2>')
    labels, values, paths, rows = [], [], [], []
    for st in stages:
        c = s["stages"][st]
        for reason, n in sorted(c.get("dropped", {}).items()):
            labels.append(f"{st}: {reason}")
            values.append(n)
            paths.append(["stages", st, "dropped", reason])
            rows.append(f"<tr><th>{esc(st)}</th><td>{esc(reason)}</td>{p.num(['stages', st, 'in'])}{p.num(paths[-1])}"
                        f"{p.share([paths[-1]], [['stages', st, 'in']])}</tr>")
        for what in c.get("changed", {}):
            rows.append(f"<tr><th>{esc(st)}</th><td>{esc(what)} (of documents kept)</td>{p.num(['stages', st, 'in'])}"
                        f"{p.num(['stages', st, 'changed', what])}<td></td></tr>")
    if labels:
        p.figure(figures.horizontal_bars("dedup", labels, values, paths, "documents removed", figures.DROPPED),
                 "Documents removed by each rule.")
    p.add("<table><thead><tr><th>rule</th><th>reason</th><th>docs in</th><th>removed</th><th>share</th></tr></thead>"
          "<tbody>", *rows, "</tbody></table>")
    if p.files.report_rows:
        listed = ", ".join(f"<code>reports/{esc(st)}.parquet</code>: {n:,} rows" for st, n in p.files.report_rows.items())
        p.add(f"<p class=note>Every member of a duplicate cluster, survivor included: {listed}.</p>")
    for st in stages:
        clusters = get(s, ["examples", st, "cluster"], {})
        if not clusters:
            continue
        ordered = sorted(clusters, key=lambda k: (-clusters[k]["size"], k))
        rows = []
        for key in ordered:
            base = ["examples", st, "cluster", key]
            items = clusters[key]["items"]
            lines = "".join(f'<li><code>{p.text(base + ["items", i, 0])}</code> {p.text(base + ["items", i, 1], "q")}</li>'
                            for i in range(len(items)))
            rows.append(f"<tr><td><code>{esc(key)}</code></td>{p.num(base + ['size'])}<td><ul>{lines}</ul></td></tr>")
        p.add(f"<h3>Largest clusters: {esc(st)}</h3><table><thead><tr><th>survivor (cluster id)</th><th>members</th>"
              "<th>first line of two members (survivor first)</th></tr></thead><tbody>", *rows, "</tbody></table>")
    segments = get(s, ["examples", "segments", "segment"], {})
    if segments:
        ordered = sorted(segments, key=lambda k: (-segments[k]["size"], k))
        rows = []
        for key in ordered:
            base = ["examples", "segments", "segment", key]
            rows.append(f"<tr><td>{p.text(base + ['items', 0, 0], 'q')}</td>{p.num(base + ['size'])}{p.num(base + ['n'])}</tr>")
        p.add("<h3>Most frequent recurring segments removed</h3><table><thead><tr><th>line (one of its forms)</th>"
              "<th>documents holding it</th><th>lines removed in this run</th></tr></thead><tbody>", *rows, "</tbody></table>")
    p.add("</section>")


def _group(source: str, lang: str) -> str:
    if source.startswith("code"):
        return "code"
    return lang if lang in ("en", "zh") else "other"


def _mix(p: Page) -> None:
    s = p.stats
    written = s.get("written", {})
    if not written:
        return
    p.add('<section id="mix"><h2>Token mix of the written shards</h2>')
    if not s.get("tokens"):
        p.add("<p class=note>This recipe does not tokenize: documents and characters instead of tokens.</p>")
    cells = [(src, lang) for src, langs in written.items() for lang in langs]
    all_tokens = [["written", src, lang, "tokens"] for src, lang in cells]
    measure = "tokens" if any(written[a][b]["tokens"] for a, b in cells) else "docs"  # untokenized: documents
    everything = [["written", src, lang, measure] for src, lang in cells]
    ranked = sorted(cells, key=lambda c: (-written[c[0]][c[1]][measure], c))
    drawn = ranked[:TOP_LANGS]
    p.figure(figures.horizontal_bars("mix", [f"{a} · {b}" for a, b in drawn], [written[a][b][measure] for a, b in drawn],
                                     [["written", a, b, measure] for a, b in drawn], f"{measure} written", figures.KEPT),
             f"{measure.capitalize()} written, by source and language (top {len(drawn)} of {len(cells)}).")
    rows = []
    for src, lang in ranked[:TOP_ROWS]:
        base = ["written", src, lang]
        rows.append(f"<tr><th>{esc(src)}</th><td>{esc(lang)}</td>{p.num(base + ['docs'])}{p.num(base + ['chars'])}"
                    f"{p.num(base + ['tokens'])}{p.share([base + [measure]], everything)}</tr>")
    p.add("<table><thead><tr><th>source</th><th>language</th><th>docs</th><th>chars</th><th>tokens</th>"
          f"<th>share of {measure}</th></tr></thead><tbody>", *rows, "</tbody></table>")
    mix = p.files.mix
    if mix is not None:
        groups = {g: [["written", a, b, "tokens"] for a, b in cells if _group(a, b) == g] for g in MIX_GROUPS}
        total = sum(get(s, q, 0) for q in all_tokens)
        run = [100.0 * sum(get(s, q, 0) for q in groups[g]) / total if total else 0.0 for g in MIX_GROUPS]
        target = [float(mix["target"].get(g, 0.0)) for g in MIX_GROUPS]
        p.figure(figures.share_pairs("mix-target", list(MIX_GROUPS), run, target),
                 "Share of tokens per language group: this run beside the target of the given <code>mix.json</code> "
                 "(code: sources named <code>code/…</code>; other: every language but en and zh).")
        rows = [f"<tr><th>{g}</th>{p.share(groups[g], all_tokens)}{p.num(['target', g], 3, source='mix')}</tr>" for g in MIX_GROUPS]
        p.add("<table><thead><tr><th>group</th><th>this run</th><th>target (share of 1)</th></tr></thead><tbody>", *rows,
              "</tbody></table>")
    p.add("</section>")


def _sample_card(p: Page, base: list, entry: dict) -> str:
    scores = "".join(f'<span class=score>{esc(k)}={p.text(base + ["scores", k])}</span>' for k in entry.get("scores", {}))
    detail = f'<div class=detail>{p.text(base + ["detail"])}</div>' if entry.get("detail") else ""
    text = p.text(base + ["text"], "pre") if "text" in entry else "<pre class=none>(a record, not a document: no text)</pre>"
    url = f' · {p.text(base + ["url"], cls="url")}' if entry.get("url") else ""
    return f'<div class=card><div class=id>{p.text(base + ["id"])}{url}</div>{detail}<div>{scores}</div>{text}</div>'


def _samples(p: Page) -> None:
    samples = p.stats.get("samples", {})
    if not samples:
        return
    p.add(f'<section id="samples"><h2>Samples</h2><p class=note>Per stage, up to {KEPT_SAMPLES} kept documents and '
          f"a few dropped ones per reason: the first {TEXT_CHARS} characters (as the stage left a kept one, as it found a "
          "dropped one) with its scores. Chosen by a seeded hash of stage and id: the same on every executor, and two "
          "reports of one run show the same documents.</p>")
    for stage in [s for s in p.stats["stages"] if s in samples]:
        entry = samples[stage]
        # open where documents were dropped: those are the samples that check a filter
        opened = " open" if any("text" in e for es in entry.get("dropped", {}).values() for e in es) else ""
        p.add(f"<details{opened}><summary><strong>{esc(stage)}</strong>: {len(entry.get('kept', []))} kept, "
              f"{sum(len(v) for v in entry.get('dropped', {}).values())} dropped</summary><div class=cards>")
        for i, e in enumerate(entry.get("kept", [])):
            p.add(f'<div class="kept">{_sample_card(p, ["samples", stage, "kept", i], e)}</div>')
        for reason, entries in sorted(entry.get("dropped", {}).items()):
            for i, e in enumerate(entries):
                p.add(f'<div class="dropped"><div class=reason>dropped: {esc(reason)}</div>'
                      f'{_sample_card(p, ["samples", stage, "dropped", reason, i], e)}</div>')
        p.add("</div></details>")
    p.add("</section>")


def _outputs(p: Page) -> None:
    m = p.files.manifest
    p.add('<section id="outputs"><h2>Outputs</h2><table class="facts"><tbody>')
    if m:
        p.add(f"<tr><th>shards</th>{p.num(['num_shards'], source='manifest')}<th>rows</th>{p.num(['rows'], source='manifest')}</tr>",
              f"<tr><th>tokens</th>{p.num(['tokens'], source='manifest')}<th>bytes</th>{p.num(['bytes'], source='manifest')}</tr>")
    p.add("</tbody></table><ul class=files>"
          "<li><code>shards/</code>: the documents (Parquet); <code>manifest.json</code>: shards, tokenizer, config</li>"
          "<li><code>stats.json</code>: every number on this page</li>"
          "<li><code>dropped/</code>: one dead letter (stage, reason, id, url, detail) per dropped record</li>"
          "<li><code>fitted/</code>: tables corpus stages fitted; <code>reports/</code>: dedup cluster members</li>"
          "</ul></section>")


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d1d1f;margin:0;background:#f5f6f8}
main{max-width:1120px;margin:0 auto;padding:20px 28px 60px;background:#fff}
h1{font-size:24px;margin:8px 0 0}h2{font-size:18px;margin:34px 0 8px;border-bottom:2px solid #e4e6ea;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}.sub{color:#666;margin:2px 0 12px;font-family:ui-monospace,monospace;font-size:12px}
nav{margin:10px 0 0;font-size:13px}nav a{color:#1f5a96;text-decoration:none}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px}th,td{padding:3px 8px;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top}
thead th{background:#f3f4f6;font-weight:600}td.n,span.n{text-align:right;font-variant-numeric:tabular-nums}
.facts th{color:#555;font-weight:500}.facts td{min-width:90px}
td.reasons ul{margin:0;padding:0;list-style:none}td.reasons li{display:inline-block;margin:0 10px 0 0;color:#a5281b}
td.reasons li.chg{color:#555}figure{margin:10px 0}figure svg{max-width:100%;height:auto}
figcaption,.note{color:#555;font-size:12.5px}details{margin:6px 0}summary{cursor:pointer}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:10px;margin:8px 0}
.card{border:1px solid #e1e4e8;border-radius:6px;padding:8px;font-size:12px;background:#fff;height:100%;box-sizing:border-box}
.kept .card{border-left:4px solid #3a7d44}.dropped .card{border-left:4px solid #c0392b}
.reason{font-size:11px;color:#a5281b;font-weight:600}.id{font-family:ui-monospace,monospace;font-size:11px;color:#444;word-break:break-all}
.detail{color:#a5281b;font-size:11.5px;margin:2px 0}.score{display:inline-block;margin-right:8px;color:#1f5a96;font-size:11.5px}
pre{white-space:pre-wrap;word-break:break-word;margin:6px 0 0;font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;background:#f7f7f9;padding:6px;border-radius:4px}
.q{color:#333}code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}ul.files{font-size:13px}
"""


def render(files: RunFiles) -> str:
    p = Page(files)
    p.add('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
          # no script runs and nothing is fetched: the policy says so to the browser too
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
          '<meta name="viewport" content="width=device-width, initial-scale=1">'
          f"<title>SkyPile run report: {esc(files.root.rsplit('/', 1)[-1])}</title><style>{CSS}</style></head><body><main>")
    for section in (_header, _funnel, _languages, _quality, _dedup, _mix, _samples, _outputs):
        section(p)
    p.add("</main></body></html>\n")
    return p.html()


def write_report_page(root: str, out: str | None = None, mix: str | None = None) -> str:
    """Build the page of the run in ``root`` and write it (atomically) to ``out`` (default ``root/report.html``)."""
    files = load_run(root, mix)
    target = out or io.join(files.root, PAGE)
    io.atomic_write_text(target, render(files))
    return target

