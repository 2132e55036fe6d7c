"""Network in Network: a small MLP slid over the image (mlpconv), and global average pooling instead of fc layers.

A convolution is a linear filter plus a nonlinearity, a weak model of a local patch. NiN replaces it with an
MLP applied to every patch: a normal convolution followed by 1x1 convolutions, each a fully connected layer
across channels at one pixel. The last mlpconv emits one map per class; averaging each map over all positions
gives the class scores directly, so no fully connected classifier (and none of its parameters) is needed.

    f^{n}_{i,j,k} = \\max\\big(\\mathbf{w}^{n\\top}_k \\mathbf{f}^{n-1}_{i,j} + b^n_k,\\ 0\\big),\\qquad
    s_c = \\frac{1}{HW} \\sum_{i,j} F^{(c)}_{i,j}

Lin, Chen & Yan, "Network In Network", ICLR 2014 (arXiv 1312.4400).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.nn.conv import global_avg_pool
from deepatlas.registry import register_model


class MLPConv(nn.Sequential):
    """A k x k convolution, then `depth - 1` 1x1 convolutions (per-pixel fully connected layers), ReLU
    between them; with last_relu=False the final layer stays linear (class-score maps)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, hidden: int | None = None, depth: int = 3,
                 stride: int = 1, padding: int = 0, last_relu: bool = True):
        if depth < 1:
            raise ValueError(f"an mlpconv layer needs depth >= 1, got {depth}")
        hidden = hidden or c_out
        widths = [hidden] * (depth - 1) + [c_out]
        layers = [nn.Conv2d(c_in, widths[0], kernel_size, stride=stride, padding=padding)]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            # f^{n}_{i,j} = \max(W^n f^{n-1}_{i,j} + b^n, 0): a fully connected layer at every pixel
            layers += [nn.ReLU(), nn.Conv2d(w_in, w_out, 1)]
        layers += [nn.ReLU()] if last_relu else []
        super().__init__(*layers)


class NiN(nn.Module):
    """Three mlpconv layers with 3x3/2 max pooling and dropout between them, then global average pooling."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: tuple[int, int, int] = (24, 48, 64),
                 kernels: tuple[int, int, int] = (5, 5, 3), dropout: float = 0.5):
        super().__init__()
        c1, c2, c3 = channels
        k1, k2, k3 = kernels
        self.features = nn.Sequential(
            MLPConv(in_channels, c1, k1, padding=k1 // 2), nn.MaxPool2d(3, stride=2), nn.Dropout(dropout),  # 28 -> 13
            MLPConv(c1, c2, k2, padding=k2 // 2), nn.MaxPool2d(3, stride=2), nn.Dropout(dropout),  # 13 -> 6
            MLPConv(c2, num_classes, k3, hidden=c3, padding=k3 // 2, last_relu=False),  # one map per class
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        maps = self.features(x)  # (B, classes, 6, 6)
        # s_c = \frac{1}{HW} \sum_{i,j} F^{(c)}_{i,j}: the class score is the mean of its confidence map
        return global_avg_pool(maps)


@register_model("nin", card="nin", example=lambda: (torch.randn(2, 1, 28, 28),))
def nin(**kw) -> NiN:
    return NiN(**kw)
