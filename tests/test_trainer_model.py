"""Model, config and schedule of the trainer (CPU, no data needed)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from skypile.trainer import model as M  # noqa: E402
from skypile.trainer.config import ModelConfig, apply_overrides, ffn_hidden, get_config  # noqa: E402
from skypile.trainer.parallelize import apply_activation_checkpointing  # noqa: E402
from skypile.trainer.schedule import build_scheduler, decay_steps_for, lr_at  # noqa: E402


def tiny_cfg(**kw) -> ModelConfig:
    base = dict(dim=64, n_layers=2, n_heads=4, vocab_size=512, multiple_of=32, max_seq_len=128)
    base.update(kw)
    return ModelConfig(**base)


def materialized(cfg: ModelConfig, seed: int = 0) -> M.Transformer:
    model = M.build_model(cfg, "meta")
    model.to_empty(device="cpu")
    model.init_weights(seed)
    return model


# -- config ------------------------------------------------------------------------------------------


def test_presets_match_the_issue():
    sky = get_config("skywork-13b").model
    assert (sky.n_layers, sky.dim, sky.n_heads, sky.ffn_dim, sky.vocab_size, sky.max_seq_len) == (
        52, 4608, 36, 12288, 65536, 4096)
    assert ffn_hidden(4608) == 12288  # 8/3 x hidden, rounded to a multiple of 256
    one = get_config("1b")
    assert one.seq_len == 4096 and one.model.ffn_dim == ffn_hidden(2048) == 5632
    assert 1.0e9 < M.num_params(one.model) < 1.3e9
    assert get_config("tiny").model.ffn_dim == 192  # ceil(8/3 * 64 / 32) * 32
    cfg = get_config("skywork-13b")
    assert (cfg.lr, cfg.min_lr, cfg.beta1, cfg.beta2, cfg.weight_decay, cfg.grad_clip) == (
        6e-4, 6e-5, 0.9, 0.95, 0.1, 1.0)


def test_overrides():
    cfg = apply_overrides(get_config("tiny"), [
        "steps=7", "model.dim=128", "n_heads=8", "lr=1e-3", "compile=true", "stage1_tokens=2e12",
        'data_weights={"wiki/en": 0.7, "code": 0.3}', "--run-dir=/tmp/x"])
    assert cfg.steps == 7 and cfg.lr == 1e-3 and cfg.compile is True and cfg.stage1_tokens == 2 * 10**12
    assert cfg.model.dim == 128 and cfg.model.n_heads == 8 and cfg.model.ffn_dim == ffn_hidden(128, 32)
    assert cfg.data_weights == {"wiki/en": 0.7, "code": 0.3} and cfg.run_dir == "/tmp/x"
    from skypile.trainer.config import TrainConfigError  # a user error: one line, exit 2 (tests/test_cli_errors.py)

    with pytest.raises(TrainConfigError, match="unknown config key 'no_such_key'"):
        apply_overrides(get_config("tiny"), ["no_such_key=1"])
    with pytest.raises(TrainConfigError, match="steps: cannot read '1.5' as int"):
        apply_overrides(get_config("tiny"), ["steps=1.5"])


# -- model -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["1b", "skywork-13b"])
def test_param_count_matches_formula_on_meta(name):
    cfg = get_config(name).model
    model = M.build_model(cfg, "meta")
    assert sum(p.numel() for p in model.parameters()) == M.num_params(cfg)


def test_skywork_13b_size_and_flops():
    cfg = get_config("skywork-13b").model
    n = M.num_params(cfg)
    assert abs(n / 1e9 - 13.85) < 0.01  # Skywork-13B: 13.85B parameters
    per_layer = 4 * 4608**2 + 3 * 4608 * 12288 + 2 * 4608
    non_emb = 52 * per_layer + 4608 + 65536 * 4608
    assert M.num_params(cfg, embedding=False) == non_emb
    assert M.flops_per_token(cfg, 4096) == 6 * non_emb + 12 * 52 * 36 * 128 * 4096


def test_forward_shapes_and_param_count():
    cfg = tiny_cfg()
    model = materialized(cfg)
    assert sum(p.numel() for p in model.parameters()) == M.num_params(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (3, 40))
    logits = model(tokens)
    assert logits.shape == (3, 40, cfg.vocab_size) and torch.isfinite(logits).all()
    assert not any(n.endswith("bias") for n, _ in model.named_parameters())
    assert model.layers[0].feed_forward.w1.weight.shape == (cfg.ffn_dim, cfg.dim)
    with pytest.raises(ValueError):
        model(torch.zeros(1, cfg.max_seq_len + 1, dtype=torch.long))


def test_causality():
    model = materialized(tiny_cfg())
    a = torch.randint(0, 512, (1, 32))
    b = a.clone()
    b[0, 20:] = (b[0, 20:] + 7) % 512
    la, lb = model(a), model(b)
    torch.testing.assert_close(la[:, :20], lb[:, :20])
    assert not torch.allclose(la[:, 20:], lb[:, 20:])


def test_init_is_deterministic_and_wrapper_independent():
    cfg = tiny_cfg()
    plain = materialized(cfg, seed=3)
    wrapped = M.build_model(cfg, "meta")
    apply_activation_checkpointing(wrapped)
    wrapped.to_empty(device="cpu")
    wrapped.init_weights(3)
    sd_plain = {M.canonical_name(k): v for k, v in plain.state_dict().items()}
    sd_wrapped = {M.canonical_name(k): v for k, v in wrapped.state_dict().items()}
    assert sd_plain.keys() == sd_wrapped.keys()
    for k in sd_plain:
        torch.testing.assert_close(sd_plain[k], sd_wrapped[k], rtol=0, atol=0)
    other = materialized(cfg, seed=4)
    assert not torch.equal(plain.output.weight, other.output.weight)
    std = plain.layers[0].attention.wq.weight.std().item()
    assert abs(std - 0.02) < 0.003
    assert plain.layers[0].attention.wo.weight.std().item() < std / 1.5  # depth-scaled output projections


def test_activation_checkpointing_gives_same_loss_and_grads():
    cfg = tiny_cfg()
    tokens = torch.randint(0, cfg.vocab_size, (2, 33))
    grads = []
    for ac in (False, True):
        model = M.build_model(cfg, "meta")
        if ac:
            apply_activation_checkpointing(model)
        model.to_empty(device="cpu")
        model.init_weights(0)
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        grads.append({M.canonical_name(n): p.grad for n, p in model.named_parameters()})
    for name, g in grads[0].items():
        torch.testing.assert_close(g, grads[1][name])


# -- attention ---------------------------------------------------------------------------------------


def _qkv(dtype, b=2, t=77, h=4, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, t, h, d, generator=g).to(dtype) for _ in range(3)]


def test_sdpa_equals_reference_attention_fp32():
    q, k, v = _qkv(torch.float32)
    torch.testing.assert_close(M.attention(q, k, v, "sdpa"), M.attention(q, k, v, "reference"), atol=2e-6, rtol=1e-5)


def test_sdpa_equals_reference_attention_bf16():
    q, k, v = _qkv(torch.bfloat16)
    out = M.attention(q, k, v, "sdpa")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), M.attention(q, k, v, "reference").float(), atol=2e-2, rtol=2e-2)


def test_attention_switch_gives_equal_model_outputs():
    cfg = tiny_cfg()
    model = materialized(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (2, 50))
    assert model.set_attention("auto") in ("sdpa", "flash")
    if not M.flash_attn_available():
        assert model.set_attention("auto") == "sdpa"
        with pytest.raises(RuntimeError):
            model.set_attention("flash")
    out_sdpa = model(tokens)
    model.set_attention("reference")
    torch.testing.assert_close(out_sdpa, model(tokens), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError):
        model.set_attention("nope")


@pytest.mark.skipif(not (M.flash_attn_available() and torch.cuda.is_available()), reason="needs flash_attn + CUDA")
def test_flash_attn_equals_reference():  # pragma: no cover - GPU only
    q, k, v = (t.cuda() for t in _qkv(torch.bfloat16))
    torch.testing.assert_close(M.attention(q, k, v, "flash").float(), M.attention(q, k, v, "reference").float(),
                               atol=2e-2, rtol=2e-2)


# -- schedule ----------------------------------------------------------------------------------------


def test_schedule_values():
    kw = dict(lr=6e-4, min_lr=6e-5, warmup_steps=100, decay_steps=1100)
    assert lr_at(0, **kw) == pytest.approx(6e-6)
    assert lr_at(99, **kw) == pytest.approx(6e-4)  # end of warmup: peak
    assert lr_at(100, **kw) == pytest.approx(6e-4)
    assert lr_at(600, **kw) == pytest.approx((6e-4 + 6e-5) / 2)  # half way through the cosine
    assert lr_at(1099, **kw) == pytest.approx(6e-5, rel=1e-4)  # end of the stage-1 budget
    assert lr_at(1100, **kw) == 6e-5 and lr_at(10**7, **kw) == 6e-5  # stage 2 / past budget: constant
    values = [lr_at(s, **kw) for s in range(100, 1100)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert decay_steps_for(2 * 10**12, 16 * 2**20, 0) == 2 * 10**12 // (16 * 2**20)
    assert decay_steps_for(0, 512, 40) == 40


def test_scheduler_drives_optimizer():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=6e-4)
    sched = build_scheduler(opt, lr=6e-4, min_lr=6e-5, warmup_steps=10, decay_steps=50)
    seen = []
    for _ in range(60):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for step, value in enumerate(seen):
        assert value == pytest.approx(lr_at(step, lr=6e-4, min_lr=6e-5, warmup_steps=10, decay_steps=50))
    assert math.isclose(seen[-1], 6e-5)
