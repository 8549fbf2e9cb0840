"""The parallel recipe: en–zh pairs from CSV/TSV/JSONL/aligned files, per-pair checks, dedup; both executors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from skypile.cli import main
from skypile.document import Document, Dropped, table_to_documents
from skypile.parallel.pairs import PairFilter, han_share, length_ratio, pair_text, split_pair
from skypile.readers.parallel import ParallelSource
from skypile.readers.sources import InputError

EN = "The statement added that Warren's colleagues were shocked and want him to turn himself in."
ZH = "声明补充说，沃伦的同事都深感震惊，并且希望他能够投案自首。"


def read_all(paths: list[str], **kw) -> list[Document | Dropped]:
    src = ParallelSource(**kw)
    src.check(paths)
    return [x for s in src.splits(paths) for x in src.read(s)]


def test_pair_text_is_english_then_chinese_one_line_each():
    text = pair_text("  Two\nlines  of English ", "两行\n中文")
    assert text == "Two lines of English\n两行 中文" and split_pair(text) == ("Two lines of English", "两行 中文")


@pytest.fixture(scope="module")
def pair_filter() -> PairFilter:
    f = PairFilter()
    f.check()
    return f


def test_pair_filter_rules(pair_filter):
    def reason(en: str, zh: str) -> str:
        out = pair_filter(Document(id="p", text=pair_text(en, zh), source="parallel/en-zh"))
        return out.reason if isinstance(out, Dropped) else out.lang

    assert reason(EN, ZH) == "en-zh"
    assert reason("Goodbye.", "再见。") == "en-zh"  # short: lid.176 is unsure of both sides, the script settles Chinese
    assert reason(EN, EN) == "untranslated"
    assert reason(EN, "震惊。") == "length_ratio" and length_ratio(EN, "震惊。") > 8
    assert reason("Shocked.", ZH) == "length_ratio"
    assert reason("La déclaration ajoute que les collègues de Warren ont été choqués.", ZH) == "en_side_lang"
    assert reason(EN, "声明によると、ウォーレンの同僚たちはショックを受けており、自首してほしいと考えている。") == "zh_side_lang"
    assert han_share("ウォーレンの同僚") == 0.0 and han_share(ZH) == 1.0
    assert reason(EN, "") == "empty_side"


def test_reads_csv_tsv_jsonl_and_aligned_files(tmp_path):
    with open(tmp_path / "a.csv", "w", newline="") as f:  # English first: the Chinese column is detected
        w = csv.writer(f)
        w.writerow(["english", "chinese"])
        w.writerows([[EN, ZH], ["Hello, world.", "你好，世界。"], ["no counterpart"]])
    (tmp_path / "b.tsv").write_text("src\tzh_text\ten_text\nx\t你好\tHello\n")
    (tmp_path / "c.jsonl").write_text(json.dumps({"translation": {"en": EN, "zh": ZH}}) + "\n" + json.dumps({"en": "Hi", "zh": "嗨"}) + "\nnot json\n")
    (tmp_path / "d.zh").write_text("第一行\n第二行\n")
    (tmp_path / "d.en").write_text("First line\nSecond line\n")
    paths = [str(tmp_path / n) for n in ("a.csv", "b.tsv", "c.jsonl", "d.en", "d.zh")]
    out = read_all(paths, zh_column="", en_column="")
    docs = [x for x in out if isinstance(x, Document)]
    drops = sorted(x.reason for x in out if isinstance(x, Dropped))
    texts = [d.text for d in docs]
    assert texts[:2] == [pair_text(EN, ZH), "Hello, world.\n你好，世界。"]
    assert "Hello\n你好" in texts  # TSV: columns detected among three
    assert texts.count(pair_text(EN, ZH)) == 2 and "Hi\n嗨" in texts
    assert texts[-2:] == ["First line\n第一行", "Second line\n第二行"]  # the aligned pair read once, from d.zh
    assert drops == ["bad_json", "empty_side"]
    assert len({d.id for d in docs}) == len(docs) and all(d.source == "parallel/en-zh" and d.lang == "en-zh" for d in docs)
    named = read_all([str(tmp_path / "b.tsv")], zh_column="zh_text", en_column="en_text")
    assert [d.text for d in named] == ["Hello\n你好"]


def test_bad_parallel_inputs_are_input_errors(tmp_path):
    (tmp_path / "one.csv").write_text("only\nx\n")
    (tmp_path / "lonely.zh").write_text("你好\n")
    (tmp_path / "x.txt").write_text("hi\n")
    (tmp_path / "rows.jsonl").write_text(json.dumps({"source": "a", "target": "b"}) + "\n")
    for name, message in [("one.csv", "needs a Chinese and an English column"), ("lonely.zh", "lonely.en is missing"),
                          ("x.txt", "unknown format"), ("rows.jsonl", "need zh and en fields")]:
        with pytest.raises(InputError, match=message):
            ParallelSource().check([str(tmp_path / name)])
    (tmp_path / "two.csv").write_text("chinese,english\n你好,hello\n")
    with pytest.raises(InputError, match="no column 'zh'"):
        ParallelSource(zh_column="zh", en_column="en").check([str(tmp_path / "two.csv")])


def test_aligned_files_split_on_newline_only_and_unequal_ones_are_refused(tmp_path):
    """A lone \r inside a Chinese line is text: splitting there shifted every later pair by one (16 of 18 wrong)."""
    zh = [f"第{i}句话，这是中文。" for i in range(18)]
    zh[2] = "第2句\r话，中间有一个回车。"
    en = [f"Sentence number {i} in English." for i in range(18)]
    (tmp_path / "a.zh").write_bytes(("\r\n".join(zh) + "\r\n").encode())  # CRLF ends: stripped
    (tmp_path / "a.en").write_text("\n".join(en))  # no newline after the last line: still 18 lines
    docs = read_all([str(tmp_path / "a.zh")])
    assert [split_pair(d.text) for d in docs] == [(e, z.replace("\r", " ")) for e, z in zip(en, zh)]
    (tmp_path / "b.zh").write_text("一\n二\n三\n")
    (tmp_path / "b.en").write_text("one\ntwo\n")
    with pytest.raises(InputError, match=r"b.zh: 3 lines, .*b.en: 2 lines"):
        ParallelSource().check([str(tmp_path / "b.en")])


def test_csv_errors_are_counted_per_row_and_a_headerless_csv_keeps_its_first_pair(tmp_path):
    rows = [[f"Sentence {i} is in English.", f"第{i}句是中文。"] for i in range(20)]
    lines = [f'"{en}",{zh}' for en, zh in rows]
    lines[5] = '"Sentence 5 has an unterminated quote,第5句。'  # swallowed the rows after it before
    lines[9] = 'Sentence 9 "stray" quote,第9句。'  # strict: a quote inside an unquoted field is fine
    lines[12] = '"Sentence 12" trailing,第12句。'  # text after a closing quote: malformed
    (tmp_path / "noheader.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = read_all([str(tmp_path / "noheader.csv")])
    assert len(out) == 20  # one item per row: records in = kept + dropped
    bad = [x for x in out if isinstance(x, Dropped)]
    assert [(x.reason, x.detail.split(":")[1]) for x in bad] == [("bad_csv", "6"), ("bad_csv", "13")]
    docs = [x for x in out if isinstance(x, Document)]
    assert split_pair(docs[0].text) == tuple(rows[0])  # no header: the first row is a pair
    want = [tuple(r) for i, r in enumerate(rows) if i not in (5, 12)]
    want[8] = ('Sentence 9 "stray" quote', "第9句。")
    assert [split_pair(d.text) for d in docs] == want  # every pair still aligned after the bad rows


@pytest.fixture(scope="module")
def wmt_sample(shared, tmp_path_factory) -> list[str]:
    """WMT19 rows 1-500 and WMT18 rows 1-300 (real), plus 40 WMT19 pairs served again in another file."""
    d = tmp_path_factory.mktemp("wmt")
    folder = shared("parallel", "wmt-newstest-zh2en")
    out = []
    for name, n in (("newstest-zh2en-wmt19.csv", 500), ("newstest-zh2en-wmt18.csv", 300)):
        with open(folder / name, newline="") as f:
            rows = list(csv.reader(f))[: n + 1]
        with open(d / name, "w", newline="") as f:
            csv.writer(f).writerows(rows)
        out.append(str(d / name))
    with open(d / out[0], newline="") as f:
        again = list(csv.reader(f))[1:41]
    with open(d / "repeat.csv", "w", newline="") as f:
        csv.writer(f).writerows([["zh", "en"], *again])
    return [*out, str(d / "repeat.csv")]


def _run(inputs: list[str], out: Path, tokenizer: str, *extra: str) -> dict:
    args = ["parallel", "--output", str(out), "--tokenizer", tokenizer, "--no-progress", "--shard-size", "64KB", *extra]
    for i in inputs:
        args += ["--input", i]
    assert main(args) == 0
    return json.loads((out / "stats.json").read_text())


def test_parallel_recipe_on_wmt_local_and_beam(wmt_sample, tokenizer_model, tmp_path):
    local = _run(wmt_sample, tmp_path / "local", tokenizer_model)
    assert local["balanced"] and local["records_in"] == 500 + 300 + 40
    assert list(local["stages"]) == ["read", "pair_filter", "exact_dedup", "tokenize", "write"]
    st = local["stages"]
    assert st["exact_dedup"]["dropped"]["exact_duplicate"] >= 38  # the repeated pairs (less any the filter dropped)
    assert 0 < sum(st["pair_filter"]["dropped"].values()) < 0.02 * 840  # real newstest pairs: few fail the checks
    docs = [d for p in sorted((tmp_path / "local" / "shards").iterdir()) for d in table_to_documents(pq.read_table(p))]
    assert len(docs) == local["kept"] and sum(len(d.tokens) for d in docs) == local["tokens"]
    with open(wmt_sample[0], newline="") as f:
        first_zh, first_en = list(csv.reader(f))[1]
    assert pair_text(first_en, first_zh) in {d.text for d in docs}
    for d in docs:
        en, zh = split_pair(d.text)
        assert han_share(zh) > 0.3 and han_share(en) == 0.0 and d.lang == "en-zh"
    assert len({d.text for d in docs}) == len(docs)
    beam = _run(wmt_sample, tmp_path / "beam", tokenizer_model, "--runner", "DirectRunner", "--workers", "1")
    assert beam["executor"].startswith("beam") and beam["balanced"]
    assert all(beam["stages"][s]["dropped"] == st[s]["dropped"] for s in st)
    shards = [json.loads((tmp_path / r / "manifest.json").read_text())["shards"] for r in ("local", "beam")]
    assert len(shards[0]) > 1 and [s["sha256"] for s in shards[0]] == [s["sha256"] for s in shards[1]]
