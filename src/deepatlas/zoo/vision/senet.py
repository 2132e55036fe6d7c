"""Squeeze-and-Excitation: let the whole image decide how much each channel counts.

A convolution mixes channels only through its local window. An SE block first squeezes each channel
of a feature map u to one number, its global average; a two-layer bottleneck network then excites -
maps these summaries to one gate in (0, 1) per channel - and the map is rescaled channel by channel.
It costs a few parameters per block and drops into any architecture; in SE-ResNet it rescales the
residual branch before the shortcut is added.

    z_c = \\frac{1}{HW} \\sum_{i,j} u_c(i, j),   s = \\sigma(W_2\\, \\delta(W_1 z)),   \\tilde x_c = s_c\\, u_c

Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018 (arXiv 1709.01507).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.registry import register_model
from deepatlas.zoo.vision.resnet import BasicBlock, ResNet


class SqueezeExcitation(nn.Module):
    """Channel gates from global context: `channels` -> `reduced` -> `channels` with `activation` between
    (ReLU in SENet, SiLU in EfficientNet's MBConv) and a sigmoid at the end."""

    def __init__(self, channels: int, reduced: int, activation: Callable[[torch.Tensor], torch.Tensor] = F.relu):
        super().__init__()
        if not 1 <= reduced:
            raise ValueError(f"the excitation needs at least one hidden unit, got reduced={reduced}")
        self.fc1 = nn.Linear(channels, reduced)  # W_1 \in R^{C/r x C}
        self.fc2 = nn.Linear(reduced, channels)  # W_2 \in R^{C x C/r}
        self.activation = activation

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        # z_c = \frac{1}{HW} \sum_{i,j} u_c(i, j)      (squeeze)
        z = u.mean((2, 3))  # (B, C)
        # s = \sigma(W_2 \delta(W_1 z))                 (excitation)
        s = torch.sigmoid(self.fc2(self.activation(self.fc1(z))))  # (B, C)
        # \tilde x_c = s_c u_c                            (scale)
        return u * s[:, :, None, None]


class SEBasicBlock(BasicBlock):
    """ResNet's basic block with SE on the residual branch, before the shortcut is added."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, shortcut: bool = True, reduction: int = 4):
        super().__init__(c_in, c_out, stride, shortcut)
        self.se = SqueezeExcitation(c_out, max(1, c_out // reduction))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(super().residual(x))


def se_resnet(depth: int = 14, widths: tuple[int, int, int] = (8, 16, 32), reduction: int = 4, **kw) -> ResNet:
    """ResNet of depth 6n + 2 with SE blocks; r = 4 rather than the paper's 16, which would leave
    narrow stages a single hidden unit."""
    return ResNet(depth, widths, block=partial(SEBasicBlock, reduction=reduction), **kw)


@register_model("se_resnet_small", card="senet", example=lambda: (torch.randn(2, 1, 28, 28),))
def se_resnet_small(**kw) -> ResNet:
    return se_resnet(**kw)
