"""The 65,536-piece SkyPile vocabulary: the full recipe on the shared data, its extension by
protobuf editing, lossless round trips on arbitrary Unicode, and transformers' LlamaTokenizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skypile.cli import main
from skypile.data_paths import REPO_ROOT, shared_data_dir
from skypile.readers.jsonl import iter_texts
from skypile.tokenizer.build import build_vocabulary
from skypile.tokenizer.extend import parse_model
from skypile.tokenizer.spm import SPECIALS, load_tokenizer, train_bpe

RECIPES = REPO_ROOT / "models" / "tokenizer"


def _recipe(name: str, shared) -> dict:
    recipe = json.loads((RECIPES / name).read_text())
    for part in ("base", "chinese"):
        for rel in recipe[part]["inputs"]:
            shared(*rel.split("/"))
    return recipe


@pytest.fixture(scope="module")
def full_model(tmp_path_factory, shared) -> str:
    """The README's recipe (models/tokenizer/recipe.json), built from the shared data (~20 s)."""
    return build_vocabulary(_recipe("recipe.json", shared), shared_data_dir(), str(tmp_path_factory.mktemp("full")))


@pytest.fixture(scope="module")
def samples(shared) -> dict[str, list[str]]:
    zh = [json.loads(line)["text"] for line in shared("domains", "zh", "skywork-eval-loss", "zh_news.jsonl").read_text().splitlines()[:150]]
    en = [doc for doc in shared("wiki", "en", "wikitext-2-raw-test.txt").read_text().split("\n = ") if doc.strip()][:40]
    code = [c for _, c in zip(range(80), iter_texts(str(shared("code", "linguist-samples.jsonl.gz"))))]
    return {"zh": zh, "en": en, "code": code}


def test_full_recipe_is_exactly_65536_pieces(full_model):
    sp = load_tokenizer(full_model)
    assert sp.get_piece_size() == 65_536
    assert [sp.id_to_piece(i) for i in range(len(SPECIALS))] == SPECIALS
    assert all(sp.is_control(i) for i in range(1, len(SPECIALS)))  # never produced by encode
    card = json.loads((Path(full_model).parent / "tokenizer.json").read_text())
    assert card["base_vocab_size"] + card["chars_added"] + card["words_added"] == 65_536
    assert card["chars_added"] == 8000 and 24_000 <= card["words_added"] <= 26_000
    assert card["words_from_corpus"] > 20_000  # jieba's dictionary intersected with the Chinese corpus
    words = [sp.id_to_piece(i) for i in range(65_536 - card["words_added"], 65_536)]
    assert all(len(w) >= 2 for w in words) and "北京大学" in words and "中国" in words


def test_chinese_gets_far_fewer_tokens_and_added_pieces_are_used(full_model, samples):
    sp = load_tokenizer(full_model)
    card = json.loads((Path(full_model).parent / "tokenizer.json").read_text())
    base_size = card["base_vocab_size"]
    ids = sp.encode(samples["zh"])
    chars = sum(len(t) for t in samples["zh"])
    assert chars / sum(map(len, ids)) > 1.2  # the base alone spends ~1-3 byte pieces per character
    used = {i for doc in ids for i in doc if i >= base_size}
    assert len(used) > 5000  # thousands of the appended characters and words really occur
    assert sp.encode("北京大学", out_type=str) == ["北京大学"]


