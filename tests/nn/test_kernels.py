"""Kernels against scikit-learn in float64, the arc-cosine recursion against wide random ReLU nets."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern

from deepatlas.nn.kernels import arccos_j, arccos_relu, matern52, rbf


def _points(seed, n, d):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("ours, theirs", [(rbf, lambda ls: RBF(ls)), (matern52, lambda ls: Matern(ls, nu=2.5))],
                         ids=["rbf", "matern52"])
@pytest.mark.parametrize("lengthscale", [0.3, 1.7])
def test_stationary_kernels_match_sklearn(ours, theirs, lengthscale):
    x1, x2 = _points(0, 7, 3), _points(1, 5, 3)
    k = ours(x1, x2, lengthscale, 2.5)
    ref = (ConstantKernel(2.5) * theirs(lengthscale))(x1.numpy(), x2.numpy())
    np.testing.assert_allclose(k.numpy(), ref, rtol=1e-12, atol=1e-14)


def test_ard_lengthscales_match_sklearn():
    x1, x2 = _points(2, 6, 2), _points(3, 4, 2)
    ls = torch.tensor([0.5, 2.0], dtype=torch.float64)
    np.testing.assert_allclose(rbf(x1, x2, ls, 1.0).numpy(), RBF(ls.numpy())(x1.numpy(), x2.numpy()), rtol=1e-12)


@pytest.mark.parametrize("kernel", [rbf, matern52])
def test_hyperparameter_gradients_are_finite_on_the_diagonal(kernel):
    x = _points(4, 5, 2)
    ls = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    var = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: kernel(x, x, a, b), (ls, var))


def test_arccos_j_gradcheck_and_endpoints():
    c = torch.tensor([-0.9, -0.3, 0.0, 0.5, 0.95], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(arccos_j, (c,))
    ends = torch.tensor([-1.0, 1.0], dtype=torch.float64, requires_grad=True)
    j = arccos_j(ends)
    torch.testing.assert_close(j.detach(), torch.tensor([0.0, math.pi], dtype=torch.float64))
    (g,) = torch.autograd.grad(j.sum(), ends)
    torch.testing.assert_close(g, torch.tensor([0.0, math.pi], dtype=torch.float64))  # dJ/dc = pi - theta


def test_arccos_one_layer_matches_cho_saul():
    # E[relu(w.x) relu(w.x')] with w ~ N(0, I): |x||x'| J(theta) / 2 pi (Cho & Saul 2009, order 1, halved)
    x1, x2 = _points(5, 4, 3), _points(6, 3, 3)
    n1, n2 = x1.norm(dim=1)[:, None], x2.norm(dim=1)[None, :]
    theta = torch.arccos((x1 @ x2.T / (n1 * n2)).clamp(-1, 1))
    ref = n1 * n2 * (torch.sin(theta) + (math.pi - theta) * torch.cos(theta)) / (2 * math.pi)
    # weight_var = d makes the first layer's weights N(0, 1); the output layer then has variance 1 per unit
    torch.testing.assert_close(arccos_relu(x1, x2, depth=1, weight_var=3.0, bias_var=0.0), ref * 3.0)


def test_arccos_depth_zero_is_linear():
    x1, x2 = _points(7, 4, 2), _points(8, 3, 2)
    torch.testing.assert_close(arccos_relu(x1, x2, 0, 2.0, 0.1), 0.1 + 2.0 * x1 @ x2.T / 2)


def test_arccos_recursion_matches_gaussian_expectations():
    # propagate each 2x2 covariance [[K(x,x), K(x,x')], [K(x,x'), K(x',x')]] by Monte Carlo over (u, v) ~ N(0, K)
    g = torch.Generator().manual_seed(0)
    x = _points(10, 3, 2)
    wv, bv, depth = 1.8, 0.3, 3
    k = arccos_relu(x, x, depth, wv, bv)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        pair = x[[i, j]]
        cov = bv + wv * pair @ pair.T / 2
        for _ in range(depth):
            uv = torch.randn(400_000, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
            a = torch.relu(uv)
            cov = bv + wv * a.T @ a / len(a)  # E[relu(u) relu(v)] and the diagonal
        torch.testing.assert_close(cov[0, 1], k[i, j], rtol=0.01, atol=0)
        torch.testing.assert_close(cov.diagonal(), k.diagonal()[[i, j]], rtol=0.01, atol=0)


@pytest.mark.parametrize("depth", [1, 2])
def test_arccos_matches_a_wide_random_relu_net(depth):
    # one net of width 2,000: its last-layer empirical kernel is within a few 1/sqrt(width) of the limit
    g = torch.Generator().manual_seed(depth)
    x = _points(9, 4, 3)
    width, wv, bv = 2_000, 2.0, 0.2
    h = x @ (torch.randn(3, width, generator=g, dtype=torch.float64) * math.sqrt(wv / 3))
    h = h + torch.randn(width, generator=g, dtype=torch.float64) * math.sqrt(bv)
    for _ in range(depth - 1):
        a = torch.relu(h)
        h = a @ (torch.randn(width, width, generator=g, dtype=torch.float64) * math.sqrt(wv / width))
        h = h + torch.randn(width, generator=g, dtype=torch.float64) * math.sqrt(bv)
    a = torch.relu(h)
    empirical = bv + wv * a @ a.T / width  # the output's covariance given the last hidden layer
    k = arccos_relu(x, x, depth, wv, bv)
    assert (empirical - k).abs().max() / k.abs().max() < 3 * math.sqrt(2 * depth / width)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.floats(0.5, 3.0), st.floats(0.0, 1.0))
def test_arccos_is_symmetric_positive_semidefinite(seed, depth, wv, bv):
    x = _points(seed, 6, 2)
    k = arccos_relu(x, x, depth, wv, bv)
    torch.testing.assert_close(k, k.T)
    assert torch.linalg.eigvalsh(k).min() > -1e-9 * k.diagonal().max()


def test_bad_arguments_raise():
    x = _points(0, 3, 2)
    with pytest.raises(ValueError, match="same D"):
        rbf(x, _points(0, 3, 4))
    with pytest.raises(ValueError, match="lengthscale must be positive"):
        rbf(x, x, lengthscale=0.0)
    with pytest.raises(ValueError, match="depth"):
        arccos_relu(x, x, depth=-1)
    with pytest.raises(ValueError, match="bias_var"):
        arccos_relu(x, x, bias_var=-1.0)
