"""Burgers data: the pseudo-spectral solver against the exact Cole-Hopf solution, and the operator data."""

import math

import numpy as np
import pytest

from deepatlas.data import pde


def test_cole_hopf_at_t0_and_boundaries():
    x = np.linspace(-1, 1, 101)
    assert np.allclose(pde.burgers_cole_hopf(x, 0.0), -np.sin(np.pi * x))
    # the solution is odd in x, so it vanishes at x = 0 and at the (periodic) boundaries x = +-1
    u = pde.burgers_cole_hopf(np.array([-1.0, 0.0, 1.0]), np.array([0.3, 0.7, 1.0])[:, None])
    assert np.abs(u).max() < 1e-10


def test_cole_hopf_satisfies_burgers_by_finite_differences():
    nu, h, k = 0.1 / math.pi, 2e-4, 2e-5  # a smooth case where central differences are accurate
    x, t = np.linspace(-0.9, 0.9, 37), 0.5
    u = lambda x, t: pde.burgers_cole_hopf(x, t, nu)  # noqa: E731
    u_t = (u(x, t + k) - u(x, t - k)) / (2 * k)
    u_x = (u(x + h, t) - u(x - h, t)) / (2 * h)
    u_xx = (u(x + h, t) - 2 * u(x, t) + u(x - h, t)) / h**2
    assert np.abs(u_t + u(x, t) * u_x - nu * u_xx).max() < 1e-4


def test_cole_hopf_quadrature_converged_and_bad_arguments():
    x = np.linspace(-1, 1, 64)
    a, b = pde.burgers_cole_hopf(x, 1.0, n_quad=100), pde.burgers_cole_hopf(x, 1.0, n_quad=250)
    assert np.abs(a - b).max() < 1e-12
    with pytest.raises(ValueError, match="nu"):
        pde.burgers_cole_hopf(x, 1.0, nu=0.0)
    with pytest.raises(ValueError, match="n_quad"):
        pde.burgers_cole_hopf(x, 1.0, n_quad=1000)


@pytest.mark.parametrize("nu, n, dt, tol", [(0.05 / math.pi, 256, 1e-3, 1e-6), (0.01 / math.pi, 1024, 5e-4, 1e-4)])
def test_spectral_solver_matches_cole_hopf(nu, n, dt, tol):
    """Raissi's problem on the periodic [-1, 1): the odd solution meets u(+-1) = 0 by itself."""
    x = -1 + 2 * np.arange(n) / n
    u = pde.burgers_spectral(-np.sin(np.pi * x), nu, 1.0, dt, length=2.0, save_times=[0.25, 0.5, 1.0])
    exact = pde.burgers_cole_hopf(x, np.array([0.25, 0.5, 1.0])[:, None], nu)
    assert np.abs(u - exact).max() < tol  # across the shock at x = 0 too, for nu = 0.01/pi


def test_spectral_solver_conserves_mean_and_dissipates_energy():
    u0 = pde.gaussian_random_field(4, 128, seed=0) + 0.3
    u = pde.burgers_spectral(u0, 0.01, 0.5, 2e-3, save_times=[0.0, 0.25, 0.5])
    assert np.allclose(u.mean(-1), 0.3, atol=1e-12)  # \int u dx is conserved
    energy = (u**2).mean(-1)
    assert (np.diff(energy, axis=0) < 0).all()  # viscosity only removes energy
    with pytest.raises(ValueError, match="save_times"):
        pde.burgers_spectral(u0, 0.01, 0.5, 2e-3, save_times=[1.0])


def test_gaussian_random_field_spectrum_and_seed():
    a = pde.gaussian_random_field(2000, 64, seed=1)
    assert np.allclose(a.mean(), 0, atol=0.02)
    # variance of mode m's cosine coefficient: sigma^2 ((2 pi m)^2 + tau^2)^{-alpha}
    c = np.fft.rfft(a, axis=1)[:, 1] * 2 / 64
    expected = 25**2 * ((2 * np.pi) ** 2 + 25) ** -2
    assert abs(c.real.var() / expected - 1) < 0.1
    assert np.array_equal(pde.gaussian_random_field(3, 64, 5), pde.gaussian_random_field(3, 64, 5))


def test_operator_split_shapes_and_determinism():
    s = pde.burgers_operator_split(n_train=5, n_test=3, n_grid=64, dt=5e-3)
    assert s.x_train.shape == s.y_train.shape == (5, 64) and s.x_test.shape == (3, 64)
    s2 = pde.burgers_operator_split(n_train=5, n_test=3, n_grid=64, dt=5e-3)
    assert (s.y_test == s2.y_test).all() and not (s.x_train[:3] == s.x_test).all()
