"""``skypile eval ppl``: scoring arithmetic, sliding windows, trainer and Hugging Face loading, the paper's table.

The model is the trainer's decoder fitted on real GSM8K text (tests/eval_fixtures.py), saved
as a trainer run directory; the Hugging Face model is a ``LlamaForCausalLM`` built from the
same weights with transformers' own config (no download).
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

torch = pytest.importorskip("torch")

from eval_fixtures import clean_run, eval_base, gsm8k_texts  # noqa: E402,F401  (session fixture)
from skypile.cli import main  # noqa: E402
from skypile.data_paths import shared_path  # noqa: E402
from skypile.evaluation.models import EvalError, load_model  # noqa: E402
from skypile.evaluation.ppl import evaluate_ppl  # noqa: E402
from skypile.evaluation.scoring import expand_sets, read_set, score_texts, windows_for  # noqa: E402


def test_windows_score_every_target_once_with_enough_context():
    for length in range(1, 40):
        for context in (1, 2, 5, 8):
            for stride in range(1, context + 1):
                scored = []
                for begin, end, skip in windows_for(list(range(length)), context, stride):
                    assert end - 1 - begin <= context  # the model never reads more than its context
                    for t in range(begin + 1 + skip, end):
                        scored.append(t)
                        assert t - begin >= min(t, context - stride + 1)  # tokens of context behind target t
                assert scored == list(range(1, length))
    with pytest.raises(EvalError):
        windows_for(list(range(10)), 4, 5)


def _reference_model(run):
    from skypile.trainer.config import ModelConfig
    from skypile.trainer.model import build_model

    cfg = json.loads((run / "config.json").read_text())
    model = build_model(ModelConfig(**cfg["model"]), "cpu")
    model.load_state_dict(torch.load(run / "reference-weights.pt"))
    return model.eval()


def test_trainer_run_scores_equal_a_direct_forward_of_the_trained_weights(eval_base):
    run, tok = clean_run(eval_base)
    from skypile.tokenizer.spm import load_tokenizer

    sp = load_tokenizer(tok)
    scorer = load_model(run, device="cpu")
    assert (scorer.kind, scorer.context, scorer.start_id, scorer.info["step"]) == ("trainer", 64, sp.eos_id(), 200)
    # the window: the run's seq_len by default, up to the model's max_seq_len (128) on request
    assert [load_model(run, device="cpu", context=c).context for c in (100, 1000)] == [100, 128]
    with pytest.raises(EvalError, match="at least 2"):
        load_model(run, context=1)
    texts = [t.split("\n")[0][:120] for t in gsm8k_texts("test.jsonl", 0, 4)]  # short: one window each
    ref = _reference_model(run)
    scores = score_texts(scorer, texts, progress=False)
    for text, s in zip(texts, scores):
        ids = [sp.eos_id()] + sp.encode(text)
        assert len(ids) - 1 <= 64
        x = torch.tensor([ids])
        with torch.no_grad():
            expected = torch.nn.functional.cross_entropy(ref(x[:, :-1])[0], x[0, 1:], reduction="sum").item()
        assert s.n_tokens == len(ids) - 1 and s.n_chars == len(text)
        assert s.nll == pytest.approx(expected, rel=1e-5)
    # the fitted model knows GSM8K text: far below the uniform loss ln(1024) = 6.93
    loss = sum(s.nll for s in scores) / sum(s.n_tokens for s in scores)
    assert loss < 5.0
    # bf16 weights (the GPU default) with the RoPE tables kept in fp32: the same loss to within 2%
    half = load_model(run, device="cpu", dtype="bfloat16")
    half_scores = score_texts(half, texts, progress=False)
    assert half.info["dtype"] == "bfloat16"
    assert sum(s.nll for s in half_scores) / sum(s.n_tokens for s in half_scores) == pytest.approx(loss, rel=0.02)


def test_sliding_window_counts_every_token_and_more_context_helps(eval_base):
    run, tok = clean_run(eval_base)
    scorer = load_model(run, device="cpu")
    long_texts = ["\n\n".join(gsm8k_texts("test.jsonl", i, i + 5)) for i in (10, 20, 30)]  # ~1,200 tokens each
    from skypile.tokenizer.spm import load_tokenizer

    n_ids = [len(ids) for ids in load_tokenizer(tok).encode(long_texts)]
    assert min(n_ids) > 5 * scorer.context
    disjoint = score_texts(scorer, long_texts, stride=64, progress=False)
    overlapping = score_texts(scorer, long_texts, stride=16, progress=False)
    assert [s.n_tokens for s in disjoint] == [s.n_tokens for s in overlapping] == n_ids  # every token exactly once
    for d, o in zip(disjoint, overlapping):  # >= 49 tokens of context for every token beats 0..63
        assert o.nll < d.nll
    # batching (padding, sort order) does not change a document's score
    alone = [score_texts(scorer, [t], stride=16, progress=False)[0] for t in long_texts]
    for a, o in zip(alone, overlapping):
        assert a.nll == pytest.approx(o.nll, rel=1e-5)


def _llama_dir(run, tok, out):
    """A Hugging Face LLaMA directory holding the run's trained weights (the mapping our decoder has to Llama's)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = json.loads((run / "config.json").read_text())["model"]
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["dim"], intermediate_size=cfg["ffn_dim"],
        num_hidden_layers=cfg["n_layers"], num_attention_heads=cfg["n_heads"], num_key_value_heads=cfg["n_heads"],
        max_position_embeddings=cfg["max_seq_len"], rms_norm_eps=cfg["norm_eps"], rope_theta=cfg["rope_theta"],
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2))
    layer = {"attention.wq": "self_attn.q_proj", "attention.wk": "self_attn.k_proj", "attention.wv": "self_attn.v_proj",
             "attention.wo": "self_attn.o_proj", "feed_forward.w1": "mlp.gate_proj", "feed_forward.w3": "mlp.up_proj",
             "feed_forward.w2": "mlp.down_proj", "attention_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
    top = {"tok_embeddings.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight"}
    ours = torch.load(run / "reference-weights.pt")
    mapped = {}
    for name, value in ours.items():
        if name in top:
            mapped[top[name]] = value
        else:
            _, i, rest = name.split(".", 2)
            mapped[f"model.layers.{i}.{layer[rest.removesuffix('.weight')]}.weight"] = value
    hf.load_state_dict(mapped, strict=True)
    hf.save_pretrained(out)
    shutil.copyfile(tok, out / "tokenizer.model")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "add_bos_token": False, "add_eos_token": False, "bos_token": "<s>",
        "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "legacy": False}))
    return out


def test_hugging_face_directory_scores_like_the_trainer_run(eval_base, tmp_path):
    pytest.importorskip("transformers")
    run, tok = clean_run(eval_base)
    hf_dir = _llama_dir(run, tok, tmp_path / "hf")
    sets = tmp_path / "sets"
    sets.mkdir()
    for name, (start, stop) in {"gsm_test": (100, 112), "gsm_train": (0, 12)}.items():
        src = "test.jsonl" if name == "gsm_test" else "train.jsonl"
        (sets / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in gsm8k_texts(src, start, stop)))
    ours = evaluate_ppl(load_model(run, device="cpu"), [str(sets)], progress=False)
    # as the trainer's HF export marks its directories: encode with the exact SentencePiece model
    (hf_dir / "skypile_export.json").write_text(json.dumps({"tokenizer": tok}))
    hf_model = load_model(hf_dir, device="cpu", context=64)
    assert (hf_model.kind, hf_model.start_id, hf_model.info["tokenizer"]) == ("hf", 2, str(hf_dir / "tokenizer.model"))
    theirs = evaluate_ppl(hf_model, [str(sets)], progress=False)
    for name in ("gsm_test", "gsm_train"):
        a, b = ours["domains"][name], theirs["domains"][name]
        assert (a["n_tokens"], a["n_docs"]) == (b["n_tokens"], b["n_docs"])
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["bpc"] == pytest.approx(a["bpc"], rel=1e-4)
    # any other HF directory: its own tokenizer (transformers' Llama conversion, which puts a "▁"
    # before a text's first word) and its BOS only if it adds one (this one does not: EOS)
    (hf_dir / "skypile_export.json").unlink()
    auto = load_model(hf_dir, device="cpu", context=64)
    assert auto.start_id == 2 and "LlamaTokenizer" in auto.info["tokenizer"]
    other = evaluate_ppl(auto, [str(sets)], progress=False)
    for name in ("gsm_test", "gsm_train"):
        a, b = ours["domains"][name], other["domains"][name]
        assert abs(a["n_tokens"] - b["n_tokens"]) <= a["n_docs"] and abs(a["loss"] - b["loss"]) < 0.1
    # seen problems (train 0-11 were in the fitted text) are easier than unseen ones
    assert ours["domains"]["gsm_train"]["loss"] < ours["domains"]["gsm_test"]["loss"]


