"""LNN: with a known Lagrangian, the Euler-Lagrange solve gives the true acceleration."""

import torch

from deepatlas.zoo.dynamics.lagrangian_nn import LNN


def test_pendulum_lagrangian_gives_its_equation_of_motion():
    net = LNN(1, 4).double()
    # L = \dot q^2 / 2 - 3 (1 - \cos q)  =>  \ddot q = -3 \sin q
    net.lagrangian = lambda x: 0.5 * x[:, 1] ** 2 - 3 * (1 - torch.cos(x[:, 0]))
    x = torch.tensor([[0.4, -0.2], [1.2, 0.5]], dtype=torch.float64)
    assert torch.allclose(net(x), torch.stack([x[:, 1], -3 * torch.sin(x[:, 0])], -1))


def test_coupled_lagrangian_with_velocity_dependent_mass():
    """Two degrees of freedom, L = 1/2 qdot^T M(q) qdot - V(q): compare with the closed form."""
    net = LNN(2, 4).double()

    def lagrangian(x):
        q, qd = x[:, :2], x[:, 2:]
        m11 = 2 + torch.cos(q[:, 1])
        return 0.5 * (m11 * qd[:, 0] ** 2 + qd[:, 1] ** 2) - q[:, 0] ** 2 / 2

    net.lagrangian = lagrangian
    x = torch.tensor([[0.3, 0.7, 0.5, -0.4]], dtype=torch.float64)
    q1, q2, v1, v2 = x[0]
    # d/dt(m11 v1) = -q1  =>  m11 a1 - sin(q2) v2 v1 = -q1;   a2 = dL/dq2 = -1/2 sin(q2) v1^2
    a1 = (-q1 + torch.sin(q2) * v2 * v1) / (2 + torch.cos(q2))
    a2 = -0.5 * torch.sin(q2) * v1**2
    assert torch.allclose(net(x)[0, 2:], torch.stack([a1, a2]))


def test_gradients_reach_every_parameter():
    net = LNN(1, 8, generator=torch.Generator().manual_seed(0))
    net(torch.randn(5, 2)).pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
