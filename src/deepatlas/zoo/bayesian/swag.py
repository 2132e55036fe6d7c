"""SWAG: a Gaussian over the weights fitted to the path of SGD with a constant learning rate.

After training, SGD keeps running with a large constant step, so its iterates wander around
the optimum in a region shaped by the loss. SWAG records their running mean (the SWA
solution), their running second moment (a diagonal covariance) and the last K deviations from
the mean (a low-rank covariance), and samples weights from the resulting Gaussian to average
predictions (Bayesian model averaging) at almost no extra training cost.

    \\bar\\theta = \\tfrac1T \\sum_i \\theta_i,\\quad \\Sigma_{\\text{diag}} = \\mathrm{diag}(\\overline{\\theta^2} - \\bar\\theta^2),\\quad \\hat D = [\\theta_{T-K+1} - \\bar\\theta, \\dots, \\theta_T - \\bar\\theta]
    \\theta \\sim \\mathcal{N}\\big(\\bar\\theta, \\tfrac12 (\\Sigma_{\\text{diag}} + \\tfrac{\\hat D \\hat D^\\top}{K - 1})\\big)

Maddox, Garipov, Izmailov, Vetrov & Wilson, "A Simple Baseline for Bayesian Uncertainty in Deep
Learning", NeurIPS 2019 (arXiv:1902.02476).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from deepatlas.optim.optimizers import SGD


class SWAG:
    """The running moments of a network's weights; `sample` draws from the SWAG Gaussian."""

    def __init__(self, net: nn.Module, max_rank: int = 20):
        if max_rank < 2:
            raise ValueError(f"max_rank must be >= 2 (the low-rank part divides by K - 1), got {max_rank}")
        theta = parameters_to_vector(net.parameters()).detach()
        self.n = 0
        self.mean = torch.zeros_like(theta)  # (P,)
        self.sq_mean = torch.zeros_like(theta)  # (P,)
        self.deviations: list[torch.Tensor] = []  # the last K columns of \hat D
        self.max_rank = max_rank

    @torch.no_grad()
    def collect(self, net: nn.Module) -> None:
        theta = parameters_to_vector(net.parameters()).detach()
        self.n += 1
        # \bar\theta \leftarrow \bar\theta + (\theta - \bar\theta) / n,  the same for \overline{\theta^2}
        self.mean += (theta - self.mean) / self.n
        self.sq_mean += (theta * theta - self.sq_mean) / self.n
        self.deviations = (self.deviations + [theta - self.mean])[-self.max_rank:]

    @property
    def diag_var(self) -> torch.Tensor:
        # \Sigma_{\text{diag}} = \overline{\theta^2} - \bar\theta^2  (clamped: rounding can go below zero)
        return (self.sq_mean - self.mean**2).clamp_min(0)

    def sample(self, generator: torch.Generator | None = None, scale: float = 0.5, low_rank: bool = True
               ) -> torch.Tensor:
        """One weight vector (P,) from N(mean, scale (Sigma_diag + D D^T / (K - 1)))."""
        if self.n < 2:
            raise ValueError("SWAG needs at least two collected iterates before it can sample")
        z1 = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype)
        # \theta = \bar\theta + \sqrt{s}\,(\Sigma_{\text{diag}}^{1/2} z_1 + \hat D z_2 / \sqrt{K - 1})
        step = self.diag_var.sqrt() * z1
        if low_rank and len(self.deviations) >= 2:
            D = torch.stack(self.deviations, 1)  # (P, K)
            z2 = torch.randn(D.shape[1], generator=generator, dtype=D.dtype)
            step = step + D @ z2 / math.sqrt(D.shape[1] - 1)
        return self.mean + math.sqrt(scale) * step

    @staticmethod
    def load(net: nn.Module, theta: torch.Tensor) -> None:
        vector_to_parameters(theta, net.parameters())


def run_swag(net: nn.Module, loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
             x: torch.Tensor, y: torch.Tensor, epochs: int = 100, batch_size: int = 20, lr: float = 1e-2,
             max_rank: int = 20, generator: torch.Generator | None = None) -> SWAG:
    """Constant-learning-rate minibatch SGD from the current weights, collecting once per epoch."""
    swag = SWAG(net, max_rank)
    opt = SGD(net.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = loss_fn(net, x[idx], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        swag.collect(net)
    return swag
