"""Additive attention: weights are a distribution, padding gets none, and a small example by hand."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.sequence.bahdanau_attention import BahdanauAttention, masked_softmax


def _inputs(B=3, S=6, Dq=5, Dk=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, Dq, generator=g, dtype=torch.float64),
            torch.randn(B, S, Dk, generator=g, dtype=torch.float64))


@settings(max_examples=20, deadline=None)
@given(B=st.integers(1, 4), S=st.integers(1, 9), seed=st.integers(0, 1000))
def test_weights_are_a_distribution_over_real_positions(B, S, seed):
    torch.manual_seed(seed)
    attn = BahdanauAttention(5, 4, 7).double()
    q, k = _inputs(B, S, seed=seed)
    lengths = torch.randint(1, S + 1, (B,), generator=torch.Generator().manual_seed(seed))
    mask = torch.arange(S) < lengths[:, None]
    context, alpha = attn(q, k, mask)
    assert context.shape == (B, 4) and alpha.shape == (B, S)
    torch.testing.assert_close(alpha.sum(1), torch.ones(B, dtype=torch.float64))
    assert (alpha >= 0).all() and (alpha[~mask] == 0).all()
    torch.testing.assert_close(context, (alpha[..., None] * k).sum(1))


def test_padded_positions_get_no_gradient_and_change_nothing():
    torch.manual_seed(0)
    attn = BahdanauAttention(5, 4, 7).double()
    q, k = _inputs()
    k.requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    context, _ = attn(q, k, mask)
    (grad,) = torch.autograd.grad(context.sum(), k)
    assert (grad[~mask] == 0).all() and (grad[mask].abs().sum(-1) > 0).all()
    garbage = k.detach().clone()
    garbage[~mask] = 1e3
    torch.testing.assert_close(attn(q, garbage, mask)[0], context.detach())


def test_hand_worked_example():
    # W_a = I, U_a = I (no bias), v_a = (1, 1); s = (1, 0); h_1 = (0, 0), h_2 = (1, 1)
    attn = BahdanauAttention(2, 2, 2).double()
    with torch.no_grad():
        attn.W_a.weight.copy_(torch.eye(2))
        attn.U_a.weight.copy_(torch.eye(2))
        attn.U_a.bias.zero_()
        attn.v_a.weight.copy_(torch.tensor([[1.0, 1.0]]))
    s = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    h = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]], dtype=torch.float64)
    e1, e2 = math.tanh(1) + math.tanh(0), math.tanh(2) + math.tanh(1)  # v^T tanh(s + h_j)
    a1 = math.exp(e1) / (math.exp(e1) + math.exp(e2))
    context, alpha = attn(s, h)
    torch.testing.assert_close(alpha, torch.tensor([[a1, 1 - a1]], dtype=torch.float64))
    torch.testing.assert_close(context, torch.tensor([[1 - a1, 1 - a1]], dtype=torch.float64))
    assert alpha[0, 1] > alpha[0, 0], "the key that matches the query gets more weight"


def test_gradcheck():
    torch.manual_seed(0)
    attn = BahdanauAttention(3, 2, 4).double()
    q, k = _inputs(2, 5, 3, 2)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda q, k: attn(q, k, mask), (q.requires_grad_(), k.requires_grad_()))


def test_projected_keys_give_the_same_result_and_parameter_count():
    attn = BahdanauAttention(5, 4, 7).double()
    q, k = _inputs()
    torch.testing.assert_close(attn(q, k)[0], attn(q, k, projected_keys=attn.project_keys(k))[0])
    assert sum(p.numel() for p in attn.parameters()) == 5 * 7 + (4 * 7 + 7) + 7  # W_a, U_a and its bias, v_a


def test_masked_softmax_without_mask_is_softmax():
    z = torch.randn(3, 4)
    torch.testing.assert_close(masked_softmax(z, None), torch.softmax(z, -1))


def test_bad_sizes():
    with pytest.raises(ValueError, match=">= 1"):
        BahdanauAttention(4, 0, 3)
