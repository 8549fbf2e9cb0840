"""The mixer: target shares under the epoch cap, infeasible targets named, the stage-2 ramp, the trainer's input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skypile.cli import main
from skypile.mix import MixError, load_sources, load_target, make_mix, solve

SOURCES = """
sources:
  - {name: wiki/en, lang: en, tokens: 10B, tier: high}
  - {name: web/en, lang: en, tokens: 2T, tier: web}
  - {name: wiki/zh, lang: zh, tokens: 5B, tier: high}
  - {name: web/zh, lang: zh, tokens: 1T, tier: web}
  - {name: code/github, lang: code, tokens: 300B, tier: web, stem: true}
  - {name: arxiv, lang: other, tokens: 20B, tier: high, stem: true}
  - {name: parallel/en-zh, lang: other, tokens: 5000000000, tier: web}
"""
PAPER = {"en": 0.498, "zh": 0.396, "code": 0.08, "other": 0.024}


def write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def check_mix(mix: dict, target: dict) -> None:
    """Shares within 0.5 points of the (normalized) target; no source past its tier's cap, stage 2 included."""
    norm = {k: v / sum(target.values()) for k, v in target.items()}
    for lang, share in norm.items():
        assert abs(mix["achieved"][lang] - share) < 0.005, (lang, mix["achieved"])
    for s in mix["sources"]:
        cap = 5.0 if s["tier"] == "high" else 1.0
        assert s["epochs"] <= cap + 1e-9 and s["epochs_total"] <= cap + 1e-9, s
        assert s["tokens"] == pytest.approx(s["epochs"] * s["available_tokens"], rel=1e-6, abs=1)
    assert sum(s["tokens"] for s in mix["sources"]) == pytest.approx(mix["total_tokens"], rel=1e-6)
    assert sum(mix["weights"].values()) == pytest.approx(1.0, abs=1e-6)


def test_a_feasible_total_hits_the_target_and_upsamples_high_quality(tmp_path):
    src = write(tmp_path, "sources.yaml", SOURCES)
    tgt = write(tmp_path, "target.yaml", "target: {en: 0.498, zh: 0.396, code: 0.08, other: 0.024}\ntotal_tokens: 1T\n")
    mix = make_mix(src, tgt)
    check_mix(mix, PAPER)
    by = {s["name"]: s for s in mix["sources"]}
    assert mix["total_tokens"] == 10**12 and "limited_by" not in mix
    # plenty of web text: high-tier sources are still sampled 5x as densely as web in their language
    assert by["wiki/en"]["epochs"] == pytest.approx(5 * by["web/en"]["epochs"], rel=1e-6) and by["web/en"]["epochs"] < 1
    assert 1 < by["wiki/zh"]["epochs"] <= 5 and by["wiki/zh"]["epochs"] == pytest.approx(5 * by["web/zh"]["epochs"], rel=1e-6)


def test_without_a_total_the_largest_mix_under_the_cap(tmp_path):
    src = write(tmp_path, "sources.yaml", SOURCES)
    tgt = write(tmp_path, "target.yaml", "target: {en: 0.5, zh: 0.4, code: 0.08, other: 0.02}\nstage2: {tokens: 0}\n")
    mix = make_mix(src, tgt)
    check_mix(mix, {"en": 0.5, "zh": 0.4, "code": 0.08, "other": 0.02})
    by = {s["name"]: s for s in mix["sources"]}
    # zh allows (5B x 5 + 1T) / 0.4 = 2.5625T; other (20B x 5 + 5B) / 0.02 = 5.25T; so zh limits it, at its caps
    assert mix["limited_by"] == "zh" and mix["total_tokens"] == pytest.approx(2.5625e12, rel=1e-9)
    assert by["wiki/zh"]["epochs"] == pytest.approx(5.0) and by["web/zh"]["epochs"] == pytest.approx(1.0)
    assert mix["stage2"] is None and len(mix["schedule"]) == 1


