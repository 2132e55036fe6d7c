"""GPT: causality by gradients, weight tying, the decoding rules, and parameter counts."""

import pytest
import torch

from deepatlas.registry import create_model
from deepatlas.zoo.sequence.gpt import (GPT, PUBLISHED, apply_temperature, bigram_model, gpt_param_count,
                                        greedy_token, meta_param_count, next_token, real_word_fraction,
                                        top_k_filter, top_p_filter, training_flops_per_token, use_bf16)


def small(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(**{"vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, **kw})


def test_output_shape_and_block_size_error():
    model = small()
    assert model(torch.randint(0, 11, (3, 8))).shape == (3, 8, 11)
    with pytest.raises(ValueError, match="block_size=8"):
        model(torch.randint(0, 11, (1, 9)))


def test_causal_by_gradient():
    """The logits at position t depend on inputs 0..t only: d logits_t / d x_s = 0 for s > t."""
    model = small().double()
    idx = torch.randint(0, 11, (1, 8))
    emb = model.wte(idx).detach().requires_grad_(True)  # differentiate with respect to the embeddings

    def logits_from(e):
        x = e + model.wpe.weight[:8]
        mask = torch.ones(8, 8, dtype=torch.bool).tril()
        for block in model.blocks:
            x = block(x, attn_mask=mask)
        return model.head(model.ln_f(x))

    torch.testing.assert_close(logits_from(emb), model(idx))
    for t in range(8):
        (g,) = torch.autograd.grad(logits_from(emb)[0, t].sum(), emb)
        norms = g[0].norm(dim=-1)  # (T,)
        assert (norms[t + 1:] == 0).all(), f"position {t} sees the future"
        assert (norms[:t + 1] > 0).all(), f"position {t} does not see its past"


def test_weight_tying():
    model = small()
    assert model.head.weight is model.wte.weight
    n_unique = sum(p.numel() for p in model.parameters())
    assert n_unique == gpt_param_count(11, 8, 2, 16)


@pytest.mark.parametrize("kw", [dict(), dict(n_layer=3, n_embd=24, n_head=3, d_ff=40), dict(vocab_size=7)])
def test_param_count_closed_form_equals_built_model(kw):
    model = small(**kw)
    cfg = {"vocab_size": 11, "block_size": 8, "n_layer": 2, "n_embd": 16, **kw}
    cfg.pop("n_head", None)
    assert sum(p.numel() for p in model.parameters()) == gpt_param_count(**cfg)


def test_meta_count_equals_closed_form_for_gpt2_small():
    # GPT-2 small (124M): 12 layers, d=768, vocab 50257, context 1024; built on the meta device
    assert meta_param_count(50257, 1024, 12, 12, 768) == gpt_param_count(50257, 1024, 12, 768) == 124_439_808


def test_published_gpt1_count():
    cfg = PUBLISHED["gpt1"]
    assert gpt_param_count(cfg["vocab_size"], cfg["block_size"], cfg["n_layer"], cfg["n_embd"]) == 116_536_320


def test_greedy_and_temperature():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, -1.0, 0.0]])
    assert greedy_token(logits).tolist() == [1, 0]
    hot, cold = apply_temperature(logits, 10.0).softmax(-1), apply_temperature(logits, 0.1).softmax(-1)
    assert (hot.max(-1).values < logits.softmax(-1).max(-1).values).all()  # flatter
    assert (cold.max(-1).values > 0.99).all()  # nearly greedy
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(logits, 0.0)


def test_top_k_keeps_exactly_k():
    logits = torch.tensor([[0.1, 3.0, -2.0, 1.0, 2.0]])
    kept = torch.isfinite(top_k_filter(logits, 2))
    assert kept.tolist() == [[False, True, False, False, True]]
    assert torch.isfinite(top_k_filter(logits, 50)).all()  # k larger than V keeps everything
    with pytest.raises(ValueError, match="top_k"):
        top_k_filter(logits, 0)


def test_top_p_keeps_smallest_nucleus():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]])
    logits = probs.log()
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[False, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.51)).tolist() == [[False, True, False, True]]
    assert torch.isfinite(top_p_filter(logits, 0.79)).tolist() == [[False, True, False, True]]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [[False, True, True, True]]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(logits, 0.0)


def test_sampling_frequencies_follow_the_filtered_distribution():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]]).repeat(20_000, 1)
    g = torch.Generator().manual_seed(0)
    draws = next_token(logits, top_k=2, generator=g)
    assert set(draws.tolist()) == {2, 3}
    p3 = torch.tensor([2.0, 3.0]).softmax(0)[1].item()
    assert abs((draws == 3).float().mean().item() - p3) < 0.02
    greedy = next_token(logits[:3], greedy=True, top_k=1)
    assert greedy.tolist() == [3, 3, 3]


def test_generate_extends_and_crops_context():
    model = small().eval()
    idx = torch.randint(0, 11, (2, 3))
    out = model.generate(idx, 12, greedy=True)
    assert out.shape == (2, 15) and torch.equal(out[:, :3], idx)
    # greedy decoding is deterministic, and each greedy token is the argmax given the last block_size tokens
    assert torch.equal(out, model.generate(idx, 12, greedy=True))
    assert out[0, 14] == model(out[:, 6:14])[0, -1].argmax()
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(model.generate(idx, 5, top_p=0.9, generator=g1), model.generate(idx, 5, top_p=0.9, generator=g2))


def test_registered_variant():
    model = create_model("gpt_char")
    assert isinstance(model, GPT)


def test_bigram_model_is_normalised_and_counts_pairs():
    ids = torch.tensor([0, 1, 0, 1, 0, 2])
    log_p = bigram_model(ids, 3)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(3))
    # after 0: "1" twice, "2" once, "0" never; add-one smoothing gives 3/6, 2/6, 1/6
    torch.testing.assert_close(log_p[0].exp(), torch.tensor([1 / 6, 3 / 6, 2 / 6]))


def test_real_word_fraction():
    assert real_word_fraction("The king, the KING! xq", {"the", "king"}) == 0.8
    assert real_word_fraction("", {"a"}) == 0.0


def test_training_flops_count_the_matmul_weights():
    model = small()  # 2 layers, d=16, vocab 11, T=8
    per_layer = 4 * 16 * 16 + 2 * 16 * 64
    assert training_flops_per_token(model, 8) == 6 * (2 * per_layer + 11 * 16) + 12 * 2 * 8 * 16


def test_bf16_setting():
    assert use_bf16("false", torch.device("cpu")) is False
    assert use_bf16("true", torch.device("cpu")) is True
    with pytest.raises(ValueError, match="bf16"):
        use_bf16("maybe", torch.device("cpu"))
