import math

import pytest
import torch
from scipy.stats import norm

from deepatlas.zoo.meta.bayesian_optimization import (
    bayesian_optimization, branin, expected_improvement, hartmann3, random_search, trials_to_good,
)


def test_ei_matches_scipy_formula():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(50, generator=g, dtype=torch.float64)
    std = torch.rand(50, generator=g, dtype=torch.float64) + 0.05
    best = 0.3
    gamma = (best - mean.numpy()) / std.numpy()
    expected = std.numpy() * (gamma * norm.cdf(gamma) + norm.pdf(gamma))
    torch.testing.assert_close(expected_improvement(mean, std, best), torch.from_numpy(expected))


def test_ei_matches_monte_carlo():
    g = torch.Generator().manual_seed(1)
    mean, std, best = torch.tensor([0.0, 1.0, -0.5], dtype=torch.float64), torch.tensor([1.0, 0.5, 2.0],
                                                                                        dtype=torch.float64), 0.2
    f = mean + std * torch.randn(400_000, 3, generator=g, dtype=torch.float64)
    mc = (best - f).clamp_min(0).mean(0)
    torch.testing.assert_close(expected_improvement(mean, std, best), mc, rtol=0.01, atol=2e-3)


def test_ei_zero_std_is_plain_improvement_and_bad_std_raises():
    ei = expected_improvement(torch.tensor([0.0, 2.0]), torch.zeros(2), 1.0)
    torch.testing.assert_close(ei, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="std"):
        expected_improvement(torch.zeros(1), -torch.ones(1), 0.0)


def test_test_functions_known_minima():
    branin_minima = torch.tensor([[-math.pi, 12.275], [math.pi, 2.275], [9.42478, 2.475]], dtype=torch.float64)
    u = (branin_minima - torch.tensor([-5.0, 0.0], dtype=torch.float64)) / 15
    torch.testing.assert_close(branin(u), torch.full((3,), 0.397887, dtype=torch.float64), atol=1e-5, rtol=0)
    x = torch.tensor([[0.114614, 0.555649, 0.852547]], dtype=torch.float64)
    torch.testing.assert_close(hartmann3(x), torch.tensor([-3.86278], dtype=torch.float64), atol=1e-5, rtol=0)
    grid = torch.rand(20000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert hartmann3(grid).min() > -3.86278


def test_bo_beats_random_on_branin_and_validates():
    g = torch.Generator().manual_seed(0)
    bo = bayesian_optimization(branin, 2, 25, g, n_init=3, n_candidates=300, fit_steps=10)
    rs = random_search(branin, 2, 25, torch.Generator().manual_seed(0))
    assert bo.shape == rs.shape == (25,)
    assert bo.min() - 0.397887 < 0.1 and bo.min() < rs.min()
    with pytest.raises(ValueError, match="n_init"):
        bayesian_optimization(branin, 2, 2, g, n_init=3)


def test_trials_to_good():
    regret = torch.tensor([[1.0, 0.5, 0.01, 0.0], [1.0, 0.9, 0.8, 0.7]])
    torch.testing.assert_close(trials_to_good(regret, 0.05), torch.tensor([3.0, 5.0], dtype=torch.float64))