def test_the_trainers_hf_export_scores_exactly_like_its_checkpoint(eval_base, tmp_path):
    pytest.importorskip("transformers")
    from skypile.trainer.hf_export import export

    run, _ = clean_run(eval_base)
    out = export(run / "checkpoints" / "step-00000200", tmp_path / "hf", dtype="float32")
    sets = [str(shared_path("gsm8k", "test.jsonl"))]
    ours = evaluate_ppl(load_model(run, device="cpu"), sets, max_docs=20, progress=False)["domains"]["test"]
    exported = load_model(out, device="cpu", context=64)
    assert exported.info["tokenizer"] == str(out / "tokenizer.model")  # the export's exact SentencePiece model
    theirs = evaluate_ppl(exported, sets, max_docs=20, progress=False)["domains"]["test"]
    assert theirs["n_tokens"] == ours["n_tokens"] and theirs["loss"] == pytest.approx(ours["loss"], rel=1e-5)


def test_cli_on_the_skywork_domain_sets_gives_the_paper_table(eval_base, shared, tmp_path, capsys):
    domains_dir = shared("domains", "zh", "skywork-eval-loss")
    run, _ = clean_run(eval_base)
    out = tmp_path / "out"
    rc = main(["eval", "ppl", "--model", str(run), "--sets", str(domains_dir), "--out", str(out), "--max-docs", "2", "--stride", "64",
               "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0
    header = printed.splitlines()[0].split()
    assert header[1:] == ["Tech", "Movie", "Gov.", "Game", "Finance", "General", "News", "Average"]
    report = json.loads((out / "ppl.json").read_text())
    names = ["zh_tech", "zh_movie", "zh_government", "zh_game", "zh_finance", "zh_general", "zh_news"]
    assert list(report["domains"]) == names
    for d in report["domains"].values():
        assert set(d) >= {"loss", "ppl", "bpc", "n_tokens", "n_docs"} and d["n_docs"] == 2
        assert d["ppl"] == pytest.approx(math.exp(d["loss"]))
        assert d["bpc"] == pytest.approx(d["loss"] * d["n_tokens"] / math.log(2) / d["n_chars"])
    avg = report["average"]
    losses = [d["loss"] for d in report["domains"].values()]
    assert avg["ppl"] == pytest.approx(math.exp(sum(losses) / len(losses)))  # the paper's Average: geometric mean
    assert avg["n_docs"] == 14 and avg["n_tokens"] == sum(d["n_tokens"] for d in report["domains"].values())
    assert f"{avg['ppl']:.2f}" in printed.splitlines()[2]
    if _has_matplotlib():
        assert (out / "ppl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert not (out / "ppl.png").exists() and "skipped (matplotlib is not installed" in printed
    # a GSM8K-trained English model on Chinese news: much worse than on its own kind of text
    assert min(losses) > 5.0


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_bad_input_is_a_clear_error_or_a_counted_drop(eval_base, tmp_path, capsys):
    run, _ = clean_run(eval_base)
    out = str(tmp_path / "out")
    assert main(["eval", "ppl", "--model", str(tmp_path / "nope"), "--sets", str(tmp_path), "--out", out]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["eval", "ppl", "--model", str(tmp_path / "empty"), "--sets", str(tmp_path), "--out", out]) == 2
    assert "not a trainer run directory" in capsys.readouterr().err
    assert main(["eval", "ppl", "--model", str(run), "--sets", str(tmp_path / "missing.jsonl"), "--out", out]) == 2
    assert "missing.jsonl does not exist" in capsys.readouterr().err

    no_ckpt = tmp_path / "run-without-checkpoints"
    (no_ckpt / "checkpoints").mkdir(parents=True)
    with pytest.raises(EvalError, match="no complete checkpoint"):
        load_model(no_ckpt)
    step_dir = run / "checkpoints" / "step-00000200"
    assert load_model(step_dir, device="cpu").name == "clean/step-00000200"  # one checkpoint, named directly
    with pytest.raises(EvalError, match="moved.model does not exist"):
        load_model(run, tokenizer=str(tmp_path / "moved.model"))
    # no tokenizer in the config: the data manifest's, only while its sha256 still matches
    import hashlib

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    meta_path = copy / "checkpoints" / "step-00000200" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["config"].update(tokenizer="", data=str(tmp_path / "data"))
    meta_path.write_text(json.dumps(meta))
    (tmp_path / "data").mkdir()
    tok_path = clean_run(eval_base)[1]
    for digest, ok in ((hashlib.sha256(open(tok_path, "rb").read()).hexdigest(), True), ("0" * 64, False)):
        (tmp_path / "data" / "manifest.json").write_text(json.dumps({"tokenizer": {"path": tok_path, "sha256": digest}, "shards": []}))
        if ok:
            assert load_model(copy, device="cpu").info["tokenizer"] == tok_path
        else:
            with pytest.raises(EvalError, match="changed since the shards were written"):
                load_model(copy)

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "   "}\nnot json\n{"title": "no text"}\n')
    with pytest.raises(EvalError, match="has no texts.*bad_json"):
        read_set(bad)
    mixed = tmp_path / "sets" / "mixed.jsonl"
    mixed.parent.mkdir()
    problem = gsm8k_texts("test.jsonl", 0, 1)[0]
    question, answer = problem.split("\n", 1)
    mixed.write_text(json.dumps({"question": question, "answer": answer}) + '\n{"text": ""}\n{oops\n')
    ts = read_set(mixed)
    assert ts.texts == [problem] and dict(ts.dropped) == {"empty_text": 1, "bad_json": 1}
    with pytest.raises(EvalError, match="holds no"):
        expand_sets([str(tmp_path / "empty")])
    assert main(["eval", "ppl", "--model", str(run), "--sets", str(mixed.parent), "--out", out, "--no-progress"]) == 0
    report = json.loads((tmp_path / "out" / "ppl.json").read_text())
    assert report["dropped"] == {"mixed": {"empty_text": 1, "bad_json": 1}} and report["domains"]["mixed"]["n_docs"] == 1

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), tmp_path / "notext.parquet")
    with pytest.raises(EvalError, match="no 'text' or 'content' column"):
        read_set(tmp_path / "notext.parquet")
    pq.write_table(pa.table({"text": [problem, None]}), tmp_path / "ok.parquet")
    ts = read_set(tmp_path / "ok.parquet")
    assert ts.texts == [problem] and dict(ts.dropped) == {"null_text": 1}


def test_the_loss_in_chunks_equals_the_loss_over_full_logits(eval_base, monkeypatch):
    """The head applied to a few scored positions at a time (bounded memory for any vocabulary), the
    fallback over full logits a few rows at a time, and chunks of a single position give one score."""
    import dataclasses

    from skypile.evaluation import scoring

    run, _ = clean_run(eval_base)
    scorer = load_model(run, device="cpu")
    assert scorer.hidden is not None and scorer.token_bytes > 0
    assert scoring.default_batch_tokens(scorer) >= scorer.context
    texts = ["\n\n".join(gsm8k_texts("test.jsonl", i, i + 3)) for i in (40, 50)] + gsm8k_texts("test.jsonl", 60, 66)
    split = score_texts(scorer, texts, stride=32, progress=False)
    full = score_texts(dataclasses.replace(scorer, hidden=None, head=None), texts, stride=32, progress=False)
    monkeypatch.setattr(scoring, "LOGITS_BYTES", 1)  # one position per chunk
    tiny = score_texts(scorer, texts, stride=32, batch_tokens=200, progress=False)
    for s, f, t in zip(split, full, tiny):
        assert s.n_tokens == f.n_tokens == t.n_tokens > 0
        assert s.nll == pytest.approx(f.nll, rel=1e-5) and s.nll == pytest.approx(t.nll, rel=1e-5)
