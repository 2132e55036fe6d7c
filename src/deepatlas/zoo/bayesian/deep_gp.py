"""Deep Gaussian process with doubly stochastic variational inference.

Each layer is a sparse GP over its input with M inducing points Z and a Gaussian q(U) over the
function values there (whitened: U = L_Z v, q(v) = N(m, S), p(v) = N(0, I)). Given one input, a
layer's output marginal is Gaussian in closed form; the layers are chained by sampling each
point's output with the reparameterisation trick and feeding it to the next layer. The ELBO
is thus estimated with two sources of noise, samples through the layers and minibatches, and
its gradient reaches every inducing point, variational parameter and kernel hyper-parameter.

    q(f^{l}_n | f^{l-1}_n) = \\mathcal{N}\\big(m(f^{l-1}_n) + a_n^\\top \\mathbf{m},\\ k_{nn} - a_n^\\top a_n + a_n^\\top S a_n\\big),\\quad a_n = L_Z^{-1} k(Z, f^{l-1}_n)
    \\mathcal{L} = \\sum_n \\mathbb{E}_{q(f^{L}_n)}[\\log p(y_n | f^{L}_n)] - \\sum_l \\mathrm{KL}(q(v^{l}) \\| \\mathcal{N}(0, I))

Salimbeni & Deisenroth, "Doubly Stochastic Variational Inference for Deep Gaussian Processes",
NIPS 2017 (arXiv:1705.08933); Damianou & Lawrence, "Deep Gaussian Processes", AISTATS 2013
(arXiv:1211.0358); Hensman, Fusi & Lawrence, "Gaussian Processes for Big Data", UAI 2013.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.nn.kernels import rbf
from deepatlas.registry import register_model


class SVGPLayer(nn.Module):
    """One whitened sparse-GP layer from D_in to D_out (independent outputs sharing a kernel and Z).

    The mean function is a fixed linear map (identity when D_in = D_out), as in the paper's inner
    layers; the last layer uses a zero mean."""

    def __init__(self, Z: torch.Tensor, out_features: int, linear_mean: bool, q_std: float = 1.0,
                 lengthscale: float = 1.0, variance: float = 1.0, jitter: float = 1e-6):
        super().__init__()
        M, D_in = Z.shape
        self.Z = nn.Parameter(Z.clone())  # (M, D_in) inducing inputs
        self.q_mu = nn.Parameter(torch.zeros(M, out_features, dtype=Z.dtype))  # (M, D_out) whitened means
        # (D_out, M, M) lower-triangular factors of the whitened covariances S_d = L_d L_d^T
        self.q_sqrt = nn.Parameter(q_std * torch.eye(M, dtype=Z.dtype).repeat(out_features, 1, 1))
        self.log_lengthscale = nn.Parameter(torch.tensor(math.log(lengthscale), dtype=Z.dtype))
        self.log_variance = nn.Parameter(torch.tensor(math.log(variance), dtype=Z.dtype))
        self.register_buffer("mean_map", torch.eye(D_in, out_features, dtype=Z.dtype) if linear_mean
                             else torch.zeros(D_in, out_features, dtype=Z.dtype))
        self.jitter = jitter

    def kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return rbf(a, b, self.log_lengthscale.exp(), self.log_variance.exp())

    def forward(self, F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Marginals of the output at each input row: F (N, D_in) -> mean (N, D_out), var (N, D_out)."""
        M = len(self.Z)
        Kmm = self.kernel(self.Z, self.Z) + self.jitter * torch.eye(M, dtype=F.dtype, device=F.device)
        Lz = torch.linalg.cholesky(Kmm)  # (M, M)
        # a_n = L_Z^{-1} k(Z, f_n)
        A = torch.linalg.solve_triangular(Lz, self.kernel(self.Z, F), upper=False)  # (M, N)
        L = torch.tril(self.q_sqrt)  # (D_out, M, M)
        # \mu_n = m(f_n) + a_n^\top \mathbf{m}
        mean = F @ self.mean_map + A.T @ self.q_mu  # (N, D_out)
        # \sigma_n^2 = k_{nn} - a_n^\top a_n + a_n^\top L L^\top a_n   (k_{nn} = \sigma_f^2 for the RBF kernel)
        LtA = L.transpose(1, 2) @ A  # (D_out, M, N)
        var = self.log_variance.exp() - (A * A).sum(0)[:, None] + (LtA * LtA).sum(1).T  # (N, D_out)
        return mean, var.clamp_min(1e-10)

    def kl(self) -> torch.Tensor:
        """\\sum_d KL(N(m_d, L_d L_d^T) || N(0, I))."""
        L = torch.tril(self.q_sqrt)
        M = L.shape[-1]
        # \mathrm{KL} = \tfrac12 [\mathrm{tr}(L L^\top) + m^\top m - M - \log|L L^\top|]
        logdet = 2 * torch.log(torch.diagonal(L, dim1=1, dim2=2).abs()).sum()
        return 0.5 * ((L * L).sum() + (self.q_mu * self.q_mu).sum() - M * L.shape[0] - logdet)


