"""StyleGAN: a mapping network turns z into a style w that modulates every layer of the synthesis network.

The generator no longer takes z at its input. An MLP maps z to an intermediate latent w; each layer of
the synthesis network, which starts from a learned constant, receives w through a learned affine map A
as per-channel scales s. Here the modulation is StyleGAN2's form of AdaIN: the scales multiply the
convolution's input channels inside the weights, and demodulation divides each output channel by the
norm it would then have, which normalises the activations' scale as AdaIN did. Per-pixel noise, scaled
per layer, adds stochastic detail. Because every layer has its own copy of w, different layers can take
different styles ("style mixing"): the coarse, low-resolution layers set the global shape and the fine
ones the details.

    w = f(z),\\quad s = A(w),\\quad w'_{ijk} = s_i\\, w_{ijk},\\quad
    w''_{ijk} = w'_{ijk} \\Big/ \\sqrt{\\textstyle\\sum_{i,k} {w'_{ijk}}^2 + \\epsilon}

Karras, Laine & Aila, "A Style-Based Generator Architecture for Generative Adversarial Networks", CVPR 2019
(arXiv 1812.04948); Karras, Laine, Aittala, Hellsten, Lehtinen & Aila, "Analyzing and Improving the Image
Quality of StyleGAN", CVPR 2020 (arXiv 1912.04958; modulation and demodulation).

Here sized for 14x14 digits: 4x4 constant -> 7x7 -> 14x14. (No lab yet: a first style-mixing lab
did not learn digits within its CPU budget.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.registry import register_model


def pixel_norm(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    # z / \sqrt{\mathrm{mean}(z^2) + \epsilon}
    return z * torch.rsqrt(z.square().mean(1, keepdim=True) + eps)


class MappingNetwork(nn.Module):
    """f: z (B, z_dim) -> w (B, w_dim), an MLP with leaky ReLUs on the normalised z (8 layers in the paper)."""

    def __init__(self, z_dim: int = 32, w_dim: int = 32, depth: int = 4):
        super().__init__()
        sizes = [z_dim, *[w_dim] * depth]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, z_dim) -> (B, w_dim)
        h = pixel_norm(z)
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
        return h


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor, demodulate: bool = True,
                     eps: float = 1e-8) -> torch.Tensor:
    """x (B, C_in, H, W), weight (C_out, C_in, k, k), styles s (B, C_in) -> (B, C_out, H, W), 'same' padding.

    Convolving x with the per-sample kernel w''_{ijk} = d_j s_i w_{ijk} equals scaling x's channels by s,
    convolving with the shared w, and scaling the output channels by d (StyleGAN2's unfused form): one
    ordinary convolution for the whole batch instead of one per sample."""
    k = weight.shape[-1]
    # \sum_{i,k} w'_{ijk} x_i = \sum_{i,k} w_{ijk} (s_i x_i)
    out = F.conv2d(x * s[:, :, None, None], weight, padding=k // 2)  # (B, C_out, H, W)
    if demodulate:
        # d_j = 1 / \sqrt{\sum_{i,k} (s_i w_{ijk})^2 + \epsilon}
        d = torch.rsqrt(s.square() @ weight.square().sum(dim=(2, 3)).T + eps)  # (B, C_out)
        out = out * d[:, :, None, None]
    return out


class StyleLayer(nn.Module):
    """Modulated 3x3 convolution, per-pixel noise scaled per channel, bias and leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, w_dim: int):
        super().__init__()
        self.affine = nn.Linear(w_dim, c_in)  # A: w -> s
        nn.init.ones_(self.affine.bias)  # styles start at 1: the unmodulated convolution
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        self.noise_strength = nn.Parameter(torch.zeros(c_out))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w))  # (B, C_out, H, W)
        # x + B \cdot \text{noise}, noise (B, 1, H, W) shared by the channels, each with its own scale
        x = x + self.noise_strength[:, None, None] * noise
        return F.leaky_relu(x + self.bias[:, None, None], 0.2)


class ToImage(nn.Module):
    """A modulated 1x1 convolution to one channel, without demodulation (the output keeps its scale)."""

    def __init__(self, c_in: int, w_dim: int):
        super().__init__()
        self.affine = nn.Linear(w_dim, c_in)
        nn.init.ones_(self.affine.bias)
        self.weight = nn.Parameter(torch.randn(1, c_in, 1, 1) / c_in ** 0.5)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 1, H, W)
        return modulated_conv2d(x, self.weight, self.affine(w), demodulate=False) + self.bias


class StyleGenerator(nn.Module):
    """z -> w -> image: a 4x4 constant, one style layer at 4x4, two at 7x7, two at 14x14, then ToImage.

    `synthesis(ws)` takes one w per layer, ws (B, num_ws, w_dim): layer i reads ws[:, i]."""

    resolutions = (4, 7, 7, 14, 14)  # of the style layers; ToImage reads the last w

    def __init__(self, z_dim: int = 32, w_dim: int = 32, channels: tuple[int, int, int] = (32, 32, 16),
                 mapping_depth: int = 4):
        super().__init__()
        c4, c7, c14 = channels
        self.z_dim, self.w_dim = z_dim, w_dim
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_depth)
        self.const = nn.Parameter(torch.randn(1, c4, 4, 4))
        ins, outs = (c4, c4, c7, c7, c14), (c4, c7, c7, c14, c14)
        self.layers = nn.ModuleList(StyleLayer(a, b, w_dim) for a, b in zip(ins, outs))
        self.to_image = ToImage(c14, w_dim)
        self.num_ws = len(self.layers) + 1

    def noise(self, batch: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """One noise map (B, 1, r, r) per style layer."""
        device = self.const.device
        return [torch.randn(batch, 1, r, r, generator=generator).to(device) for r in self.resolutions]

    def synthesis(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        B = len(ws)  # ws (B, num_ws, w_dim)
        if ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape (B, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        noise = self.noise(B) if noise is None else noise
        x = self.const.expand(B, -1, -1, -1)  # (B, c4, 4, 4)
        for i, (layer, r) in enumerate(zip(self.layers, self.resolutions)):
            if x.shape[-1] != r:
                x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
            x = layer(x, ws[:, i], noise[i])  # (B, C, r, r)
        return self.to_image(x, ws[:, -1])  # (B, 1, 14, 14)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, z_dim) -> (B, 1, 14, 14)
        w = self.mapping(z)  # (B, w_dim)
        return self.synthesis(w[:, None].expand(-1, self.num_ws, -1))


def mix_styles(w_a: torch.Tensor, w_b: torch.Tensor, layers: slice, num_ws: int) -> torch.Tensor:
    """ws (B, num_ws, w_dim) that read w_b at the chosen layers and w_a at the others."""
    ws = w_a[:, None].repeat(1, num_ws, 1)
    ws[:, layers] = w_b[:, None]
    return ws


class Discriminator(nn.Module):
    """14x14 -> 7x7 -> 4x4 strided convolutions with leaky ReLUs, then one logit per image (B,)."""

    def __init__(self, channels: int = 16):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 2c, 7, 7)
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 2c, 4, 4)
            nn.Flatten(), nn.Linear(2 * c * 16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 14, 14) -> (B,)
        return self.net(x)[:, 0]


@register_model("stylegan-generator", card="stylegan", example=lambda: (torch.randn(3, 32),))
def stylegan_generator(**kw) -> StyleGenerator:
    return StyleGenerator(**kw)


@register_model("stylegan-discriminator", card="stylegan", example=lambda: (torch.randn(3, 1, 14, 14),))
def stylegan_discriminator(**kw) -> Discriminator:
    return Discriminator(**kw)
