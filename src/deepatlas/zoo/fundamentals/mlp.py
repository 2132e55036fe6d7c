"""Multilayer perceptron: affine layers with a nonlinearity between them.

Stacking two affine maps is still affine; a nonlinearity between them lets the network
bend its decision boundary, and one hidden layer of enough units can approximate any
continuous function on a compact set (Cybenko 1989; Hornik et al. 1989).

    h^{(l)} = \\phi(W^{(l)} h^{(l-1)} + b^{(l)}),   \\hat y = W^{(L)} h^{(L-1)} + b^{(L)}

Rumelhart, Hinton & Williams, "Learning representations by back-propagating errors", Nature 1986.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.registry import register_model

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


class MLP(nn.Module):
    def __init__(self, sizes: list[int], activation: str = "tanh"):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError("an MLP needs at least input and output sizes, e.g. [2, 8, 1]")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.phi = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, sizes[0]) -> (B, sizes[-1])
        for layer in self.layers[:-1]:
            x = self.phi(layer(x))
        return self.layers[-1](x)  # logits: no nonlinearity on the output


@register_model("mlp", card="mlp")
def mlp(sizes: list[int] | None = None, activation: str = "tanh") -> MLP:
    return MLP(sizes or [2, 8, 1], activation)
