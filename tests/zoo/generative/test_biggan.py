"""Spectral norm against torch's and the exact largest singular value; hinge loss; class conditioning."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deepatlas.zoo.generative.biggan import (
    ConditionalBatchNorm,
    ConditionalGenerator,
    ProjectionDiscriminator,
    SpectralNorm,
    d_hinge_loss,
    g_hinge_loss,
    power_iteration,
    spectral_norm,
)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.integers(0, 10_000))
def test_power_iteration_finds_the_largest_singular_value(m, n, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(m, n, generator=g, dtype=torch.float64)
    u = torch.nn.functional.normalize(torch.randn(m, generator=g, dtype=torch.float64), dim=0)
    v = torch.nn.functional.normalize(torch.randn(n, generator=g, dtype=torch.float64), dim=0)
    u, v = power_iteration(w, u, v, n_iter=500)
    sigma = u @ w @ v
    torch.testing.assert_close(sigma, torch.linalg.matrix_norm(w, ord=2), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("make", [lambda: nn.Linear(5, 4), lambda: nn.Conv2d(3, 4, 3)], ids=["linear", "conv"])
def test_matches_torch_spectral_norm_in_value_and_gradient(make):
    torch.manual_seed(0)
    ref = torch.nn.utils.parametrizations.spectral_norm(make().double())
    ours = make().double()
    with torch.no_grad():
        ours.weight.copy_(ref.parametrizations.weight.original)
        ours.bias.copy_(ref.bias)
    spectral_norm(ours)
    with torch.no_grad():  # start both power iterations from the same vectors
        ours.parametrizations.weight[0].u.copy_(ref.parametrizations.weight[0]._u)
        ours.parametrizations.weight[0].v.copy_(ref.parametrizations.weight[0]._v)
    x = torch.randn(6, 5, dtype=torch.float64) if isinstance(ours, nn.Linear) else torch.randn(2, 3, 6, 6).double()
    for _ in range(3):  # training mode: one power-iteration round per call, the buffers carried over
        torch.testing.assert_close(ours(x), ref(x))
    g_ours = torch.autograd.grad(ours(x).square().sum(), ours.parametrizations.weight.original)
    g_ref = torch.autograd.grad(ref(x).square().sum(), ref.parametrizations.weight.original)
    torch.testing.assert_close(g_ours, g_ref)
    ours.eval()
    ref.eval()
    torch.testing.assert_close(ours(x), ref(x))


def test_normalised_weight_has_unit_spectral_norm():
    layer = spectral_norm(nn.Linear(6, 9).double(), n_power_iterations=50)
    torch.testing.assert_close(torch.linalg.matrix_norm(layer.weight, ord=2), torch.tensor(1.0, dtype=torch.float64))


def test_spectral_norm_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_power_iterations"):
        SpectralNorm(torch.randn(3, 3), n_power_iterations=0)
    with pytest.raises(ValueError, match="matrix"):
        SpectralNorm(torch.randn(3))


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0])
    assert d_hinge_loss(real, fake).item() == pytest.approx((0 + 0.5 + 2.0) / 3 + (0 + 1.0) / 2)
    assert g_hinge_loss(fake).item() == pytest.approx(1.0)


def test_conditional_batch_norm_is_batch_norm_with_a_per_class_affine_map():
    cbn = ConditionalBatchNorm(4, 3).double()
    h, e = torch.randn(10, 4, 5, 5).double(), torch.randn(10, 3).double()
    x_hat = torch.nn.functional.batch_norm(h, None, None, training=True)
    gain, bias = 1 + e @ cbn.gain.weight.T, e @ cbn.bias.weight.T  # (10, 4)
    torch.testing.assert_close(cbn(h, e), gain[:, :, None, None] * x_hat + bias[:, :, None, None])


def test_generator_output_depends_on_the_class():
    G = ConditionalGenerator(num_classes=8, hidden=16).eval()
    z = torch.randn(1, 2).expand(8, 2)
    out = G(z, torch.arange(8))
    assert out.shape == (8, 2) and (out[1:] - out[0]).abs().max() > 1e-4


def test_projection_discriminator_is_psi_plus_class_inner_product():
    D = ProjectionDiscriminator(num_classes=3, hidden=8, sn=False).double()
    x, y = torch.randn(5, 2).double(), torch.tensor([0, 1, 2, 1, 0])
    h = x
    for layer in D.layers:
        h = torch.relu(layer(h))
    torch.testing.assert_close(D(x, y), D.psi(h)[:, 0] + (D.embed.weight[y] * h).sum(1))
    assert D(x, y).shape == (5,)


def test_sn_discriminator_layers_are_1_lipschitz():
    D = ProjectionDiscriminator(hidden=16, sn=True)
    for _ in range(30):  # let the power iterations converge
        D(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
    for layer in [*D.layers, D.psi]:
        assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() == pytest.approx(1.0, rel=1e-3)
