"""Vision Transformer: an image cut into patches is a sentence of patch tokens, read by a Transformer encoder.

Each P x P patch is flattened and linearly projected into a token; a learned [class] token is
prepended, learned position embeddings are added, and pre-LN Transformer encoder layers mix the
tokens by self-attention. The class is read off the final [class] token. Nothing in the model says
that nearby pixels belong together (no locality, no weight sharing across positions besides the
patch projection), so it must learn that from data: it trails a CNN when data are few.

    z_0 = [x_{class}; x_p^1 E; \\dots; x_p^N E] + E_{pos}
    z'_\\ell = \\mathrm{MSA}(\\mathrm{LN}(z_{\\ell-1})) + z_{\\ell-1}
    z_\\ell = \\mathrm{MLP}(\\mathrm{LN}(z'_\\ell)) + z'_\\ell
    y = \\mathrm{LN}(z_L^0)

Dosovitskiy, Beyer, Kolesnikov, Weissenborn, Zhai, Unterthiner, Dehghani, Minderer, Heigold, Gelly,
Uszkoreit & Houlsby, "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
ICLR 2021.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, lab
from deepatlas.nn.transformer import EncoderLayer
from deepatlas.registry import create_model, register_model


def patchify(x: torch.Tensor, P: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, P*P*C): the N = HW / P^2 patches in raster order, each flattened
    in (row, column, channel) order."""
    B, C, H, W = x.shape
    if H % P or W % P:
        raise ValueError(f"image sides {H}x{W} must be divisible by the patch size {P}")
    p = x.unfold(2, P, P).unfold(3, P, P)  # (B, C, H/P, W/P, P, P)
    return p.permute(0, 2, 3, 4, 5, 1).reshape(B, (H // P) * (W // P), P * P * C)


class ViT(nn.Module):
    """Patch embedding, [class] token, learned positions, `depth` pre-LN encoder layers, LN, linear head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, patch_size: int = 7,
                 d_model: int = 32, depth: int = 3, n_heads: int = 4, d_ff: int = 64, dropout: float = 0.0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} must be divisible by patch_size {patch_size}")
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
        self.patch_size = patch_size
        n_patches = (image_size // patch_size) ** 2
        self.embed = nn.Linear(patch_size * patch_size * in_channels, d_model)  # E
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, d_model))  # x_class
        self.pos = nn.Parameter(0.02 * torch.randn(1, n_patches + 1, d_model))  # E_pos
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first=True, activation="gelu") for _ in range(depth)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        tokens = self.embed(patchify(x, self.patch_size))  # x_p^i E, (B, N, D)
        # z_0 = [x_{class}; x_p^1 E; ...; x_p^N E] + E_{pos}
        z = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.pos  # (B, N + 1, D)
        for layer in self.layers:
            z = layer(z, need_weights=need_weights)  # pre-LN: z = z + MSA(LN(z)); z = z + MLP(LN(z))
        # y = \mathrm{LN}(z_L^0)
        return self.head(self.norm(z[:, 0]))


@register_model("vit_tiny", card="vit", example=lambda: (torch.randn(2, 1, 28, 28),))
def vit_tiny(**kw) -> ViT:
    return ViT(**kw)


# --- vit/small-data: ViT against a CNN of about the same size, at two training-set sizes ----------

@dataclass
class SmallDataConfig:
    sizes: str = "500,4000"  # training-set sizes, the first of them the small one
    steps: int = 400  # Adam steps per model and size
    batch_size: int = 64
    vit_lr: float = 3e-3  # the best for the ViT of 1e-3, 2e-3 and 3e-3 on 500 images (seed 0)
    cnn_lr: float = 2e-3
    cnn_channels: str = "16,32,64"  # 3x3 convolutions, each stage followed by 2x2 max pooling
    d_model: int = 32
    depth: int = 3


def fit(run, net: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: SmallDataConfig, lr: float,
        g: torch.Generator, name: str) -> float:
    """`cfg.steps` Adam steps on shuffled mini-batches, lr cosine-annealed to 0; returns the last epoch's mean loss."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    per_epoch = max(1, len(x) // cfg.batch_size)
    net.train()
    step, total = 0, torch.zeros((), device=x.device)
    while step < cfg.steps:
        order = torch.randperm(len(x), generator=g).to(x.device)
        total.zero_()
        for i in range(per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            # \mathcal{L} = -\frac1B \sum_n \log \mathrm{softmax}(f(x_n))_{y_n}
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.detach()
            step += 1
            if step == cfg.steps:
                break
        run.log(step, **{f"{name}_loss": total / (i + 1)})
    net.eval()
    return total.item() / (i + 1)


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return sum((net(xb).argmax(1) == yb).sum().item() for xb, yb in zip(x.split(500), y.split(500))) / len(x)


@lab(
    "vit/small-data",
    card="vit",
    config=SmallDataConfig,
    scales={
        "quick": {"sizes": "100,200", "steps": 10, "d_model": 16, "depth": 1, "cnn_channels": "4,8"},
        "default": {},
        "full": {"steps": 3000, "d_model": 64, "depth": 6, "cnn_channels": "32,64,128"},
    },
    claims=[
        Check(
            "vit-small-data",
            lambda m: m["cnn_acc_small"] > m["vit_acc_small"],
            "trained from scratch on {n_small} MNIST digits, a ViT ({vit_params} parameters) reaches test accuracy "
            "{vit_acc_small:.3f} and a CNN of about the same size ({cnn_params} parameters) {cnn_acc_small:.3f} "
            "(gap {gap_small:+.3f} for the CNN); on {n_large} digits: ViT {vit_acc_large:.3f}, CNN "
            "{cnn_acc_large:.3f} (gap {gap_large:+.3f}; training accuracy ViT {vit_train_acc_large:.3f}, CNN "
            "{cnn_train_acc_large:.3f}); {steps} Adam steps each",
        ),
    ],
    budget_s=90,
    threads=1,
)
def small_data(run, cfg: SmallDataConfig) -> dict:
    """ViT against a CNN of similar size, trained from scratch on 500 and 4,000 digits."""
    sizes = [int(n) for n in cfg.sizes.split(",")]
    if len(sizes) != 2 or not 0 < sizes[0] < sizes[1]:
        raise ValueError(f"sizes must be two training-set sizes, small then large, got {cfg.sizes!r}")
    data = mnist_subset(flatten=False)
    x_test, y_test = data.x_test.to(run.device), data.y_test.to(run.device)
    channels = tuple(int(c) for c in cfg.cnn_channels.split(","))
    metrics: dict = {"n_small": sizes[0], "n_large": sizes[1], "steps": cfg.steps}
    nets = {}
    for n, tag in run.progress(list(zip(sizes, ("small", "large"))), desc="training sizes"):
        x, y = data.x_train[:n].to(run.device), data.y_train[:n].to(run.device)
        for model, lr in (("vit", cfg.vit_lr), ("cnn", cfg.cnn_lr)):
            torch.manual_seed(run.seed)
            g = torch.Generator().manual_seed(run.seed)
            net = (ViT(d_model=cfg.d_model, depth=cfg.depth, d_ff=2 * cfg.d_model) if model == "vit"
                   else create_model("cnn_small", channels=channels, kernel_size=3)).to(run.device)
            metrics[f"{model}_loss_{tag}"] = fit(run, net, x, y, cfg, lr, g, f"{model}_{tag}")
            metrics[f"{model}_train_acc_{tag}"] = accuracy(net, x, y)
            metrics[f"{model}_acc_{tag}"] = accuracy(net, x_test, y_test)
            metrics[f"{model}_params"] = sum(p.numel() for p in net.parameters())
            nets[model, tag] = net
        metrics[f"gap_{tag}"] = metrics[f"cnn_acc_{tag}"] - metrics[f"vit_acc_{tag}"]
    _plot_small_data(run, metrics, sizes, nets[("vit", "large")], x_test[:6])
    return metrics


def _plot_small_data(run, metrics: dict, sizes: list[int], vit: ViT, x: torch.Tensor) -> None:
    with run.figure("small_data") as (fig, ax):
        for model, label in (("vit", f"ViT ({metrics['vit_params']} params)"),
                             ("cnn", f"CNN ({metrics['cnn_params']} params)")):
            ax.plot(sizes, [metrics[f"{model}_acc_small"], metrics[f"{model}_acc_large"]], "o-", label=label)
        ax.set(xscale="log", xlabel="training images", ylabel="test accuracy", xticks=sizes,
               xticklabels=[str(n) for n in sizes], title="from scratch on MNIST digits")
        ax.minorticks_off()
        ax.legend()
    with torch.no_grad():
        vit(x, need_weights=True)
    side = x.shape[-1] // vit.patch_size
    attn = vit.layers[-1].last_weights.mean(1)[:, 0, 1:].reshape(-1, side, side).cpu()  # [class] -> patches
    with run.figure("vit_attention", ncols=len(x), nrows=2, size=(1.8 * len(x), 3.8)) as (fig, axes):
        axes = axes.reshape(2, len(x))
        for k in range(len(x)):
            axes[0, k].imshow(x[k, 0].cpu().numpy(), cmap="gray")
            axes[1, k].imshow(attn[k].numpy(), cmap="viridis")
            for ax in axes[:, k]:
                ax.set_xticks([])
                ax.set_yticks([])
        axes[0, 0].set_ylabel("input")
        axes[1, 0].set_ylabel("[class] attention\n(last layer)")
