"""DeepSets: functions of sets as a sum of per-element codes, then a network on the sum.

Encode every element with the same network phi, pool the codes with a symmetric operation (a sum
or a mean), and map the pooled code with rho. Pooling forgets the order, so the function is
invariant to permutations of its input; the paper shows that, for countable domains (and for
fixed-size sets of reals with a large enough code), every permutation-invariant function has this
form. The permutation-equivariant layer (one output per element) mixes each element with the
pool of all of them.

    f(\\{x_1, \\dots, x_n\\}) = \\rho\\big(\\textstyle\\sum_{i=1}^n \\phi(x_i)\\big),
    \\mathbf{f}(X) = \\sigma(\\lambda X + \\gamma \\mathbf{1}\\mathbf{1}^\\top X)

Zaheer, Kottur, Ravanbakhsh, Póczos, Salakhutdinov & Smola, "Deep Sets", NeurIPS 2017.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.registry import register_model

POOLS = ("sum", "mean")


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


class DeepSets(nn.Module):
    """forward(x (B, n, d_in), mask (B, n) bool or None, True = element present) -> (B, d_out)."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 64, d_code: int = 64, pool: str = "sum"):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.phi = mlp([d_in, hidden, hidden, d_code])
        self.rho = mlp([d_code, hidden, d_out])
        self.pool = pool

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        codes = self.phi(x)  # (B, n, d_code)
        if mask is not None:
            codes = codes * mask[..., None].to(codes.dtype)
        # \sum_i \phi(x_i)
        pooled = codes.sum(1)  # (B, d_code)
        if self.pool == "mean":
            count = x.new_full((len(x), 1), x.shape[1]) if mask is None else mask.sum(1, keepdim=True).to(x.dtype)
            pooled = pooled / count.clamp_min(1)
        return self.rho(pooled)


class EquivariantLayer(nn.Module):
    """\\sigma(\\lambda X + \\gamma \\mathbf{1}\\mathbf{1}^\\top X): (B, n, d_in) -> (B, n, d_out); permuting the
    elements permutes the outputs the same way (Lambda and Gamma are d_in x d_out matrices here)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.lam = nn.Linear(d_in, d_out)
        self.gamma = nn.Linear(d_in, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # \lambda x_i + \gamma \sum_j x_j
        return torch.relu(self.lam(x) + self.gamma(x.sum(1, keepdim=True)))


@register_model("deepsets", card="deepsets", example=lambda: (torch.randn(3, 7, 2),))
def deepsets(d_in: int = 2, d_out: int = 4, **kw) -> DeepSets:
    return DeepSets(d_in, d_out, **kw)


@register_model("deepsets-equivariant", card="deepsets", example=lambda: (torch.randn(3, 7, 2),))
def deepsets_equivariant(d_in: int = 2, d_out: int = 4, hidden: int = 32) -> nn.Sequential:
    return nn.Sequential(EquivariantLayer(d_in, hidden), EquivariantLayer(hidden, d_out))
