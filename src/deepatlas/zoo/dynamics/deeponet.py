"""DeepONet: learn an operator G that maps an input function u to an output function G(u).

A branch network reads u at m fixed sensor points, a trunk network reads the query location y,
and the output is the inner product of their p features. Chen & Chen's universal approximation
theorem for operators says this form can approximate any continuous operator; once trained, a new
input function costs one forward pass instead of a PDE solve.

    G_\\theta(u)(y) = \\sum_{k=1}^{p} b_k(u(x_1), \\dots, u(x_m))\\, t_k(y) + b_0

Lu, Jin, Pang, Zhang & Karniadakis, "Learning nonlinear operators via DeepONet based on the universal
approximation theorem of operators", Nature Machine Intelligence 2021 (arXiv:1910.03193).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatlas.nn.linear import Linear
from deepatlas.registry import register_model


class MLPNet(nn.Module):
    """Linear layers with GELU between them; `last_activation` also applies it after the output layer."""

    def __init__(self, sizes: list[int], last_activation: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        self.layers = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))
        self.last_activation = last_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1 or self.last_activation:
                x = nn.functional.gelu(x)
        return x


class DeepONet(nn.Module):
    """forward(u (B, m) at the sensors, y (P,) query points) -> G(u)(y) (B, P).

    With `fourier` > 0 the trunk sees (cos 2 pi k y, sin 2 pi k y) for k = 1..fourier instead of y,
    which builds periodicity on [0, 1) into the output functions (Lu et al. 2022 use such features)."""

    def __init__(self, m: int, p: int = 64, hidden: int = 128, depth: int = 3, fourier: int = 0,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.fourier = fourier
        trunk_in = 2 * fourier if fourier else 1
        self.branch = MLPNet([m, *[hidden] * depth, p], generator=generator)
        # the trunk's last layer is activated too, as in the paper: its features are basis functions t_k(y)
        self.trunk = MLPNet([trunk_in, *[hidden] * depth, p], last_activation=True, generator=generator)
        self.b0 = nn.Parameter(torch.zeros(()))

    def features(self, y: torch.Tensor) -> torch.Tensor:  # (P,) -> (P, trunk_in)
        if not self.fourier:
            return y[:, None]
        k = torch.arange(1, self.fourier + 1, dtype=y.dtype, device=y.device)
        angle = 2 * math.pi * y[:, None] * k  # (P, K)
        return torch.cat([angle.cos(), angle.sin()], dim=-1)

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b = self.branch(u)  # (B, p)
        t = self.trunk(self.features(y))  # (P, p)
        # G(u)(y) = \sum_k b_k(u) t_k(y) + b_0
        return b @ t.T + self.b0  # (B, P)


@register_model("deeponet", card="deeponet", example=lambda: (torch.randn(3, 32), torch.rand(10)))
def deeponet(m: int = 32, p: int = 32, hidden: int = 64, depth: int = 2, fourier: int = 0) -> DeepONet:
    return DeepONet(m, p, hidden, depth, fourier)


@register_model("deeponet-periodic", card="deeponet", example=lambda: (torch.randn(3, 32), torch.rand(10)))
def deeponet_periodic(m: int = 32, p: int = 32, hidden: int = 64, depth: int = 2, fourier: int = 8) -> DeepONet:
    return DeepONet(m, p, hidden, depth, fourier)
