"""EfficientNet: MBConv blocks, and one coefficient that scales depth, width and resolution together.

The block is MobileNetV2's inverted residual with squeeze-and-excitation (MBConv): a 1x1 expansion
by a factor e, a depthwise k x k convolution, SE, and a 1x1 projection back to few channels, added to
the input when the shapes agree (dropped at random per example in training: stochastic depth). A base
net found by architecture search is then grown by compound scaling: depth by alpha^phi, width by
beta^phi and input resolution by gamma^phi, with alpha beta^2 gamma^2 ~ 2 so that each step of phi
about doubles the multiply-adds.

    d = \\alpha^\\phi,\\ w = \\beta^\\phi,\\ r = \\gamma^\\phi,\\quad \\alpha \\beta^2 \\gamma^2 \\approx 2
    \\ \\Rightarrow\\ \\mathrm{FLOPs} \\propto d\\, w^2 r^2 \\approx 2^\\phi

Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019
(arXiv 1905.11946).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.registry import register_model
from deepatlas.zoo.vision.resnet import he_init_
from deepatlas.zoo.vision.senet import SqueezeExcitation

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # the paper's grid-searched depth, width and resolution bases


def compound_scaling(phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA
                     ) -> tuple[float, float, float]:
    """Depth, width and resolution multipliers for the compound coefficient phi."""
    # d = \alpha^\phi,\ w = \beta^\phi,\ r = \gamma^\phi
    return alpha**phi, beta**phi, gamma**phi


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels times the width multiplier, rounded to a multiple of `divisor` and never 10% below."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def round_repeats(repeats: int, depth: float) -> int:
    return math.ceil(depth * repeats)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a residual branch for a random fraction p of the examples, rescale the rest."""
    if not training or p == 0:
        return x
    keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= p  # (B, 1, 1, 1)
    return x * keep / (1 - p)


class MBConv(nn.Module):
    """Expand 1x1 (by `expand`), depthwise k x k (stride), SE on the expanded channels, project 1x1;
    BN after each convolution, SiLU after the first two; residual with stochastic depth when shapes agree."""

    def __init__(self, c_in: int, c_out: int, expand: int = 6, k: int = 3, stride: int = 1, se_ratio: float = 0.25,
                 drop_path_rate: float = 0.0):
        super().__init__()
        if expand < 1 or stride not in (1, 2) or k % 2 == 0:
            raise ValueError(f"need expand >= 1, stride 1 or 2 and an odd kernel; got {expand}, {stride}, {k}")
        mid = c_in * expand
        self.expand = None
        if expand != 1:
            self.expand = nn.Sequential(nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.SiLU())
        self.depthwise = nn.Sequential(nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False),
                                       nn.BatchNorm2d(mid), nn.SiLU())
        self.se = SqueezeExcitation(mid, max(1, int(c_in * se_ratio)), activation=F.silu)  # ratio of the block input
        self.project = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H / s, W / s)
        h = x if self.expand is None else self.expand(x)  # (B, e C_in, H, W)
        h = self.project(self.se(self.depthwise(h)))  # (B, C_out, H / s, W / s): linear bottleneck, no activation
        if self.residual:
            h = x + drop_path(h, self.drop_path_rate, self.training)
        return h


# The base plan for 28x28 digits, in EfficientNet-B0's pattern at a smaller scale: (expand e, kernel k,
# stride, output channels, repeats) per stage; after the stride-2 stem, maps 14 -> 14 -> 7 -> 4 -> 4.
SMALL = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 1, 80, 2)]


class EfficientNet(nn.Module):
    """Stem conv 3x3 stride 2, MBConv stages, a 1x1 head conv, pooling, dropout, classifier - scaled by the depth,
    width and resolution multipliers (`compound_scaling(phi)` gives them; `efficientnet_small(phi=...)`).

    Width rounds every channel count to a multiple of `divisor`, depth rounds every stage's repeats up,
    and resolution resizes the input (bilinear) to round(28 r), so that every scaled net takes 28x28 digits.
    """

    def __init__(self, depth_mult: float = 1.0, width_mult: float = 1.0, resolution_mult: float = 1.0,
                 in_channels: int = 1, num_classes: int = 10, base_resolution: int = 28, stem: int = 16,
                 head: int = 128, stages: list[tuple[int, int, int, int, int]] | None = None, divisor: int = 8,
                 drop_path_rate: float = 0.0, dropout: float = 0.2):
        super().__init__()
        if min(depth_mult, width_mult, resolution_mult) <= 0:
            raise ValueError(f"multipliers must be positive, got {depth_mult}, {width_mult}, {resolution_mult}")
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f"drop_path_rate is a probability below 1, got {drop_path_rate}")
        self.resolution = round(base_resolution * resolution_mult)
        c = round_filters(stem, width_mult, divisor)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
                                  nn.SiLU())
        plan = [(e, k, s, round_filters(c_out, width_mult, divisor), round_repeats(n, depth_mult))
                for e, k, s, c_out, n in stages or SMALL]
        n_blocks, blocks = sum(n for *_, n in plan), []
        for e, k, s, c_out, n in plan:
            for i in range(n):
                # stochastic depth grows linearly with the block's index, as in the official code
                rate = drop_path_rate * len(blocks) / n_blocks
                blocks.append(MBConv(c, c_out, e, k, s if i == 0 else 1, drop_path_rate=rate))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        h = round_filters(head, width_mult, divisor)
        self.head = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.SiLU())
        self.dropout = dropout
        self.fc = nn.Linear(h, num_classes)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, 28, 28) -> (B, classes)
        if x.shape[-1] != self.resolution:
            # r = \gamma^\phi: the scaled net sees a larger image
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        h = self.head(self.blocks(self.stem(x))).mean((2, 3))  # (B, head)
        return self.fc(F.dropout(h, self.dropout, self.training))

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}"


@register_model("efficientnet_small", card="efficientnet", example=lambda: (torch.randn(2, 1, 28, 28),))
def efficientnet_small(phi: float = 0.0, **kw) -> EfficientNet:
    return EfficientNet(*compound_scaling(phi), **kw)
