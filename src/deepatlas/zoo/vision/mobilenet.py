"""MobileNet: factor a convolution into a per-channel spatial filter and a 1x1 channel mixer.

A standard k x k convolution from M to N channels filters and combines in one step, with k^2 M N
weights. A depthwise-separable convolution splits the two: a depthwise k x k convolution filters each
input channel on its own (k^2 M weights), then a pointwise 1x1 convolution mixes the channels (M N).
The cost falls to 1/N + 1/k^2 of the standard one - eight to nine times less for 3x3 kernels - and
MobileNet builds a VGG-like stack of such layers for phones.

    \\frac{k^2 M D_F^2 + M N D_F^2}{k^2 M N D_F^2} = \\frac{1}{N} + \\frac{1}{k^2}

Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto & Adam, "MobileNets: Efficient Convolutional
Neural Networks for Mobile Vision Applications", arXiv 1704.04861, 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.vision.cnn_zoo import conv_weights, multiply_adds, n_params
from deepatlas.zoo.vision.resnet import he_init_


class DepthwiseSeparableConv(nn.Module):
    """Depthwise k x k convolution (groups = M: one filter per input channel), BN, ReLU, then a pointwise
    1x1 convolution to N channels, BN, ReLU - the paper's Fig. 3 (right)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, k: int = 3):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, k, stride=stride, padding=k // 2, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, M, H, W) -> (B, N, H / s, W / s)
        # \hat G_{k,l,m} = \sum_{i,j} \hat K_{i,j,m} F_{k+i-1, l+j-1, m}: each channel filtered on its own
        h = F.relu(self.bn1(self.depthwise(x)))  # (B, M, H / s, W / s)
        # G_{k,l,n} = \sum_m P_{m,n} \hat G_{k,l,m}: the 1x1 convolution mixes the channels
        return F.relu(self.bn2(self.pointwise(h)))  # (B, N, H / s, W / s)


# (output channels, stride) of each depthwise-separable layer: the paper's Table 1 pattern (widths that
# double as the map halves) at 28x28 and a quarter of the width: 28 -> 14 -> 7 -> 4.
SMALL = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1)]


class MobileNet(nn.Module):
    """A full 3x3 convolution stem, a stack of depthwise-separable layers, global average pooling and a
    linear classifier. `width_mult` is the paper's width multiplier alpha."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, stem: int = 16,
                 layers: list[tuple[int, int]] | None = None, width_mult: float = 1.0):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        c = max(1, round(stem * width_mult))
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        body = []
        for c_out, stride in layers or SMALL:
            c_out = max(1, round(c_out * width_mult))
            body.append(DepthwiseSeparableConv(c, c_out, stride))
            c = c_out
        self.body = nn.Sequential(*body)
        self.fc = nn.Linear(c, num_classes)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, classes)
        return self.fc(self.body(self.stem(x)).mean((2, 3)))


@register_model("mobilenet_small", card="mobilenet", example=lambda: (torch.randn(2, 1, 28, 28),))
def mobilenet_small(**kw) -> MobileNet:
    return MobileNet(**kw)


# --- mobilenet/separable-savings: depthwise-separable against standard convolution -------------------

@dataclass
class SavingsConfig:
    map_size: int = 14  # D_F
    kernel: int = 3  # D_K
    tolerance: float = 1e-9  # measured against closed-form ratios


def standard_conv(c_in: int, c_out: int, k: int) -> nn.Module:
    """The layer the separable one replaces: a full k x k convolution, BN, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


@lab(
    "mobilenet/separable-savings",
    card="mobilenet",
    config=SavingsConfig,
    scales={"quick": {"map_size": 4}, "default": {}, "full": {}},
    goals=[Goal("max_formula_err", "<=", 1e-9)],
    claims=[
        Check(
            "mobilenet-separable-cost",
            lambda m: m["max_formula_err"] <= m["tolerance"] and 8 <= m["saving_512"] <= 9,
            "measured on built layers ({kernel}x{kernel}, {map_size}x{map_size} map): a depthwise-separable layer "
            "costs {ratio_64:.4f} of a standard one at 64->64 channels ({saving_64:.2f}x fewer multiply-adds), "
            "{ratio_512:.4f} at 512->512 ({saving_512:.2f}x fewer); the closed form 1/N + 1/k^2 agrees to "
            "{max_formula_err:.1e}; parameters fall by the same factor",
        ),
    ],
    budget_s=10,
    threads=1,
)
def separable_savings(run, cfg: SavingsConfig) -> dict:
    """Parameters and multiply-adds of a depthwise-separable layer against a standard convolution."""
    k, s = cfg.kernel, cfg.map_size
    widths = [16, 32, 64, 128, 256, 512, 1024]
    metrics: dict = {"kernel": k, "map_size": s, "tolerance": cfg.tolerance}
    err = 0.0
    rows = []
    for n in widths:  # M = N = n, as in MobileNet's body
        x = torch.randn(1, n, s, s)
        sep, std = DepthwiseSeparableConv(n, n, k=k), standard_conv(n, n, k)
        # \frac{k^2 M D_F^2 + M N D_F^2}{k^2 M N D_F^2} = 1/N + 1/k^2
        closed = 1 / n + 1 / k**2
        macs = multiply_adds(sep, x) / multiply_adds(std, x)
        weights = conv_weights(sep) / conv_weights(std)
        err = max(err, abs(macs - closed), abs(weights - closed))
        rows.append((n, macs, weights, n_params(sep) / n_params(std)))
        metrics[f"ratio_{n}"] = macs
        metrics[f"saving_{n}"] = 1 / macs
    metrics["max_formula_err"] = err

    with run.figure("separable_savings") as (fig, ax):
        ns = [r[0] for r in rows]
        ax.plot(ns, [1 / r[1] for r in rows], "o", label="multiply-adds, measured")
        ax.plot(ns, [1 / r[3] for r in rows], "x", label="parameters incl. BN, measured")
        dense = torch.logspace(torch.log10(torch.tensor(16.0)), torch.log10(torch.tensor(1024.0)), 100)
        ax.plot(dense, 1 / (1 / dense + 1 / k**2), "k-", lw=1, label=f"1 / (1/N + 1/{k * k})")
        ax.axhline(k**2, color="grey", ls="--", lw=1, label=f"limit {k * k}x")
        ax.set(xscale="log", xlabel="channels M = N", ylabel="standard / separable",
               title=f"depthwise-separable {k}x{k} convolution saves")
        ax.legend(fontsize=8)
    return metrics
