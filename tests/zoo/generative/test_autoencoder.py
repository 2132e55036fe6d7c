"""Autoencoder: PCA against scikit-learn, principal angles against scipy, the linear AE's optimum."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from deepatlas.zoo.generative.autoencoder import Autoencoder, pca, pca_reconstruct, principal_angles


def test_pca_matches_scikit_learn():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=g, dtype=torch.float64) @ torch.randn(12, 12, generator=g, dtype=torch.float64)
    mean, axes = pca(x, 4)
    ref = PCA(n_components=4, svd_solver="full").fit(x.numpy())
    np.testing.assert_allclose(mean.numpy(), ref.mean_)
    np.testing.assert_allclose(np.abs(axes.T.numpy()), np.abs(ref.components_), atol=1e-10)  # axes up to sign
    np.testing.assert_allclose(pca_reconstruct(x, mean, axes).numpy(),
                               ref.inverse_transform(ref.transform(x.numpy())), atol=1e-10)
    with pytest.raises(ValueError, match="k must be"):
        pca(x, 13)


@settings(max_examples=25, deadline=None)
@given(st.integers(6, 15), st.integers(1, 4), st.integers(1, 4), st.integers(0, 10_000))
def test_principal_angles_match_scipy(d, k, m, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.randn(d, n, generator=g, dtype=torch.float64) for n in (k, m))
    np.testing.assert_allclose(np.sort(principal_angles(a, b).numpy()), np.sort(subspace_angles(a.numpy(), b.numpy())),
                               atol=1e-7)
    # the same subspace under another basis is at angle 0
    mix = torch.randn(k, k, generator=g, dtype=torch.float64) + 3 * torch.eye(k, dtype=torch.float64)
    assert principal_angles(a, a @ mix).max() < 1e-6


def test_linear_autoencoder_at_the_pca_solution_is_optimal():
    """Decoder = PCA axes, encoder = their transpose: the loss equals PCA's, and its gradient vanishes."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 10, generator=g, dtype=torch.float64) * torch.linspace(3, 0.3, 10, dtype=torch.float64)
    x = x - x.mean(0)
    mean, axes = pca(x, 3)
    ae = Autoencoder([10, 3], activation="identity").double()
    with torch.no_grad():
        ae.encoder[0].weight.copy_(axes.T)
        ae.encoder[0].bias.zero_()
        ae.decoder[0].weight.copy_(axes)
        ae.decoder[0].bias.zero_()
    loss = (ae(x) - x).square().mean()
    torch.testing.assert_close(loss, (pca_reconstruct(x, mean, axes) - x).square().mean())
    grads = torch.autograd.grad(loss, list(ae.parameters()))
    assert max(gr.abs().max() for gr in grads) < 1e-12


def test_shapes_and_arguments():
    ae = Autoencoder([20, 8, 3], sigmoid_output=True, generator=torch.Generator().manual_seed(0))
    x = torch.rand(5, 20)
    assert ae.encode(x).shape == (5, 3) and ae(x).shape == (5, 20) and ae.code_size == 3
    assert 0 <= ae(x).min() and ae(x).max() <= 1
    expected = (20 * 8 + 8) + (8 * 3 + 3) + (3 * 8 + 8) + (8 * 20 + 20)
    assert sum(p.numel() for p in ae.parameters()) == expected
    with pytest.raises(ValueError, match="activation"):
        Autoencoder([4, 2], activation="swish")
    with pytest.raises(ValueError, match="at least"):
        Autoencoder([4])
