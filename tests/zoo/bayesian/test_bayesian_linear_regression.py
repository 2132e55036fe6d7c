"""Bayesian linear regression against scikit-learn's BayesianRidge and the Gaussian marginal of y."""

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import BayesianRidge

from deepatlas.zoo.bayesian.bayesian_linear_regression import (
    BayesianLinearRegression, evidence_fixed_point, linear_features, log_evidence, posterior, predictive,
)
from deepatlas.zoo.bayesian.gaussian_process import exact_posterior


def _data(n=30, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.tensor([0.5, -1.0, 2.0, 0.3][: d + 1], dtype=torch.float64)
    y = linear_features(x) @ w + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    return linear_features(x), y


def test_evidence_is_the_gaussian_marginal_of_y():
    # y ~ N(0, Phi Phi^T / alpha + I / beta) once w is integrated out
    phi, y = _data()
    alpha, beta = 0.7, 8.0
    cov = phi @ phi.T / alpha + torch.eye(len(y), dtype=phi.dtype) / beta
    ref = torch.distributions.MultivariateNormal(torch.zeros(len(y), dtype=phi.dtype), cov).log_prob(y)
    torch.testing.assert_close(log_evidence(phi, y, alpha, beta), ref, rtol=1e-12, atol=1e-10)


def test_predictive_equals_the_gp_with_a_linear_kernel():
    phi, y = _data()
    alpha, beta = 0.7, 8.0
    m, S = posterior(phi, y, alpha, beta)
    x_star = linear_features(torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    mean, var = predictive(x_star, m, S, beta)
    gp_mean, gp_var = exact_posterior(phi, y, x_star, lambda a, b: a @ b.T / alpha, 1 / beta)
    torch.testing.assert_close(mean, gp_mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(var, gp_var + 1 / beta, rtol=1e-10, atol=1e-12)


def test_evidence_fixed_point_matches_bayesian_ridge():
    phi, y = _data(60, seed=2)
    alpha, beta = evidence_fixed_point(phi, y)
    ref = BayesianRidge(fit_intercept=False, alpha_1=0, alpha_2=0, lambda_1=0, lambda_2=0, tol=1e-12,
                        max_iter=1000, compute_score=True).fit(phi.numpy(), y.numpy())
    np.testing.assert_allclose([alpha, beta], [ref.lambda_, ref.alpha_], rtol=1e-6)  # sklearn swaps the names
    m, S = posterior(phi, y, alpha, beta)
    np.testing.assert_allclose(m.numpy(), ref.coef_, rtol=1e-6)
    np.testing.assert_allclose(S.numpy(), ref.sigma_, rtol=1e-5)
    mean, var = predictive(phi[:5], m, S, beta)
    ref_mean, ref_std = ref.predict(phi[:5].numpy(), return_std=True)
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-6)
    np.testing.assert_allclose(var.sqrt().numpy(), ref_std, rtol=1e-6)
    # sklearn's score is the log evidence (with its Gamma hyper-priors, here flat)
    np.testing.assert_allclose(log_evidence(phi, y, alpha, beta).item(), ref.scores_[-1], rtol=1e-6)


def test_fixed_point_is_a_stationary_point_of_the_evidence():
    phi, y = _data(40, seed=3)
    alpha, beta = evidence_fixed_point(phi, y)
    la = torch.tensor(math.log(alpha), dtype=torch.float64, requires_grad=True)
    lb = torch.tensor(math.log(beta), dtype=torch.float64, requires_grad=True)
    log_evidence(phi, y, la.exp(), lb.exp()).backward()
    assert abs(la.grad.item()) < 1e-6 and abs(lb.grad.item()) < 1e-6


def test_posterior_concentrates_on_the_true_weights():
    phi, y = _data(5000, seed=4)
    m, S = posterior(phi, y, 1.0, 1 / 0.09)
    torch.testing.assert_close(m, torch.tensor([0.5, -1.0, 2.0, 0.3], dtype=torch.float64), atol=0.03, rtol=0)
    assert S.diagonal().max() < 1e-4


def test_module_gradients_reach_alpha_and_beta():
    blr = BayesianLinearRegression(0.5, 4.0).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 2, generator=g, dtype=torch.float64)
    y = x.sum(1)
    mean, var = blr(x, y, x[:3])
    (mean.sum() + var.sum() + blr.log_evidence(x, y)).backward()
    assert blr.log_alpha.grad.abs() > 0 and blr.log_beta.grad.abs() > 0


def test_bad_arguments_raise():
    phi, y = _data()
    with pytest.raises(ValueError, match=r"phi \(N, P\)"):
        posterior(phi, y[:-1], 1.0, 1.0)
    with pytest.raises(ValueError, match="alpha must be positive"):
        log_evidence(phi, y, 0.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        BayesianLinearRegression(alpha=-1.0)
