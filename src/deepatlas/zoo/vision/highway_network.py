"""Highway network: layers that learn, per unit, how much to transform and how much to carry through.

Borrowing the gates of the LSTM, a highway layer mixes a transformed signal H(x) with its unchanged
input x; a sigmoid transform gate T(x) sets the mix, and its bias starts negative so that a freshly
built network mostly carries its input. Information and gradients can then cross many layers, and
nets of a hundred layers train with plain SGD where plain nets of that depth do not.

    y = H(x, W_H) \\odot T(x, W_T) + x \\odot (1 - T(x, W_T)),   T(x) = \\sigma(W_T x + b_T)

Srivastava, Greff & Schmidhuber, "Highway Networks", ICML 2015 Deep Learning Workshop (arXiv 1505.00387);
"Training Very Deep Networks", NIPS 2015 (arXiv 1507.06228).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.nn.init import kaiming_normal_
from deepatlas.registry import register_model


class HighwayLayer(nn.Module):
    """y = H(x) T(x) + x (1 - T(x)) on vectors of size `d`; H is an affine map with ReLU."""

    def __init__(self, d: int, gate_bias: float = -2.0):
        super().__init__()
        self.H = nn.Linear(d, d)
        self.T = nn.Linear(d, d)
        with torch.no_grad():
            self.T.bias.fill_(gate_bias)  # negative: the layer starts out carrying its input

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, d)
        h = F.relu(self.H(x))
        # T(x) = \sigma(W_T x + b_T)
        t = torch.sigmoid(self.T(x))
        # y = H(x) \odot T(x) + x \odot (1 - T(x))
        return h * t + x * (1 - t)


class HighwayMLP(nn.Module):
    """Flatten, one plain layer to `width` units, `depth` highway layers, a linear classifier."""

    def __init__(self, in_features: int = 784, width: int = 50, depth: int = 10, num_classes: int = 10,
                 gate_bias: float = -2.0):
        super().__init__()
        if min(in_features, width, num_classes) < 1 or depth < 0:
            raise ValueError(f"sizes must be positive and depth >= 0, got in_features={in_features}, "
                             f"width={width}, depth={depth}, num_classes={num_classes}")
        self.inp = nn.Linear(in_features, width)  # changes the dimension, which a highway layer cannot
        self.layers = nn.ModuleList(HighwayLayer(width, gate_bias) for _ in range(depth))
        self.out = nn.Linear(width, num_classes)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear) and m is not self.out:
                    # W \sim \mathcal{N}(0, 2 / n_{in}): He et al.'s scale keeps H(x) as large as x
                    kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) or (B, 784) -> (B, classes)
        h = F.relu(self.inp(x.flatten(1)))  # (B, width)
        for layer in self.layers:
            h = layer(h)
        return self.out(h)


@register_model("highway_mlp", card="highway-network", example=lambda: (torch.randn(2, 1, 28, 28),))
def highway_mlp(**kw) -> HighwayMLP:
    return HighwayMLP(**kw)

