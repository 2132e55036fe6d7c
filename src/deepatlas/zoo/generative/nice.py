"""NICE: additive coupling layers and a final diagonal scaling.

Split the input by a binary mask b; keep the masked half and add to the other half a shift computed
from the kept half by any network m. The step is inverted by subtracting the same shift, and its
Jacobian is triangular with a unit diagonal, so it preserves volume; a learned diagonal scaling at the
end sets each dimension's scale. Alternating masks let every dimension be transformed.

    y = b \\odot x + (1 - b) \\odot (x + m(b \\odot x)),   \\log p(x) = \\log p_Z(S f(x)) + \\sum_d \\log|S_{dd}|

Dinh, Krueger & Bengio, "NICE: Non-linear Independent Components Estimation", ICLR 2015 (workshop).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.nn.flows import Flow, alternating_masks, conditioner
from deepatlas.registry import register_model


class AdditiveCoupling(nn.Module):
    """y = b \\odot x + (1 - b) \\odot (x + m(b \\odot x)) on (B, D); log-det 0."""

    def __init__(self, mask: torch.Tensor, hidden: int = 64, depth: int = 2,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.m = conditioner(len(mask), len(mask), hidden, depth, generator)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, D)
        # y_2 = x_2 + m(x_1)
        y = x + (1 - self.mask) * self.m(self.mask * x)
        return y, x.new_zeros(len(x))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        # x_2 = y_2 - m(y_1)
        return y - (1 - self.mask) * self.m(self.mask * y)


class Scaling(nn.Module):
    """The diagonal scaling S = diag(e^{\\log s}) that ends a NICE flow."""

    def __init__(self, dim: int):
        super().__init__()
        self.log_s = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # \log|\det S| = \sum_d \log s_d
        return x * torch.exp(self.log_s), self.log_s.sum().expand(len(x))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.log_s)


def nice_flow(dim: int = 2, n_couplings: int = 4, hidden: int = 64, depth: int = 2,
              generator: torch.Generator | None = None) -> Flow:
    """Additive couplings with alternating masks, then the scaling layer."""
    couplings = [AdditiveCoupling(b, hidden, depth, generator) for b in alternating_masks(dim, n_couplings)]
    return Flow([*couplings, Scaling(dim)], (dim,))


@register_model("nice", card="nice", example=lambda: (torch.randn(8, 2),))
def nice(dim: int = 2, n_couplings: int = 4, hidden: int = 64) -> Flow:
    return nice_flow(dim, n_couplings, hidden)
