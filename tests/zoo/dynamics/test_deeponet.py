"""DeepONet: the branch-trunk inner product, periodic features, and learning a linear operator exactly."""

import torch

from deepatlas.zoo.dynamics.deeponet import DeepONet


def test_output_is_branch_dot_trunk_plus_bias():
    net = DeepONet(8, p=5, hidden=16, depth=2, generator=torch.Generator().manual_seed(0))
    u, y = torch.randn(3, 8), torch.rand(7)
    with torch.no_grad():
        net.b0.fill_(0.25)
    expected = torch.einsum("bk,pk->bp", net.branch(u), net.trunk(y[:, None])) + 0.25
    assert torch.allclose(net(u, y), expected, atol=1e-6)


def test_fourier_trunk_is_periodic():
    net = DeepONet(4, fourier=3, generator=torch.Generator().manual_seed(0))
    u, y = torch.randn(2, 4), torch.rand(6)
    assert torch.allclose(net(u, y), net(u, y + 1.0), atol=1e-5)
