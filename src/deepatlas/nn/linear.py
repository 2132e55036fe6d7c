"""The affine layer and the artificial neuron: a weighted sum of the inputs plus a bias.

A neuron forms z = w^T x + b and passes it through an activation; the bias is a weight on
a constant input 1, which lets the decision boundary w^T x + b = 0 leave the origin. A
linear (fully connected) layer is `out` neurons side by side sharing one input, computed
as one matrix product. Without a nonlinearity between them, stacked layers stay affine.

    z = w^\\top x + b,   a = \\phi(z);   y = x W^\\top + b   (W of shape (out, in))

McCulloch & Pitts, "A logical calculus of the ideas immanent in nervous activity", Bulletin
of Mathematical Biophysics 1943. Initialisation as torch.nn.Linear's default, He et al.'s
Kaiming-uniform with a = sqrt(5) (arXiv:1502.01852), which works out to U(-1/sqrt(n_in), 1/sqrt(n_in)).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from deepatlas.nn import activations


def _check_sizes(**sizes: int) -> None:
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive integer, got {n!r}")


class Linear(nn.Module):
    """y = x W^T + b for x of shape (*, in_features); the twin of torch.nn.Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 generator: torch.Generator | None = None):
        super().__init__()
        _check_sizes(in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))  # (out, in)
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None  # (out,)
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """torch.nn.Linear's default draw, in its order: the weight, then the bias."""
        # Kaiming-uniform with a = \sqrt5: \mathrm{gain} = \sqrt{2 / (1 + a^2)} = \sqrt{1/3},
        # bound = \sqrt3 \cdot \mathrm{gain} / \sqrt{n_{in}} = 1 / \sqrt{n_{in}}
        bound = 1.0 / math.sqrt(self.in_features)
        # W_{ij} \sim \mathcal{U}(-1/\sqrt{n_{in}}, 1/\sqrt{n_{in}})
        self.weight.uniform_(-bound, bound, generator=generator)
        if self.bias is not None:
            # b_i \sim \mathcal{U}(-1/\sqrt{n_{in}}, 1/\sqrt{n_{in}})
            self.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (*, in) -> (*, out)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) expects inputs with last "
                             f"dimension {self.in_features}, got shape {tuple(x.shape)}")
        # y = x W^\top + b
        y = x @ self.weight.T  # (*, out)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda z: z,
    "step": lambda z: (z > 0).to(z.dtype),  # McCulloch-Pitts threshold unit (no gradient)
    "sigmoid": activations.sigmoid,
    "tanh": activations.tanh,
    "relu": activations.relu,
}


class Neuron(nn.Module):
    """One unit: a = phi(w^T x + b) for x of shape (*, n_in), giving (*,)."""

    def __init__(self, n_in: int, activation: str = "sigmoid", bias: bool = True,
                 generator: torch.Generator | None = None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        self.unit = Linear(n_in, 1, bias=bias, generator=generator)  # w is a (1, n_in) row
        self.activation = activation

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:  # (*, n_in) -> (*,)
        # z = \sum_i w_i x_i + b = w^\top x + b
        return self.unit(x).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (*, n_in) -> (*,)
        # a = \phi(z)
        return ACTIVATIONS[self.activation](self.pre_activation(x))

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


__all__ = ["Linear", "Neuron", "ACTIVATIONS"]
