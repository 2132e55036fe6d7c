"""WaveNet: causality and the receptive field by gradients, mu-law companding, and the baselines' likelihoods."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.generative.wavenet import (CausalConv1d, WaveNet, linear_ar_nll, marginal_nll,
                                              measured_receptive_field, mu_law_decode, mu_law_encode,
                                              next_sample_nll)


@settings(max_examples=12, deadline=None)
@given(kernel=st.integers(2, 4), dilations=st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_receptive_field_is_one_plus_sum_of_dilations_times_kernel_minus_one(kernel, dilations):
    torch.manual_seed(0)
    net = WaveNet(q=8, channels=8, skip_channels=16, kernel_size=kernel, dilations=tuple(dilations))
    r = 1 + sum(dilations) * (kernel - 1)
    assert net.receptive_field == r
    t = r + 5
    seen, latest = measured_receptive_field(net, 8, t + 7, t)
    assert seen == r and latest == t  # output t sees exactly x_{t-R+1} .. x_t, nothing later


def test_output_at_t_depends_on_no_later_input():
    torch.manual_seed(0)
    net = WaveNet(q=8, channels=4, skip_channels=4, dilations=(1, 2, 4)).double()
    x = torch.rand(1, 8, 20, dtype=torch.float64, requires_grad=True)
    out = net(x)
    for t in range(20):
        (grad,) = torch.autograd.grad(out[0, :, t].sum(), x, retain_graph=True)
        assert (grad[0, :, t + 1:] == 0).all()
        assert grad[0, :, t].abs().max() > 0


def test_causal_conv_matches_a_padded_conv1d():
    torch.manual_seed(0)
    conv = CausalConv1d(3, 5, 3, dilation=2).double()
    x = torch.randn(2, 3, 11, dtype=torch.float64)
    ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (4, 0)), conv.weight, conv.bias, dilation=2)
    assert torch.allclose(conv(x), ref)


def test_mu_law_round_trip_and_levels():
    x = torch.linspace(-1, 1, 1001)
    idx = mu_law_encode(x, 256)
    assert idx.min() == 0 and idx.max() == 255 and (idx[1:] >= idx[:-1]).all()
    # decoding a level gives back the amplitude within the level's width in the companded domain
    f = lambda v: torch.sign(v) * torch.log1p(255 * v.abs()) / math.log1p(255)  # noqa: E731
    assert (f(mu_law_decode(idx, 256)) - f(x)).abs().max() <= 1 / 255 + 1e-6
    assert torch.equal(mu_law_encode(mu_law_decode(torch.arange(64), 64), 64), torch.arange(64))


def test_next_sample_nll_is_the_shifted_cross_entropy():
    torch.manual_seed(0)
    logits, idx = torch.randn(2, 5, 7), torch.randint(0, 5, (2, 7))
    logp = logits.log_softmax(1)
    by_hand = -torch.stack([logp[b, idx[b, t + 1], t] for b in range(2) for t in range(3, 6)]).mean()
    assert torch.allclose(next_sample_nll(logits, idx, start=4), by_hand)


def test_baselines():
    q = 16
    const = torch.full((4, 50), 3)
    # a constant signal: the marginal puts (N + 1) / (N + q) on it
    assert marginal_nll(const, const, q) == pytest.approx(-math.log(201 / 216))
    # a deterministic alternating signal is predicted by AR(2) almost exactly; the marginal pays about ln 2
    alt = torch.tensor([[3, 12] * 30] * 4)
    assert linear_ar_nll(alt, alt, q, p=2, start=2) < 1e-3
    assert marginal_nll(alt, alt, q) == pytest.approx(-math.log(121 / 256))  # 120 of 240, smoothed


def test_bad_arguments():
    with pytest.raises(ValueError, match="dilations"):
        WaveNet(dilations=())
