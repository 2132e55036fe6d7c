"""Luong's three scores: weights are a distribution, padding gets none, small examples by hand."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.sequence.bahdanau_attention import BahdanauAttention
from deepatlas.zoo.sequence.luong_attention import SCORES, LuongAttention


def _inputs(B=3, S=6, Dq=4, Dk=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, Dq, generator=g, dtype=torch.float64),
            torch.randn(B, S, Dk, generator=g, dtype=torch.float64))


@settings(max_examples=20, deadline=None)
@given(score=st.sampled_from(SCORES), B=st.integers(1, 4), S=st.integers(1, 9), seed=st.integers(0, 1000))
def test_weights_are_a_distribution_over_real_positions(score, B, S, seed):
    torch.manual_seed(seed)
    attn = LuongAttention(4, 4, score).double()
    q, k = _inputs(B, S, seed=seed)
    lengths = torch.randint(1, S + 1, (B,), generator=torch.Generator().manual_seed(seed))
    mask = torch.arange(S) < lengths[:, None]
    context, alpha = attn(q, k, mask)
    assert context.shape == (B, 4) and alpha.shape == (B, S)
    torch.testing.assert_close(alpha.sum(1), torch.ones(B, dtype=torch.float64))
    assert (alpha >= 0).all() and (alpha[~mask] == 0).all()
    torch.testing.assert_close(context, (alpha[..., None] * k).sum(1))


@pytest.mark.parametrize("score", SCORES)
def test_padded_positions_get_no_gradient(score):
    torch.manual_seed(0)
    attn = LuongAttention(4, 4, score).double()
    q, k = _inputs()
    k.requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    context, _ = attn(q, k, mask)
    (grad,) = torch.autograd.grad(context.sum(), k)
    assert (grad[~mask] == 0).all() and (grad[mask].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("score", SCORES)
def test_gradcheck(score):
    torch.manual_seed(0)
    attn = LuongAttention(3, 3, score).double()
    q, k = _inputs(2, 4, 3, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda q, k: attn(q, k, mask), (q.requires_grad_(), k.requires_grad_()))


def test_dot_by_hand():
    # h_t = (1, 0); keys (1, 0) and (0, 1): scores 1 and 0, weights e/(e+1) and 1/(e+1)
    attn = LuongAttention(2, 2, "dot")
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    k = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    context, alpha = attn(q, k)
    a = math.e / (math.e + 1)
    torch.testing.assert_close(alpha, torch.tensor([[a, 1 - a]], dtype=torch.float64))
    torch.testing.assert_close(context, torch.tensor([[a, 1 - a]], dtype=torch.float64))
    assert list(attn.parameters()) == []


def test_general_by_hand():
    # W_a = [[0, 2], [0, 0]]: score = h_t^T W_a h_s = 2 h_t[0] h_s[1]; h_t = (1, 0) -> scores 0 and 2
    attn = LuongAttention(2, 2, "general").double()
    with torch.no_grad():
        attn.W_a.weight.copy_(torch.tensor([[0.0, 2.0], [0.0, 0.0]]))
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    k = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    _, alpha = attn(q, k)
    a = 1 / (1 + math.exp(2))
    torch.testing.assert_close(alpha, torch.tensor([[a, 1 - a]], dtype=torch.float64))


def test_concat_equals_additive_with_split_weights():
    # v^T tanh(W_a [h_t; h_s]) = v^T tanh(W_q h_t + W_k h_s): Bahdanau's score applied to h_t
    torch.manual_seed(0)
    luong = LuongAttention(3, 4, "concat", attn_size=5).double()
    additive = BahdanauAttention(3, 4, 5).double()
    with torch.no_grad():
        additive.W_a.weight.copy_(luong.W_a.weight[:, :3])
        additive.U_a.weight.copy_(luong.W_a.weight[:, 3:])
        additive.U_a.bias.zero_()
        additive.v_a.weight.copy_(luong.v_a.weight)
    q, k = _inputs(2, 6, 3, 4)
    torch.testing.assert_close(luong(q, k)[1], additive(q, k)[1])


def test_parameter_counts():
    assert sum(p.numel() for p in LuongAttention(4, 6, "general").parameters()) == 4 * 6
    assert sum(p.numel() for p in LuongAttention(4, 6, "concat", attn_size=5).parameters()) == 5 * 10 + 5


def test_bad_arguments():
    with pytest.raises(ValueError, match="query_size == key_size"):
        LuongAttention(3, 4, "dot")
    with pytest.raises(ValueError, match="unknown Luong score"):
        LuongAttention(3, 3, "cosine")