def test_every_digit_is_its_own_token(full_model):
    sp = load_tokenizer(full_model)
    for i in range(sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        if any(ch.isdigit() for ch in piece) and not (sp.is_control(i) or sp.is_byte(i)):
            assert len(piece) == 1, piece
    pieces = sp.encode("In 2023 the budget was 1234567.89 yuan, 第３季度增长１２％", out_type=str)
    assert [p for p in pieces if any(ch.isdigit() for ch in p)] == list("20231234567") + ["8", "9", "３", "１", "２"]


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\u2581"), max_size=80)
SPECIAL_STRINGS = st.sampled_from([*SPECIALS, "😀", "👩‍👩‍👧", "𠀋", "𪚥", "\x00", "\r\n", "\u200b", "\ufeff", "١٢٣"])
MIXED = st.lists(st.one_of(TEXT, SPECIAL_STRINGS), max_size=6).map("".join)


def test_round_trip_on_arbitrary_unicode_and_no_special_from_text(full_model):
    sp = load_tokenizer(full_model)

    @settings(max_examples=400, deadline=None, derandomize=True, database=None)
    @given(MIXED)
    def check(text):
        ids = sp.encode(text)
        assert sp.decode(ids) == text
        assert all(i >= len(SPECIALS) for i in ids)  # no <unk> (byte fallback) and no special from plain text

    check()
    # the one exception: U+2581 is SentencePiece's own space marker, so it decodes as a space
    assert sp.decode(sp.encode("a\u2581b")) == "a b"


def test_extension_keeps_base_ids_and_the_cli_reports_what_it_left_out(tmp_path, shared, samples, capsys):
    base_bytes, _ = train_bpe([str(shared("wiki", "en", "wikitext-2-raw-test.txt"))], 1500)
    base_path = tmp_path / "base.model"
    base_path.write_bytes(base_bytes)
    words = tmp_path / "words.txt"  # longer words first in the file: the extension orders them shortest first
    words.write_text("北京大学\t5\n北京\t9\n大学 7\n京大\n中\n北\n京\n大\n学\n国\n中国人民银行\n▁the\n")
    assert main(["tokenizer", "extend", "--base", str(base_path), "--add", str(words), "--out", str(tmp_path / "ext")]) == 0
    assert "10 added, 1 already present, 1 left out" in capsys.readouterr().out
    assert main(["tokenizer", "extend", "--base", str(words), "--add", str(words), "--out", str(tmp_path / "bad")]) == 2
    assert "not a SentencePiece model" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    ext = load_tokenizer(str(tmp_path / "ext" / "skypile-sp.model"))
    base = load_tokenizer(str(base_path))
    old, new = parse_model(base_bytes).pieces, parse_model((tmp_path / "ext" / "skypile-sp.model").read_bytes()).pieces
    assert [(p.piece, p.score, p.type) for p in new[: len(old)]] == [(p.piece, p.score, p.type) for p in old]
    added = [p.piece for p in new[len(old):]]
    assert "北京大学" in added and "中国人民银行" not in added  # its parts are not in the vocabulary: unreachable
    assert "▁the" in [p.piece for p in old] and "▁the" not in added  # already a base piece: left as it is
    assert ext.encode("北京大学", out_type=str) == ["北京大学"]
    assert min(p.score for p in old) > max(p.score for p in new[len(old):])  # base merges keep their priority

    texts = samples["en"][:10] + samples["zh"][:20] + samples["code"][:20]

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(st.one_of(st.sampled_from(texts), MIXED))
    def same_text(text):
        ids = base.encode(text)
        assert ext.decode(ids) == base.decode(ids) == text

    same_text()


def test_transformers_llama_tokenizer_gives_the_same_ids(full_model, samples, tmp_path):
    transformers = pytest.importorskip("transformers")
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    shutil.copy(full_model, hf_dir / "tokenizer.model")
    tok = transformers.LlamaTokenizer.from_pretrained(str(hf_dir), add_prefix_space=False, add_bos_token=False)
    sp = load_tokenizer(full_model)
    assert len(tok) == sp.get_piece_size() == 65_536
    texts = samples["zh"][:60] + samples["en"] + samples["code"] + ["  two leading spaces", "\ttab\n", "😀 𠀋 ١٢٣ 42"]
    for text in texts:
        ids = sp.encode(text)
        assert tok(text, add_special_tokens=False)["input_ids"] == ids, text[:60]
        assert tok.decode(ids) == text
    assert tok.eos_token_id == sp.eos_id() == 2 and tok.pad_token_id in (None, 3)
