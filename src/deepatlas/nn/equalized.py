"""Equalised learning rate: store every weight as N(0, 1) and apply its He constant at run time.

Adam moves each parameter by about lr per step whatever the parameter's scale, so a layer whose weights
are initialised small (He's sqrt(2 / n_in)) learns relatively faster than a layer with large weights.
Storing the weights with unit variance and multiplying them by c = gain / sqrt(n_in) in the forward pass
makes one Adam step the same share of every layer's weights. A layer may also learn at lr_mul times the
rate of the others (StyleGAN's mapping network, 0.01): the stored weights are divided by lr_mul and the
run-time constant multiplied by it, so the effective weights start the same and move lr_mul times slower.

    \\hat w = w \\cdot \\mathrm{gain} \\cdot \\mathrm{lr\\_mul} / \\sqrt{n_{\\text{in}}},\\qquad
    w \\sim \\mathcal{N}(0, 1 / \\mathrm{lr\\_mul}^2)

Karras, Aila, Laine & Lehtinen, "Progressive Growing of GANs for Improved Quality, Stability, and
Variation", ICLR 2018 (arXiv 1710.10196); lr_mul from Karras, Laine & Aila, "A Style-Based Generator
Architecture for Generative Adversarial Networks", CVPR 2019.

gain sqrt(2) suits a (leaky) ReLU that follows; gain 1 suits a linear output, or a layer whose activation
is multiplied by sqrt(2) afterwards (StyleGAN's convention).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.nn.init import normal_


class EqualizedLinear(nn.Module):
    """y = x \\hat W^T + lr_mul b: W stored as N(0, 1/lr_mul^2), \\hat W = W gain lr_mul / sqrt(in_features);
    the bias starts at bias_init (stored as bias_init / lr_mul)."""

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2), lr_mul: float = 1.0,
                 bias_init: float = 0.0, generator: torch.Generator | None = None):
        super().__init__()
        if in_features < 1 or out_features < 1 or lr_mul <= 0:
            raise ValueError(f"features must be positive and lr_mul > 0, got {in_features}, {out_features}, {lr_mul}")
        self.weight = nn.Parameter(normal_(torch.empty(out_features, in_features), generator=generator) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul))
        # c = \mathrm{gain} \cdot \mathrm{lr\_mul} / \sqrt{n_{in}}
        self.scale, self.lr_mul = gain * lr_mul / math.sqrt(in_features), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (*, in) -> (*, out)
        # y = x (c W)^\top + \mathrm{lr\_mul}\, b
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualizedConv2d(nn.Module):
    """A convolution with 'same' padding (odd kernel) and an optional stride whose N(0, 1) weight is scaled
    by gain / sqrt(C_in k^2) at run time."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 gain: float = math.sqrt(2), generator: torch.Generator | None = None):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        if in_channels < 1 or out_channels < 1 or stride < 1:
            raise ValueError(f"channels and stride must be positive, got {in_channels}, {out_channels}, {stride}")
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(normal_(torch.empty(shape), generator=generator))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        # c = \mathrm{gain} / \sqrt{C_{in} k^2}
        self.scale, self.stride = gain / math.sqrt(in_channels * kernel_size ** 2), stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, ceil(H/s), ceil(W/s))
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.weight.shape[-1] // 2)
