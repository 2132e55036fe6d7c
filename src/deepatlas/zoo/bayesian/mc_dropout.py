"""Monte Carlo dropout: keep dropout on at test time and read uncertainty off the spread.

A network trained with dropout and weight decay is, by Gal and Ghahramani's argument, a
variational approximation to a Bayesian network whose weight posterior is a mixture of each
weight and zero. Sampling T dropout masks at test time draws T networks from that
approximate posterior; their mean is the prediction, their variance plus the noise level is
the predictive variance.

    \\hat\\mu(x) = \\tfrac1T \\sum_t f(x; \\hat W_t),   \\hat\\sigma^2(x) = \\tau^{-1} + \\tfrac1T \\sum_t f(x; \\hat W_t)^2 - \\hat\\mu(x)^2

Gal & Ghahramani, "Dropout as a Bayesian Approximation: Representing Model Uncertainty in Deep
Learning", ICML 2016 (arXiv:1506.02142). Here the noise precision tau is learned with the weights
(a homoscedastic Gaussian likelihood) rather than set from the weight decay.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.nn.linear import Linear
from deepatlas.nn.regularization import dropout
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model
from deepatlas.zoo.bayesian.deep_ensembles import gaussian_nll


class DropoutMLP(nn.Module):
    """A ReLU regression MLP with dropout after every hidden layer, at training and test time alike.

    forward(x) -> the likelihood's (mean, variance) for one stochastic pass: f(x; W_t) (N,) and the
    learned noise variance tau^{-1} (N,)."""

    def __init__(self, sizes: list[int], p: float = 0.1, noise_var: float = 0.1,
                 generator: torch.Generator | None = None):
        super().__init__()
        if len(sizes) < 2 or sizes[-1] != 1:
            raise ValueError(f"sizes must run from the input size to one output, e.g. [1, 50, 50, 1], got {sizes}")
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.layers = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))
        self.p = p
        self.log_noise_var = nn.Parameter(torch.tensor(math.log(noise_var)))
        self.generator = generator  # the masks' source

    @property
    def noise_var(self) -> torch.Tensor:
        return self.log_noise_var.exp()

    def sample_function(self, x: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N,): one mask, one network
        h = x
        for layer in self.layers[:-1]:
            # \tilde h = m \odot \mathrm{relu}(W h + b) / (1 - p),   m \sim \mathrm{Bernoulli}(1 - p)
            h = dropout(torch.relu(layer(h)), self.p, training=True, generator=self.generator)
        return self.layers[-1](h)[:, 0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.sample_function(x)
        return f, self.noise_var.expand_as(f)

    @torch.no_grad()
    def predictive(self, x: torch.Tensor, n_samples: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
        """The MC estimate of the predictive mean (N,) and variance (N,) from `n_samples` masks."""
        f = torch.stack([self.sample_function(x) for _ in range(n_samples)])  # (T, N)
        mean = f.mean(0)
        # \hat\sigma^2 = \tau^{-1} + \tfrac1T \sum_t f_t^2 - \hat\mu^2
        return mean, self.noise_var + (f * f).mean(0) - mean * mean


def train_mc_dropout(net: DropoutMLP, x: torch.Tensor, y: torch.Tensor, steps: int = 3000, lr: float = 1e-2,
                     weight_decay: float = 1e-4, log=None) -> float:
    """Full-batch Adam on the Gaussian NLL of one dropout pass per step, with L2 weight decay."""
    opt = Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    for step in range(steps):
        # \mathcal{L} = -\tfrac1N \sum_n \log \mathcal{N}(y_n; f(x_n; \hat W_t), \tau^{-1})
        loss = gaussian_nll(*net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log and step % 200 == 0:
            log(step, mc_dropout_nll=loss)
    return loss.item()


@register_model("mc-dropout-mlp", card="mc-dropout", example=lambda: (torch.randn(6, 1),))
def mc_dropout_mlp(sizes: list[int] | None = None, p: float = 0.1) -> DropoutMLP:
    return DropoutMLP(sizes or [1, 16, 16, 1], p)
