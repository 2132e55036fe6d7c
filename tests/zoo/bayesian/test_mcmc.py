"""HMC on Gaussian targets whose moments are known; the leapfrog integrator's invariants."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.bayesian.mcmc import hamiltonian, hmc, leapfrog, potential_and_grad

MU = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6, 0.0], [0.6, 1.0, 0.2], [0.0, 0.2, 0.25]], dtype=torch.float64)
PRECISION = torch.linalg.inv(COV)


def log_gauss(theta):  # log N(theta; MU, COV) up to a constant
    d = theta - MU
    return -0.5 * d @ PRECISION @ d



def test_hmc_recovers_the_moments_of_a_correlated_gaussian():
    g = torch.Generator().manual_seed(0)
    res = hmc(log_gauss, torch.zeros(3, dtype=torch.float64), n_samples=2000, step_size=0.2, n_leapfrog=8,
              n_warmup=100, generator=g)
    assert res.samples.shape == (2000, 3)
    assert 0.6 < res.accept_rate < 0.95
    mean = res.samples.mean(0)
    cov = torch.cov(res.samples.T)
    # Monte Carlo error with ~500 effective samples: about 0.05 on the mean, 0.06 on the covariance
    torch.testing.assert_close(mean, MU, atol=0.1, rtol=0)
    torch.testing.assert_close(cov, COV, atol=0.15, rtol=0)


def test_hmc_is_deterministic_from_the_generator():
    run = lambda: hmc(log_gauss, torch.zeros(3, dtype=torch.float64), 50, n_warmup=20,  # noqa: E731
                      generator=torch.Generator().manual_seed(7)).samples
    assert torch.equal(run(), run())


def test_leapfrog_is_reversible():
    theta, r = torch.tensor([0.3, 0.1, -1.0], dtype=torch.float64), torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64)
    theta1, r1 = leapfrog(log_gauss, theta, r, 0.1, 15)
    theta2, r2 = leapfrog(log_gauss, theta1, -r1, 0.1, 15)
    torch.testing.assert_close(theta2, theta, rtol=0, atol=1e-12)
    torch.testing.assert_close(-r2, r, rtol=0, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(st.floats(0.01, 0.3), st.integers(1, 8), st.integers(0, 1000))
def test_leapfrog_preserves_volume(step, n_steps, seed):
    # the Jacobian of (theta, r) -> (theta', r') has determinant one: the map is symplectic
    z = torch.randn(6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    flow = lambda z: torch.cat(leapfrog(_quartic, z[:3], z[3:], step, n_steps))  # noqa: E731
    J = torch.autograd.functional.jacobian(flow, z)
    assert abs(torch.linalg.det(J).item() - 1) < 1e-9


def _quartic(theta):  # a non-Gaussian log density, so that the Jacobian is not constant
    return -(theta**4).sum() / 4 - (theta**2).sum() / 2


def test_energy_error_is_second_order_in_the_step():
    theta, r = torch.tensor([0.3, 0.1, -1.0], dtype=torch.float64), torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64)
    ones = torch.ones(3, dtype=torch.float64)
    H0 = hamiltonian(potential_and_grad(log_gauss, theta)[0], r, ones)
    errors = []
    for eps in (0.02, 0.01):
        t1, r1 = leapfrog(log_gauss, theta, r, eps, round(0.4 / eps))
        errors.append(abs((hamiltonian(potential_and_grad(log_gauss, t1)[0], r1, ones) - H0).item()))
    assert 3.5 < errors[0] / errors[1] < 4.5  # halving the step quarters the energy error


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="n_leapfrog"):
        hmc(log_gauss, torch.zeros(3), 10, n_leapfrog=0)
    with pytest.raises(ValueError, match="jitter"):
        hmc(log_gauss, torch.zeros(3), 10, jitter=1.0)
    with pytest.raises(ValueError, match="target_accept"):
        hmc(log_gauss, torch.zeros(3), 10, target_accept=1.5)
