"""U-Net: a contracting path that gathers context and an expanding path that restores resolution,
joined at every level by skip connections that concatenate the encoder's features to the decoder's.

The contracting path halves the resolution and doubles the channels level by level; the expanding
path upsamples, concatenates the encoder features of the same level, and convolves, so that a
pixel's label comes from both global context (deep, coarse features) and precise location
(shallow, fine features). Without the skips everything must squeeze through the coarsest level.

    d_\\ell = \\mathrm{Conv}(\\mathrm{concat}[\\mathrm{Up}(d_{\\ell+1}), e_\\ell])

Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015. Here the convolutions are padded ("same") instead of cropped, as most re-implementations
do, so the output has the input's size; BatchNorm follows each convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.shapes import shapes_split
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model


class DoubleConv(nn.Module):
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU: one level of either path."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in, H, W) -> (B, c_out, H, W)
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class UpConv(nn.Module):
    """The paper's "up-convolution": upsample by 2, then a 2x2 convolution that halves the channels."""

    def __init__(self, c_in: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_in // 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C/2, 2H, 2W)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # pad right and bottom so the 2x2 kernel keeps the size


class UNet(nn.Module):
    """U-Net with `depth` downsamplings; level l has width * 2^l channels. Input sides must be
    divisible by 2^depth. Returns logits (B, out_channels, H, W).

    skip=False is the ablation: the same encoder and decoder, but the decoder sees only the
    upsampled coarse features (its first convolution takes half the channels)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 16, depth: int = 3,
                 skip: bool = True):
        super().__init__()
        if depth < 1 or width < 2:
            raise ValueError(f"a U-Net needs depth >= 1 and width >= 2, got depth={depth}, width={width}")
        self.depth, self.skip = depth, skip
        widths = [width * 2 ** level for level in range(depth + 1)]  # e.g. [16, 32, 64, 128]
        self.down = nn.ModuleList([DoubleConv(in_channels, widths[0])])
        self.down.extend(DoubleConv(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.up = nn.ModuleList(UpConv(c) for c in reversed(widths[1:]))
        # after concatenation the decoder sees c/2 upsampled + c/2 encoder channels
        self.dec = nn.ModuleList(DoubleConv(c if skip else c // 2, c // 2) for c in reversed(widths[1:]))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H, W)
        if x.shape[-1] % 2 ** self.depth or x.shape[-2] % 2 ** self.depth:
            raise ValueError(f"input sides {tuple(x.shape[-2:])} must be divisible by 2^depth = {2 ** self.depth}")
        features = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else F.max_pool2d(x, 2))  # (B, width 2^l, H / 2^l, W / 2^l)
            features.append(x)
        x = features.pop()  # the bottleneck, (B, width 2^depth, H / 2^depth, W / 2^depth)
        for up, dec in zip(self.up, self.dec):
            x = up(x)  # (B, c/2, 2h, 2w)
            e = features.pop()  # e_\ell: the encoder's features at this resolution
            # d_\ell = \mathrm{Conv}(\mathrm{concat}[\mathrm{Up}(d_{\ell+1}), e_\ell])
            x = dec(torch.cat([x, e], dim=1) if self.skip else x)
        return self.head(x)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, skip={self.skip}"


@register_model("unet", card="unet", example=lambda: (torch.randn(2, 1, 32, 32),))
def unet(**kw) -> UNet:
    return UNet(**kw)


@register_model("unet_noskip", card="unet", example=lambda: (torch.randn(2, 1, 32, 32),))
def unet_noskip(**kw) -> UNet:
    return UNet(skip=False, **kw)


# --- unet/shapes: segmentation of generated shapes, with and without skip connections -------------

def boundary_band(mask: torch.Tensor, width: int) -> torch.Tensor:
    """Pixels within `width` pixels (Chebyshev distance) of the mask's boundary, on either side.

    mask (N, 1, H, W) in {0, 1} -> bool (N, 1, H, W): dilation minus erosion by a (2w+1)^2 square."""
    k = 2 * width + 1
    dilated = F.max_pool2d(mask, k, stride=1, padding=width)
    eroded = -F.max_pool2d(-mask, k, stride=1, padding=width)  # erosion is dilation of the complement
    return dilated > eroded


def iou(pred: torch.Tensor, truth: torch.Tensor, where: torch.Tensor | None = None) -> float:
    """Intersection over union of two {0, 1} masks, pooled over all pixels (or only those `where`)."""
    pred, truth = pred.bool(), truth.bool()
    if where is not None:
        pred, truth = pred & where, truth & where
    # \mathrm{IoU} = |P \cap T| / |P \cup T|
    return ((pred & truth).sum() / (pred | truth).sum().clamp_min(1)).item()


@dataclass
class ShapesConfig:
    size: int = 32
    n_train: int = 1000
    n_test: int = 500
    width: int = 8  # channels of the first level
    depth: int = 3
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3  # Adam, cosine-annealed to 0
    band: int = 2  # boundary IoU counts pixels within this many pixels of the true boundary


def train_segmenter(run, name: str, net: nn.Module, data, cfg: ShapesConfig, g: torch.Generator) -> list[float]:
    """Adam on the pixel-wise logistic loss; returns the mean loss of every epoch."""
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps_per_epoch = len(data.x_train) // cfg.batch_size
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    losses = []
    net.train()
    for epoch in run.progress(range(cfg.epochs), desc=f"U-Net ({name})"):
        order = torch.randperm(len(data.x_train), generator=g).to(run.device)
        total = torch.zeros((), device=run.device)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            # E = -\sum_x [t(x) \log p(x) + (1 - t(x)) \log(1 - p(x))] / |\Omega|
            loss = F.binary_cross_entropy_with_logits(net(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.detach()
        losses.append(total.item() / steps_per_epoch)
        run.log((epoch + 1) * steps_per_epoch, **{f"{name}_loss": losses[-1]})
    net.eval()
    return losses


@lab(
    "unet/shapes",
    card="unet",
    config=ShapesConfig,
    scales={
        "quick": {"n_train": 128, "n_test": 64, "epochs": 1, "width": 4},
        "default": {},
        "full": {"size": 64, "n_train": 4000, "n_test": 1000, "width": 16, "depth": 4, "epochs": 30},
    },
    goals=[Goal("skip_iou", ">=", 0.9)],
    claims=[
        Check(
            "unet-skip-connections",
            lambda m: m["skip_boundary_iou"] - m["noskip_boundary_iou"] >= 0.05,
            "on {n_test} held-out generated {size}x{size} scenes, U-Net with skip connections reaches IoU "
            "{skip_iou:.3f} and boundary IoU {skip_boundary_iou:.3f} (pixels within {band} px of the true "
            "boundary); the same net without skips reaches IoU {noskip_iou:.3f} and boundary IoU "
            "{noskip_boundary_iou:.3f}: the skips add {boundary_iou_gain:.3f} boundary IoU (supported if >= 0.05)",
        ),
    ],
    budget_s=90,
    threads=1,  # measured: these small convolutions ran ~25x slower on 2 threads than on 1 with the cores shared
)
def shapes_lab(run, cfg: ShapesConfig) -> dict:
    """U-Net segments generated shapes (IoU >= 0.9); without skip connections the boundaries suffer."""
    data = shapes_split(cfg.n_train, cfg.n_test, seed=run.seed, size=cfg.size).to(run.device)
    truth = data.y_test.bool()
    band = boundary_band(data.y_test, cfg.band)
    metrics: dict = {"size": cfg.size, "n_test": cfg.n_test, "band": cfg.band,
                     "band_fraction": band.float().mean().item()}
    preds, curves = {}, {}
    for name, skip in [("skip", True), ("noskip", False)]:
        g = torch.Generator().manual_seed(run.seed)
        torch.manual_seed(run.seed)  # nn.Conv2d's default initialisation draws from the global RNG
        net = UNet(width=cfg.width, depth=cfg.depth, skip=skip).to(run.device)
        curves[name] = train_segmenter(run, name, net, data, cfg, g)
        with torch.no_grad():
            preds[name] = torch.cat([net(x) for x in data.x_test.split(256)]) > 0  # (N, 1, H, W)
        metrics[f"{name}_iou"] = iou(preds[name], truth)
        metrics[f"{name}_boundary_iou"] = iou(preds[name], truth, band)
        metrics[f"{name}_interior_iou"] = iou(preds[name], truth, ~band)
        metrics[f"{name}_params"] = sum(p.numel() for p in net.parameters())
        metrics[f"{name}_final_loss"] = curves[name][-1]
    metrics["boundary_iou_gain"] = metrics["skip_boundary_iou"] - metrics["noskip_boundary_iou"]
    _plot_shapes(run, data.x_test, truth, band, preds, curves)
    return metrics


def _plot_shapes(run, x, truth, band, preds, curves, n: int = 5) -> None:
    with run.figure("segmentations", ncols=n, nrows=4, size=(2.2 * n, 9)) as (fig, axes):
        axes = axes.reshape(4, n)
        rows = [("input", x), ("truth", truth), ("with skips", preds["skip"]), ("without skips", preds["noskip"])]
        for r, (title, images) in enumerate(rows):
            for c in range(n):
                ax = axes[r, c]
                ax.imshow(images[c, 0].float().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
                if r >= 2:  # mark the wrong pixels in red
                    wrong = (images[c, 0] != truth[c, 0]).float().cpu().numpy()
                    ax.imshow(wrong, cmap="Reds", alpha=0.8 * wrong, vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(title)
    with run.figure("training") as (fig, ax):
        for name, losses in curves.items():
            ax.plot(range(1, len(losses) + 1), losses, "o-", label="with skips" if name == "skip" else "without skips")
        ax.set(xlabel="epoch", ylabel="pixel BCE (train)", yscale="log", title="U-Net on generated shapes")
        ax.legend()
