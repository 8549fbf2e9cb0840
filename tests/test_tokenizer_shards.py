"""Compact shards: token ids are list<uint16> for vocabularies up to 65,536 pieces and list<uint32>
above; the pipeline picks the type from the tokenizer, and the trainer reads both the same way."""

from __future__ import annotations

import json
from array import array
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from skypile.cli import main
from skypile.data_paths import REPO_ROOT, shared_data_dir
from skypile.document import SCHEMA_VERSION, Document, documents_to_table, shard_schema, token_type_for
from skypile.executor.plan import compile_passes
from skypile.tokenizer.build import build_vocabulary
from skypile.tokenizer.extend import extend_model
from skypile.tokenizer.spm import Tokenize, load_tokenizer, train_bpe, write_model


@pytest.fixture(scope="module")
def small_model(tmp_path_factory, shared) -> str:
    """The small test recipe (models/tokenizer/recipe-small.json): same steps as the full one, 6,000 pieces."""
    recipe = json.loads((REPO_ROOT / "models" / "tokenizer" / "recipe-small.json").read_text())
    for rel in recipe["base"]["inputs"] + recipe["chinese"]["inputs"]:
        shared(*rel.split("/"))
    return build_vocabulary(recipe, shared_data_dir(), str(tmp_path_factory.mktemp("small")))


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory, shared) -> str:
    """A vocabulary above 65,536 pieces: a small base plus 66,000 single CJK characters (Unified + Extension B)."""
    base, _ = train_bpe([str(shared("wiki", "en", "wikitext-2-raw-test.txt"))], 1000)
    ext = extend_model(base, WIDE_CHARS)
    return write_model(str(tmp_path_factory.mktemp("wide")), ext.model, {"recipe": "test: wide"})


WIDE_CHARS = [chr(c) for c in range(0x4E00, 0x9FA6)] + [chr(c) for c in range(0x20000, 0x20000 + 66_000 - 20_902)]
RARE = "".join(WIDE_CHARS[-3:])  # CJK Extension C characters: ids above 65,535 in the wide vocabulary


def _docs(sp, texts: list[str]) -> list[Document]:
    return [Document(id=f"d{i}", text=t, source="test", tokens=array("i", sp.encode(t))) for i, t in enumerate(texts)]


def test_token_type_follows_the_vocabulary(small_model, wide_model):
    assert (token_type_for(65_536), token_type_for(65_537)) == ("uint16", "uint32")
    assert Tokenize(small_model).token_type == "uint16" and Tokenize(wide_model).token_type == "uint32"
    assert load_tokenizer(wide_model).get_piece_size() == 67_000
    passes = compile_passes([Tokenize(wide_model)])
    assert passes[-1].tokenized and passes[-1].token_type == "uint32"
    assert shard_schema().field("tokens").type == pa.list_(pa.uint16()) and SCHEMA_VERSION == 4


def test_writer_checks_ids_against_the_column_type(wide_model):
    sp = load_tokenizer(wide_model)
    docs = _docs(sp, [f"漢字と{RARE} mixed with English words", "plain English only"])
    assert max(docs[0].tokens) > 65_535
    with pytest.raises(ValueError, match="does not fit uint16"):
        documents_to_table(docs, with_tokens=True)
    table = documents_to_table(docs, with_tokens=True, token_type="uint32")
    assert table.schema.field("tokens").type == pa.list_(pa.uint32())
    assert table.column("tokens").to_pylist() == [list(d.tokens) for d in docs]
    with pytest.raises(ValueError, match="-1 does not fit"):
        documents_to_table([Document(id="x", text="x", source="t", tokens=[5, -1])], with_tokens=True)


