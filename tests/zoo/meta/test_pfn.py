"""PFN: the output distributions, the attention pattern (queries see only the context), and the exact-GP
reference it is compared with."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.meta.pfn import PFN, BarDistribution, GaussianHead, GPPrior, context_mask, pfn_gp_bar


def test_bar_distribution_nll_and_moments():
    borders = torch.tensor([-2.0, -1.0, 0.0, 0.5, 2.0], dtype=torch.float64)
    bar = BarDistribution(borders)
    logits = torch.tensor([[0.1, 1.0, -0.5, 0.3]], dtype=torch.float64)
    p = logits.softmax(-1)[0]
    y = torch.tensor([[0.25, -1.5, 5.0]], dtype=torch.float64)  # bins 2, 0 and (beyond the border) 3
    expected = -torch.log(torch.stack([p[2] / 0.5, p[0] / 1.0, p[3] / 1.5]))
    torch.testing.assert_close(bar.nll(logits.expand(3, -1)[None], y)[0], expected)
    grid = torch.linspace(-2, 2, 400_001, dtype=torch.float64)[:-1] + 0.5e-5
    density = (-bar.nll(logits.expand(len(grid), -1), grid)).exp()
    mean, var = bar.mean_var(logits)
    assert (density * 1e-5).sum().item() == pytest.approx(1.0, abs=1e-6)
    assert mean.item() == pytest.approx((density * grid * 1e-5).sum().item(), abs=1e-5)
    assert var.item() == pytest.approx((density * (grid - mean) ** 2 * 1e-5).sum().item(), abs=1e-5)


def test_gaussian_head_nll():
    out = torch.tensor([[0.3, math.log(0.5)]], dtype=torch.float64)
    y = torch.tensor([1.1], dtype=torch.float64)
    expected = -torch.distributions.Normal(0.3, math.sqrt(0.5)).log_prob(y)
    torch.testing.assert_close(GaussianHead().nll(out, y), expected)


def test_bad_borders():
    with pytest.raises(ValueError, match="increasing"):
        BarDistribution(torch.tensor([0.0, 1.0, 0.5]))


def test_context_mask():
    m = context_mask(2, 4)
    assert m[:, :2].all() and not m[:, 2:].any()


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 8), m=st.integers(1, 5), seed=st.integers(0, 1000))
def test_queries_see_only_the_context_in_any_order(n, m, seed):
    torch.manual_seed(0)
    net = pfn_gp_bar(n_bins=10, d_model=16, n_layers=2, d_ff=32).double().eval()
    g = torch.Generator().manual_seed(seed)
    x_c, y_c = torch.rand(2, n, 1, generator=g, dtype=torch.float64), torch.randn(2, n, generator=g, dtype=torch.float64)
    x_q = torch.rand(2, m, 1, generator=g, dtype=torch.float64)
    out = net(x_c, y_c, x_q)
    perm = torch.randperm(n, generator=g)
    torch.testing.assert_close(net(x_c[:, perm], y_c[:, perm], x_q), out)  # the context is a set
    alone = torch.cat([net(x_c, y_c, x_q[:, j:j + 1]) for j in range(m)], 1)
    torch.testing.assert_close(alone, out)  # no query looks at another


def test_gp_posterior_nll_is_the_conditional_of_the_joint():
    prior = GPPrior()
    g = torch.Generator().manual_seed(0)
    x, y = prior.sample(1, 7, g)
    nll = prior.posterior_nll(x[:, :5], y[:, :5], x[:, 5:], y[:, 5:])  # (1, 2)
    K = prior.kernel(x[0], x[0]) + prior.noise_var * torch.eye(7, dtype=torch.float64)
    for j in (5, 6):
        idx = list(range(5)) + [j]
        joint = torch.distributions.MultivariateNormal(torch.zeros(6, dtype=torch.float64), K[idx][:, idx])
        ctx = torch.distributions.MultivariateNormal(torch.zeros(5, dtype=torch.float64), K[:5, :5])
        expected = -(joint.log_prob(y[0, idx]) - ctx.log_prob(y[0, :5]))
        assert nll[0, j - 5].item() == pytest.approx(expected.item(), rel=1e-8)


def test_prior_draws_have_the_kernel_covariance():
    prior = GPPrior()
    x, y = prior.sample(20_000, 3, torch.Generator().manual_seed(1))
    cov = torch.cov(y.T)
    expected = prior.kernel(x[0], x[0]) + prior.noise_var * torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(cov, expected, rtol=0, atol=0.05)


def test_pfn_is_a_module_with_its_head():
    assert isinstance(pfn_gp_bar(), PFN)
