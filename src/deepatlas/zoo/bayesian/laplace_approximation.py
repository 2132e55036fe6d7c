"""Last-layer Laplace approximation: a Gaussian posterior around the trained weights of the last layer.

Train a network to its MAP weights as usual, then expand the log posterior to second order
around them. Restricted to the last layer, with a Gaussian likelihood, the network is linear
in those weights, so the generalised Gauss-Newton (GGN, the Fisher) matrix is the exact
Hessian: Phi^T Phi / sigma^2 plus the prior precision, Phi the penultimate features. The
predictive is then Gaussian in closed form (the linearised predictive is exact here), and the
prior precision is set by maximising the Laplace estimate of the evidence (MacKay's update).

    H = \\sigma^{-2} \\Phi^\\top \\Phi + \\lambda I,\\quad q(w) = \\mathcal{N}(w_{\\text{MAP}}, H^{-1})
    p(y_* | x_*) \\approx \\mathcal{N}(\\phi_*^\\top w_{\\text{MAP}},\\ \\sigma^2 + \\phi_*^\\top H^{-1} \\phi_*)
    \\log p(D) \\approx \\log p(D | w_{\\text{MAP}}) + \\log p(w_{\\text{MAP}}) + \\tfrac P2 \\log 2\\pi - \\tfrac12 \\log|H|

MacKay, "A Practical Bayesian Framework for Backpropagation Networks", Neural Computation 1992;
Daxberger et al., "Laplace Redux - Effortless Bayesian Deep Learning", NeurIPS 2021 (arXiv:2106.14806).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.registry import register_model
from deepatlas.zoo.fundamentals.mlp import MLP


class LastLayerLaplace(nn.Module):
    """Wraps a trained regression MLP (one output); its last layer gets a Laplace posterior.

    Call `fit_posterior(x, y, noise_var)` after training; forward(x) -> predictive (mean, var)."""

    def __init__(self, net: MLP, prior_precision: float = 1.0):
        super().__init__()
        if len(net.layers) < 2 or net.layers[-1].out_features != 1:
            raise ValueError("the network needs a hidden layer and a single output")
        if prior_precision <= 0:
            raise ValueError(f"prior_precision must be positive, got {prior_precision}")
        self.net = net
        P, dtype = net.layers[-1].in_features + 1, net.layers[-1].weight.dtype
        # H^{-1} (P, P): the prior's covariance until fit_posterior
        self.register_buffer("posterior_cov", torch.eye(P, dtype=dtype) / prior_precision)
        self.register_buffer("noise_var", torch.tensor(1.0, dtype=dtype))
        self.prior_precision = prior_precision

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N, P): penultimate activations and a 1
        h = x
        for layer in self.net.layers[:-1]:
            h = self.net.phi(layer(h))
        return torch.cat([h, torch.ones(len(h), 1, dtype=h.dtype, device=h.device)], 1)

    def map_weights(self) -> torch.Tensor:  # (P,): w_MAP = [W, b] of the last layer
        last = self.net.layers[-1]
        return torch.cat([last.weight[0], last.bias])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        phi = self.features(x)  # (N, P)
        # \mu_* = \phi_*^\top w_{\text{MAP}},  \sigma_*^2 = \sigma^2 + \phi_*^\top H^{-1} \phi_*
        return phi @ self.map_weights(), self.noise_var + ((phi @ self.posterior_cov) * phi).sum(1)

    def ggn(self, x: torch.Tensor, noise_var: float, prior_precision: float) -> torch.Tensor:
        """H = J^T Lambda J + lambda I with J = Phi (the output is linear in w) and Lambda = 1 / sigma^2."""
        phi = self.features(x).detach()
        # H = \sigma^{-2} \Phi^\top \Phi + \lambda I
        return phi.T @ phi / noise_var + prior_precision * torch.eye(phi.shape[1], dtype=phi.dtype)

    @torch.no_grad()
    def log_evidence(self, x: torch.Tensor, y: torch.Tensor, noise_var: float, prior_precision: float) -> torch.Tensor:
        """The Laplace estimate of log p(D | lambda), the trunk held fixed."""
        w = self.map_weights()
        H = self.ggn(x, noise_var, prior_precision)
        P = len(w)
        # \log p(D | w) = -\lVert y - \Phi w \rVert^2 / 2\sigma^2 - \tfrac N2 \log 2\pi\sigma^2
        log_lik = -0.5 * ((y - self.features(x) @ w) ** 2).sum() / noise_var \
            - 0.5 * len(y) * math.log(2 * math.pi * noise_var)
        # \log p(w_{\text{MAP}}) = \tfrac P2 \log\frac{\lambda}{2\pi} - \tfrac\lambda2 \lVert w \rVert^2
        log_prior = 0.5 * P * math.log(prior_precision / (2 * math.pi)) - 0.5 * prior_precision * (w * w).sum()
        # \log p(D) \approx \log p(D|w) + \log p(w) + \tfrac P2 \log 2\pi - \tfrac12 \log|H|
        return log_lik + log_prior + 0.5 * P * math.log(2 * math.pi) - 0.5 * torch.linalg.slogdet(H)[1]

    @torch.no_grad()
    def fit_posterior(self, x: torch.Tensor, y: torch.Tensor, noise_var: float, fit_prior: bool = True,
                      iters: int = 100) -> float:
        """Set H^{-1} (and lambda, by MacKay's fixed point on the Laplace evidence); returns lambda."""
        lam = self.prior_precision
        if fit_prior:
            phi = self.features(x)
            eig = torch.linalg.eigvalsh(phi.T @ phi / noise_var)  # (P,)
            w2 = (self.map_weights() ** 2).sum().item()
            for _ in range(iters):
                # \gamma = \sum_i \frac{e_i}{e_i + \lambda},   \lambda \leftarrow \gamma / \lVert w_{\text{MAP}} \rVert^2
                gamma = (eig / (eig + lam)).sum().item()
                lam = gamma / w2
        self.prior_precision = lam
        self.noise_var.fill_(noise_var)
        self.posterior_cov.copy_(torch.linalg.inv(self.ggn(x, noise_var, lam)))
        return lam

    @torch.no_grad()
    def mc_predictive(self, x: torch.Tensor, n_samples: int = 100, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same predictive by sampling w ~ N(w_MAP, H^{-1}) (it agrees with forward up to MC error)."""
        L = torch.linalg.cholesky(self.posterior_cov)
        z = torch.randn(n_samples, L.shape[0], generator=generator, dtype=L.dtype).to(L.device)
        w = self.map_weights() + z @ L.T  # (S, P)
        f = self.features(x) @ w.T  # (N, S)
        return f.mean(1), self.noise_var + f.var(1, correction=0)


@register_model("last-layer-laplace", card="laplace-approximation", example=lambda: (torch.randn(6, 1),))
def last_layer_laplace(sizes: list[int] | None = None) -> LastLayerLaplace:
    return LastLayerLaplace(MLP(sizes or [1, 16, 16, 1], activation="relu"))