def _export(tmp_path: Path, model: str, texts: list[str], name: str) -> Path:
    src = tmp_path / f"{name}.jsonl"
    src.write_text("".join(json.dumps({"id": f"{name}{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / name
    assert main(["export", "--input", str(src), "--output", str(out), "--tokenizer", model, "--no-progress"]) == 0
    return out


def _texts(shared) -> list[str]:
    zh = [json.loads(line)["text"] for line in shared("domains", "zh", "skywork-eval-loss", "zh_tech.jsonl").read_text().splitlines()[:30]]
    en = [doc for doc in shared("wiki", "en", "wikitext-2-raw-test.txt").read_text().split("\n = ") if doc.strip()][:20]
    return zh + en + [f"{RARE} — rare characters past the first 65,536 ids of the wide vocabulary"]


def test_pipeline_writes_uint16_or_uint32_and_the_trainer_reads_both(tmp_path, small_model, wide_model, shared):
    torch = pytest.importorskip("torch")  # noqa: F841
    from skypile.trainer.data import Reader, check_shards, list_units, open_dataset

    texts = _texts(shared)
    for name, model, id_type in (("narrow", small_model, pa.uint16()), ("wide", wide_model, pa.uint32())):
        out = _export(tmp_path, model, texts, name)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["schema_version"] == 4 and f"list<element: {id_type}>" in manifest["schema"].replace("item", "element")
        sp = load_tokenizer(model)
        got = {}
        for shard in manifest["shards"]:
            table = pq.read_table(out / shard["path"])
            assert table.schema.field("tokens").type == pa.list_(id_type)
            got.update(zip(table.column("text").to_pylist(), table.column("tokens").to_pylist()))
        assert got == {t: sp.encode(t) for t in texts}  # ids exactly as SentencePiece gives them
        root, manifest = open_dataset(out)
        assert check_shards(root, manifest) == {}
        reader = Reader(list_units(root, manifest), 0, 1, seq_len=128, eos_id=sp.eos_id())
        epoch = (manifest["tokens"] + manifest["rows"]) // 129 + 1  # every document once, with its EOS
        stream = np.concatenate([reader.next_window() for _ in range(epoch)])
        assert stream.dtype == np.int64 and stream.max() < sp.get_piece_size()
        if name == "wide":
            assert stream.max() > 65_535  # the rare characters' ids came through uint32 intact


def test_uint16_shards_read_like_int32_ones(tmp_path, small_model, shared):
    """The same documents in a uint16 and in a uint32 shard give the trainer the same windows."""
    pytest.importorskip("torch")
    from skypile.trainer.data import Reader, list_units, open_dataset
    from skypile.writers.parquet import write_manifest, write_shard

    sp = load_tokenizer(small_model)
    docs = _docs(sp, _texts(shared))
    streams, widths = [], []
    for token_type in ("uint16", "uint32"):
        out = tmp_path / token_type
        info = write_shard(docs, str(out), 0, 1, row_group_rows=8, token_type=token_type)
        manifest = write_manifest(str(out), [info], tokenizer={"eos_id": sp.eos_id()}, token_type=token_type)
        assert pq.read_schema(out / info.path).field("tokens").type == pa.list_(getattr(pa, token_type)())
        root, manifest = open_dataset(out)
        reader = Reader(list_units(root, manifest), 0, 1, seq_len=64, eos_id=sp.eos_id())
        streams.append(np.concatenate([reader.next_window() for _ in range(30)]))
        widths.append(pq.read_table(out / info.path, columns=["tokens"]).column(0).combine_chunks().values.nbytes)
    assert np.array_equal(streams[0], streams[1])
    assert widths[0] * 2 == widths[1]  # in memory (Arrow), where the trainer keeps them: half the bytes


def test_same_recipe_and_data_build_the_same_bytes(small_model, shared, tmp_path):
    recipe = json.loads((REPO_ROOT / "models" / "tokenizer" / "recipe-small.json").read_text())
    again = build_vocabulary(recipe, shared_data_dir(), str(tmp_path))
    assert Path(again).read_bytes() == Path(small_model).read_bytes()
    assert load_tokenizer(again).get_piece_size() == 6000


def test_without_shared_data_the_recipe_still_builds_65536_pieces(tmp_path):
    """The fallback: the bundled default WARC's pages for the base, jieba's dictionary for the rest."""
    from skypile.tokenizer.build import build_from_recipe

    recipe = json.loads((REPO_ROOT / "models" / "tokenizer" / "recipe.json").read_text())
    empty = tmp_path / "no-shared-data"
    empty.mkdir()
    path = build_from_recipe(recipe, empty, tmp_path / "build" / "tokenizer" / "skypile-sp.model")
    sp = load_tokenizer(path)
    card = json.loads((Path(path).parent / "tokenizer.json").read_text())
    assert sp.get_piece_size() == 65_536 and card["chars_added"] == 8000 and card["words_added"] > 25_000
    assert sp.encode("北京大学成立于1898年", out_type=str) == ["北京大学", "成立", "于", "1", "8", "9", "8", "年"]
