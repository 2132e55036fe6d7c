"""Flow++: the logistic-mixture CDF against a direct computation, the coupling's bisection inverse and
log-det against autograd Jacobians (float64), the variational dequantiser's density, the baselines."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.nn.flows import alternating_masks
from deepatlas.zoo.generative.flowpp import (
    DequantizedFlow, MixLogisticCoupling, VariationalDequantizer, bits_per_dim, independent_pixels_nll,
    mix_log_cdf, pixel_flow,
)
from tests.nn.test_flows import _randomise, check_layer


def test_mix_log_cdf_matches_direct_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    log_pi = torch.log_softmax(torch.randn(5, 3, 4, generator=g, dtype=torch.float64), -1)
    mu, log_s = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64)
    log_cdf, log_sf, log_pdf = mix_log_cdf(x, log_pi, mu, log_s)
    sig = torch.sigmoid((x[..., None] - mu) / log_s.exp())
    cdf = (log_pi.exp() * sig).sum(-1)
    torch.testing.assert_close(log_cdf.exp(), cdf)
    torch.testing.assert_close(log_sf.exp(), 1 - cdf)
    pdf = torch.autograd.functional.jacobian(lambda v: mix_log_cdf(v, log_pi, mu, log_s)[0].exp().sum(), x)
    torch.testing.assert_close(log_pdf.exp(), pdf)


@settings(max_examples=10, deadline=None)
@given(dim=st.integers(2, 5), seed=st.integers(0, 10_000), k=st.integers(1, 4), parity=st.integers(0, 1))
def test_mixlogistic_coupling_inverse_and_log_det(dim, seed, k, parity):
    g = torch.Generator().manual_seed(seed)
    layer = MixLogisticCoupling(alternating_masks(dim, 2)[parity], k=k, hidden=8, generator=g).double()
    _randomise(layer, g, 0.3)
    check_layer(layer, 2 * torch.randn(3, dim, generator=g, dtype=torch.float64), atol=1e-7)


def test_variational_dequantizer_density_integrates_to_one():
    """q(u | x) is a density on [0, 1]^2 for a fixed x: its grid integral is ~1 and u stays in the box."""
    g = torch.Generator().manual_seed(0)
    q = VariationalDequantizer(2, hidden=8, generator=g).double()
    _randomise(q, g, 0.2)
    x = torch.tensor([[3.0, 7.0]], dtype=torch.float64)
    u, log_q = q(x.expand(4000, 2), torch.Generator().manual_seed(1))
    assert (u > 0).all() and (u < 1).all()
    # importance check: E_q[1 / q(u)] = area of [0, 1]^2 = 1
    assert abs((-log_q).exp().mean().item() - 1) < 0.05


def test_uniform_dequantisation_bound_and_baseline():
    x = torch.tensor([[0.0, 16.0], [5.0, 5.0]])
    assert independent_pixels_nll(x, x, 17) == pytest.approx(-2 * math.log(2 / 19))  # add-one: each value seen once of 19
    assert bits_per_dim(2 * math.log(2), 2) == pytest.approx(1.0)
    model = DequantizedFlow(pixel_flow(2, "affine", 17, 2, 8), "uniform")
    assert model.log_prob(x).shape == (2,)
    with pytest.raises(ValueError, match="dequantize"):
        DequantizedFlow(pixel_flow(2, "affine", 17, 2, 8), "gaussian")
    with pytest.raises(ValueError, match="coupling"):
        pixel_flow(2, "spline")
