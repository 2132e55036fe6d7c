"""Bayes by backprop: variational inference over every weight of a network, by ordinary backprop.

Each weight gets a Gaussian q(w) = N(mu, sigma^2) with sigma = softplus(rho). A forward pass
draws weights through the reparameterisation w = mu + sigma * eps, so the gradient of the
negative ELBO (expected negative log-likelihood plus the KL from q to the prior) reaches mu
and rho. The local reparameterisation trick draws each layer's pre-activations instead of its
weights: they are Gaussian too, and the gradient's variance falls. The KL to a Gaussian prior
N(0, s^2) has a closed form.

    w = \\mu + \\log(1 + e^{\\rho}) \\odot \\epsilon,\\quad \\mathcal{F} = \\mathrm{KL}(q(w) \\| p(w)) - \\mathbb{E}_{q}[\\log p(D | w)]
    \\mathrm{KL}(\\mathcal{N}(\\mu, \\sigma^2) \\| \\mathcal{N}(0, s^2)) = \\log\\frac{s}{\\sigma} + \\frac{\\sigma^2 + \\mu^2}{2 s^2} - \\tfrac12

Blundell, Cornebise, Kavukcuoglu & Wierstra, "Weight Uncertainty in Neural Networks", ICML 2015
(arXiv:1505.05424); Kingma, Salimans & Welling, "Variational Dropout and the Local
Reparameterization Trick", NIPS 2015 (arXiv:1506.02557). The Gaussian prior here stands in for
the paper's scale mixture, so that the KL is exact.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.functional import softplus

from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model
from deepatlas.zoo.bayesian.deep_ensembles import gaussian_nll


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor, prior_std: float) -> torch.Tensor:
    """\\sum KL(N(mu, sigma^2) || N(0, prior_std^2)) over every element."""
    # \mathrm{KL} = \log(s / \sigma) + (\sigma^2 + \mu^2) / 2 s^2 - \tfrac12
    return (math.log(prior_std) - torch.log(sigma) + (sigma**2 + mu**2) / (2 * prior_std**2) - 0.5).sum()


class BayesLinear(nn.Module):
    """A linear layer with a factorised Gaussian posterior over its weight (out, in) and bias (out,)."""

    def __init__(self, in_features: int, out_features: int, prior_std: float = 1.0, init_std: float = 1e-3,
                 local_reparam: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        if prior_std <= 0 or init_std <= 0:
            raise ValueError(f"prior_std and init_std must be positive, got {prior_std} and {init_std}")
        bound = 1 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(
            torch.empty(out_features, in_features).uniform_(-bound, bound, generator=generator))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound, generator=generator))
        rho0 = math.log(math.expm1(init_std))  # softplus^{-1}(init_std)
        self.weight_rho = nn.Parameter(torch.full((out_features, in_features), rho0))
        self.bias_rho = nn.Parameter(torch.full((out_features,), rho0))
        self.prior_std, self.local_reparam, self.generator = prior_std, local_reparam, generator

    def _eps(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, dtype=like.dtype).to(like.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, in) -> (N, out), a fresh draw each call
        w_sigma, b_sigma = softplus(self.weight_rho), softplus(self.bias_rho)
        if self.local_reparam:
            # pre-activations are Gaussian: \gamma = x \mu_W^\top + \mu_b,  \delta = x^2 (\sigma_W^2)^\top + \sigma_b^2
            gamma = x @ self.weight_mu.T + self.bias_mu
            delta = (x * x) @ (w_sigma**2).T + b_sigma**2
            # a = \gamma + \sqrt\delta \odot \epsilon
            return gamma + delta.sqrt() * self._eps(gamma.shape, gamma)
        # w = \mu + \sigma \odot \epsilon
        w = self.weight_mu + w_sigma * self._eps(w_sigma.shape, w_sigma)
        b = self.bias_mu + b_sigma * self._eps(b_sigma.shape, b_sigma)
        return x @ w.T + b

    def kl(self) -> torch.Tensor:
        return (gaussian_kl(self.weight_mu, softplus(self.weight_rho), self.prior_std)
                + gaussian_kl(self.bias_mu, softplus(self.bias_rho), self.prior_std))


class BayesByBackpropMLP(nn.Module):
    """A ReLU regression BNN of BayesLinear layers and a learned homoscedastic noise variance.

    forward(x) -> the likelihood's (mean, variance) for one weight draw: (N,), (N,)."""

    def __init__(self, sizes: list[int], prior_std: float = 1.0, noise_var: float = 0.1, local_reparam: bool = True,
                 generator: torch.Generator | None = None):
        super().__init__()
        if len(sizes) < 2 or sizes[-1] != 1:
            raise ValueError(f"sizes must run from the input size to one output, e.g. [1, 50, 1], got {sizes}")
        self.layers = nn.ModuleList(BayesLinear(a, b, prior_std, local_reparam=local_reparam, generator=generator)
                                    for a, b in zip(sizes[:-1], sizes[1:]))
        self.log_noise_var = nn.Parameter(torch.tensor(math.log(noise_var)))

    def sample_function(self, x: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N,)
        h = x
        for layer in self.layers[:-1]:
            h = torch.relu(layer(h))
        return self.layers[-1](h)[:, 0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.sample_function(x)
        return f, self.log_noise_var.exp().expand_as(f)

    def kl(self) -> torch.Tensor:
        return sum(layer.kl() for layer in self.layers)

    @torch.no_grad()
    def predictive(self, x: torch.Tensor, n_samples: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.stack([self.sample_function(x) for _ in range(n_samples)])  # (S, N)
        mean = f.mean(0)
        # \sigma_*^2 = \sigma_n^2 + \mathrm{Var}_{q(w)}[f(x; w)]
        return mean, self.log_noise_var.exp() + (f * f).mean(0) - mean * mean


def negative_elbo(net: BayesByBackpropMLP, x: torch.Tensor, y: torch.Tensor, n_data: int) -> torch.Tensor:
    """One-sample estimate of the negative ELBO per data point on a minibatch (x, y) of a set of n_data."""
    # \mathcal{F} / N = \mathrm{KL}(q \| p) / N - \tfrac1n \sum_{i \in \text{batch}} \log p(y_i | x_i, w),  w \sim q
    return net.kl() / n_data + gaussian_nll(*net(x), y)


def train_bayes_by_backprop(net: BayesByBackpropMLP, x: torch.Tensor, y: torch.Tensor, steps: int = 4000,
                            lr: float = 1e-2, log=None) -> float:
    """Full-batch Adam on the one-sample negative ELBO; returns the last value."""
    opt = Adam(net.parameters(), lr=lr)
    for step in range(steps):
        loss = negative_elbo(net, x, y, len(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log and step % 200 == 0:
            log(step, bbb_neg_elbo=loss)
    return loss.item()


@register_model("bnn-bayes-by-backprop", card="bayes-by-backprop", example=lambda: (torch.randn(6, 1),))
def bnn_bayes_by_backprop(sizes: list[int] | None = None, local_reparam: bool = True) -> BayesByBackpropMLP:
    return BayesByBackpropMLP(sizes or [1, 16, 16, 1], local_reparam=local_reparam)
