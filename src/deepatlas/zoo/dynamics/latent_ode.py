"""Latent ODE: a variational autoencoder whose decoder is a Neural ODE, for irregularly sampled series.

The encoder is an ODE-RNN run backwards in time: between two observations its hidden state evolves by a
Neural ODE over the actual time gap, and at an observation a GRU folds the value (and which dimensions
were observed) in. It outputs a Gaussian posterior over the initial latent state z_0; the decoder solves
a second Neural ODE from a sample of z_0 and reads out the observations at any times, so gaps need no
imputation and the model can extrapolate. Training maximises the evidence lower bound.

    \\mathcal{L} = \\mathbb{E}_{q(z_0 | x)}\\Big[\\sum_i \\log p(x_{t_i} | z_{t_i})\\Big] - \\mathrm{KL}(q(z_0 | x)\\,\\|\\,\\mathcal N(0, I))

Rubanova, Chen & Duvenaud, "Latent Ordinary Differential Equations for Irregularly-Sampled Time Series",
NeurIPS 2019 (arXiv:1907.03907).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.nn.linear import Linear
from deepatlas.nn.recurrent import GRUCell
from deepatlas.registry import register_model
from deepatlas.zoo.dynamics.neural_ode import ODEFunc, odeint


class ODERNNEncoder(nn.Module):
    """Reads (x (B, T, D), mask (B, T, D), t (T,)) from the last time to the first; returns q(z_0): (mu, logvar)."""

    def __init__(self, obs_dim: int, hidden: int, latent: int, step: float):
        super().__init__()
        self.field = ODEFunc(hidden, hidden)
        self.gru = GRUCell(2 * obs_dim, hidden)
        self.out = Linear(hidden, 2 * latent)
        self.step = step

    def forward(self, x: torch.Tensor, mask: torch.Tensor, t: torch.Tensor):
        h = x.new_zeros(x.shape[0], self.gru.hidden_size)
        for i in range(len(t) - 1, -1, -1):
            if i < len(t) - 1:  # evolve h backwards over the gap t_{i+1} -> t_i
                # h(t_i) = \mathrm{ODESolve}(f_\psi, h(t_{i+1}), t_{i+1}, t_i)
                h = odeint(self.field, h, torch.stack([t[i + 1], t[i]]), method="rk4", step_size=self.step)[-1]
            # h \leftarrow \mathrm{GRU}([x_{t_i} \odot m_{t_i}, m_{t_i}], h); unobserved steps leave h as it was
            h_new = self.gru(torch.cat([x[:, i] * mask[:, i], mask[:, i]], -1), h)
            seen = mask[:, i].amax(-1, keepdim=True)  # (B, 1): anything observed at t_i
            h = seen * h_new + (1 - seen) * h
        mu, logvar = self.out(h).chunk(2, dim=-1)
        return mu, logvar


class LatentODE(nn.Module):
    """forward(x, mask, t_obs, t_pred, eps) -> (x_hat (B, T_pred, D), mu, logvar) with z_0 = mu + eps sigma."""

    def __init__(self, obs_dim: int = 1, latent: int = 4, hidden: int = 32, step: float = 0.05,
                 obs_std: float = 0.1):
        super().__init__()
        self.encoder = ODERNNEncoder(obs_dim, hidden, latent, step)
        self.dynamics = ODEFunc(latent, hidden)
        self.readout = Linear(latent, obs_dim)
        self.step = step
        self.register_buffer("log_obs_std", torch.tensor(math.log(obs_std)))  # fixed, as in the paper's code

    def forward(self, x, mask, t_obs, t_pred, eps):
        mu, logvar = self.encoder(x, mask, t_obs)
        # z_0 = \mu + \epsilon \odot \exp(\tfrac12 \log\sigma^2)   (reparameterisation)
        z0 = mu + eps * torch.exp(0.5 * logvar)
        # z_{t_1..t_N} = \mathrm{ODESolve}(f_\theta, z_0, t_0, t_1..t_N)
        zs = odeint(self.dynamics, z0, t_pred, method="rk4", step_size=self.step)  # (T, B, latent)
        return self.readout(zs).transpose(0, 1), mu, logvar


def negative_elbo(model: LatentODE, x, mask, t, g: torch.Generator | None = None) -> torch.Tensor:
    """-ELBO per sequence: the Gaussian likelihood of the observed values plus KL(q(z_0 | x) || N(0, I))."""
    eps = torch.randn(x.shape[0], model.readout.in_features, generator=g, dtype=x.dtype).to(x.device)
    x_hat, mu, logvar = model(x, mask, t, t, eps)
    std = model.log_obs_std.exp()
    # \log p(x | z) = \sum_{observed} \log \mathcal N(x; \hat x, s^2)
    log_lik = (mask * (-0.5 * ((x - x_hat) / std) ** 2 - model.log_obs_std - 0.5 * math.log(2 * math.pi))).sum((1, 2))
    # \mathrm{KL}(\mathcal N(\mu, \sigma^2) \| \mathcal N(0, 1)) = \tfrac12 \sum (\mu^2 + \sigma^2 - 1 - \log\sigma^2)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
    return (kl - log_lik).mean()


def _example():
    t = torch.tensor([0.0, 0.13, 0.2, 0.55, 0.6, 1.0])  # irregular times
    x = torch.randn(3, 6, 1)
    mask = (torch.rand(3, 6, 1) < 0.7).float()
    mask[:, 0] = 1.0
    return x, mask, t, torch.linspace(0, 1.5, 7), torch.randn(3, 4)


@register_model("latent-ode", card="latent-ode", example=_example)
def latent_ode(obs_dim: int = 1, latent: int = 4, hidden: int = 16, step: float = 0.1) -> LatentODE:
    return LatentODE(obs_dim, latent, hidden, step)