def test_an_infeasible_target_names_the_language_and_sources_that_limit_it(tmp_path, capsys):
    src = write(tmp_path, "sources.yaml", SOURCES)
    tgt = write(tmp_path, "target.yaml", "target: {en: 0.498, zh: 0.396, code: 0.08, other: 0.024}\ntotal_tokens: 3T\n")
    with pytest.raises(MixError) as err:
        make_mix(src, tgt)
    msg = str(err.value)
    assert "zh needs" in msg and "wiki/zh" in msg and "web/zh" in msg and "at most" in msg
    rc = main(["mix", "--sources", src, "--target", tgt, "--out", str(tmp_path / "mix.json")])
    out = capsys.readouterr().err.strip()
    assert rc == 2 and "limited by wiki/zh, web/zh" in out and len(out.splitlines()) == 1
    assert not (tmp_path / "mix.json").exists()
    # a language with a share but no source at all
    no_code = write(tmp_path, "nocode.yaml", SOURCES.replace("lang: code", "lang: other"))
    with pytest.raises(MixError, match="gives code 8.0% but no source has lang code"):
        make_mix(no_code, tgt)


def test_stage2_ramps_stem_from_10_to_40_percent_under_the_cap(tmp_path):
    src = write(tmp_path, "sources.yaml", SOURCES)
    mix = make_mix(src, None)  # the paper's stage 1, largest total, default stage 2 (6.5% of stage 1)
    check_mix(mix, PAPER)
    s2 = mix["stage2"]
    assert s2["tokens"] == round(mix["total_tokens"] * 130 / 2000)
    shares = [p["stem_share"] for p in s2["phases"]]
    assert shares == sorted(shares) and shares[0] == pytest.approx(0.1) and shares[-1] == pytest.approx(0.4)
    assert s2["stem_share_mean"] == pytest.approx(0.2, abs=0.01)
    assert s2["phases"][0]["start"] == mix["total_tokens"] and s2["stem_sources"] == ["arxiv", "code/github"]
    for p in s2["phases"]:
        assert sum(p["weights"][n] for n in s2["stem_sources"]) == pytest.approx(p["stem_share"], abs=1e-6)
        assert sum(p["weights"].values()) == pytest.approx(1.0, abs=1e-6)
    assert mix["schedule"][0] == [0, mix["weights"]] and [p[0] for p in mix["schedule"][1:]] == [p["start"] for p in s2["phases"]]
    # the stage-1 total left room for stage 2 under the cap (zh sources were at their cap without it)
    assert "with stage 2" in mix["limited_by"] and max(s["epochs_total"] for s in mix["sources"] if s["lang"] == "zh") == pytest.approx(5.0, rel=1e-6)


def test_stage2_past_the_cap_is_an_error(tmp_path):
    src = write(tmp_path, "sources.yaml", SOURCES)
    tgt = write(tmp_path, "target.yaml", "target: {en: 0.498, zh: 0.396, code: 0.08, other: 0.024}\ntotal_tokens: 2.5T\n"
                                         "stage2: {tokens: 1T}\n")
    with pytest.raises(MixError, match="past the epoch cap"):
        make_mix(src, tgt)


def test_token_counts_from_our_own_shards(tmp_path, shared, tokenizer_model):
    shard_dir = tmp_path / "web-en"
    rc = main(["export", "--input", str(shared("web", "en", "dolma", "cc_en_head-0091.jsonl")), "--output", str(shard_dir),
               "--tokenizer", tokenizer_model, "--no-progress"])  # Dolma rows name their source: common-crawl
    assert rc == 0
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    src = write(tmp_path, "sources.yaml", f"""
sources:
  - {{name: common-crawl, lang: en, manifest: {shard_dir}/manifest.json, tier: web}}
  - {{name: wiki/zh, lang: zh, tokens: 40000, tier: high}}
""")
    sources = load_sources(src)
    assert sources[0].tokens == manifest["tokens"] > 0
    mix = solve(sources, load_target(write(tmp_path, "t.yaml", "target: {en: 0.5, zh: 0.5}\n")))
    check_mix(mix, {"en": 0.5, "zh": 0.5, "code": 0.0, "other": 0.0})
    wrong = write(tmp_path, "wrong.yaml", f"sources:\n  - {{name: web/zh, lang: zh, manifest: {shard_dir}/manifest.json}}\n")
    with pytest.raises(MixError, match="no rows with source='web/zh'.*its sources: common-crawl"):
        load_sources(wrong)


