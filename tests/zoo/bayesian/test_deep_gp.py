"""Deep GP: a single whitened SVGP layer with the optimal q is the exact GP (predictive and ELBO = evidence)."""

import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from deepatlas.nn.kernels import rbf
from deepatlas.zoo.bayesian.deep_gp import DeepGP
from deepatlas.zoo.bayesian.gaussian_process import exact_posterior, log_marginal_likelihood


def _data(n=15, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g, dtype=torch.float64) * 4 - 2
    return x, torch.sin(2 * x[:, 0]) + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)


def test_one_layer_with_the_optimal_q_is_the_exact_gp():
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]  # spread out, so K stays well conditioned
    y = torch.sin(2 * x[:, 0])
    noise = 0.05
    dgp = DeepGP(x, dims=[1, 1], noise_var=noise)  # inducing points at the data
    layer = dgp.layers[0]
    layer.jitter = 1e-10
    kernel = lambda a, b: rbf(a, b, 0.4, 1.0)  # noqa: E731  (a short lengthscale keeps K well conditioned)
    with torch.no_grad():
        layer.log_lengthscale.fill_(torch.tensor(0.4).log().item())
    K = kernel(x, x)
    Lz = torch.linalg.cholesky(K + 1e-10 * torch.eye(len(x), dtype=x.dtype))
    mu_f, _ = exact_posterior(x, y, x, kernel, noise)
    Kinv = torch.linalg.inv(K + noise * torch.eye(len(x), dtype=x.dtype))
    cov_f = K - K @ Kinv @ K
    with torch.no_grad():  # whitened optimum: v = L_Z^{-1} f
        layer.q_mu.copy_(torch.linalg.solve_triangular(Lz, mu_f[:, None], upper=False))
        S = torch.linalg.solve_triangular(Lz, torch.linalg.solve_triangular(Lz, cov_f, upper=False).T, upper=False)
        layer.q_sqrt.copy_(torch.linalg.cholesky(S + 1e-12 * torch.eye(len(x), dtype=x.dtype))[None])
        x_star = torch.linspace(-3, 3, 9, dtype=torch.float64)[:, None]
        mean, var_y = dgp(x_star)
        ref_mean, ref_var = exact_posterior(x, y, x_star, kernel, noise)
        torch.testing.assert_close(mean, ref_mean, atol=1e-6, rtol=0)
        torch.testing.assert_close(var_y, ref_var + noise, atol=1e-6, rtol=0)
        # with Z = X and the optimal q, the ELBO is the log marginal likelihood (the bound is tight)
        elbo = dgp.elbo(x, y, len(x))
        lml = log_marginal_likelihood(x, y, kernel, noise)
        torch.testing.assert_close(elbo, lml, atol=1e-6, rtol=0)


def test_elbo_bounds_the_evidence_for_any_q():
    x, y = _data(seed=1)
    dgp = DeepGP(x[::2], dims=[1, 1], noise_var=0.05)
    with torch.no_grad():
        dgp.layers[0].q_mu.normal_(generator=torch.Generator().manual_seed(0))
        assert dgp.elbo(x, y, len(x)) < log_marginal_likelihood(x, y, lambda a, b: rbf(a, b), 0.05)


def test_kl_matches_torch():
    x, _ = _data(6)
    layer = DeepGP(x, dims=[1, 2, 1]).layers[0]
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        layer.q_mu.normal_(generator=g)
        layer.q_sqrt.copy_(torch.tril(torch.randn(layer.q_sqrt.shape, generator=g, dtype=x.dtype) * 0.3)
                           + torch.eye(6, dtype=x.dtype))
    L = torch.tril(layer.q_sqrt)
    ref = sum(kl_divergence(MultivariateNormal(layer.q_mu[:, d], scale_tril=L[d]),
                            MultivariateNormal(torch.zeros(6, dtype=x.dtype), torch.eye(6, dtype=x.dtype)))
              for d in range(2))
    torch.testing.assert_close(layer.kl(), ref)


def test_two_layers_train_on_a_step_and_gradients_reach_everything():
    g = torch.Generator().manual_seed(3)
    x = torch.linspace(-2, 2, 60, dtype=torch.float64)[:, None]
    y = (x[:, 0] > 0).double() + 0.05 * torch.randn(60, generator=g, dtype=torch.float64)
    dgp = DeepGP(torch.linspace(-2, 2, 10, dtype=torch.float64)[:, None], dims=[1, 1, 1], noise_var=0.1,
                 n_samples=5, generator=g)
    opt = torch.optim.Adam(dgp.parameters(), lr=0.02)
    first = None
    for _ in range(300):
        loss = -dgp.elbo(x, y, len(x)) / len(x)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name, p in dgp.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert loss.item() < first - 0.5
    with torch.no_grad():
        mean, _ = dgp(torch.tensor([[-1.5], [1.5]], dtype=torch.float64))
    torch.testing.assert_close(mean, torch.tensor([0.0, 1.0], dtype=torch.float64), atol=0.15, rtol=0)


def test_bad_dims_raise():
    with pytest.raises(ValueError, match="dims"):
        DeepGP(torch.zeros(4, 1), dims=[1, 2])
