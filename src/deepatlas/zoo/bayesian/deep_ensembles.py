"""Deep ensembles: several networks trained from different random starts, averaged as a mixture.

Each member predicts a mean and a variance and is trained on the Gaussian negative
log-likelihood, a proper scoring rule, so it learns the noise level as well as the function.
Members started from different random weights land in different solutions; where they
disagree (away from the data), the mixture's variance grows. Not formally Bayesian, but
simple, parallel, and often the best-calibrated of the practical approximations.

    -\\log p_m(y | x) = \\tfrac12 \\log \\sigma_m^2(x) + \\frac{(y - \\mu_m(x))^2}{2 \\sigma_m^2(x)} + \\tfrac12 \\log 2\\pi
    \\mu_*(x) = \\tfrac1M \\sum_m \\mu_m(x),   \\sigma_*^2(x) = \\tfrac1M \\sum_m (\\sigma_m^2(x) + \\mu_m^2(x)) - \\mu_*^2(x)

Lakshminarayanan, Pritzel & Blundell, "Simple and Scalable Predictive Uncertainty Estimation
using Deep Ensembles", NIPS 2017 (arXiv:1612.01474). (The paper's optional adversarial-training
step is left out.)
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.functional import softplus

from deepatlas.nn.linear import Linear
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model


def gaussian_nll(mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean Gaussian negative log-likelihood of y under N(mean, var), constant included."""
    if not (mean.shape == var.shape == y.shape):
        raise ValueError(f"mean, var and y must have one shape, got {tuple(mean.shape)}, {tuple(var.shape)}, "
                         f"{tuple(y.shape)}")
    # -\log \mathcal{N}(y; \mu, \sigma^2) = \tfrac12 \log 2\pi\sigma^2 + (y - \mu)^2 / 2\sigma^2
    return (0.5 * torch.log(2 * math.pi * var) + (y - mean) ** 2 / (2 * var)).mean()


class GaussianMLP(nn.Module):
    """A ReLU MLP with two heads: mean (N,) and variance (N,) = softplus(raw) + min_var."""

    def __init__(self, sizes: list[int], min_var: float = 1e-6, generator: torch.Generator | None = None):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError("sizes must list at least input and hidden sizes, e.g. [1, 50]")
        self.hidden = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = Linear(sizes[-1], 2, generator=generator)  # (mean, raw variance)
        self.min_var = min_var

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (N, D) -> (N,), (N,)
        h = x
        for layer in self.hidden:
            h = torch.relu(layer(h))
        out = self.head(h)  # (N, 2)
        # \sigma^2(x) = \mathrm{softplus}(s(x)) + \sigma^2_{\min}
        return out[:, 0], softplus(out[:, 1]) + self.min_var


class DeepEnsemble(nn.Module):
    """M GaussianMLPs; forward(x) -> (mean, var) of their equally weighted mixture."""

    def __init__(self, sizes: list[int], n_members: int = 5, generator: torch.Generator | None = None):
        super().__init__()
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        self.members = nn.ModuleList(GaussianMLP(sizes, generator=generator) for _ in range(n_members))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means, variances = zip(*(m(x) for m in self.members))
        mu, var = torch.stack(means), torch.stack(variances)  # (M, N)
        # \mu_* = \tfrac1M \sum_m \mu_m
        mean = mu.mean(0)
        # \sigma_*^2 = \tfrac1M \sum_m (\sigma_m^2 + \mu_m^2) - \mu_*^2
        return mean, (var + mu * mu).mean(0) - mean * mean


def train_ensemble(ensemble: DeepEnsemble, x: torch.Tensor, y: torch.Tensor, steps: int = 2000, lr: float = 1e-2,
                   weight_decay: float = 0.0, log=None) -> list[float]:
    """Each member on its own: full-batch Adam on its Gaussian NLL. Returns each member's final loss."""
    finals = []
    for i, member in enumerate(ensemble.members):
        opt = Adam(member.parameters(), lr=lr, weight_decay=weight_decay)
        for step in range(steps):
            # \mathcal{L}_m = -\tfrac1N \sum_n \log \mathcal{N}(y_n; \mu_m(x_n), \sigma_m^2(x_n))
            loss = gaussian_nll(*member(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if log and step % 200 == 0:
                log(step, **{f"ensemble{i}_nll": loss})
        finals.append(loss.item())
    return finals


@register_model("deep-ensemble", card="deep-ensembles", example=lambda: (torch.randn(6, 1),))
def deep_ensemble(sizes: list[int] | None = None, n_members: int = 3) -> DeepEnsemble:
    return DeepEnsemble(sizes or [1, 16, 16], n_members)
