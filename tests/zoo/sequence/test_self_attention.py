"""Single-head self-attention against torch's scaled_dot_product_attention, its gradient, its mask,
and the autograd-depth counter the path-length labs rely on."""

import math

import pytest
import torch
import torch.nn.functional as F

from deepatlas.nn.attention import causal_mask, scaled_dot_product_attention
from deepatlas.nn.recurrent import Recurrent
from deepatlas.zoo.sequence.self_attention import SelfAttention, sequential_depth, softmax_statistics


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("masked", [False, True])
def test_matches_torch_sdpa_values_and_gradients(float64, masked):
    torch.manual_seed(0)
    layer = SelfAttention(12, d_k=8, d_v=6)
    x = torch.randn(3, 5, 12, requires_grad=True)
    mask = causal_mask(5) if masked else None
    out, w = layer(x, mask)
    q, k, v = layer.W_q(x), layer.W_k(x), layer.W_v(x)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 5))
    if masked:
        assert (w[:, ~causal_mask(5)] == 0).all()
    g = torch.autograd.grad(out.square().sum(), [x, *layer.parameters()])
    g_ref = torch.autograd.grad(ref.square().sum(), [x, *layer.parameters()])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b)


def test_equals_the_shared_block_and_divides_by_sqrt_dk(float64):
    torch.manual_seed(1)
    layer = SelfAttention(8, d_k=4)
    x = torch.randn(2, 6, 8)
    q, k, v = layer.W_q(x), layer.W_k(x), layer.W_v(x)
    out, w = layer(x)
    ref, w_ref = scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])
    torch.testing.assert_close(out, ref[:, 0])
    torch.testing.assert_close(w, w_ref[:, 0])
    layer.scaled = False
    torch.testing.assert_close(layer(x)[1], torch.softmax(q @ k.transpose(1, 2), -1))
    torch.testing.assert_close(w, torch.softmax(q @ k.transpose(1, 2) / math.sqrt(4), -1))


def test_gradcheck(float64):
    torch.manual_seed(2)
    layer = SelfAttention(4, d_k=3)
    x = torch.randn(1, 3, 4, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: layer(z, causal_mask(3))[0], (x,))


def test_bad_sizes():
    with pytest.raises(ValueError, match=">= 1"):
        SelfAttention(0)


def test_sequential_depth_counts_a_chain():
    x = torch.randn(3, requires_grad=True)
    y = x
    for _ in range(7):
        y = y * 2
    assert sequential_depth(y, x) == 7
    z = torch.randn(3, requires_grad=True)
    assert sequential_depth(z * 2, x) == 0  # no path
    # the longest of two branches counts
    assert sequential_depth(x.exp().exp().exp() + x, x) == 4


def test_depth_constant_for_attention_linear_for_rnn():
    torch.manual_seed(0)
    attn, rnn = SelfAttention(4), Recurrent("rnn", 4, 4)
    depths = {"attn": [], "rnn": []}
    for T in (4, 8, 16):
        x = torch.randn(1, T, 4, requires_grad=True)
        depths["attn"].append(sequential_depth(attn(x)[0], x))
        depths["rnn"].append(sequential_depth(rnn(x)[0], x))
    assert len(set(depths["attn"])) == 1
    steps = [b - a for a, b in zip(depths["rnn"], depths["rnn"][1:])]
    assert steps[1] == 2 * steps[0] > 0  # the same number of operations per time step


def test_softmax_statistics_limits():
    g = torch.Generator().manual_seed(0)
    flat = softmax_statistics(torch.zeros(4, 8, dtype=torch.float64), g)
    assert flat["entropy"] == pytest.approx(1.0) and flat["max_weight"] == pytest.approx(1 / 8)
    peaked = softmax_statistics(torch.tensor([[100.0, 0, 0, 0]], dtype=torch.float64), g)
    assert peaked["max_weight"] == pytest.approx(1.0) and peaked["grad"] < 1e-30 and peaked["vanished"] == 1.0
