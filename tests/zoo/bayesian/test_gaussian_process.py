"""Exact GP regression against scikit-learn's GaussianProcessRegressor in float64."""

import math

import numpy as np
import pytest
import torch
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern, WhiteKernel

from deepatlas.nn.kernels import matern52, rbf
from deepatlas.zoo.bayesian.gaussian_process import (
    GPRegression, exact_posterior, fit_marginal_likelihood, log_marginal_likelihood, sample_prior,
)


def _data(n=25, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g, dtype=torch.float64) * 6 - 3
    y = torch.sin(2 * x[:, 0]) + 0.2 * torch.randn(n, generator=g, dtype=torch.float64)
    return x, y, torch.linspace(-4, 4, 17, dtype=torch.float64)[:, None]


@pytest.mark.parametrize("ours, theirs", [(rbf, lambda ls: RBF(ls)), (matern52, lambda ls: Matern(ls, nu=2.5))],
                         ids=["rbf", "matern52"])
def test_posterior_and_evidence_match_sklearn(ours, theirs):
    x, y, xs = _data()
    ls, var, noise = 0.7, 1.4, 0.05
    mean, f_var = exact_posterior(x, y, xs, lambda a, b: ours(a, b, ls, var), noise)
    ref = GaussianProcessRegressor(ConstantKernel(var) * theirs(ls), alpha=noise, optimizer=None)
    ref.fit(x.numpy(), y.numpy())
    ref_mean, ref_std = ref.predict(xs.numpy(), return_std=True)  # latent f: alpha is not added at test points
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(f_var.sqrt().numpy(), ref_std, rtol=1e-7, atol=1e-8)
    lml = log_marginal_likelihood(x, y, lambda a, b: ours(a, b, ls, var), noise)
    np.testing.assert_allclose(lml.item(), ref.log_marginal_likelihood_value_, rtol=1e-11)


def test_evidence_gradient_matches_sklearn():
    # sklearn differentiates with respect to the log hyper-parameters (variance, lengthscale, noise)
    x, y, _ = _data()
    gp = GPRegression("rbf", lengthscale=0.7, variance=1.4, noise_var=0.05).double()
    gp.log_marginal_likelihood(x, y).backward()
    kernel = ConstantKernel(1.4) * RBF(0.7) + WhiteKernel(0.05)
    ref = GaussianProcessRegressor(kernel, alpha=0.0, optimizer=None).fit(x.numpy(), y.numpy())
    value, grad = ref.log_marginal_likelihood(kernel.theta, eval_gradient=True)
    ours = [gp.log_variance.grad.item(), gp.log_lengthscale.grad.item(), gp.log_noise_var.grad.item()]
    np.testing.assert_allclose(ours, grad, rtol=1e-6)  # sklearn's noise gradient is off by 4e-7 (ours: gradcheck)
    logs = [p.detach().clone().requires_grad_() for p in (gp.log_lengthscale, gp.log_variance, gp.log_noise_var)]
    assert torch.autograd.gradcheck(
        lambda ll, lv, ln: log_marginal_likelihood(x, y, lambda a, b: rbf(a, b, ll.exp(), lv.exp()), ln.exp()), logs)
    np.testing.assert_allclose(gp.log_marginal_likelihood(x, y).item(), value, rtol=1e-8)


def test_fitted_hyperparameters_match_sklearn():
    x, y, xs = _data(40, seed=3)
    gp = GPRegression("rbf", lengthscale=1.0, variance=1.0, noise_var=0.1).double()
    fit_marginal_likelihood(gp, x, y, steps=150, lr=0.1)
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(1.0, (1e-3, 1e3)) + WhiteKernel(0.1, (1e-5, 1e1))
    ref = GaussianProcessRegressor(kernel, alpha=0.0, n_restarts_optimizer=0).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose(gp.log_marginal_likelihood(x, y).item(), ref.log_marginal_likelihood_value_,
                               rtol=1e-5)
    k = ref.kernel_
    np.testing.assert_allclose([gp.variance.item(), gp.lengthscale.item(), gp.noise_var.item()],
                               [k.k1.k1.constant_value, k.k1.k2.length_scale, k.k2.noise_level], rtol=1e-2)
    with torch.no_grad():
        mean, var = gp(x, y, xs)
        noise = gp.noise_var
    ref_mean, ref_std = ref.predict(xs.numpy(), return_std=True)  # WhiteKernel adds the noise at test points
    np.testing.assert_allclose(mean.numpy(), ref_mean, atol=1e-3)
    np.testing.assert_allclose((var + noise).sqrt().numpy(), ref_std, atol=1e-3)


def test_noise_free_posterior_interpolates():
    x, y, _ = _data(10)
    mean, var = exact_posterior(x, y, x, lambda a, b: rbf(a, b, 0.5, 1.0), 1e-10)
    torch.testing.assert_close(mean, y, atol=1e-5, rtol=0)
    assert var.max() < 1e-5


def test_prior_samples_have_the_kernel_covariance():
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)[:, None]
    f = sample_prior(x, lambda a, b: rbf(a, b, 0.6, 2.0), 40_000, torch.Generator().manual_seed(0))
    assert f.shape == (40_000, 5)
    torch.testing.assert_close(f.T @ f / len(f), rbf(x, x, 0.6, 2.0), atol=0.05, rtol=0)
    again = sample_prior(x, lambda a, b: rbf(a, b, 0.6, 2.0), 40_000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again, f, rtol=0, atol=0)


def test_variance_returns_to_the_prior_far_from_data():
    x, y, _ = _data()
    far = torch.tensor([[50.0]], dtype=torch.float64)
    mean, var = exact_posterior(x, y, far, lambda a, b: rbf(a, b, 0.7, 1.4), 0.05)
    assert abs(mean.item()) < 1e-8 and math.isclose(var.item(), 1.4, rel_tol=1e-8)


def test_bad_arguments_raise():
    x, y, xs = _data()
    kernel = lambda a, b: rbf(a, b, 1.0, 1.0)  # noqa: E731
    with pytest.raises(ValueError, match=r"x \(N, D\) and y \(N,\)"):
        exact_posterior(x, y[:-1], xs, kernel, 0.1)
    with pytest.raises(ValueError, match="noise_var"):
        log_marginal_likelihood(x, y, kernel, -1.0)
    with pytest.raises(ValueError, match="unknown kernel"):
        GPRegression("periodic")
    with pytest.raises(ValueError, match="lengthscale must be positive"):
        GPRegression(lengthscale=0.0)
