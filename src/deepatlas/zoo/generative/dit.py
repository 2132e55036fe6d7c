"""DiT: a Vision Transformer on patch tokens as the denoiser of a diffusion model.

The noisy input is cut into p x p patches, each linearly embedded as a token with a position
embedding; a stack of Transformer blocks processes the tokens, and a final layer maps each token back
to its patch of predicted noise. The step t (and the class) steer every block through adaptive layer
norm: an MLP regresses a shift, a scale and a gate per block from the conditioning vector, and with
adaLN-Zero the gates start at zero so that every block begins as the identity.

    (\\gamma_1, \\beta_1, \\alpha_1, \\gamma_2, \\beta_2, \\alpha_2) = W c,\\quad
    h = x + \\alpha_1 \\odot \\mathrm{Attn}((1 + \\gamma_1) \\odot \\mathrm{LN}(x) + \\beta_1),\\quad
    N = (I / p)^2 \\text{ tokens}

Peebles & Xie, "Scalable Diffusion Models with Transformers", ICCV 2023 (arXiv 2212.09748).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.attention import MultiHeadAttention
from deepatlas.nn.denoisers import Conditioning, UNet, n_params
from deepatlas.nn.transformer import FeedForward, sinusoidal_positions
from deepatlas.registry import register_model
from deepatlas.zoo.generative.ddpm import ImageDDPM, train
from deepatlas.zoo.generative.judge import digit_judge, reference_numbers


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # (1 + \gamma) \odot x + \beta, the same for every token of an example
    return x * (1 + scale[:, None]) + shift[:, None]  # (B, N, D)


class DiTBlock(nn.Module):
    """Pre-LN self-attention and MLP, each modulated and gated by the conditioning (adaLN-Zero)."""

    def __init__(self, d: int, n_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = MultiHeadAttention(d, n_heads)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = FeedForward(d, int(d * mlp_ratio), activation="gelu")
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.ada[1].weight)  # adaLN-Zero: gates 0, so the block starts as the identity
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # (B, N, D), (B, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=1)  # (B, D) each
        # h = x + \alpha_1 \odot \mathrm{Attn}((1 + \gamma_1) \odot \mathrm{LN}(x) + \beta_1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))[0]
        # h = h + \alpha_2 \odot \mathrm{MLP}((1 + \gamma_2) \odot \mathrm{LN}(h) + \beta_2)
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


def sincos_2d(side: int, d: int) -> torch.Tensor:
    """(side^2, d) fixed 2-D position code: half the channels encode the row, half the column."""
    one = sinusoidal_positions(side, d // 2)  # (side, d / 2)
    rows, cols = one[:, None].expand(side, side, -1), one[None].expand(side, side, -1)
    return torch.cat([rows, cols], dim=-1).reshape(side * side, d)


class DiT(nn.Module):
    """eps_theta(x_t, t[, y]) for (B, C, H, W) images: patchify, DiT blocks, adaLN final layer, unpatchify."""

    def __init__(self, side: int = 14, in_channels: int = 1, patch: int = 2, d: int = 64, depth: int = 4,
                 n_heads: int = 4, num_classes: int | None = None):
        super().__init__()
        if side % patch:
            raise ValueError(f"the side {side} must be a multiple of the patch size {patch}")
        self.side, self.patch, self.channels = side, patch, in_channels
        self.embed = nn.Conv2d(in_channels, d, patch, stride=patch)  # one linear map per p x p patch
        self.register_buffer("pos", sincos_2d(side // patch, d), persistent=False)  # (N, D)
        self.cond = Conditioning(d, num_classes)
        self.blocks = nn.ModuleList(DiTBlock(d, n_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.out = nn.Linear(d, patch * patch * in_channels)
        for layer in (self.ada[1], self.out):  # the final layer starts at zero too
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, N, p p C) -> (B, C, H, W)
        B, p, n = len(tokens), self.patch, self.side // self.patch
        x = tokens.reshape(B, n, n, p, p, self.channels)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(B, self.channels, self.side, self.side)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embed(x).flatten(2).transpose(1, 2) + self.pos  # (B, N, D), N = (side / p)^2
        c = self.cond(t, y)  # (B, D)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.ada(c).chunk(2, dim=1)
        return self.unpatchify(self.out(modulate(self.norm(h), shift, scale)))  # (B, C, H, W)


@register_model("dit-s14", card="dit", example=lambda: (torch.randn(2, 1, 14, 14), torch.tensor([3, 900])))
def dit_s14(**kw) -> DiT:
    return DiT(**kw)


@register_model("dit-s14-class", card="dit",
                example=lambda: (torch.randn(2, 1, 14, 14), torch.tensor([3, 900]), torch.tensor([7, 10])))
def dit_s14_class(**kw) -> DiT:
    return DiT(num_classes=10, **kw)


# --- dit/vs-unet: the same diffusion, two denoisers ----------------------------------------------------

@dataclass
class VsUNetConfig:
    patch: int = 2  # 14x14 digits -> 49 tokens
    d: int = 40  # about the U-Net's parameter count
    depth: int = 4
    n_heads: int = 4
    base: int = 16  # the U-Net's first width
    T: int = 1000
    steps: int = 700
    batch_size: int = 32
    lr: float = 2e-3
    sample_steps: int = 50
    n_samples: int = 200
    judge_epochs: int = 8
    tolerance: float = 2.0  # DiT "takes the place" of the U-Net if its FD is at most this multiple of the U-Net's


@lab(
    "dit/vs-unet",
    card="dit",
    config=VsUNetConfig,
    scales={"quick": {"steps": 10, "d": 16, "depth": 1, "base": 8, "n_samples": 50, "sample_steps": 3,
                      "judge_epochs": 1},
            "default": {}, "full": {"d": 256, "depth": 8, "base": 64, "steps": 30000, "batch_size": 64,
                     "n_samples": 2000}},
    goals=[Goal("dit_fd_vs_baseline", "<=", 0.5)],
    claims=[
        Check(
            "dit-transformer-denoiser",
            lambda m: m["dit_fd_vs_baseline"] <= 0.5 and m["dit_fd"] <= m["tolerance"] * m["unet_fd"],
            "the same DDPM (T = {T}, {steps} steps) on 14x14 digits with two denoisers: DiT ({dit_params:,} "
            "parameters, {tokens} tokens of {patch}x{patch}) FD {dit_fd:.1f}, confident {dit_confident:.1%}, "
            "{dit_classes} digits; U-Net ({unet_params:,} parameters) FD {unet_fd:.1f}, confident "
            "{unet_confident:.1%}; independent pixels FD {baseline_fd:.1f}, real digits {real_fd:.1f}; supported "
            "if DiT reaches half the baseline's FD and stays within {tolerance}x the U-Net's",
        ),
    ],
    budget_s=90,
    threads=None,
)
def vs_unet(run, cfg: VsUNetConfig) -> dict:
    """DiT against a U-Net of similar size as the denoiser of the same DDPM on digits: the judge's numbers."""
    data = mnist_subset(flatten=False)
    judge = digit_judge(run, cfg.judge_epochs)
    x = data.x_train.to(run.device)
    metrics = {"T": cfg.T, "steps": cfg.steps, "patch": cfg.patch, "tokens": (14 // cfg.patch) ** 2,
               "tolerance": cfg.tolerance}
    nets = {"dit": lambda: DiT(14, 1, cfg.patch, cfg.d, cfg.depth, cfg.n_heads),
            "unet": lambda: UNet(1, cfg.base, (1, 2))}
    grids = {}
    for name, make in nets.items():
        torch.manual_seed(run.seed)
        g = torch.Generator().manual_seed(run.seed)
        model = ImageDDPM(make(), side=14, T=cfg.T).to(run.device)
        start = time.perf_counter()
        curve = train(run, model, lambda xb: model.loss(xb, g), x, steps=cfg.steps, batch_size=cfg.batch_size,
                      lr=cfg.lr, generator=g, name=f"{name}_loss")
        metrics[f"{name}_train_s"] = time.perf_counter() - start
        samples = model.sample(cfg.n_samples, torch.Generator().manual_seed(run.seed + 1), steps=cfg.sample_steps)
        r = judge.evaluate(samples, data.x_train)
        metrics |= {f"{name}_fd": r["fd"], f"{name}_confident": r["confident_share"],
                    f"{name}_classes": r["class_coverage"], f"{name}_params": n_params(model),
                    f"{name}_final_loss": curve[-1]}
        grids[name] = samples[:36]
    metrics |= reference_numbers(run, judge, n=cfg.n_samples)
    metrics["dit_fd_vs_baseline"] = metrics["dit_fd"] / metrics["baseline_fd"]
    metrics["unet_fd_vs_baseline"] = metrics["unet_fd"] / metrics["baseline_fd"]

    with run.figure("dit_vs_unet", ncols=2, size=(8, 4.3)) as (fig, axes):
        for ax, name in zip(axes, grids):
            ax.imshow(grids[name].reshape(6, 6, 28, 28).permute(0, 2, 1, 3).reshape(168, 168), cmap="gray")
            ax.set_title(f"{name}: {metrics[name + '_params']:,} params, FD {metrics[name + '_fd']:.1f}")
            ax.axis("off")
    return metrics
