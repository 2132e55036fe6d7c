"""SGLD samples a known Gaussian posterior; the step-size schedule; clear errors."""

import pytest
import torch

from deepatlas.zoo.bayesian.sgld import SGLD, polynomial_step


def test_sgld_samples_a_gaussian_posterior():
    # conjugate mean of N(theta, 1) data with a N(0, 10^2) prior: posterior N(m, s^2) in closed form
    g = torch.Generator().manual_seed(0)
    data = 3.0 + torch.randn(50, generator=g, dtype=torch.float64)
    prec = 1 / 100 + len(data)
    m, s = data.sum().item() / prec, prec**-0.5
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = SGLD([theta], lr=2e-3, generator=g)
    draws = []
    for t in range(6000):
        batch = data[torch.randint(50, (10,), generator=g)]
        # U = \theta^2 / 2\cdot 10^2 + (N / n) \sum_{batch} (x - \theta)^2 / 2
        U = theta.pow(2).sum() / 200 + 5 * ((batch - theta) ** 2).sum() / 2
        opt.zero_grad()
        U.backward()
        opt.step()
        if t >= 500:
            draws.append(theta.item())
    draws = torch.tensor(draws)
    assert abs(draws.mean().item() - m) < 0.03
    # minibatch gradient noise inflates the spread at a constant step; within a third here
    assert 0.9 < draws.std().item() / s < 1.35


def test_noise_is_reproducible():
    def run(seed):
        w = torch.zeros(3, requires_grad=True)
        opt = SGLD([w], lr=0.1, generator=torch.Generator().manual_seed(seed))
        w.sum().backward()
        opt.step()
        return w.detach()

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_polynomial_step():
    assert polynomial_step(0, 0.1, 1.0) == pytest.approx(0.1)
    assert polynomial_step(99, 1.0, 1.0, gamma=1.0) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="gamma"):
        polynomial_step(0, 1.0, 1.0, gamma=0.5)
    with pytest.raises(ValueError, match="learning rate"):
        SGLD([torch.zeros(1, requires_grad=True)], lr=0.0)
