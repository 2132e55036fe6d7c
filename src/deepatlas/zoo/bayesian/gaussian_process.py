"""Gaussian process regression: a prior over functions, conditioned on data in closed form.

A GP says that the function values at any finite set of inputs are jointly Gaussian with
covariance k(x, x'). With Gaussian observation noise the posterior at new inputs is Gaussian
too, and the kernel's hyper-parameters (lengthscale, signal variance, noise) are fitted by
maximising the log marginal likelihood, which trades data fit against complexity by itself.
Everything goes through one Cholesky factor L of K + sigma_n^2 I (Rasmussen & Williams, Algorithm 2.1).

    \\mu_* = k_*^\\top (K + \\sigma_n^2 I)^{-1} y,   \\sigma_*^2 = k(x_*, x_*) - k_*^\\top (K + \\sigma_n^2 I)^{-1} k_*
    \\log p(y | X) = -\\tfrac12 y^\\top (K + \\sigma_n^2 I)^{-1} y - \\tfrac12 \\log|K + \\sigma_n^2 I| - \\tfrac n2 \\log 2\\pi

Williams & Rasmussen, "Gaussian Processes for Regression", NIPS 1995; Rasmussen & Williams,
"Gaussian Processes for Machine Learning", MIT Press 2006.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from deepatlas.nn.kernels import KERNELS
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_data(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 2 or y.dim() != 1 or len(x) != len(y):
        raise ValueError(f"GP data must be x (N, D) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")


def _cholesky(x: torch.Tensor, kernel: Kernel, noise_var: float | torch.Tensor) -> torch.Tensor:
    if not isinstance(noise_var, torch.Tensor) and noise_var < 0:
        raise ValueError(f"noise_var must be >= 0, got {noise_var}")
    K = kernel(x, x)  # (N, N)
    # L L^\top = K + \sigma_n^2 I
    L, info = torch.linalg.cholesky_ex(K + noise_var * torch.eye(len(x), dtype=K.dtype, device=K.device))
    if info.item() != 0:
        raise ValueError("K + noise_var I is not positive definite: add noise or jitter")
    return L


def exact_posterior(x: torch.Tensor, y: torch.Tensor, x_star: torch.Tensor, kernel: Kernel,
                    noise_var: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior of the latent f at x_star (M, D): mean (M,) and variance (M,) (add noise_var for y)."""
    _check_data(x, y)
    L = _cholesky(x, kernel, noise_var)  # (N, N)
    # \alpha = (K + \sigma_n^2 I)^{-1} y = L^{-\top} L^{-1} y
    alpha = torch.cholesky_solve(y[:, None], L)  # (N, 1)
    k_star = kernel(x, x_star)  # (N, M)
    # \mu_* = k_*^\top \alpha
    mean = (k_star.T @ alpha)[:, 0]
    # v = L^{-1} k_*,   \sigma_*^2 = k(x_*, x_*) - v^\top v
    v = torch.linalg.solve_triangular(L, k_star, upper=False)  # (N, M)
    var = torch.diagonal(kernel(x_star, x_star)) - (v * v).sum(0)
    return mean, var.clamp_min(0)


def log_marginal_likelihood(x: torch.Tensor, y: torch.Tensor, kernel: Kernel,
                            noise_var: float | torch.Tensor) -> torch.Tensor:
    """log p(y | X) under the GP prior with Gaussian noise: a scalar, differentiable in the kernel's tensors."""
    _check_data(x, y)
    L = _cholesky(x, kernel, noise_var)
    alpha = torch.cholesky_solve(y[:, None], L)[:, 0]  # (N,)
    # \tfrac12 \log|K + \sigma_n^2 I| = \sum_i \log L_{ii}
    half_logdet = torch.log(torch.diagonal(L)).sum()
    # \log p(y|X) = -\tfrac12 y^\top \alpha - \tfrac12 \log|K + \sigma_n^2 I| - \tfrac n2 \log 2\pi
    return -0.5 * (y * alpha).sum() - half_logdet - 0.5 * len(x) * math.log(2 * math.pi)


def sample_prior(x: torch.Tensor, kernel: Kernel, n_samples: int, generator: torch.Generator | None = None,
                 jitter: float = 1e-6) -> torch.Tensor:
    """Draws of f at x (N, D) from the GP prior: (n_samples, N)."""
    if x.dim() != 2:
        raise ValueError(f"x must be (N, D), got {tuple(x.shape)}")
    L = _cholesky(x, kernel, jitter)  # (N, N)
    z = torch.randn(n_samples, len(x), generator=generator, dtype=L.dtype).to(L.device)  # (S, N)
    # f = L z,   z \sim \mathcal{N}(0, I)   =>   f \sim \mathcal{N}(0, K)
    return z @ L.T


class GPRegression(nn.Module):
    """An exact GP with a stationary kernel and Gaussian noise; hyper-parameters stored as logs.

    forward(x, y, x_star) -> (mean (M,), var (M,)) of the latent f; `predictive_var` adds the noise."""

    def __init__(self, kernel: str = "rbf", lengthscale: float = 1.0, variance: float = 1.0,
                 noise_var: float = 0.1):
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; choose from {', '.join(KERNELS)}")
        for name, value in (("lengthscale", lengthscale), ("variance", variance), ("noise_var", noise_var)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.kernel_name = kernel
        self.log_lengthscale = nn.Parameter(torch.tensor(math.log(lengthscale)))
        self.log_variance = nn.Parameter(torch.tensor(math.log(variance)))
        self.log_noise_var = nn.Parameter(torch.tensor(math.log(noise_var)))

    @property
    def lengthscale(self) -> torch.Tensor:
        return self.log_lengthscale.exp()

    @property
    def variance(self) -> torch.Tensor:
        return self.log_variance.exp()

    @property
    def noise_var(self) -> torch.Tensor:
        return self.log_noise_var.exp()

    def kernel(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return KERNELS[self.kernel_name](x1, x2, self.lengthscale, self.variance)

    def forward(self, x: torch.Tensor, y: torch.Tensor, x_star: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return exact_posterior(x, y, x_star, self.kernel, self.noise_var)

    def log_marginal_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return log_marginal_likelihood(x, y, self.kernel, self.noise_var)

    def extra_repr(self) -> str:
        return (f"kernel={self.kernel_name}, lengthscale={self.lengthscale.item():.3g}, "
                f"variance={self.variance.item():.3g}, noise_var={self.noise_var.item():.3g}")


def fit_marginal_likelihood(gp: GPRegression, x: torch.Tensor, y: torch.Tensor, steps: int = 300,
                            lr: float = 0.05) -> list[float]:
    """Type-II maximum likelihood: Adam on -log p(y | X) / N over the log hyper-parameters; the loss curve."""
    opt = Adam(gp.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        # \min_\theta -\log p(y | X, \theta) / N
        loss = -gp.log_marginal_likelihood(x, y) / len(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@register_model("gp-rbf", card="gaussian-process",
                example=lambda: (torch.linspace(-1, 1, 8)[:, None], torch.sin(3 * torch.linspace(-1, 1, 8)),
                                 torch.linspace(-1.5, 1.5, 5)[:, None]))
def gp_rbf(**kw) -> GPRegression:
    return GPRegression(kernel="rbf", **kw)


@register_model("gp-matern52", card="gaussian-process",
                example=lambda: (torch.linspace(-1, 1, 8)[:, None], torch.sin(3 * torch.linspace(-1, 1, 8)),
                                 torch.linspace(-1.5, 1.5, 5)[:, None]))
def gp_matern52(**kw) -> GPRegression:
    return GPRegression(kernel="matern52", **kw)
