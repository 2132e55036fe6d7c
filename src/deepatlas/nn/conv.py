"""Convolution and pooling written out: sliding windows gathered into columns, then one matrix product.

A convolutional layer applies the same small kernel at every position of its input: each
output is a weighted sum over a local k x k window of all (or, with groups, some of the)
input channels. Gathering every window into a column ("im2col") turns the whole layer into
one matrix product of the kernel bank with the columns; pooling gathers the same windows and
takes their maximum or mean instead. Like torch and every deep-learning library, the
"convolution" is a cross-correlation (the kernel is not flipped).

    Y_{o,i,j} = b_o + \\sum_{c \\in g(o)} \\sum_{u,v} W_{o,c,u,v} X_{c,\\, s i + d u - p,\\, s j + d v - p}
    H_{out} = \\lfloor (H + 2p - d (k - 1) - 1) / s \\rfloor + 1

LeCun, "Generalization and Network Design Strategies", Connectionism in Perspective 1989;
LeCun et al., "Handwritten Digit Recognition with a Back-Propagation Network", NIPS 1989.
The functions equal F.conv2d, F.max_pool2d and F.avg_pool2d (tests/zoo/vision/test_conv.py);
the modules draw their initial weights as torch.nn.Conv2d does. Architectures use the fast
torch.nn.Conv2d; `conv_bn_act` is the convolution-BatchNorm-activation unit several share.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Pair = int | tuple[int, int]


def _pair(value: Pair, name: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair):
        raise ValueError(f"{name} must be an integer >= {minimum} or a pair of them, got {value!r}")
    return pair


def output_size(n: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Number of window positions along one axis of length n."""
    # n_{out} = \lfloor (n + 2p - d(k-1) - 1) / s \rfloor + 1
    return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def windows(x: torch.Tensor, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0, dilation: Pair = 1,
            pad_value: float = 0.0) -> torch.Tensor:
    """Every k x k window of x (B, C, H, W) padded by p: (B, C, H_out, W_out, k_h, k_w), a view where possible."""
    if x.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    (kh, kw), (sh, sw) = _pair(kernel_size, "kernel_size", 1), _pair(stride, "stride", 1)
    (ph, pw), (dh, dw) = _pair(padding, "padding", 0), _pair(dilation, "dilation", 1)
    h_out, w_out = output_size(x.shape[2], kh, sh, ph, dh), output_size(x.shape[3], kw, sw, pw, dw)
    if h_out < 1 or w_out < 1:
        raise ValueError(f"a {kh}x{kw} window (dilation {dh}x{dw}) does not fit in a {x.shape[2]}x{x.shape[3]} "
                         f"input padded by {ph}x{pw}")
    x = F.pad(x, (pw, pw, ph, ph), value=pad_value)  # (B, C, H + 2p, W + 2p)
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # a dilated window covers d(k-1)+1 pixels
    x = x.unfold(2, span_h, sh).unfold(3, span_w, sw)  # (B, C, H_out, W_out, span_h, span_w)
    return x[..., ::dh, ::dw]  # (B, C, H_out, W_out, k_h, k_w): every d-th pixel of the span


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: Pair = 1,
           padding: Pair = 0, dilation: Pair = 1, groups: int = 1) -> torch.Tensor:
    """x (B, C_in, H, W), weight (C_out, C_in / groups, k_h, k_w) -> (B, C_out, H_out, W_out), as F.conv2d."""
    c_out, c_per_group, kh, kw = weight.shape
    if groups < 1 or x.shape[1] % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide both the {x.shape[1]} input and the {c_out} output channels")
    if c_per_group * groups != x.shape[1]:
        raise ValueError(f"weight of shape {tuple(weight.shape)} expects {c_per_group * groups} input channels "
                         f"with groups={groups}, got {x.shape[1]}")
    B = x.shape[0]
    cols = windows(x, (kh, kw), stride, padding, dilation)  # (B, C_in, H_out, W_out, k_h, k_w)
    h_out, w_out = cols.shape[2], cols.shape[3]
    # im2col: one row per output position, one column per (channel, u, v) of the group's window
    cols = cols.reshape(B, groups, c_per_group, h_out, w_out, kh * kw)
    cols = cols.permute(0, 1, 3, 4, 2, 5).reshape(B, groups, h_out * w_out, c_per_group * kh * kw)
    w = weight.reshape(groups, c_out // groups, c_per_group * kh * kw)  # (G, C_out / G, C_in / G * k_h k_w)
    # Y_{o,(i,j)} = \sum_{(c,u,v)} W_{o,(c,u,v)} X_{(c,u,v),(i,j)}: one matrix product per group
    y = cols @ w.transpose(1, 2)  # (B, G, H_out W_out, C_out / G)
    y = y.permute(0, 1, 3, 2).reshape(B, c_out, h_out, w_out)  # (B, C_out, H_out, W_out)
    return y if bias is None else y + bias[:, None, None]


def max_pool2d(x: torch.Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0,
               dilation: Pair = 1) -> torch.Tensor:
    """The largest value of each window, as F.max_pool2d; padding counts as -inf, so it is never chosen."""
    (kh, kw), (ph, pw) = _pair(kernel_size, "kernel_size", 1), _pair(padding, "padding", 0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"padding {padding} must be at most half the kernel size {kernel_size}")
    cols = windows(x, (kh, kw), stride or (kh, kw), (ph, pw), dilation, pad_value=-math.inf)
    # Y_{c,i,j} = \max_{u,v} X_{c, s i + u, s j + v}; max over one axis sends the gradient to the argmax only
    return cols.flatten(-2).max(-1).values  # (B, C, H_out, W_out)


def avg_pool2d(x: torch.Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0,
               count_include_pad: bool = True) -> torch.Tensor:
    """The mean of each window, as F.avg_pool2d; padded zeros count in the mean unless count_include_pad=False."""
    (kh, kw), (ph, pw) = _pair(kernel_size, "kernel_size", 1), _pair(padding, "padding", 0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"padding {padding} must be at most half the kernel size {kernel_size}")
    stride = stride or (kh, kw)
    # Y_{c,i,j} = \frac{1}{k^2} \sum_{u,v} X_{c, s i + u, s j + v}
    total = windows(x, (kh, kw), stride, (ph, pw)).sum((-2, -1))  # (B, C, H_out, W_out)
    if count_include_pad:
        return total / (kh * kw)
    ones = torch.ones(1, 1, *x.shape[2:], dtype=x.dtype, device=x.device)
    return total / windows(ones, (kh, kw), stride, (ph, pw)).sum((-2, -1))  # divide by the real pixels only


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C): one mean per feature map."""
    # g_c = \frac{1}{HW} \sum_{i,j} X_{c,i,j}
    return x.mean((-2, -1))


def translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images (..., H, W) moved dy pixels down and dx right; what enters is zero, what leaves is lost."""
    H, W = x.shape[-2:]
    out = torch.zeros_like(x)
    if abs(dy) < H and abs(dx) < W:
        out[..., max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
            x[..., max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
    return out


class Conv2d(nn.Module):
    """The twin of torch.nn.Conv2d (zero padding), computed by `conv2d` above."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0,
                 dilation: Pair = 1, groups: int = 1, bias: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        for name, n in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"{name} must be a positive integer, got {n!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride, self.padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
        self.dilation = _pair(dilation, "dilation", 1)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """torch.nn.Conv2d's default draw, in its order: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weight then bias."""
        fan_in = self.weight[0].numel()  # C_in / groups * k_h * k_w
        bound = 1.0 / math.sqrt(fan_in)
        self.weight.uniform_(-bound, bound, generator=generator)
        if self.bias is not None:
            self.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H_out, W_out)
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}")


class MaxPool2d(nn.Module):
    def __init__(self, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class AvgPool2d(nn.Module):
    def __init__(self, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh, "none": nn.Identity}


def conv_bn_act(cin: int, cout: int, k: int = 3, stride: int = 1, act: str = "relu", groups: int = 1) -> nn.Sequential:
    """Convolution ('same' padding k // 2, no bias: BatchNorm's shift replaces it), BatchNorm, activation."""
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        ACTIVATIONS[act](),
    )


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters (works on the meta device, where no memory is allocated)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "output_size", "windows", "conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool", "translate",
    "Conv2d", "MaxPool2d", "AvgPool2d", "conv_bn_act", "count_params", "ACTIVATIONS",
]
