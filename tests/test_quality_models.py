"""CCNet-style quality: KenLM perplexity, the Wikipedia-reference classifier, stored bucket thresholds.

The models are built once per session from the shared data with the real
recipes (models/kenlm, models/wikiref, models/quality_thresholds), made smaller
for speed: 2,000 (en) and 5,000 (zh) SentencePiece pieces and 20 HTML pages per
dataset instead of all.  lmplz must be installed (scripts/install.sh builds it).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from skypile.config import ConfigError, RunConfig
from skypile.corpus import run_corpus_stage
from skypile.data_paths import REPO_ROOT
from skypile.document import DocMetadata, Document, table_to_documents
from skypile.quality.buckets import ScoreBuckets
from skypile.quality.corpora import chunks, is_held_out, wiki_articles
from skypile.quality.perplexity import LanguageModel, Perplexity
from skypile.quality.ref_classifier import RefProb, load_classifier, probability
from skypile.quality.thresholds import QualityBucket
from skypile.recipes import build_recipe as build_job_recipe
from conftest import build_quality, quality_recipe

@pytest.fixture(scope="session")
def built(quality_models, shared):
    data = shared("wiki").parent
    (web,) = [v for k, v in quality_models["ctx"].items() if k[0] == "web"]  # the build's web text, read once
    return {"data": data, "out": quality_models["out"], "ctx": quality_models["ctx"], "entries": quality_models["entries"], "web": web}


def _held_out_wiki(built, lang: str) -> list[str]:
    r = quality_recipe("kenlm")
    arts = [a for a in wiki_articles(built["data"], lang) if is_held_out(a.key, r["seed"], r["held_out"])]
    return [c.text for a in arts for c in chunks(a, 2000)]


def _web(built, lang: str) -> list[str]:
    return [t.text for t in built["web"][lang]]


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_held_out_wikipedia_has_lower_perplexity_than_web_text(built, lang):
    lm = LanguageModel(str(built["out"] / "kenlm"), lang)
    wiki = [lm.perplexity(t) for t in _held_out_wiki(built, lang)]
    web = [lm.perplexity(t) for t in _web(built, lang)]
    assert len(wiki) >= 5 and len(web) >= 40
    assert all(math.isfinite(p) and p > 1 for p in wiki + web)
    assert _median(wiki) * 1.2 < _median(web), (lang, _median(wiki), _median(web))
    metrics = built["entries"]["kenlm"]["metrics"][lang]
    assert metrics["held_out_wiki_perplexity_median"] < built["entries"]["quality_thresholds"]["metrics"][lang]["web_perplexity_median"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_real_text_has_lower_perplexity_than_the_same_text_shuffled(built, lang):
    lm = LanguageModel(str(built["out"] / "kenlm"), lang)
    rng = random.Random(7)
    for text in _held_out_wiki(built, lang) + _web(built, lang)[:30]:
        lines = []
        for line in text.split("\n"):
            units = line.split() if lang == "en" else list(line)
            rng.shuffle(units)
            lines.append((" " if lang == "en" else "").join(units))
        shuffled = "\n".join(lines)
        if shuffled.split() == text.split():
            continue  # too short to change
        assert lm.perplexity(text) < lm.perplexity(shuffled), text[:200]


def test_classifier_separates_wikipedia_from_web_text_on_the_held_out_split(built):
    entry = built["entries"]["wikiref"]
    model = load_classifier(entry["path"])
    r = quality_recipe("wikiref")
    pos = [c.text for lang in r["langs"] for a in wiki_articles(built["data"], lang)
           if is_held_out(a.key, r["seed"], r["held_out"]) for c in chunks(a, r["chunk_chars"])]
    neg = [t.text for lang in r["langs"] for t in built["web"][lang] if is_held_out(t.key, r["seed"], r["held_out"])]
    assert len(pos) >= 10 and len(neg) >= 50
    ps, ns = [probability(model, t) for t in pos], [probability(model, t) for t in neg]
    # pairwise AUC, computed independently of the build's rank formula
    auc = sum((p > n) + 0.5 * (p == n) for p in ps for n in ns) / (len(ps) * len(ns))
    assert auc >= 0.9
    assert entry["metrics"]["held_out_roc_auc"] == pytest.approx(auc, abs=1e-3)
    assert entry["metrics"]["held_out_items"] == len(pos) + len(neg)
    for frac, precision in entry["metrics"]["precision_at_kept_fraction"].items():
        assert 0.5 < precision <= 1.0, (frac, precision)



def test_scoring_stages_pickle_without_their_models(built):
    """Beam and Dask ship stages pickled: the loaded KenLM and fastText models stay behind, the copy loads its own."""
    import pickle

    stages = [Perplexity(str(built["out"] / "kenlm")), RefProb(built["entries"]["wikiref"]["path"])]
    text = _web(built, "en")[0]
    for stage in stages:
        scored = stage(Document(id="a", text=text, source="t", lang="en"))
        blob = pickle.dumps(stage)
        assert len(blob) < 2000, stage.name  # models of megabytes are not in it
        clone = pickle.loads(blob)
        assert not (clone.__dict__.get("_model") or clone.__dict__.get("_models"))
        again = clone(Document(id="a", text=text, source="t", lang="en"))
        assert getattr(again.metadata, stage.name) == getattr(scored.metadata, stage.name) > 0
        assert pickle.dumps(clone) == blob

@pytest.mark.parametrize("score", ["perplexity", "ref_prob"])
def test_bucket_shares_on_the_reference_sample_match_the_percentiles(built, score):
    out = built["out"]
    ppl = Perplexity(str(out / "kenlm"), ("en", "zh"))
    ref = RefProb(str(out / "wikiref" / "wikiref.bin"))
    stage = QualityBucket(str(out / "quality" / "thresholds.json"), score=score, keep=("head", "middle", "tail"))
    scored = []
    for lang in ("en", "zh"):
        counts = Counter()
        texts = _web(built, lang)
        for i, text in enumerate(texts):
            doc = stage(ref(ppl(Document(id=f"{lang}{i}", text=text, source="web", lang=lang))))
            counts[doc.metadata.bucket] += 1
            scored.append(doc)
        n = len(texts)
        assert counts["head"] / n == pytest.approx(0.30, abs=0.03), (lang, counts)
        assert counts["middle"] / n == pytest.approx(0.30, abs=0.03), (lang, counts)
        assert counts["tail"] / n == pytest.approx(0.40, abs=0.03), (lang, counts)
    # the corpus stage fits the same thresholds on the same documents as were stored
    fitted = run_corpus_stage(ScoreBuckets(score=score, higher_is_better=score == "ref_prob", keep=("head", "middle", "tail")), scored)[2]
    assert {k: (v["head"], v["middle"]) for k, v in fitted["languages"].items()} == \
        {k: (v["head"], v["middle"]) for k, v in stage.table["languages"].items()}


def test_manifest_records_files_data_parameters_and_metrics(built):
    manifest = json.loads((built["out"] / "manifest.json").read_text())
    assert set(manifest["models"]) == {"kenlm", "wikiref", "quality_thresholds"}
    for name, entry in manifest["models"].items():
        root = Path(entry["path"]) if Path(entry["path"]).is_dir() else Path(entry["path"]).parent
        assert entry["files"] and entry["data"] and entry["parameters"] and entry["metrics"], name
        for f in entry["files"]:
            assert hashlib.sha256((root / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert {f["path"] for f in manifest["models"]["kenlm"]["files"]} == {"en.arpa.bin", "en.sp.model", "zh.arpa.bin", "zh.sp.model"}
    assert manifest["models"]["kenlm"]["parameters"]["order"] == 5
    assert manifest["models"]["wikiref"]["parameters"]["thread"] == 1
    assert manifest["models"]["wikiref"]["data"]["examples"]["positive:zh:wiki"] > 0


def test_the_build_is_deterministic_given_a_seed(built, tmp_path):
    build_quality(built["data"], tmp_path, ["kenlm", "wikiref"], built["ctx"], kenlm={"langs": ["zh"]})  # zh only: time
    first = json.loads((built["out"] / "manifest.json").read_text())["models"]
    second = json.loads((tmp_path / "manifest.json").read_text())["models"]
    assert second["wikiref"]["files"] == first["wikiref"]["files"] and second["wikiref"]["metrics"] == first["wikiref"]["metrics"]
    zh = [f for f in first["kenlm"]["files"] if f["path"].startswith("zh.")]
    assert len(zh) == 2 and second["kenlm"]["files"] == zh
    assert second["kenlm"]["metrics"]["zh"] == first["kenlm"]["metrics"]["zh"]


def test_unscorable_documents_land_in_the_tail_and_bad_models_stop_the_run(built, tmp_path):
    out = built["out"]
    ppl = Perplexity(str(out / "kenlm"), ("en", "zh"))
    ref = RefProb(str(out / "wikiref" / "wikiref.bin"))
    bucket = QualityBucket(str(out / "quality" / "thresholds.json"), keep=("head", "middle", "tail"))
    for text, lang in (("12 34 -- ... 56", "en"), ("Ceci est une phrase française tout à fait normale.", "fr"), ("", "en")):
        doc = bucket(ref(ppl(Document(id="x", text=text, source="s", lang=lang))))
        assert doc.metadata.perplexity == math.inf and doc.metadata.bucket == "tail"
    assert ref(Document(id="y", text="0 1 2 3", source="s")).metadata.ref_prob == 0.0
    unscored = Document(id="z", text="Real text.", source="s", lang="en", metadata=DocMetadata(perplexity=0.0))
    assert bucket(unscored).metadata.bucket == "tail"  # the perplexity stage never ran on it

    def job(**sections) -> None:
        cfg = RunConfig(steps=["extract", "langid", "perplexity", "ref_prob", "quality_bucket"])
        for section, values in sections.items():
            for k, v in values.items():
                setattr(getattr(cfg, section), k, v)
        build_job_recipe(cfg)

    paths = {"perplexity": {"models": str(out / "kenlm")}, "ref_prob": {"model": str(out / "wikiref" / "wikiref.bin")},
             "quality_bucket": {"reference": str(out / "quality" / "thresholds.json")}}
    job(**paths)  # the good models build
    corrupt = tmp_path / "kenlm"
    shutil.copytree(out / "kenlm", corrupt)
    (corrupt / "zh.arpa.bin").write_bytes(b"not a language model")
    garbage = tmp_path / "ref.bin"
    garbage.write_bytes(b"\x00" * 64)
    bad_json = tmp_path / "thresholds.json"
    bad_json.write_text("{not json")
    cases = [
        ({"perplexity": {"models": str(tmp_path / "missing")}}, "missing"),
        ({"perplexity": {"models": str(corrupt)}}, "cannot be loaded"),
        ({"ref_prob": {"model": str(garbage)}}, "cannot be loaded"),
        ({"quality_bucket": {"reference": str(bad_json)}}, "cannot be read"),
        ({"quality_bucket": {"cuts": [30.5, 60.0]}}, "whole percentiles"),
        ({"quality_bucket": {"score": "lang_score"}}, "quality_bucket.score"),
        ({"quality_bucket": {"keep": ["best"]}}, "unknown bucket"),
    ]
    for override, message in cases:
        sections = {k: dict(v) for k, v in paths.items()}
        for k, v in override.items():
            sections[k].update(v)
        with pytest.raises(ConfigError, match=message):
            job(**sections)


def test_score_command_writes_one_line_per_document(built, tmp_path):
    from skypile.cli import main

    wiki = _held_out_wiki(built, "en")[0]
    rows = [
        {"id": "wiki", "text": wiki},
        {"id": "zh-web", "text": _web(built, "zh")[0], "lang": "zh"},
        {"id": "digits", "text": "123 456 789", "lang": "en"},
        {"id": "fr", "text": "Le chat est assis sur le tapis, et il regarde la pluie tomber dehors.", "lang": "fr"},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n{broken\n")
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--input", str(src), "--output", str(out), "--models", str(built["out"]), "--no-progress"]) == 0
    got = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(got) == ["wiki", "zh-web", "digits", "fr"]
    assert set(got["wiki"]) == {"id", "lang", "perplexity", "ref_prob", "bucket"}
    assert got["wiki"]["lang"] == "en" and got["wiki"]["perplexity"] > 1 and got["wiki"]["bucket"] == "head"
    assert got["wiki"]["ref_prob"] > 0.5 > got["zh-web"]["ref_prob"]
    assert got["digits"]["perplexity"] is None and got["digits"]["bucket"] == "tail"
    assert got["fr"]["perplexity"] is None and got["fr"]["bucket"] == "tail"
    assert main(["score", "--input", str(src), "--output", str(out), "--models", str(tmp_path / "none"), "--no-progress"]) == 2


def test_the_web_job_on_the_shared_pages_writes_buckets_into_its_shards(built, tokenizer_model, tmp_path):
    from skypile.cli import main
    from skypile.readers.warc_builder import shared_pages, write_warc

    pages = list(shared_pages())
    picked = pages[:25] + pages[-25:]  # English (trafilatura-eval) and Chinese (cleaneval-zh) pages
    warc = tmp_path / "pages.warc.gz"
    with open(warc, "wb") as f:
        write_warc(f, picked, "50 real pages")
    out = built["out"]
    steps = "steps=[extract, langid, lang_filter, length, perplexity, ref_prob, quality_bucket, tokenize]"
    rc = main(["run", "--runner", "local", "--input", str(warc), "--output", str(tmp_path / "run"), "--tokenizer", tokenizer_model,
               "--no-progress", "--set", steps, "--set", f"perplexity.models={out / 'kenlm'}",
               "--set", f"ref_prob.model={out / 'wikiref' / 'wikiref.bin'}",
               "--set", f"quality_bucket.reference={out / 'quality' / 'thresholds.json'}"])
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert rc == 0 and stats["balanced"]
    docs = [d for s in sorted((tmp_path / "run" / "shards").iterdir()) for d in table_to_documents(pq.read_table(s))]
    assert docs and {d.metadata.bucket for d in docs} <= {"head", "middle"}
    assert {d.lang for d in docs} == {"en", "zh"}
    assert all(d.metadata.perplexity > 1 and 0 <= d.metadata.ref_prob <= 1 for d in docs)
    assert stats["stages"]["quality_bucket"]["dropped"].get("bucket_tail", 0) > 0
    assert stats["stages"]["quality_bucket"]["kept"] == len(docs)
