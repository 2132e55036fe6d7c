"""Denoising autoencoder: the corruptions, the mixture score against autograd, and Tweedie's formula."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.generative.denoising_autoencoder import corrupt, mixture_log_prob, mixture_score


def test_corruptions():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(20_000)
    masked = corrupt(x, "mask", 0.3, g)
    assert set(masked.unique().tolist()) <= {0.0, 1.0} and abs((masked == 0).float().mean() - 0.3) < 0.02
    noisy = corrupt(torch.zeros(20_000), "gaussian", 0.5, g)
    assert abs(noisy.std() - 0.5) < 0.02 and abs(noisy.mean()) < 0.02
    assert torch.equal(corrupt(x, "gaussian", 0.5, torch.Generator().manual_seed(3)),
                       corrupt(x, "gaussian", 0.5, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "salt", 0.1)
    with pytest.raises(ValueError, match="level"):
        corrupt(x, "mask", 1.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 3), st.floats(0.2, 2.0), st.integers(0, 10_000))
def test_mixture_score_is_the_gradient_of_its_log_density(k, d, std, seed):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=g, dtype=torch.float64)
    x = torch.randn(6, d, generator=g, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(mixture_log_prob(x, means, std).sum(), x)
    torch.testing.assert_close(mixture_score(x.detach(), means, std), grad)


def test_mixture_log_prob_of_one_component_is_a_gaussian():
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    ref = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64),
                                                 0.49 * torch.eye(2, dtype=torch.float64)).log_prob(x)
    torch.testing.assert_close(mixture_log_prob(x, torch.zeros(1, 2, dtype=torch.float64), 0.7), ref)


def test_tweedie_posterior_mean_for_gaussian_data():
    """x ~ N(m, s^2), x~ = x + sigma eps: E[x | x~] = (s^2 x~ + sigma^2 m) / (s^2 + sigma^2) = x~ + sigma^2 score."""
    m, s, sigma = torch.tensor([[1.0, -2.0]], dtype=torch.float64), 0.5, 0.3
    x_tilde = torch.tensor([[0.2, 0.1], [1.5, -1.0]], dtype=torch.float64)
    posterior_mean = (s**2 * x_tilde + sigma**2 * m) / (s**2 + sigma**2)
    score = mixture_score(x_tilde, m, math.sqrt(s**2 + sigma**2))
    torch.testing.assert_close(x_tilde + sigma**2 * score, posterior_mean)
