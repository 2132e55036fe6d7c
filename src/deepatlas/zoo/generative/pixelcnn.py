"""PixelCNN: an image as a product of per-pixel conditionals, each computed by masked convolutions.

In raster order each pixel is predicted from the pixels above it and to its left. A masked
convolution zeroes the kernel weights that would look at the current pixel (type A, the first layer)
or at later pixels (type B, every later layer), so one forward pass gives every conditional at once
and training is parallel; sampling is not: it needs one pass per pixel. Stacked 3x3 masked
convolutions leave a blind spot to the upper right that no depth fills; the gated PixelCNN splits
the net into a vertical stack (the rows above, full width) and a horizontal stack (the row so far)
and gates each layer with tanh times sigmoid, which removes the blind spot.

    p(\\mathbf{x}) = \\prod_{i=1}^{D} p(x_i \\mid x_1, \\dots, x_{i-1}),
    \\mathbf{y} = \\tanh(W_{k,f} * \\mathbf{x}) \\odot \\sigma(W_{k,g} * \\mathbf{x})

van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016 (PixelCNN,
masks A and B); van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu, "Conditional
Image Generation with PixelCNN Decoders", NeurIPS 2016 (gated PixelCNN, vertical and horizontal stacks).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.generative.judge import digit_judge
from deepatlas.zoo.generative.vae import strip


class MaskedConv2d(nn.Conv2d):
    """A 'same' convolution whose kernel sees only earlier pixels in raster order: rows above the
    centre, and the centre row left of the centre (type A) or up to and including it (type B)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, mask_type: str):
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' (first layer) or 'B' (later layers), got {mask_type!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"a masked convolution needs an odd kernel size, got {kernel_size}")
        super().__init__(c_in, c_out, kernel_size, padding=kernel_size // 2)
        k, c = kernel_size, kernel_size // 2
        mask = torch.ones(k, k)
        mask[c, c + (mask_type == "B"):] = 0  # the centre row from the centre (A) or after it (B)
        mask[c + 1:] = 0  # every row below
        self.register_buffer("mask", mask[None, None])  # (1, 1, k, k)
        self.mask_type = mask_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (W \odot M) * x
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mask_type={self.mask_type}"


class PixelCNN(nn.Module):
    """The original PixelCNN for binary images: a 7x7 type-A convolution, residual blocks of 3x3 type-B
    convolutions, then 1x1 convolutions to one logit per pixel: logit of p(x_i = 1 | x_{<i})."""

    def __init__(self, channels: int = 32, n_layers: int = 5, in_channels: int = 1):
        super().__init__()
        self.stem = MaskedConv2d(in_channels, channels, 7, "A")
        self.layers = nn.ModuleList(MaskedConv2d(channels, channels, 3, "B") for _ in range(n_layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, in_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) in {0, 1} -> logits (B, 1, H, W)
        h = self.stem(2 * x - 1)  # (B, C, H, W); inputs centred to {-1, 1}
        for layer in self.layers:
            h = h + layer(F.relu(h))
        return self.head(h)


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """Move a map one row down (zeros on top): row i then carries what the rows < i saw."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def gate(x: torch.Tensor) -> torch.Tensor:
    """\\tanh(x_f) \\odot \\sigma(x_g) on the two halves of the channels: (B, 2C, ...) -> (B, C, ...)."""
    f, g = x.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class GatedLayer(nn.Module):
    """One gated layer with a vertical and a horizontal stack.

    The vertical convolution (k//2 + 1 rows by k columns, padded so that row i sees rows i - k//2 .. i)
    feeds the horizontal stack only after a shift down by one row, so it may see its own row. The
    horizontal convolution (1 row by k//2 + 1 columns) sees the row up to column j, or up to j - 1 in the
    first layer (mask A), which is shifted right by one column for that."""

    def __init__(self, c_in: int, channels: int, kernel_size: int = 3, first: bool = False):
        super().__init__()
        r = kernel_size // 2
        self.r, self.first = r, first
        self.v_conv = nn.Conv2d(c_in, 2 * channels, (r + 1, kernel_size))  # W_v, both gate halves
        self.h_conv = nn.Conv2d(c_in, 2 * channels, (1, r + 1))  # W_h
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)  # the link from vertical to horizontal
        self.h_out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.r
        # vertical: rows i - r .. i, columns j - r .. j + r
        v_pre = self.v_conv(F.pad(v, (r, r, r, 0)))  # (B, 2C, H, W)
        # horizontal: columns j - r .. j (mask B), or j - r - 1 .. j - 1 (mask A: shift right by one)
        h_in = F.pad(h, (1, 0))[..., :-1] if self.first else h
        h_pre = self.h_conv(F.pad(h_in, (r, 0))) + self.v_to_h(shift_down(v_pre))  # (B, 2C, H, W)
        v_new = gate(v_pre)  # (B, C, H, W)
        h_new = self.h_out(gate(h_pre))
        if not self.first:  # residual in the horizontal stack
            h_new = h_new + h
        return v_new, h_new


class GatedPixelCNN(nn.Module):
    """Gated PixelCNN for binary images: n_layers gated layers (the first with mask A) and a 1x1 head.
    The first vertical layer sees the current row too; the shift down keeps that from the output."""

    def __init__(self, channels: int = 32, n_layers: int = 6, kernel_size: int = 3, in_channels: int = 1):
        super().__init__()
        self.layers = nn.ModuleList(
            GatedLayer(in_channels if i == 0 else channels, channels, kernel_size, first=i == 0)
            for i in range(n_layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, in_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) in {0, 1} -> logits (B, 1, H, W)
        v = h = 2 * x - 1
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h)


# --- the autoregressive algorithm, apart from the networks -----------------------------------------

def nll_bits_per_dim(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-\\frac{1}{D \\ln 2} \\sum_i \\ln p(x_i \\mid x_{<i}), averaged over the batch; x in {0, 1}."""
    nats = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)  # (B,)
    return nats.mean() / (x[0].numel() * math.log(2))


@torch.no_grad()
def sample(net: nn.Module, n: int, shape: tuple[int, int, int], generator: torch.Generator,
           device: torch.device | str = "cpu") -> torch.Tensor:
    """n binary images drawn pixel by pixel in raster order: one network pass per pixel, (n, *shape)."""
    c, height, width = shape
    x = torch.zeros(n, c, height, width, device=device)
    for i in range(height):
        for j in range(width):
            # x_{ij} \sim \mathrm{Bernoulli}(\sigma(f(x_{<ij})))
            p = torch.sigmoid(net(x)[:, :, i, j])  # (n, c)
            x[:, :, i, j] = (torch.rand(p.shape, generator=generator).to(device) < p).float()
    return x


def _example():
    return ((torch.rand(2, 1, 8, 8) < 0.5).float(),)


@register_model("pixelcnn_binary", card="pixelcnn", example=_example)
def pixelcnn_binary(**kw) -> PixelCNN:
    return PixelCNN(**kw)


@register_model("gated_pixelcnn_binary", card="pixelcnn", example=_example)
def gated_pixelcnn_binary(**kw) -> GatedPixelCNN:
    return GatedPixelCNN(**kw)


# --- pixelcnn/binarized-mnist -----------------------------------------------------------------------

@dataclass
class BinarizedMnistConfig:
    side: int = 14  # 14: 2x2 average-pooled MNIST (196 pixels; sampling is 4x shorter), or 28
    channels: int = 16
    n_layers: int = 5
    epochs: int = 6
    batch_size: int = 64
    lr: float = 5e-3  # Adam, cosine decay to zero
    n_train: int = 4000  # of the 4,000 training images
    n_samples: int = 100  # images drawn pixel by pixel for the plot and the judge
    judge_epochs: int = 8
    slow_factor: float = 10.0  # sampling counts as slow when it takes this many times one scoring pass


def binarized_digits(x: torch.Tensor, side: int) -> torch.Tensor:
    """MNIST (N, 1, 28, 28) in [0, 1] -> binary (N, 1, side, side): average-pooled to `side`, then > 0.5."""
    if 28 % side:
        raise ValueError(f"side must divide 28 (28, 14, 7), got {side}")
    return (F.avg_pool2d(x, 28 // side) > 0.5).float()


def for_the_judge(x: torch.Tensor) -> torch.Tensor:
    """Binary (N, 1, side, side) digits blown up to the judge's 28x28 by repeating pixels."""
    k = 28 // x.shape[-1]
    return x.repeat_interleave(k, -2).repeat_interleave(k, -1).cpu()


def _bits(net: nn.Module, x: torch.Tensor, batch_size: int = 500) -> float:
    with torch.no_grad():
        return sum(nll_bits_per_dim(net(x[i:i + batch_size]), x[i:i + batch_size]).item() * len(x[i:i + batch_size])
                   for i in range(0, len(x), batch_size)) / len(x)


@lab(
    "pixelcnn/binarized-mnist",
    card="pixelcnn",
    config=BinarizedMnistConfig,
    scales={
        "quick": {"side": 7, "channels": 8, "n_layers": 2, "epochs": 1, "n_train": 256, "n_samples": 16,
                  "judge_epochs": 1},
        "default": {},
        "full": {"side": 28, "channels": 64, "n_layers": 12, "epochs": 40, "n_samples": 1000},
    },
    goals=[Goal("improvement_bits", ">", 0.0)],
    claims=[
        Check("pixelcnn-exact-likelihood", lambda m: m["test_bits"] < m["baseline_bits"],
              "exact test NLL on binarised MNIST ({side}x{side}): gated PixelCNN {test_bits:.4f} bits/dim "
              "({test_nats:.1f} nats/image) against the independent-pixel baseline {baseline_bits:.4f} bits/dim "
              "({baseline_nats:.1f} nats/image); train {train_bits:.4f} bits/dim"),
        Check("pixelcnn-slow-sampling", lambda m: m["sampling_ratio"] >= m["slow_factor"],
              "drawing {n_samples} images took {sample_s:.2f} s ({passes} sequential network passes); scoring "
              "the same images in one parallel pass took {score_s:.4f} s: {sampling_ratio:.0f}x slower "
              "('slow' read as at least {slow_factor:.0f}x)"),
    ],
    budget_s=90,
    threads=None,
)
def binarized_mnist(run, cfg: BinarizedMnistConfig) -> dict:
    """Gated PixelCNN on binarised MNIST: exact test NLL against independent pixels; pixel-by-pixel samples."""
    data = mnist_subset(flatten=False)
    x_train = binarized_digits(data.x_train[:cfg.n_train], cfg.side).to(run.device)  # (N, 1, side, side)
    x_test = binarized_digits(data.x_test, cfg.side).to(run.device)
    torch.manual_seed(run.seed)
    g = torch.Generator().manual_seed(run.seed)
    net = GatedPixelCNN(cfg.channels, cfg.n_layers).to(run.device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps_per_epoch = len(x_train) // cfg.batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * steps_per_epoch)
    step = 0
    for _ in run.progress(range(cfg.epochs), desc="pixelcnn"):
        order = torch.randperm(len(x_train), generator=g).to(run.device)
        for i in range(steps_per_epoch):
            xb = x_train[order[i * cfg.batch_size:(i + 1) * cfg.batch_size]]
            loss = nll_bits_per_dim(net(xb), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 20 == 0:
                run.log(step, bits_per_dim=loss)
    net.eval()

    # the independent-pixel baseline: p(x_i = 1) = (count_i + 1) / (N + 2), the Laplace-smoothed mean
    p = (x_train.sum(0) + 1) / (len(x_train) + 2)  # (1, side, side)
    base_logits = torch.log(p) - torch.log1p(-p)
    baseline_bits = nll_bits_per_dim(base_logits.expand_as(x_test), x_test).item()
    test_bits, train_bits = _bits(net, x_test), _bits(net, x_train[:1000])
    d = x_test[0].numel()

    start = time.perf_counter()
    samples = sample(net, cfg.n_samples, (1, cfg.side, cfg.side), g, run.device)  # (n, 1, side, side)
    sample_s = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        net(samples)
    score_s = time.perf_counter() - start

    # the judge reads 28x28: every image, real or drawn, is the same side x side binary digit blown up
    judge = digit_judge(run, cfg.judge_epochs)
    reference = for_the_judge(x_train)
    independent = torch.bernoulli(p.expand(cfg.n_samples, *p.shape).cpu(), generator=g)
    judged = {name: judge.evaluate(for_the_judge(x), reference)
              for name, x in (("model", samples), ("real", x_test[:1000]), ("baseline", independent))}

    side = min(6, math.isqrt(cfg.n_samples))
    with run.figure("samples", ncols=2, size=(9, 4.5)) as (fig, (ax_s, ax_b)):
        for ax, imgs, title in ((ax_s, samples[:side ** 2], f"gated PixelCNN, {test_bits:.3f} bits/dim"),
                                (ax_b, independent[:side ** 2], f"independent pixels, {baseline_bits:.3f} bits/dim")):
            ax.imshow(strip(imgs, side), cmap="gray_r")
            ax.set(title=title, xticks=[], yticks=[])
    return {
        "side": cfg.side, "test_bits": test_bits, "train_bits": train_bits, "baseline_bits": baseline_bits,
        "test_nats": test_bits * d * math.log(2), "baseline_nats": baseline_bits * d * math.log(2),
        "improvement_bits": baseline_bits - test_bits,
        "sample_s": sample_s, "score_s": score_s, "sampling_ratio": sample_s / score_s, "passes": d,
        "n_samples": cfg.n_samples, "slow_factor": cfg.slow_factor,
        **{f"{name}_{key}": r[k] for name, r in judged.items()
           for key, k in (("fd", "fd"), ("confident", "confident_share"), ("classes", "class_coverage"))},
    }
