"""Activation functions: the nonlinearity between affine layers, written out with tensor ops.

Without a nonlinearity a stack of affine layers collapses into one. The saturating
functions (sigmoid, tanh) squash their input and have slopes that vanish for large |x|;
the rectifiers (ReLU, Leaky ReLU, PReLU, ELU, GELU) pass positive inputs with slope 1.
Softmax turns a vector of logits into a probability distribution.

    \\sigma(x) = 1 / (1 + e^{-x}),   ReLU(x) = \\max(0, x),   GELU(x) = x \\Phi(x)

Each function is written so that no exponential overflows in either branch of a `where`
(a branch that is not selected still runs, and an inf there turns the gradient into NaN).
At x = 0 the rectifiers follow PyTorch's convention: ReLU'(0) = 0, LeakyReLU'(0) = PReLU'(0) = slope,
ELU'(0) = alpha.

Papers: Verhulst 1838 (sigmoid); LeCun, Kanter & Solla, PRL 1991 (tanh); Nair & Hinton,
ICML 2010 (ReLU); Maas, Hannun & Ng, ICML workshop 2013 (Leaky ReLU); He et al.,
arXiv:1502.01852 (PReLU); Clevert, Unterthiner & Hochreiter, arXiv:1511.07289 (ELU);
Hendrycks & Gimpel, arXiv:1606.08415 (GELU); Bridle, NIPS 1989 (softmax).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    pos = x >= 0
    e = torch.exp(torch.where(pos, -x, x))  # e^{-|x|} in (0, 1]: never overflows
    # \sigma(x) = \frac{1}{1 + e^{-x}} for x \ge 0,  \frac{e^{x}}{1 + e^{x}} for x < 0
    return torch.where(pos, 1 / (1 + e), e / (1 + e))


def tanh(x: torch.Tensor) -> torch.Tensor:
    pos = x >= 0
    m = torch.expm1(torch.where(pos, -2 * x, 2 * x))  # e^{-2|x|} - 1 in (-1, 0], exact near 0
    # \tanh(x) = \frac{1 - e^{-2x}}{1 + e^{-2x}}, an odd function
    return torch.where(pos, -m / (2 + m), m / (2 + m))


def relu(x: torch.Tensor) -> torch.Tensor:
    # \mathrm{ReLU}(x) = \max(0, x); written as x <= 0 so that NaN passes through, as in torch.relu
    return torch.where(x <= 0, 0.0, x)


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    # f(x) = x for x > 0,  \alpha x otherwise
    return torch.where(x > 0, x, negative_slope * x)


def prelu(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with a learned slope `a`: one value, or one per channel (dim 1 of x)."""
    if a.numel() > 1:
        if x.dim() < 2 or x.shape[1] != a.numel():
            raise ValueError(f"prelu has {a.numel()} slopes, one per channel (dim 1), "
                             f"but the input has shape {tuple(x.shape)}")
        a = a.reshape(-1, *([1] * (x.dim() - 2)))  # (C, 1, ..., 1) broadcasts over (B, C, ...)
    # f(x_c) = x_c for x_c > 0,  a_c x_c otherwise
    return torch.where(x > 0, x, a * x)


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    # f(x) = x for x > 0,  \alpha (e^{x} - 1) otherwise; the clamp keeps the unused branch finite
    return torch.where(x > 0, x, alpha * torch.expm1(x.clamp(max=0)))


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """x Phi(x) exactly through erf, or Hendrycks & Gimpel's tanh approximation."""
    if approximate == "none":
        # \mathrm{GELU}(x) = x \Phi(x) = \tfrac12 x \left(1 + \mathrm{erf}(x / \sqrt2)\right)
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    if approximate == "tanh":
        # \mathrm{GELU}(x) \approx \tfrac12 x \left(1 + \tanh\left[\sqrt{2/\pi}\,(x + 0.044715 x^3)\right]\right)
        return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")


def softmax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    # softmax(z - c) = softmax(z): subtracting c = max_j z_j keeps every exponent <= 0;
    # c carries no gradient because the output does not depend on it
    e = torch.exp(z - z.amax(dim, keepdim=True).detach())
    # \mathrm{softmax}(z)_i = e^{z_i} / \sum_j e^{z_j}
    return e / e.sum(dim, keepdim=True)


def log_softmax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    shifted = z - z.amax(dim, keepdim=True).detach()
    # \log \mathrm{softmax}(z)_i = (z_i - c) - \log \sum_j e^{z_j - c}
    return shifted - torch.log(torch.exp(shifted).sum(dim, keepdim=True))


class Sigmoid(nn.Module):
    def forward(self, x):
        return sigmoid(x)


class Tanh(nn.Module):
    def forward(self, x):
        return tanh(x)


class ReLU(nn.Module):
    def forward(self, x):
        return relu(x)


class LeakyReLU(nn.Module):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return leaky_relu(x, self.negative_slope)


class PReLU(nn.Module):
    """Learned negative slope, shared (num_parameters=1) or one per channel, initialised to `init`."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        if num_parameters < 1:
            raise ValueError(f"PReLU needs num_parameters >= 1, got {num_parameters}")
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))  # (C,)

    def forward(self, x):
        return prelu(x, self.weight)


class ELU(nn.Module):
    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return elu(x, self.alpha)


class GELU(nn.Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return gelu(x, self.approximate)


class Softmax(nn.Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, z):
        return softmax(z, self.dim)


class LogSoftmax(nn.Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, z):
        return log_softmax(z, self.dim)


__all__ = [
    "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "gelu", "softmax", "log_softmax",
    "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Softmax", "LogSoftmax",
]