class DeepGP(nn.Module):
    """A stack of SVGP layers with widths dims = [D, H_1, ..., 1] and a Gaussian likelihood.

    forward(x) -> the predictive (mean (N,), var (N,)) of y, moment-matched over `n_samples`
    propagated samples (the inner layers are sampled; the last layer's marginal is exact)."""

    def __init__(self, Z: torch.Tensor, dims: list[int], noise_var: float = 0.1, n_samples: int = 10,
                 generator: torch.Generator | None = None):
        super().__init__()
        if len(dims) < 2 or dims[-1] != 1 or dims[0] != Z.shape[1]:
            raise ValueError(f"dims must run from the input size {Z.shape[1]} to 1, e.g. [{Z.shape[1]}, 1, 1]; "
                             f"got {dims}")
        n_layers = len(dims) - 1
        # inner layers start nearly deterministic (q_std 1e-5) so the stack begins as the identity map
        self.layers = nn.ModuleList(
            SVGPLayer(Z @ torch.eye(dims[0], d_in, dtype=Z.dtype), d_out, linear_mean=i < n_layers - 1,
                      q_std=1e-5 if i < n_layers - 1 else 1.0)
            for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])))
        self.log_noise_var = nn.Parameter(torch.tensor(math.log(noise_var), dtype=Z.dtype))
        self.n_samples, self.generator = n_samples, generator

    def propagate(self, x: torch.Tensor, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Last-layer marginals for each of n_samples draws through the inner layers: (S, N), (S, N)."""
        F = x.repeat(n_samples, 1)  # (S N, D): every sample path as its own row
        for layer in self.layers[:-1]:
            mean, var = layer(F)
            eps = torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype).to(mean.device)
            # f^{l}_n = \mu_n + \sigma_n \epsilon   (reparameterised: gradients flow through the sample)
            F = mean + var.sqrt() * eps
        mean, var = self.layers[-1](F)
        return mean[:, 0].reshape(n_samples, len(x)), var[:, 0].reshape(n_samples, len(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, v = self.propagate(x, self.n_samples)  # (S, N)
        mean = m.mean(0)
        # \mathrm{Var}[y] = \mathbb{E}_s[v_s + m_s^2] - \bar m^2 + \sigma_n^2
        return mean, (v + m * m).mean(0) - mean * mean + self.log_noise_var.exp()

    def kl(self) -> torch.Tensor:
        return sum(layer.kl() for layer in self.layers)

    def elbo(self, x: torch.Tensor, y: torch.Tensor, n_data: int, n_samples: int | None = None) -> torch.Tensor:
        """The doubly stochastic ELBO estimate for the whole data set from a minibatch (x, y)."""
        m, v = self.propagate(x, n_samples or self.n_samples)  # (S, n)
        noise = self.log_noise_var.exp()
        # \mathbb{E}_{\mathcal{N}(f; m, v)} \log \mathcal{N}(y; f, \sigma^2) = -\tfrac12 \log 2\pi\sigma^2 - ((y - m)^2 + v) / 2\sigma^2
        expected_ll = -0.5 * torch.log(2 * math.pi * noise) - ((y - m) ** 2 + v) / (2 * noise)
        # \mathcal{L} = \frac{N}{n} \sum_{\text{batch}} \mathbb{E}[\log p(y|f)] - \sum_l \mathrm{KL}_l
        return n_data / len(x) * expected_ll.mean(0).sum() - self.kl()


@register_model("deep-gp-2layer", card="deep-gp", example=lambda: (torch.linspace(-2, 2, 7)[:, None],))
def deep_gp_2layer(n_inducing: int = 8, **kw) -> DeepGP:
    return DeepGP(torch.linspace(-2, 2, n_inducing)[:, None], dims=[1, 1, 1], **kw)
