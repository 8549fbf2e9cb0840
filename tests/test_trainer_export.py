"""``skypile-train export``: a real checkpoint of ``tiny`` -> a Hugging Face LLaMA directory that
``transformers`` loads and that gives our model's logits; its tokenizer encodes as ours does."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

from skypile.tokenizer.spm import load_tokenizer  # noqa: E402
from skypile.trainer.hf_export import hf_name, load_checkpoint  # noqa: E402
from skypile.trainer.model import build_model  # noqa: E402
from skypile.trainer.train import main  # noqa: E402
from trainer_fixtures import real_shards  # noqa: E402,F401  (session fixture)


@pytest.fixture(scope="module")
def trained(real_shards, tmp_path_factory):
    run = tmp_path_factory.mktemp("export-run")
    main(["--config", "tiny", "--data", real_shards["dir"], "--run-dir", str(run), "steps=6", "log_every=3"])
    return run / "checkpoints" / "step-00000006"


def _real_tokens(real_shards, n=3, t=96) -> torch.Tensor:
    docs = [d.tokens for d in real_shards["docs"] if len(d.tokens) >= t][:n]
    return torch.tensor([list(d[:t]) for d in docs], dtype=torch.long)


def test_export_loads_in_transformers_with_the_same_logits(trained, real_shards, tmp_path):
    out = tmp_path / "hf"
    assert main(["export", "--checkpoint", str(trained), "--out", str(out), "--dtype", "float32"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"} <= set(names)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama" and config["vocab_size"] == 4032 and config["num_hidden_layers"] == 2

    ours, cfg = load_checkpoint(trained)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    tokens = _real_tokens(real_shards)
    with torch.no_grad():
        want = ours(tokens)
        got = hf(input_ids=tokens).logits
    assert got.shape == want.shape == (3, 96, 4032)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)

    # The exported weights are the trained ones (not an init): an untrained model disagrees.
    fresh = build_model(cfg.model, "cpu")
    fresh.init_weights(cfg.seed)
    with torch.no_grad():
        assert (fresh(tokens) - want).abs().max() > 0.1
    stored = safetensors_torch.load_file(str(out / "model.safetensors"))
    assert set(stored) == {hf_name(k) for k in ours.state_dict()}
    torch.testing.assert_close(stored["model.layers.1.mlp.down_proj.weight"], ours.layers[1].feed_forward.w2.weight,
                               rtol=0, atol=0)


def test_export_bf16_and_tokenizer(trained, real_shards, tmp_path):
    out = tmp_path / "hf-bf16"
    assert main(["export", "--checkpoint", str(trained), "--out", str(out)]) == 0  # default dtype bfloat16
    stored = safetensors_torch.load_file(str(out / "model.safetensors"))
    assert {t.dtype for t in stored.values()} == {torch.bfloat16}
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ours, _ = load_checkpoint(trained)
    tokens = _real_tokens(real_shards)
    with torch.no_grad():
        diff = (hf(input_ids=tokens).logits - ours(tokens)).abs().max().item()
    assert diff < 0.1, diff  # bf16 rounding of the weights only

    tok = transformers.AutoTokenizer.from_pretrained(out)
    sp = load_tokenizer(real_shards["tokenizer"])
    assert tok.eos_token_id == sp.eos_id() == real_shards["eos_id"]
    texts = [d.text for d in real_shards["docs"][::97][:20]]
    texts += ["Skywork-13B was trained on SkyPile.", "天空之城是一部动画电影。", "  two leading spaces", "\tx = 1\n"]
    for text in texts:
        assert tok.encode(text, add_special_tokens=False) == sp.encode(text), text[:60]


def test_export_refuses_a_broken_checkpoint(trained, tmp_path, capsys):
    import shutil

    broken = tmp_path / "step-00000006"
    shutil.copytree(trained, broken)
    (broken / ".metadata").unlink()
    assert main(["export", "--checkpoint", str(broken), "--out", str(tmp_path / "x")]) == 2
    assert "not an intact checkpoint" in capsys.readouterr().err
    shutil.rmtree(broken)
    shutil.copytree(trained, broken)
    data = next(broken.glob("*.distcp"))
    blob = bytearray(data.read_bytes())
    blob[200:4200] = bytes(4000)  # same size, other bytes: only the checksum in meta.json tells
    data.write_bytes(bytes(blob))
    assert main(["export", "--checkpoint", str(broken), "--out", str(tmp_path / "x")]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("error: ") and f"{data.name}: sha256 differs" in err
    assert not (tmp_path / "x").exists()


def test_export_writes_only_to_a_new_empty_or_earlier_export_directory(trained, tmp_path, capsys):
    """`--out DIR` deleted DIR whatever it held (a folder of notes, the training run itself) and exited 0."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "plan.md").write_text("my notes")
    run_dir = trained.parent.parent
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    for out, why in ((notes, "not empty and not an earlier export (it holds plan.md)"), (run_dir, "holds the checkpoint"),
                     (trained, "holds the checkpoint"), (notes / "plan.md", "is a file")):
        assert main(["export", "--checkpoint", str(trained), "--out", str(out)]) == 2
        (err,) = capsys.readouterr().err.strip().splitlines()
        assert err.startswith(f"error: --out {out}") and why in err, err
    assert (notes / "plan.md").read_text() == "my notes" and sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export", "--checkpoint", str(trained), "--out", str(empty), "--dtype", "float32"]) == 0
    marker = json.loads((empty / "skypile_export.json").read_text())
    assert set(marker["files"]) == {p.name for p in empty.iterdir()}
    assert main(["export", "--checkpoint", str(trained), "--out", str(empty)]) == 0  # an earlier export: replaced
    assert json.loads((empty / "skypile_export.json").read_text())["dtype"] == "bfloat16"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no .tmp or .old left
    (empty / "mine.txt").write_text("added by hand")
    assert main(["export", "--checkpoint", str(trained), "--out", str(empty)]) == 2  # no longer only ours
    assert "mine.txt" in capsys.readouterr().err and (empty / "mine.txt").exists()
