"""Bayes by backprop: the closed-form KL, both reparameterisations, and the ELBO on a conjugate case."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from deepatlas.zoo.bayesian.bayes_by_backprop import (
    BayesByBackpropMLP, BayesLinear, gaussian_kl, negative_elbo, train_bayes_by_backprop,
)


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64)
    sigma = torch.rand(4, 3, generator=g, dtype=torch.float64) + 0.1
    ref = kl_divergence(Normal(mu, sigma), Normal(torch.zeros_like(mu), 0.7)).sum()
    torch.testing.assert_close(gaussian_kl(mu, sigma, 0.7), ref)


@pytest.mark.parametrize("local", [True, False])
def test_output_moments_match_the_weight_posterior(local):
    # for one linear layer, a = x W^T + b has mean x mu_W^T + mu_b and variance x^2 sigma_W^2 + sigma_b^2
    layer = BayesLinear(3, 2, init_std=0.3, local_reparam=local, generator=torch.Generator().manual_seed(1)).double()
    x = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64).expand(20_000, 3)
    with torch.no_grad():
        a = layer(x)  # (S, 2): each row a fresh draw (local) or the same weights (global: one draw per call)
        if not local:
            a = torch.cat([layer(x[:1]) for _ in range(20_000)])
        sw2 = torch.nn.functional.softplus(layer.weight_rho) ** 2
        sb2 = torch.nn.functional.softplus(layer.bias_rho) ** 2
        mean = x[0] @ layer.weight_mu.T + layer.bias_mu
        var = (x[0] ** 2) @ sw2.T + sb2
    torch.testing.assert_close(a.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(a.var(0), var, rtol=0.05, atol=0)


def test_gradients_reach_means_and_scales():
    net = BayesByBackpropMLP([2, 8, 1], generator=torch.Generator().manual_seed(2))
    x, y = torch.randn(5, 2), torch.randn(5)
    negative_elbo(net, x, y, 50).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_one_layer_bnn_on_linear_data_approaches_the_conjugate_posterior():
    # a single BayesLinear on y = 2x + noise with known noise: q is a mean-field Gaussian, the exact posterior
    # is Gaussian with near-diagonal covariance (x centred), so VI should recover its means and sds
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 1, generator=g)
    y = 2 * x[:, 0] + 0.5 * torch.randn(200, generator=g)
    net = BayesByBackpropMLP([1, 1], prior_std=1.0, noise_var=0.25, generator=g)
    net.log_noise_var.requires_grad_(False)
    train_bayes_by_backprop(net, x, y, steps=1500, lr=0.03)
    phi = torch.cat([x, torch.ones(200, 1)], 1)
    A = torch.eye(2) + phi.T @ phi / 0.25
    S = torch.linalg.inv(A)
    m = S @ phi.T @ y / 0.25
    layer = net.layers[0]
    q_mean = torch.cat([layer.weight_mu[0], layer.bias_mu])
    q_sd = torch.nn.functional.softplus(torch.cat([layer.weight_rho[0], layer.bias_rho]))
    torch.testing.assert_close(q_mean, m, atol=0.02, rtol=0)
    # mean-field VI matches the precision's diagonal: sd = 1 / sqrt(A_ii)
    torch.testing.assert_close(q_sd.detach(), 1 / A.diagonal().sqrt(), rtol=0.15, atol=0)
    assert math.isfinite(negative_elbo(net, x, y, 200).item())


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="one output"):
        BayesByBackpropMLP([1, 8, 2])
    with pytest.raises(ValueError, match="prior_std"):
        BayesLinear(2, 2, prior_std=0.0)
