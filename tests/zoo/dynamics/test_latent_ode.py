"""Latent ODE: masked observations do not change the encoding; the ELBO has the right parts."""

import torch

from deepatlas.zoo.dynamics.latent_ode import LatentODE, negative_elbo


def test_unobserved_values_are_ignored():
    model = LatentODE(1, 3, 8, step=0.1).double()
    t = torch.tensor([0.0, 0.3, 0.35, 0.9], dtype=torch.float64)
    x = torch.randn(2, 4, 1, dtype=torch.float64)
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)[None, :, None].expand(2, 4, 1)
    x2 = x.clone()
    x2[:, 1] += 100.0  # change only unobserved entries
    x2[:, 3] -= 7.0
    a, b = model.encoder(x, mask, t), model.encoder(x2, mask, t)
    assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])


def test_decoder_extrapolates_and_elbo_backpropagates():
    model = LatentODE(2, 3, 8, step=0.1)
    t = torch.tensor([0.0, 0.2, 0.25, 0.7])
    x, mask = torch.randn(3, 4, 2), torch.ones(3, 4, 2)
    x_hat, mu, logvar = model(x, mask, t, torch.linspace(0, 2, 9), torch.zeros(3, 3))
    assert x_hat.shape == (3, 9, 2) and mu.shape == logvar.shape == (3, 3)
    loss = negative_elbo(model, x, mask, t, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
