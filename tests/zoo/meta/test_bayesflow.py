"""The conditional coupling flow (inverse, log-determinant) and the conjugate posterior it is checked against."""

import importlib
import pytest
import torch

from deepatlas.zoo.meta.bayesflow import AmortisedPosterior, ConditionalFlow, NormalInverseGamma


def randomised_flow():
    torch.manual_seed(0)
    flow = ConditionalFlow(3, 4, n_layers=4, hidden=16).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))  # move off the identity start
    return flow


def test_flow_inverse_and_log_det():
    flow = randomised_flow()
    theta, c = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    z, log_det = flow(theta, c)
    torch.testing.assert_close(flow.inverse(z, c), theta, rtol=1e-10, atol=1e-10)
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda t: flow(t[None], c[i:i + 1])[0][0], theta[i])
        torch.testing.assert_close(log_det[i], torch.linalg.slogdet(jac)[1], rtol=1e-10, atol=1e-10)


def test_density_integrates_to_one_in_2d():
    torch.manual_seed(0)
    net = AmortisedPosterior(2, hidden=8, n_layers=2).double()
    with torch.no_grad():
        for p in net.flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(1, 6, 1, dtype=torch.float64)
    grid = torch.linspace(-8, 8, 401, dtype=torch.float64)
    mu, ls = torch.meshgrid(grid, grid, indexing="ij")
    theta = torch.stack([mu.flatten(), ls.flatten()], -1)
    with torch.no_grad():
        density = net(theta, x.expand(len(theta), -1, -1)).exp()
    assert density.sum().item() * (grid[1] - grid[0]).item() ** 2 == pytest.approx(1.0, abs=1e-3)


def test_conjugate_posterior_against_samples_and_scipy():
    stats = importlib.import_module("scipy.stats")
    prior = NormalInverseGamma()
    g = torch.Generator().manual_seed(0)
    _, x = prior.simulate(3, 8, g)
    mean, sd = prior.posterior_moments(x)
    draws = prior.posterior_sample(x, 200_000, g)
    torch.testing.assert_close(draws.mean(1), mean, rtol=0, atol=0.01)
    torch.testing.assert_close(draws.std(1), sd, rtol=0.01, atol=0)
    p = prior.posterior(x)
    t = stats.t(df=2 * p["a"][0].item(), loc=p["m"][0].item(),
                scale=(p["b"][0] / (p["a"][0] * p["kappa"][0])).sqrt().item())
    assert sd[0, 0].item() == pytest.approx(t.std(), rel=1e-9)


def test_posterior_is_the_prior_updated_by_bayes_rule():
    """p(theta | x) is proportional to p(theta) p(x | theta): check the ratio is constant over theta."""
    prior = NormalInverseGamma()
    x = torch.tensor([[[0.3], [1.2], [-0.4]]], dtype=torch.float64)
    p = prior.posterior(x)

    def log_nig(mu, var, m, kappa, a, b):
        return (a * torch.log(b) - torch.lgamma(a) - (a + 1) * torch.log(var) - b / var
                + 0.5 * torch.log(kappa / (2 * torch.pi * var)) - kappa * (mu - m) ** 2 / (2 * var))

    mus, vars_ = torch.tensor([-1.0, 0.2, 0.9], dtype=torch.float64), torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    one = torch.tensor(1.0, dtype=torch.float64)
    ratios = []
    for mu, var in zip(mus, vars_):
        log_lik = (-0.5 * torch.log(2 * torch.pi * var) - (x[0, :, 0] - mu) ** 2 / (2 * var)).sum()
        log_prior = log_nig(mu, var, 0 * one, prior.kappa0 * one, prior.a0 * one, prior.b0 * one)
        log_post = log_nig(mu, var, p["m"][0], p["kappa"][0], p["a"][0], p["b"][0])
        ratios.append(log_prior + log_lik - log_post)
    torch.testing.assert_close(torch.stack(ratios), ratios[0].expand(3))


def test_sampling_is_deterministic_and_leaves_global_rng_alone():
    prior = NormalInverseGamma()
    torch.manual_seed(1)
    before = torch.rand(1)
    torch.manual_seed(1)
    a = prior.simulate(4, 3, torch.Generator().manual_seed(7))
    b = prior.simulate(4, 3, torch.Generator().manual_seed(7))
    assert torch.rand(1) == before
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_flow_needs_two_dimensions():
    with pytest.raises(ValueError, match="2 dimensions"):
        ConditionalFlow(1, 3)
