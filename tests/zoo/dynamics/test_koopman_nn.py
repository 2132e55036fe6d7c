"""Koopman autoencoder: predictions are matrix powers of one rotation-scaling matrix."""

import math

import torch

from deepatlas.zoo.dynamics.koopman_nn import KoopmanAE, dmd_matrix, koopman_loss


def test_latent_trajectory_is_matrix_powers():
    model = KoopmanAE(2, 8, dt=0.1, generator=torch.Generator().manual_seed(0)).double()
    x0 = torch.randn(3, 2, dtype=torch.float64)
    zs, xs = model(x0, 5)
    k = model.koopman_matrix(zs[0])
    for m in range(6):
        assert torch.allclose(zs[m], (torch.linalg.matrix_power(k, m) @ zs[0][..., None])[..., 0])
    assert torch.allclose(xs, model.decoder(zs))


def test_koopman_matrix_is_scaled_rotation():
    model = KoopmanAE(2, 8, dt=0.1).double()
    k = model.koopman_matrix(torch.randn(4, 2, dtype=torch.float64))
    det = torch.linalg.det(k)
    scale = k[:, 0, 0] ** 2 + k[:, 1, 0] ** 2
    assert torch.allclose(det, scale) and torch.allclose(k[:, 0, 0], k[:, 1, 1]) and torch.allclose(k[:, 0, 1], -k[:, 1, 0])


def test_dmd_recovers_a_linear_system_and_loss_is_finite():
    a = torch.tensor([[math.cos(0.1), -math.sin(0.1)], [math.sin(0.1), math.cos(0.1)]], dtype=torch.float64)
    x = torch.randn(50, 2, dtype=torch.float64)
    assert torch.allclose(dmd_matrix(x, x @ a.T), a)
    model = KoopmanAE(2, 8)
    loss, *_ = koopman_loss(model, torch.randn(4, 6, 2), 5)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
