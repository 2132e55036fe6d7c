"""Neural SDE: Euler-Maruyama against the exact OU moments, and the increment likelihood."""

import math

import torch

from deepatlas.zoo.dynamics.neural_sde import NeuralSDE, em_nll, euler_maruyama, ou_paths


def test_euler_maruyama_matches_ou_moments():
    g = torch.Generator().manual_seed(0)
    theta, m, sigma, x0, t = 1.5, 0.3, 0.8, 2.0, 1.0
    xs = euler_maruyama(lambda x, s: theta * (m - x), lambda x, s: sigma * torch.ones_like(x),
                        torch.full((10_000, 1), x0, dtype=torch.float64), 0.01, 100, g)[-1, :, 0]
    mean = m + (x0 - m) * math.exp(-theta * t)
    std = sigma * math.sqrt((1 - math.exp(-2 * theta * t)) / (2 * theta))
    assert abs(xs.mean().item() - mean) < 0.03 and abs(xs.std().item() / std - 1) < 0.04


def test_exact_ou_paths_have_the_stationary_variance():
    g = torch.Generator().manual_seed(1)
    paths = ou_paths(10_000, 4.0, 0.1, 1.0, 0.0, 0.5, torch.zeros(10_000, dtype=torch.float64), g)
    assert abs(paths[:, -1].var().item() / (0.25 / 2 * (1 - math.exp(-8))) - 1) < 0.06


def test_increment_nll_is_the_gaussian_formula():
    model = NeuralSDE(1, 4).double()
    x = torch.tensor([[[0.0], [0.1], [0.05]]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.1, 0.2], dtype=torch.float64)
    mu, sig = model(x[:, :-1], t[:-1, None][None])
    var = sig**2 * 0.1
    dx = x[:, 1:] - x[:, :-1]
    expected = (0.5 * (dx - mu * 0.1) ** 2 / var + 0.5 * torch.log(2 * math.pi * var)).mean()
    assert torch.allclose(em_nll(model, x, t, 0.1), expected)
    assert (sig > 0).all()
