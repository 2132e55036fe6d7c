"""One-dimensional viscous Burgers data, computed by real numerical methods.

Burgers' equation u_t + u u_x = nu u_xx on a periodic interval is solved two ways:

- `burgers_spectral`: a pseudo-spectral solver, exact in space up to the resolved modes, with
  the exponential time-differencing Runge-Kutta scheme ETDRK4 of Cox & Matthews (2002) in the
  contour-integral form of Kassam & Trefethen (2005), and the 2/3 rule against aliasing.
- `burgers_cole_hopf`: the exact solution through the Cole-Hopf transform u = -2 nu phi_x / phi,
  which turns Burgers into the heat equation; the heat kernel's integral is taken by Gauss-Hermite
  quadrature. This is the reference for the PINN in Raissi et al.'s setting
  (x in [-1, 1], t in [0, 1], u0 = -sin(pi x), nu = 0.01/pi).

`burgers_operator_split` draws initial conditions from a Gaussian random field and maps them to
the solution at t = 1 with the spectral solver: the operator-learning data of FNO and DeepONet.
All functions are deterministic; numpy float64 inside, torch float32 out for the data sets.
"""

from __future__ import annotations

import math

import numpy as np

from deepatlas.data import Split, split_seeds

RAISSI_NU = 0.01 / math.pi


def burgers_cole_hopf(x, t, nu: float = RAISSI_NU, n_quad: int = 200) -> np.ndarray:
    """Exact u(x, t) of viscous Burgers with u(x, 0) = -sin(pi x) (period 2), any broadcastable x, t.

    With phi = exp(-1/(2 nu) \\int u0), the heat kernel gives
        u(x, t) = -\\int sin(pi (x - eta)) f(x - eta) G(eta, t) d eta / \\int f(x - eta) G(eta, t) d eta,
    f(y) = exp(-cos(pi y) / (2 pi nu)), G the Gaussian of variance 2 nu t; eta = sqrt(4 nu t) z turns
    both integrals into \\int g(z) e^{-z^2} dz, which Gauss-Hermite quadrature takes with n_quad nodes.
    """
    if nu <= 0:
        raise ValueError(f"nu must be positive, got {nu}")
    if not 2 <= n_quad <= 350:  # numpy's Hermite weights overflow beyond about 350 nodes
        raise ValueError(f"n_quad must be in [2, 350], got {n_quad}")
    x, t = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64))
    if (t < 0).any():
        raise ValueError("t must be >= 0")
    z, w = np.polynomial.hermite.hermgauss(n_quad)  # nodes and weights for e^{-z^2}
    # y = x - \sqrt{4 \nu t} z
    y = x[..., None] - np.sqrt(4 * nu * t)[..., None] * z  # (..., n_quad)
    # \log(w_i f(y_i)) = \log w_i - \cos(\pi y_i) / (2 \pi \nu), shifted by its max (f reaches e^{50})
    log_terms = np.log(w) - np.cos(np.pi * y) / (2 * np.pi * nu)
    weights = np.exp(log_terms - log_terms.max(-1, keepdims=True))
    u = -(np.sin(np.pi * y) * weights).sum(-1) / weights.sum(-1)
    return np.where(t == 0, -np.sin(np.pi * x), u)


def _etdrk4_coefficients(lin: np.ndarray, dt: float, n_contour: int = 32):
    """Kassam & Trefethen's phi-functions of dt*L by a contour mean around each eigenvalue."""
    r = np.exp(1j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)  # points on the unit circle
    lr = dt * lin[:, None] + r[None, :]  # (K, M)
    q = dt * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
    f1 = dt * np.real(np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr**2)) / lr**3, axis=1))
    f2 = dt * np.real(np.mean((2 + lr + np.exp(lr) * (-2 + lr)) / lr**3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * lr - lr**2 + np.exp(lr) * (4 - lr)) / lr**3, axis=1))
    return np.exp(dt * lin), np.exp(dt * lin / 2), q, f1, f2, f3


