"""Denoising networks shared by the diffusion models: eps_theta(x_t, t[, y]).

A diffusion model needs one network that, given a noisy sample x_t, the step t and optionally a
class y, predicts the noise that was added. The step enters through a sinusoidal embedding (the
Transformer's positional code evaluated at t) followed by a small MLP; a class enters as a learned
embedding added to it, with one extra row, `num_classes`, for "no class" (classifier-free guidance
trains with it). Two sizes live here: an MLP for 2-D points and a small U-Net for 14x14 or 28x28
images (Ho et al. 2020 use a PixelCNN++-style U-Net with the same ingredients, much wider).

    \\mathrm{emb}(t)_{2i} = \\sin(t\\,\\omega_i),\\ \\mathrm{emb}(t)_{2i+1} = \\cos(t\\,\\omega_i),\\
    \\omega_i = 10000^{-2i/d}

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (arXiv 2006.11239);
Ronneberger, Fischer & Brox, "U-Net", MICCAI 2015.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) steps, integer or real -> (B, dim): sines in the first half, cosines in the second."""
    if dim % 2:
        raise ValueError(f"the timestep embedding needs an even dim, got {dim}")
    half = dim // 2
    # \omega_i = \mathrm{max\_period}^{-i / half}
    omega = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angle = t.float()[:, None] * omega[None]  # (B, half)
    return torch.cat([angle.sin(), angle.cos()], dim=1)  # (B, dim)


class Conditioning(nn.Module):
    """c = MLP(emb(t)) + E[y]: the vector that tells a denoiser the noise level (and the class).

    y = None, or entries equal to `num_classes`, mean "no class" (the null token of guidance)."""

    def __init__(self, dim: int, num_classes: int | None = None, freq_dim: int | None = None):
        super().__init__()
        self.freq_dim = freq_dim or dim
        self.mlp = nn.Sequential(nn.Linear(self.freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.num_classes = num_classes
        self.classes = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # -> (B, dim)
        c = self.mlp(timestep_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype))
        if self.classes is not None:
            if y is None:
                y = torch.full_like(t, self.num_classes, dtype=torch.long)
            c = c + self.classes(y)
        elif y is not None:
            raise ValueError("this denoiser has no classes (num_classes=None) but got labels y")
        return c


class TimeMLP(nn.Module):
    """eps_theta for points in R^d: the input and the conditioning vector are summed, then residual MLP blocks."""

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, num_classes: int | None = None):
        super().__init__()
        self.cond = Conditioning(hidden, num_classes)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        c = self.cond(t, y)  # (B, hidden)
        h = self.inp(x) + c  # (B, hidden)
        for block in self.blocks:
            h = h + block(h + c)
        return self.out(h)  # (B, dim)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, add the projected conditioning, GroupNorm-SiLU-conv, plus the (1x1) shortcut."""

    def __init__(self, c_in: int, c_out: int, c_dim: int, groups: int = 8):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(groups, c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.cond = nn.Linear(c_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(min(groups, c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W), (B, c_dim)
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = h + self.cond(c)[:, :, None, None]  # the step (and class) shift every channel
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """A small time-conditioned U-Net: one ResBlock per level, stride-2 convolutions down, nearest
    upsampling and a skip concatenation up, one ResBlock in the middle. `mults` sets the widths
    (base x mult per level); a side of 14 needs two levels (14 -> 7), 28 three (28 -> 14 -> 7)."""

    def __init__(self, in_channels: int = 1, base: int = 32, mults: tuple[int, ...] = (1, 2),
                 num_classes: int | None = None):
        super().__init__()
        c_dim = 4 * base
        self.cond = Conditioning(c_dim, num_classes, freq_dim=base)
        widths = [base * m for m in mults]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = widths[0]
        for i, w in enumerate(widths):
            self.down.append(ResBlock(c, w, c_dim))
            c = w
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(c, c, c_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            self.up.append(ResBlock(c + w, w, c_dim))
            c = w
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.out = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        c = self.cond(t, y)  # (B, 4 base)
        h = self.stem(x)  # (B, base, H, W)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, c)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)  # (B, C, H / 2, W / 2), rounding up
        h = self.mid(h, c)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), c)
            if i < len(self.upsample):
                size = skips[-1].shape[-2:]
                h = self.upsample[i](F.interpolate(h, size=size, mode="nearest"))  # back to the skip's size
        return self.out(h)  # (B, C_in, H, W)


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