@pytest.mark.parametrize("text, message", [
    ("sources:\n  - {name: a, lang: fr, tokens: 1, tier: web}\n", "lang must be one of"),
    ("sources:\n  - {name: a, lang: en, tokens: 1, tier: gold}\n", "tier must be one of"),
    ("sources:\n  - {name: a, lang: en, tier: web}\n", "exactly one of tokens or manifest"),
    ("sources:\n  - {name: a, lang: en, tokens: lots}\n", "not a token count"),
    ("sources:\n  - {name: a, lang: en, tokens: 1}\n  - {name: a, lang: zh, tokens: 1}\n", "listed twice"),
    ("sources:\n  - {name: a, lang: en, tokens: 1, weight: 3}\n", "unknown key"),
])
def test_bad_sources_files(tmp_path, text, message):
    with pytest.raises(MixError, match=message):
        load_sources(write(tmp_path, "s.yaml", text))


def test_bad_target_files(tmp_path):
    with pytest.raises(MixError, match="sum to 1"):
        load_target(write(tmp_path, "t.yaml", "target: {en: 0.5, zh: 0.3}\n"))
    with pytest.raises(MixError, match="maps en, zh, code, other"):
        load_target(write(tmp_path, "t.yaml", "target: {en: 0.5, fr: 0.5}\n"))
    assert load_target(write(tmp_path, "t.yaml", "target: {en: 1}\nmax_epochs: 3\n")).max_epochs == {"high": 3.0, "web": 1.0}


def test_the_trainer_takes_the_mix(tmp_path):
    from skypile.trainer.config import apply_overrides, get_config

    src = write(tmp_path, "sources.yaml", SOURCES)
    out = tmp_path / "mix.json"
    assert main(["mix", "--sources", src, "--out", str(out)]) == 0
    mix = json.loads(out.read_text())
    cfg = apply_overrides(get_config("tiny"), [f"mix={out}"])
    assert cfg.data_weights == mix["weights"] and cfg.mix_schedule == mix["schedule"]
    assert cfg.mix_schedule[1][0] == mix["total_tokens"] and len(cfg.mix_schedule) == 1 + len(mix["stage2"]["phases"])


def _shards(out: Path, per_source: dict[str, list[int]], tokenized: bool = True) -> Path:
    """A shard directory written by the pipeline's own writer: documents of the given token counts per source."""
    from skypile.document import Document
    from skypile.executor.pack import write_manifest as pack_manifest
    from skypile.writers.parquet import write_manifest, write_shard

    docs = [Document(id=f"{source}/{i}", text="x", source=source, lang="en", tokens=[5] * n)
            for source, sizes in per_source.items() for i, n in enumerate(sizes)]
    info = write_shard(docs, str(out), 0, 1)
    if tokenized:
        write_manifest(str(out), [info], tokenizer={"vocab_size": 4000, "eos_id": 2})
    else:
        pack_manifest(str(out), [info], tokenized=False, extra={})
    return out


def test_sources_are_the_source_values_of_their_rows(tmp_path):
    """Each manifest lists its sources; a name may be left out when the manifest holds one; a name
    the manifest lacks, a manifest of several sources without a name, text-only shards: one line each."""
    one = _shards(tmp_path / "one", {"web/a": [10, 11, 12]})
    two = _shards(tmp_path / "two", {"web/a": [4], "web/b": [20, 30]})
    assert json.loads((two / "manifest.json").read_text())["sources"] == {"web/a": {"rows": 1, "tokens": 4},
                                                                        "web/b": {"rows": 2, "tokens": 50}}
    src = write(tmp_path, "s.yaml", "sources:\n  - {lang: en, manifest: one}\n  - {name: web/b, lang: zh, manifest: two/manifest.json}\n")
    sources = load_sources(src)  # manifests relative to sources.yaml, as a directory or its manifest.json
    assert [(s.name, s.tokens) for s in sources] == [("web/a", 33), ("web/b", 50)]
    assert [s.manifest for s in sources] == [str(one / "manifest.json"), str(two / "manifest.json")]  # absolute
    with pytest.raises(MixError, match=r"holds several: web/a, web/b: give name"):
        load_sources(write(tmp_path, "s2.yaml", "sources:\n  - {lang: en, manifest: two}\n"))
    with pytest.raises(MixError, match=r"no rows with source='web/c' .*its sources: web/a, web/b\)"):
        load_sources(write(tmp_path, "s3.yaml", "sources:\n  - {name: web/c, lang: en, manifest: two}\n"))
    text = _shards(tmp_path / "text", {"web/a": [3]}, tokenized=False)
    with pytest.raises(MixError, match=f"not trainable: text only .*skypile export --input '{text}/shards/"):
        load_sources(write(tmp_path, "s4.yaml", "sources:\n  - {name: web/a, lang: en, manifest: text}\n"))