def burgers_spectral(u0: np.ndarray, nu: float, t_end: float, dt: float, length: float = 1.0,
                     save_times=None) -> np.ndarray:
    """Solve u_t + (u^2/2)_x = nu u_xx on the periodic [0, length) grid of u0 (..., N) by ETDRK4.

    Returns u at t_end (..., N), or at each of `save_times` (len(save_times), ..., N). The grid is
    uniform with N points; the first half of the equation is the stiff linear part L = -nu k^2 that
    ETDRK4 integrates exactly, the rest the nonlinear term N(v) = -(i k / 2) F[(F^{-1} v)^2].
    """
    u0 = np.asarray(u0, dtype=np.float64)
    n = u0.shape[-1]
    if nu <= 0 or dt <= 0 or t_end < 0:
        raise ValueError(f"need nu > 0, dt > 0 and t_end >= 0, got nu={nu}, dt={dt}, t_end={t_end}")
    times = [t_end] if save_times is None else sorted(float(s) for s in save_times)
    if times and (times[0] < 0 or times[-1] > t_end + 1e-12):
        raise ValueError("save_times must lie in [0, t_end]")
    k = 2 * np.pi / length * np.arange(n // 2 + 1)  # rfft wavenumbers (K,)
    # L = -\nu k^2
    e, e2, q, f1, f2, f3 = _etdrk4_coefficients(-nu * k**2, dt)
    # 2/3 rule: the product u^2 is formed only from modes |k| < N/3, so no alias lands on a kept mode
    keep = np.arange(n // 2 + 1) < n / 3
    g = -0.5j * k * keep

    def nonlinear(v):  # N(v) = -\frac{i k}{2} \mathcal{F}[(\mathcal{F}^{-1} v)^2]
        return g * np.fft.rfft(np.fft.irfft(v * keep, n=n) ** 2)

    v = np.fft.rfft(u0)
    out, step = [], 0
    for target in times:
        while step < round(target / dt):
            nv = nonlinear(v)
            a = e2 * v + q * nv
            na = nonlinear(a)
            b = e2 * v + q * na
            nb = nonlinear(b)
            c = e2 * a + q * (2 * nb - nv)
            nc = nonlinear(c)
            # v_{n+1} = e^{hL} v_n + f_1 N_v + 2 f_2 (N_a + N_b) + f_3 N_c
            v = e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
            step += 1
        out.append(np.fft.irfft(v, n=n))
    return out[0] if save_times is None else np.stack(out)


def gaussian_random_field(n: int, n_grid: int, seed: int, length: float = 1.0, tau: float = 5.0,
                          alpha: float = 2.0, sigma: float = 25.0) -> np.ndarray:
    """n periodic draws (n, n_grid) of N(0, sigma^2 (-Delta + tau^2 I)^{-alpha}), zero mean.

    Li et al.'s Burgers data use sigma = 625**0.5 = 25, tau = 5, alpha = 2 on [0, 1)."""
    rng = np.random.default_rng(seed)
    m = np.arange(1, n_grid // 2)  # Fourier modes 1..N/2-1 (mean and Nyquist left at zero)
    # \sqrt{\lambda_m} = \sigma ((2\pi m / L)^2 + \tau^2)^{-\alpha/2}
    amp = sigma * ((2 * np.pi * m / length) ** 2 + tau**2) ** (-alpha / 2)
    coef = np.zeros((n, n_grid // 2 + 1), dtype=np.complex128)
    xi = rng.standard_normal((n, len(m))) + 1j * rng.standard_normal((n, len(m)))
    # u(x) = \sum_m \sqrt{\lambda_m} (a_m \cos + b_m \sin)(2 \pi m x / L), a_m, b_m \sim N(0, 1)
    coef[:, 1:n_grid // 2] = amp * xi * n_grid / 2
    return np.fft.irfft(coef, n=n_grid)


def burgers_operator_split(n_train: int = 1000, n_test: int = 200, seed: int = 0, nu: float = 0.01,
                           n_grid: int = 512, t_end: float = 1.0, dt: float = 2e-3, sigma: float = 7.0) -> Split:
    """(u0, u(., t_end)) pairs for operator learning on the periodic [0, 1), both on n_grid points.

    x_train (n_train, n_grid) initial conditions, y_train (n_train, n_grid) solutions at t_end;
    train and test from separate seeds. Subsample the grid (x[:, ::s]) for a coarser resolution."""
    seeds = split_seeds(seed)
    parts = []
    for n, s in zip((n_train, n_test), seeds):
        u0 = gaussian_random_field(n, n_grid, s, sigma=sigma)
        parts += [u0, burgers_spectral(u0, nu, t_end, dt)]
    import torch

    x_tr, y_tr, x_te, y_te = (torch.from_numpy(p).float() for p in parts)
    return Split(x_tr, y_tr, x_te, y_te, meta={"nu": nu, "t_end": t_end, "n_grid": n_grid, "length": 1.0,
                                               "sigma": sigma})
