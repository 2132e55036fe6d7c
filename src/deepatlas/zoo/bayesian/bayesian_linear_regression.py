"""Bayesian linear regression: a Gaussian prior on the weights, a Gaussian posterior in closed form.

With features phi(x), weights w ~ N(0, alpha^{-1} I) and noise of precision beta, the posterior
over w is Gaussian (the prior is conjugate), the predictive distribution is Gaussian with a
variance that grows away from the data, and the evidence p(y) is Gaussian too, so alpha and
beta can be set by maximising it (MacKay's fixed-point updates, "empirical Bayes").

    S_N^{-1} = \\alpha I + \\beta \\Phi^\\top \\Phi,   m_N = \\beta S_N \\Phi^\\top y
    p(y_* | x_*, D) = \\mathcal{N}(m_N^\\top \\phi_*, \\beta^{-1} + \\phi_*^\\top S_N \\phi_*)

Bishop, "Pattern Recognition and Machine Learning", Springer 2006, sections 3.3-3.5; MacKay,
"Bayesian Interpolation", Neural Computation 4(3), 1992.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.registry import register_model


def _check(phi: torch.Tensor, y: torch.Tensor, alpha, beta) -> None:
    if phi.dim() != 2 or y.dim() != 1 or len(phi) != len(y):
        raise ValueError(f"need features phi (N, P) and targets y (N,), got {tuple(phi.shape)} and {tuple(y.shape)}")
    for name, v in (("alpha", alpha), ("beta", beta)):
        if not isinstance(v, torch.Tensor) and v <= 0:
            raise ValueError(f"{name} must be positive, got {v}")


def posterior(phi: torch.Tensor, y: torch.Tensor, alpha, beta) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight posterior N(m_N, S_N): m_N (P,), S_N (P, P)."""
    _check(phi, y, alpha, beta)
    eye = torch.eye(phi.shape[1], dtype=phi.dtype, device=phi.device)
    # A = S_N^{-1} = \alpha I + \beta \Phi^\top \Phi
    A = alpha * eye + beta * phi.T @ phi  # (P, P)
    L = torch.linalg.cholesky(A)
    S = torch.cholesky_inverse(L)
    # m_N = \beta S_N \Phi^\top y
    m = beta * torch.cholesky_solve((phi.T @ y)[:, None], L)[:, 0]
    return m, S


def predictive(phi_star: torch.Tensor, m: torch.Tensor, S: torch.Tensor, beta) -> tuple[torch.Tensor, torch.Tensor]:
    """The predictive distribution of y at features phi_star (M, P): mean (M,), variance (M,)."""
    # \mu_* = m_N^\top \phi_*
    mean = phi_star @ m
    # \sigma_*^2 = \beta^{-1} + \phi_*^\top S_N \phi_*
    var = 1 / beta + ((phi_star @ S) * phi_star).sum(1)
    return mean, var


def log_evidence(phi: torch.Tensor, y: torch.Tensor, alpha, beta) -> torch.Tensor:
    """log p(y | alpha, beta) with the weights integrated out (Bishop eq. 3.86)."""
    _check(phi, y, alpha, beta)
    N, P = phi.shape
    m, S = posterior(phi, y, alpha, beta)
    # E(m_N) = \tfrac\beta2 \lVert y - \Phi m_N \rVert^2 + \tfrac\alpha2 m_N^\top m_N
    E = beta / 2 * ((y - phi @ m) ** 2).sum() + alpha / 2 * (m * m).sum()
    # \log|A| = -\log|S_N|
    logdet_A = -torch.linalg.slogdet(S)[1]
    log_alpha, log_beta = torch.as_tensor(alpha, dtype=phi.dtype).log(), torch.as_tensor(beta, dtype=phi.dtype).log()
    # \log p(y) = \tfrac P2 \log\alpha + \tfrac N2 \log\beta - E(m_N) - \tfrac12 \log|A| - \tfrac N2 \log 2\pi
    return P / 2 * log_alpha + N / 2 * log_beta - E - logdet_A / 2 - N / 2 * math.log(2 * math.pi)


def evidence_fixed_point(phi: torch.Tensor, y: torch.Tensor, alpha: float = 1.0, beta: float = 1.0,
                         iters: int = 300, tol: float = 1e-10, fit_beta: bool = True) -> tuple[float, float]:
    """MacKay's updates of alpha (and beta) to a stationary point of the evidence."""
    _check(phi, y, alpha, beta)
    N = len(phi)
    eig = torch.linalg.eigvalsh(phi.T @ phi)  # (P,) eigenvalues of \Phi^\top \Phi
    for _ in range(iters):
        m, _ = posterior(phi, y, alpha, beta)
        # \gamma = \sum_i \frac{\beta\lambda_i}{\alpha + \beta\lambda_i}: the number of well-determined weights
        gamma = (beta * eig / (alpha + beta * eig)).sum().item()
        # \alpha \leftarrow \gamma / m_N^\top m_N
        new_alpha = gamma / (m * m).sum().item()
        # \beta^{-1} \leftarrow \lVert y - \Phi m_N \rVert^2 / (N - \gamma)
        new_beta = (N - gamma) / ((y - phi @ m) ** 2).sum().item() if fit_beta else beta
        done = abs(new_alpha - alpha) <= tol * alpha and abs(new_beta - beta) <= tol * beta
        alpha, beta = new_alpha, new_beta
        if done:
            break
    return alpha, beta


def linear_features(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = [1, x]: (N, D) -> (N, D + 1), the bias as a weight on a constant 1."""
    return torch.cat([torch.ones(len(x), 1, dtype=x.dtype, device=x.device), x], 1)


class BayesianLinearRegression(nn.Module):
    """BLR on phi(x) = [1, x] with learnable log alpha and log beta.

    forward(x, y, x_star) -> (mean (M,), var (M,)) of the predictive distribution of y at x_star."""

    def __init__(self, alpha: float = 1.0, beta: float = 1.0):
        super().__init__()
        if alpha <= 0 or beta <= 0:
            raise ValueError(f"alpha and beta must be positive, got {alpha} and {beta}")
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)))
        self.log_beta = nn.Parameter(torch.tensor(math.log(beta)))

    def forward(self, x: torch.Tensor, y: torch.Tensor, x_star: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, beta = self.log_alpha.exp(), self.log_beta.exp()
        m, S = posterior(linear_features(x), y, alpha, beta)
        return predictive(linear_features(x_star), m, S, beta)

    def log_evidence(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return log_evidence(linear_features(x), y, self.log_alpha.exp(), self.log_beta.exp())


@register_model("bayesian-linear-regression", card="bayesian-linear-regression",
                example=lambda: (torch.linspace(-1, 1, 6)[:, None], torch.linspace(-1, 1, 6) * 2 + 0.3,
                                 torch.linspace(-2, 2, 4)[:, None]))
def bayesian_linear_regression(**kw) -> BayesianLinearRegression:
    return BayesianLinearRegression(**kw)
