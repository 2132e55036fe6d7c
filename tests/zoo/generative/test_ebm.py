"""EBM: Langevin on a known Gaussian energy reaches its moments; the CD loss's gradient is the
positive-minus-negative phase; the replay buffer."""

import pytest
import torch

from deepatlas.zoo.generative.ebm import EnergyMLP, ReplayBuffer, cd_loss, energy_grad, langevin


def test_langevin_reaches_the_moments_of_a_gaussian_energy():
    """E(x) = 1/2 (x - m)^T P (x - m) has e^{-E} \\propto N(m, P^{-1})."""
    m = torch.tensor([1.0, -1.0], dtype=torch.float64)
    cov = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=torch.float64)
    prec = torch.linalg.inv(cov)

    def energy(x):
        d = x - m
        return 0.5 * ((d @ prec) * d).sum(1)

    g = torch.Generator().manual_seed(0)
    x = langevin(energy, torch.zeros(4000, 2, dtype=torch.float64), 400, 0.01, g)
    torch.testing.assert_close(x.mean(0), m, atol=0.04, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.03, rtol=0)


def test_energy_grad_matches_closed_form():
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(energy_grad(lambda v: (v**2).sum(1), x), 2 * x)


def test_cd_loss_gradient_is_positive_minus_negative_phase():
    g = torch.Generator().manual_seed(0)
    energy = EnergyMLP(2, 8, 2, generator=g).double()
    x_pos, x_neg = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    params = list(energy.parameters())
    grads = torch.autograd.grad(cd_loss(energy, x_pos, x_neg, alpha=0.0), params)
    pos = torch.autograd.grad(energy(x_pos).mean(), params)
    neg = torch.autograd.grad(energy(x_neg).mean(), params)
    for gr, p, n in zip(grads, pos, neg):
        torch.testing.assert_close(gr, p - n)


def test_replay_buffer_draws_and_restarts():
    g = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(100, -4.0, 4.0, 2, g, fresh=0.0)
    assert buf.x.min() >= -4 and buf.x.max() <= 4
    x, idx = buf.draw(10)
    torch.testing.assert_close(x, buf.x[idx])
    buf.put(torch.zeros(10, 2), idx)
    assert (buf.x[idx] == 0).all()
    assert EnergyMLP(2, 8)(torch.zeros(3, 2)).shape == (3,)
    with pytest.raises(ValueError):
        EnergyMLP(2, 8)(torch.zeros(3, 5))
