"""SWAG: running moments against batch statistics, the sampling covariance, a quadratic loss."""

import pytest
import torch
from torch import nn

from deepatlas.zoo.bayesian.swag import SWAG, run_swag


def _iterates(T=30, P=4, seed=0):
    return torch.randn(T, P, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.3 + 1.0


def _collect(thetas, K):
    net = nn.Linear(len(thetas[0]) - 1, 1).double()
    swag = SWAG(net, max_rank=K)
    for theta in thetas:
        SWAG.load(net, theta)
        swag.collect(net)
    return swag


def test_running_moments_equal_batch_statistics():
    thetas = _iterates()
    swag = _collect(thetas, K=5)
    torch.testing.assert_close(swag.mean, thetas.mean(0))
    torch.testing.assert_close(swag.diag_var, thetas.var(0, correction=0))
    assert len(swag.deviations) == 5
    # each deviation is taken against the running mean at the time it was collected
    torch.testing.assert_close(swag.deviations[-1], thetas[-1] - thetas.mean(0))


def test_samples_have_the_swag_covariance():
    swag = _collect(_iterates(), K=4)
    g = torch.Generator().manual_seed(1)
    s = torch.stack([swag.sample(g, scale=0.5) for _ in range(10_000)])
    D = torch.stack(swag.deviations, 1)
    cov = 0.5 * (torch.diag(swag.diag_var) + D @ D.T / 3)
    torch.testing.assert_close(s.mean(0), swag.mean, atol=0.01, rtol=0)
    torch.testing.assert_close(torch.cov(s.T), cov, atol=0.004, rtol=0)
    diag_only = torch.stack([swag.sample(g, low_rank=False) for _ in range(5_000)])
    torch.testing.assert_close(diag_only.var(0), 0.5 * swag.diag_var, atol=0.004, rtol=0)


def test_swag_on_least_squares_centres_on_the_solution():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(200, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(200, generator=g)
    net = nn.Linear(3, 1)
    loss = lambda m, xb, yb: ((m(xb)[:, 0] - yb) ** 2).mean()  # noqa: E731
    swag = run_swag(net, loss, x, y, epochs=60, batch_size=20, lr=0.05, max_rank=10, generator=g)
    assert swag.n == 60
    torch.testing.assert_close(swag.mean[:3], torch.tensor([1.0, -2.0, 0.5]), atol=0.05, rtol=0)
    assert (swag.diag_var > 0).all()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="max_rank"):
        SWAG(nn.Linear(2, 1), max_rank=1)
    with pytest.raises(ValueError, match="at least two"):
        SWAG(nn.Linear(2, 1)).sample()
