"""Last-layer Laplace: the GGN is the exact Hessian, and with the MAP at the conjugate mean it is BLR."""

import math

import pytest
import torch

from deepatlas.zoo.bayesian import bayesian_linear_regression as blr
from deepatlas.zoo.bayesian.laplace_approximation import LastLayerLaplace
from deepatlas.zoo.fundamentals.mlp import MLP


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    net = MLP([1, 12, 12, 1], activation="relu", generator=g).double()
    x = torch.rand(40, 1, generator=g, dtype=torch.float64) * 4 - 2
    y = torch.sin(2 * x[:, 0]) + 0.1 * torch.randn(40, generator=g, dtype=torch.float64)
    return LastLayerLaplace(net), x, y


def test_ggn_is_the_hessian_of_the_negative_log_posterior():
    la, x, y = _setup()
    phi = la.features(x).detach()

    def neg_log_post(w):  # w = [W, b] of the last layer
        return ((y - phi @ w) ** 2).sum() / (2 * 0.04) + 0.7 * (w * w).sum() / 2

    H = torch.autograd.functional.hessian(neg_log_post, la.map_weights().detach())
    torch.testing.assert_close(la.ggn(x, 0.04, 0.7), H)


def test_with_the_conjugate_mean_laplace_is_bayesian_linear_regression():
    la, x, y = _setup(1)
    phi = la.features(x).detach()
    m, S = blr.posterior(phi, y, 0.5, 1 / 0.04)
    with torch.no_grad():  # put the MAP of the last layer at the posterior mean
        la.net.layers[-1].weight.copy_(m[None, :-1])
        la.net.layers[-1].bias.copy_(m[-1:])
    la.prior_precision = 0.5
    la.fit_posterior(x, y, noise_var=0.04, fit_prior=False)
    x_star = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    mean, var = la(x_star)
    ref_mean, ref_var = blr.predictive(la.features(x_star), m, S, 1 / 0.04)
    torch.testing.assert_close(mean, ref_mean)
    torch.testing.assert_close(var, ref_var)
    torch.testing.assert_close(la.log_evidence(x, y, 0.04, 0.5), blr.log_evidence(phi, y, 0.5, 1 / 0.04))


def test_prior_precision_maximises_the_laplace_evidence():
    la, x, y = _setup(2)
    lam = la.fit_posterior(x, y, noise_var=0.04)
    best = la.log_evidence(x, y, 0.04, lam)
    for factor in (0.8, 1.25):
        assert la.log_evidence(x, y, 0.04, lam * factor) < best
    assert la.prior_precision == lam and math.isclose(la.noise_var.item(), 0.04)


def test_mc_predictive_agrees_with_the_linearised_one():
    la, x, y = _setup(3)
    la.fit_posterior(x, y, noise_var=0.04)
    x_star = torch.linspace(-3, 3, 5, dtype=torch.float64)[:, None]
    with torch.no_grad():
        mean, var = la(x_star)
    mc_mean, mc_var = la.mc_predictive(x_star, 40_000, torch.Generator().manual_seed(4))
    torch.testing.assert_close(mc_mean, mean, atol=0.02 * var.sqrt().max().item(), rtol=0)
    torch.testing.assert_close(mc_var, var, rtol=0.03, atol=0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="single output"):
        LastLayerLaplace(MLP([1, 4, 2]))
    with pytest.raises(ValueError, match="prior_precision"):
        LastLayerLaplace(MLP([1, 4, 1]), prior_precision=0.0)
