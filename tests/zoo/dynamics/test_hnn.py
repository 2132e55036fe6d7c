"""HNN: the field is the symplectic gradient of H_theta, so H_theta is conserved along it."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.dynamics.hnn import HNN, rollout


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000))
def test_field_is_orthogonal_to_grad_h_and_divergence_free(seed):
    g = torch.Generator().manual_seed(seed)
    net = HNN(2, 16, generator=g).double()
    x = torch.randn(6, 4, generator=g, dtype=torch.float64).requires_grad_()
    f = net(x)
    (dh,) = torch.autograd.grad(net.hamiltonian(x).sum(), x)
    assert (f * dh).sum(-1).abs().max() < 1e-12  # dH/dt = grad H . J grad H = 0
    div = sum(torch.autograd.grad(f[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(4))
    assert div.abs().max() < 1e-12  # Liouville: a Hamiltonian flow preserves phase-space volume


def test_known_hamiltonian_gives_hamiltons_equations():
    net = HNN(1, 4).double()
    net.hamiltonian = lambda x: 0.5 * x[:, 1] ** 2 + 3 * (1 - torch.cos(x[:, 0]))  # the pendulum
    x = torch.tensor([[0.4, -0.2]], dtype=torch.float64)
    assert torch.allclose(net(x), torch.tensor([[-0.2, -3 * torch.sin(torch.tensor(0.4)).item()]], dtype=torch.float64))


def test_rollout_conserves_learned_hamiltonian():
    net = HNN(1, 16, generator=torch.Generator().manual_seed(3)).double()
    xs = rollout(net, torch.tensor([[0.5, 0.1], [-1.0, 0.3]], dtype=torch.float64), 0.01, 200)
    h = net.hamiltonian(xs.reshape(-1, 2)).reshape(201, 2)
    assert (h - h[0]).abs().max() < 1e-6
