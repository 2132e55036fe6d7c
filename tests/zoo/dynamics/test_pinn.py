"""PINN: the autograd residual against hand-derived derivatives, and the training points."""

import math

import torch

from deepatlas.zoo.dynamics.pinn import PINN, burgers_residual, burgers_training_points


def test_residual_is_exact_for_a_known_function():
    """Replace the network by u = sin(x) e^{-t}: r = -u + u cos(x) e^{-t} + nu u, in closed form."""
    class Known(PINN):
        def forward(self, x, t):
            return torch.sin(x) * torch.exp(-t)

    x, t, nu = torch.linspace(-1, 1, 9, dtype=torch.float64), torch.linspace(0, 1, 9, dtype=torch.float64), 0.3
    u = torch.sin(x) * torch.exp(-t)
    expected = -u + u * torch.cos(x) * torch.exp(-t) + nu * u
    assert torch.allclose(burgers_residual(Known(2, 1), x, t, nu), expected, atol=1e-12)


def test_residual_matches_finite_differences_of_the_network():
    g = torch.Generator().manual_seed(0)
    net = PINN(8, 3, generator=g).double()
    x, t, h = torch.tensor([0.3, -0.5], dtype=torch.float64), torch.tensor([0.2, 0.7], dtype=torch.float64), 1e-4
    with torch.no_grad():
        u = net(x, t)
        u_t = (net(x, t + h) - net(x, t - h)) / (2 * h)
        u_x = (net(x + h, t) - net(x - h, t)) / (2 * h)
        u_xx = (net(x + h, t) - 2 * u + net(x - h, t)) / h**2
    assert torch.allclose(burgers_residual(net, x, t, 0.01), u_t + u * u_x - 0.01 * u_xx, atol=1e-6)


def test_residual_gradient_reaches_every_parameter():
    net = PINN(4, 2)
    burgers_residual(net, torch.rand(5), torch.rand(5), 0.1).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_training_points():
    g = torch.Generator().manual_seed(0)
    x_f, t_f, x_u, t_u, u_u = burgers_training_points(20, 10, 500, g)
    assert x_f.shape == t_f.shape == (500,) and x_u.shape == (30,)
    assert x_f.abs().max() <= 1 and 0 <= t_f.min() and t_f.max() <= 1
    assert torch.allclose(u_u[:20], -torch.sin(math.pi * x_u[:20])) and (t_u[:20] == 0).all()
    assert (x_u[20:].abs() == 1).all() and (u_u[20:] == 0).all()
