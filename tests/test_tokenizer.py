"""SentencePiece training options and the tokenize stage, on real Wikipedia text."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

from skypile.document import Document, Dropped
from skypile.tokenizer.spm import RESERVED, SPECIALS, Tokenize, iter_training_text, load_tokenizer, tokenizer_info


def test_specials_sit_at_fixed_ids(tokenizer_model):
    sp = load_tokenizer(tokenizer_model)
    assert len(SPECIALS) == 17
    assert [sp.id_to_piece(i) for i in range(4)] == ["<unk>", "<s>", "</s>", "<pad>"]
    assert [sp.piece_to_id(p) for p in RESERVED] == list(range(4, 17))
    info = tokenizer_info(tokenizer_model)
    assert (info["vocab_size"], info["eos_id"], info["pad_id"]) == (4000, 2, 3)


def test_card_matches_model(tokenizer_model):
    out = Path(tokenizer_model).parent
    card = json.loads((out / "tokenizer.json").read_text())
    assert card["sha256"] == hashlib.sha256(Path(tokenizer_model).read_bytes()).hexdigest()
    assert card["training_lines"] > 1000 and not list(out.glob("*.tmp-*"))


def test_lossless_digits_split_and_byte_fallback(tokenizer_model):
    sp = load_tokenizer(tokenizer_model)
    samples = [
        "The 2023 budget was 1234567 yuan.",
        "北京大学成立于1898年，是中国第一所国立综合性大学。",
        "def f(x):\n    return x  # two   spaces\n",
        "Emoji 😀 and rare 𠀋 characters",
    ]
    for text in samples:
        ids = sp.encode(text, out_type=int)
        assert sp.decode(ids) == text  # identity normalization + byte fallback: exact round trip
        assert sp.unk_id() not in ids
    pieces = sp.encode("1234567", out_type=str)
    assert all(len(p.strip("▁")) <= 1 for p in pieces)  # every digit its own piece
    assert "<0xF0>" in sp.encode("😀", out_type=str)


def test_tokenize_stage_survives_pickling(tokenizer_model):
    stage = pickle.loads(pickle.dumps(Tokenize(tokenizer_model)))
    doc = stage(Document(id="a", text="Wikipedia is a free online encyclopedia.", source="t"))
    assert isinstance(doc, Document) and len(doc.tokens) > 3
    stage.sp  # loaded now; pickling again must still work (Beam re-serializes DoFns)
    assert pickle.loads(pickle.dumps(stage))._sp is None
    assert isinstance(stage(Document(id="b", text="", source="t")), Dropped)


def test_training_text_skips_wikiextractor_tags(shared):
    lines = list(iter_training_text([str(shared("wiki", "zh", "zhwiki-extract-AA-wiki_00.txt"))]))
    assert lines and not any(line.startswith(("<doc", "</doc")) for line in lines)


def test_tokenizer_train_never_replaces_a_model_without_overwrite(tmp_path, monkeypatch, shared, capsys):
    """A bare ``tokenizer train`` writes out/tokenizer, not the default every command uses, and an
    existing model (the default included) is replaced only with --overwrite."""
    from skypile.cli import main
    from skypile.config import default_tokenizer_path

    text = tmp_path / "wiki.txt"
    text.write_text("\n".join(shared("wiki", "en", "wikitext-2-raw-test.txt").read_text().splitlines()[:3000]))
    monkeypatch.setenv("SKYPILE_MODELS_DIR", str(tmp_path / "models"))
    default = Path(default_tokenizer_path())
    default.parent.mkdir(parents=True)
    default.write_bytes(b"the default model")
    monkeypatch.chdir(tmp_path)
    train = ["tokenizer", "train", "--input", str(text), "--vocab-size", "400"]
    assert main(train) == 0 and (tmp_path / "out" / "tokenizer" / "skypile-sp.model").is_file()
    assert main(train) == 2 and "out/tokenizer/skypile-sp.model exists: pass --overwrite" in capsys.readouterr().err
    assert main([*train, "--out", str(default.parent)]) == 2
    assert "(the default tokenizer every skypile command uses)" in capsys.readouterr().err
    assert default.read_bytes() == b"the default model"
    assert main([*train, "--overwrite"]) == 0
