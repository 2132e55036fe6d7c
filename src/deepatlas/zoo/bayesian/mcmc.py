"""Hamiltonian Monte Carlo: Metropolis proposals made by following gradient-driven dynamics.

The parameters theta become a particle's position in the potential U = -log p(theta) and get a
random Gaussian momentum r. The leapfrog integrator follows Hamilton's equations for a few
steps; it is reversible and preserves volume, so a Metropolis test on the change of the
energy H alone makes the chain leave p(theta) exactly invariant, while the long,
gradient-guided moves mix far faster than a random walk.

    H(\\theta, r) = U(\\theta) + \\tfrac12 r^\\top M^{-1} r,   \\alpha = \\min(1, e^{H(\\theta, r) - H(\\theta', r')})
    r_{1/2} = r - \\tfrac\\epsilon2 \\nabla U(\\theta),  \\theta' = \\theta + \\epsilon M^{-1} r_{1/2},  r' = r_{1/2} - \\tfrac\\epsilon2 \\nabla U(\\theta')

Duane, Kennedy, Pendleton & Roweth, "Hybrid Monte Carlo", Physics Letters B 195(2), 1987;
Neal, "MCMC using Hamiltonian dynamics", Handbook of MCMC 2011 (arXiv:1206.1901);
Metropolis et al., "Equation of State Calculations by Fast Computing Machines", J. Chem. Phys. 1953.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

LogProb = Callable[[torch.Tensor], torch.Tensor]  # theta (P,) -> log p(theta) up to a constant, a scalar


def potential_and_grad(log_prob: LogProb, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U(theta) = -log p(theta) and its gradient, both detached."""
    with torch.enable_grad():
        theta = theta.detach().requires_grad_(True)
        U = -log_prob(theta)
        (grad,) = torch.autograd.grad(U, theta)
    return U.detach(), grad


def leapfrog(log_prob: LogProb, theta: torch.Tensor, r: torch.Tensor, step_size: float, n_steps: int,
             inv_mass: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`n_steps` leapfrog steps of Hamilton's equations from (theta, r); returns (theta', r')."""
    inv_mass = torch.ones_like(theta) if inv_mass is None else inv_mass
    _, grad = potential_and_grad(log_prob, theta)
    # r_{1/2} = r - \tfrac\epsilon2 \nabla U(\theta)
    r = r - step_size / 2 * grad
    for i in range(n_steps):
        # \theta \leftarrow \theta + \epsilon M^{-1} r
        theta = theta + step_size * inv_mass * r
        _, grad = potential_and_grad(log_prob, theta)
        # a full momentum step between positions, a half step at the very end
        r = r - (step_size if i < n_steps - 1 else step_size / 2) * grad
    return theta, r


def hamiltonian(U: torch.Tensor, r: torch.Tensor, inv_mass: torch.Tensor) -> torch.Tensor:
    # H = U(\theta) + \tfrac12 r^\top M^{-1} r
    return U + 0.5 * (r * inv_mass * r).sum()


@dataclass
class HMCResult:
    samples: torch.Tensor  # (n_samples, P), after warm-up
    accept_rate: float  # over the kept iterations
    step_size: float  # after warm-up adaptation


def hmc(log_prob: LogProb, theta0: torch.Tensor, n_samples: int, step_size: float = 0.1, n_leapfrog: int = 20,
        n_warmup: int = 200, target_accept: float = 0.8, inv_mass: torch.Tensor | None = None,
        jitter: float = 0.2, generator: torch.Generator | None = None, progress=None) -> HMCResult:
    """HMC with identity (or diagonal inverse) mass; the step size adapts during warm-up only.

    Each iteration scales the step by a uniform factor in [1 - jitter, 1 + jitter] (Neal 2011, 5.4.2.2),
    so that no trajectory length stays locked to the period of some direction of the target.
    Warm-up nudges log(step) by (accept probability - target) / sqrt(t + 10), a Robbins-Monro rule,
    then freezes it at the average of log(step) over the second half of warm-up (the last value
    alone is noisy), so the kept chain is a true HMC chain with a fixed kernel."""
    if n_samples < 1 or n_leapfrog < 1 or n_warmup < 0 or step_size <= 0:
        raise ValueError("need n_samples >= 1, n_leapfrog >= 1, n_warmup >= 0 and step_size > 0")
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    theta = theta0.detach().clone()
    inv_mass = torch.ones_like(theta) if inv_mass is None else inv_mass
    U, _ = potential_and_grad(log_prob, theta)
    log_step = math.log(step_size)
    samples, accepted, late_log_steps = [], 0, []
    steps = range(n_warmup + n_samples)
    for t in (progress(steps) if progress else steps):
        # r \sim \mathcal{N}(0, M)
        r = torch.randn(theta.shape, generator=generator, dtype=theta.dtype).to(theta.device) / inv_mass.sqrt()
        scale = 1 + jitter * (2 * torch.rand((), generator=generator).item() - 1)
        theta_new, r_new = leapfrog(log_prob, theta, r, scale * math.exp(log_step), n_leapfrog, inv_mass)
        U_new, _ = potential_and_grad(log_prob, theta_new)
        # \alpha = \min(1, \exp(H(\theta, r) - H(\theta', r')))
        log_alpha = (hamiltonian(U, r, inv_mass) - hamiltonian(U_new, r_new, inv_mass)).item()
        accept_prob = math.exp(min(0.0, log_alpha)) if math.isfinite(log_alpha) else 0.0
        u = torch.rand((), generator=generator).item()
        if u < accept_prob:
            theta, U = theta_new, U_new
            accepted += t >= n_warmup
        if t < n_warmup:
            log_step += (accept_prob - target_accept) / math.sqrt(t + 10)
            if t >= n_warmup // 2:
                late_log_steps.append(log_step)
            if t == n_warmup - 1:
                log_step = sum(late_log_steps) / len(late_log_steps)
        else:
            samples.append(theta)
    return HMCResult(torch.stack(samples), accepted / n_samples, math.exp(log_step))
