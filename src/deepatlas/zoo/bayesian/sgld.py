"""Stochastic gradient Langevin dynamics: SGD plus the right amount of noise samples the posterior.

Half a step down the minibatch estimate of the log posterior's gradient, plus Gaussian noise
of variance equal to the step: with a step size that decays slowly enough, the minibatch
noise becomes negligible next to the injected noise and the iterates become samples of the
posterior, with no Metropolis test. Early on it optimises; later it explores.

    \\Delta\\theta_t = \\frac{\\epsilon_t}2 \\Big(\\nabla \\log p(\\theta_t) + \\frac Nn \\sum_{i=1}^n \\nabla \\log p(x_{t_i} | \\theta_t)\\Big) + \\eta_t,\\quad \\eta_t \\sim \\mathcal{N}(0, \\epsilon_t)
    \\epsilon_t = a (b + t)^{-\\gamma},\\quad \\gamma \\in (0.5, 1]

Welling & Teh, "Bayesian Learning via Stochastic Gradient Langevin Dynamics", ICML 2011.
"""

from __future__ import annotations

import math

import torch


class SGLD(torch.optim.Optimizer):
    """theta <- theta - (lr / 2) grad U + N(0, lr), where the loss that was backpropagated is the
    potential U = -log p(theta) - (N / n) sum_batch log p(x | theta) (the full-data scale)."""

    def __init__(self, params, lr: float = 1e-4, generator: torch.Generator | None = None):
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        super().__init__(params, dict(lr=lr))
        self.generator = generator

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            eps = group["lr"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                noise = torch.randn(w.shape, generator=self.generator, dtype=w.dtype).to(w.device)
                # \theta \leftarrow \theta - \tfrac\epsilon2 \nabla U(\theta) + \sqrt\epsilon\, \xi,  \xi \sim \mathcal{N}(0, I)
                w.add_(-eps / 2 * w.grad + math.sqrt(eps) * noise)


def polynomial_step(t: int, a: float, b: float, gamma: float = 0.55) -> float:
    """The decaying step size of Welling & Teh: a (b + t)^{-gamma}."""
    if not 0.5 < gamma <= 1:
        raise ValueError(f"gamma must be in (0.5, 1] so that sum eps = inf and sum eps^2 < inf, got {gamma}")
    # \epsilon_t = a (b + t)^{-\gamma}
    return a * (b + t) ** -gamma
