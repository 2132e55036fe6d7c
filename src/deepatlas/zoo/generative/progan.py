"""Progressive GAN: grow the generator and the discriminator together, from 4x4 images to full size.

Training starts with both networks at 4x4, where the game is easy (a few coarse blobs), and doubles
the resolution in stages by adding a block to each. A new block is faded in: its output is blended
with the upsampled output of the old one by a weight alpha that rises linearly from 0 to 1 over the
first half of the stage, and the discriminator's input is blended in the mirror image. The recipe adds
three changes that need no extra parameters: an equalised learning rate (weights drawn from N(0, 1) and
multiplied at run time by He's constant, so that Adam moves every layer at the same speed), pixel-wise
feature normalisation in G, and a minibatch standard-deviation feature in D's last block (it sees how
varied the batch is, and so punishes a generator with little variation). The loss is WGAN-GP's with a
small drift term that keeps the critic's scores near zero.

    x_{\\text{out}} = (1-\\alpha)\\,\\mathrm{up}(\\mathrm{toRGB}_{\\text{old}}(h_{\\text{low}}))
                    + \\alpha\\,\\mathrm{toRGB}_{\\text{new}}(h_{\\text{high}}),\\qquad
    \\hat w_i = w_i \\sqrt{2 / n_{\\text{in}}}

Karras, Aila, Laine & Lehtinen, "Progressive Growing of GANs for Improved Quality, Stability, and
Variation", ICLR 2018 (arXiv 1710.10196).

Here sized for digits on a CPU: 4x4 -> 8x8 -> 16x16, the MNIST digits resized 28 -> 16 by area
averaging. The judge reads 28x28 images, so generated 16x16 images are upsampled bilinearly to 28x28,
and the real-digit reference numbers use real test digits sent through the same 28 -> 16 -> 28 round
trip: what the round trip loses counts against neither side.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.equalized import EqualizedConv2d, EqualizedLinear
from deepatlas.registry import register_model
from deepatlas.zoo.generative.dcgan import image_grid
from deepatlas.zoo.generative.gan import Objective, train_step
from deepatlas.zoo.generative.judge import digit_judge, reference_numbers, to_judge
from deepatlas.zoo.generative.stylegan import pixel_norm
from deepatlas.zoo.generative.wgan import critic_loss, generator_loss
from deepatlas.zoo.generative.wgan_gp import gradient_penalty

# --- minibatch standard deviation and the resampling helpers -----------------------------------------


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append one feature map: the standard deviation of each feature over a group of samples, averaged.

    The batch is split into groups of `group_size` (samples i, i + M, i + 2M, ... form a group, as in the
    official code); within a group, every feature at every position has a standard deviation, and their
    mean is one number per group, tiled over the map. (B, C, H, W) -> (B, C + 1, H, W)."""
    B, C, H, W = x.shape
    G = min(group_size, B)
    if B % G != 0:
        raise ValueError(f"the batch size {B} must be a multiple of the group size {G}")
    y = x.reshape(G, B // G, C, H, W)  # (G, M, C, H, W)
    # \sigma_{chw} = \sqrt{\frac1G \sum_g (y_g - \bar y)^2 + 10^{-8}}, then the mean over c, h, w
    std = (y.var(0, unbiased=False) + 1e-8).sqrt()  # (M, C, H, W)
    s = std.mean((1, 2, 3))  # (M,)
    s = s.repeat(G)[:, None, None, None].expand(B, 1, H, W)  # sample b belongs to group b mod M
    return torch.cat([x, s], 1)


def lerp(old: torch.Tensor, new: torch.Tensor, alpha: float) -> torch.Tensor:
    # (1 - \alpha)\, \mathrm{old} + \alpha\, \mathrm{new}
    return old + alpha * (new - old)


def upsample(x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, 2H, 2W), nearest neighbour
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample(x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H/2, W/2), 2x2 means
    return F.avg_pool2d(x, 2)


# --- the two networks ------------------------------------------------------------------------------


class ProGANGenerator(nn.Module):
    """z (B, nz) -> image (B, 1, r, r) at any of its resolutions r = 4, 8, ..., with fade-in weight alpha.

    `channels[i]` is the width at resolution 4 * 2^i. Each block upsamples and applies two 3x3
    convolutions, each followed by a leaky ReLU and pixel-wise normalisation; every resolution has its
    own toRGB (a 1x1 convolution, linear output)."""

    def __init__(self, nz: int = 32, channels: tuple[int, ...] = (64, 32, 16),
                 generator: torch.Generator | None = None):
        super().__init__()
        if nz < 1 or not channels or min(channels) < 1:
            raise ValueError(f"nz and every channel count must be positive, got nz={nz}, channels={channels}")
        self.nz = nz
        self.resolutions = tuple(4 * 2 ** i for i in range(len(channels)))
        c0 = channels[0]
        # the 4x4 block: a dense layer from z to a 4x4 map (the paper's 4x4 "convolution" of a 1x1 input)
        self.dense = EqualizedLinear(nz, c0 * 16, gain=math.sqrt(2) / 4, generator=generator)
        self.conv4 = EqualizedConv2d(c0, c0, 3, generator=generator)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualizedConv2d(a, b, 3, generator=generator), EqualizedConv2d(b, b, 3, generator=generator)])
            for a, b in zip(channels[:-1], channels[1:])
        )
        self.to_rgb = nn.ModuleList(EqualizedConv2d(c, 1, 1, gain=1.0, generator=generator) for c in channels)

    def _level(self, resolution: int | None) -> int:
        resolution = resolution or self.resolutions[-1]
        if resolution not in self.resolutions:
            raise ValueError(f"resolution must be one of {self.resolutions}, got {resolution}")
        return self.resolutions.index(resolution)

    @staticmethod
    def _act(h: torch.Tensor) -> torch.Tensor:
        # leaky ReLU, then b_{xy} = a_{xy} / \sqrt{\frac1C \sum_c (a^c_{xy})^2 + 10^{-8}}
        return pixel_norm(F.leaky_relu(h, 0.2))

    def forward(self, z: torch.Tensor, resolution: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        k = self._level(resolution)
        h = self.dense(pixel_norm(z)).reshape(len(z), -1, 4, 4)  # (B, c0, 4, 4)
        h = self._act(self.conv4(self._act(h)))
        h_low = h
        for conv_a, conv_b in self.blocks[:k]:
            h_low = h
            h = self._act(conv_b(self._act(conv_a(upsample(h)))))  # (B, c_i, 2H, 2W)
        x = self.to_rgb[k](h)  # (B, 1, r, r)
        if k > 0 and alpha < 1:
            # x = (1 - \alpha)\, \mathrm{up}(\mathrm{toRGB}_{old}(h_{low})) + \alpha\, \mathrm{toRGB}_{new}(h_{high})
            x = lerp(upsample(self.to_rgb[k - 1](h_low)), x, alpha)
        return x

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, 1, r, r) at full resolution, mapped from [-1, 1] to [0, 1] and clipped."""
        z = torch.randn(n, self.nz, generator=generator).to(next(self.parameters()).device)
        return ((self(z) + 1) / 2).clamp(0, 1)


class ProGANDiscriminator(nn.Module):
    """image (B, 1, r, r) -> critic score (B,): the generator's mirror image.

    fromRGB (1x1) at the input's resolution, blocks of two 3x3 convolutions and 2x2 average pooling down
    to 4x4, then the minibatch standard deviation, a 3x3 convolution and two dense layers."""

    def __init__(self, channels: tuple[int, ...] = (64, 32, 16), group_size: int = 4,
                 generator: torch.Generator | None = None):
        super().__init__()
        if not channels or min(channels) < 1 or group_size < 1:
            raise ValueError(f"channels and group_size must be positive, got {channels}, {group_size}")
        self.group_size = group_size
        self.resolutions = tuple(4 * 2 ** i for i in range(len(channels)))
        c0 = channels[0]
        self.from_rgb = nn.ModuleList(EqualizedConv2d(1, c, 1, generator=generator) for c in channels)
        self.blocks = nn.ModuleList(  # blocks[i - 1] takes resolution 4 * 2^i down to 4 * 2^(i-1)
            nn.ModuleList([EqualizedConv2d(b, b, 3, generator=generator), EqualizedConv2d(b, a, 3, generator=generator)])
            for a, b in zip(channels[:-1], channels[1:])
        )
        self.conv4 = EqualizedConv2d(c0 + 1, c0, 3, generator=generator)
        self.dense = EqualizedLinear(c0 * 16, c0, generator=generator)
        self.out = EqualizedLinear(c0, 1, gain=1.0, generator=generator)

    def _block(self, i: int, h: torch.Tensor) -> torch.Tensor:  # (B, c_i, H, W) -> (B, c_{i-1}, H/2, W/2)
        conv_a, conv_b = self.blocks[i - 1]
        return downsample(F.leaky_relu(conv_b(F.leaky_relu(conv_a(h), 0.2)), 0.2))

    def forward(self, x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        if x.shape[-1] not in self.resolutions:
            raise ValueError(f"input resolution must be one of {self.resolutions}, got {tuple(x.shape)}")
        k = self.resolutions.index(x.shape[-1])
        h = F.leaky_relu(self.from_rgb[k](x), 0.2)  # (B, c_k, r, r)
        if k > 0:
            h = self._block(k, h)
            if alpha < 1:
                # the mirror of G's fade-in: (1 - \alpha)\, \mathrm{fromRGB}_{old}(\mathrm{down}(x)) + \alpha\, h
                h = lerp(F.leaky_relu(self.from_rgb[k - 1](downsample(x)), 0.2), h, alpha)
            for i in range(k - 1, 0, -1):
                h = self._block(i, h)  # (B, c0, 4, 4) at the end
        h = minibatch_stddev(h, self.group_size)  # (B, c0 + 1, 4, 4)
        h = F.leaky_relu(self.conv4(h), 0.2)
        h = F.leaky_relu(self.dense(h.flatten(1)), 0.2)  # (B, c0)
        return self.out(h)[:, 0]


# registered at 4 -> 8 and in mid fade-in, where every layer (both toRGB / fromRGB) carries gradient;
# the 16x16 nets of the lab add one more block of the same kind, and their 4x4 toRGB is idle at 16x16
@register_model("progan-generator-8", card="progan",
                example=lambda: (torch.randn(4, 32), 8, 0.5))
def progan_generator_8(**kw) -> ProGANGenerator:
    return ProGANGenerator(**{"channels": (32, 16)} | kw)


@register_model("progan-discriminator-8", card="progan",
                example=lambda: (torch.rand(4, 1, 8, 8) * 2 - 1, 0.5))
def progan_discriminator_8(**kw) -> ProGANDiscriminator:
    return ProGANDiscriminator(**{"channels": (32, 16)} | kw)


# --- the growing schedule, apart from the networks --------------------------------------------------


@dataclass(frozen=True)
class GrowthSchedule:
    """Stage s trains at resolutions[s] for stage_steps[s] steps. In every stage after the first, alpha
    rises linearly from 0 to 1 over the stage's first half (the fade-in) and stays 1 for the second."""

    resolutions: tuple[int, ...]
    stage_steps: tuple[int, ...]

    def __post_init__(self):
        if len(self.resolutions) != len(self.stage_steps) or not self.resolutions:
            raise ValueError("resolutions and stage_steps must be non-empty and of the same length")
        if min(self.stage_steps) < 1:
            raise ValueError(f"every stage needs at least one step, got {self.stage_steps}")

    @property
    def steps(self) -> int:
        return sum(self.stage_steps)

    def __call__(self, t: int) -> tuple[int, float]:
        """(resolution, alpha) at step t (0-based)."""
        if not 0 <= t < self.steps:
            raise ValueError(f"step {t} lies outside 0..{self.steps - 1}")
        start = 0
        for s, (r, n) in enumerate(zip(self.resolutions, self.stage_steps)):
            if t < start + n:
                # \alpha = \min(1, (t - t_s) / (n_s / 2)) in a new stage
                return r, 1.0 if s == 0 else min(1.0, (t - start) / max(1, n // 2))
            start += n
        raise AssertionError("unreachable")


def growing_schedule(steps: int, resolutions: tuple[int, ...] = (4, 8, 16),
                     shares: tuple[float, ...] = (0.2, 0.3, 0.5)) -> GrowthSchedule:
    """`steps` split over the stages by `shares` (the last stage takes the rounding remainder)."""
    if len(shares) != len(resolutions) or abs(sum(shares) - 1) > 1e-9:
        raise ValueError(f"shares must give one fraction per resolution and sum to 1, got {shares}")
    n = [int(steps * s) for s in shares[:-1]]
    return GrowthSchedule(tuple(resolutions), (*n, steps - sum(n)))


def direct_schedule(steps: int, resolution: int = 16) -> GrowthSchedule:
    """The control: every step at full resolution."""
    return GrowthSchedule((resolution,), (steps,))


# --- the objective and the training loop -------------------------------------------------------------


def progan_objective(lam: float = 10.0, eps_drift: float = 1e-3, generator: torch.Generator | None = None) -> Objective:
    """WGAN-GP (n_critic 1) plus the drift penalty eps_drift * E[D(x)^2] on real scores."""
    if lam < 0 or eps_drift < 0:
        raise ValueError(f"lam and eps_drift must be >= 0, got {lam}, {eps_drift}")

    def d_loss(critic, x_real, x_fake):
        real = critic(x_real)
        # \mathcal{L}_D = \mathbb{E}[D(\tilde x)] - \mathbb{E}[D(x)] + \lambda\,\mathrm{GP}
        #               + \epsilon_{drift}\, \mathbb{E}[D(x)^2]
        return (critic_loss(real, critic(x_fake)) + lam * gradient_penalty(critic, x_real, x_fake, generator)
                + eps_drift * real.square().mean())

    return Objective("ProGAN WGAN-GP", d_loss, generator_loss, n_critic=1)


def reals_at(x: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
    """Real images (B, 1, R, R) at the training resolution, blended during fade-in like G's output:
    (1 - alpha) up(down(x_r)) + alpha x_r, so D never sees a sharper real than G can make."""
    while x.shape[-1] > resolution:
        x = downsample(x)
    return lerp(upsample(downsample(x)), x, alpha) if alpha < 1 else x


def train_progan(run, G: ProGANGenerator, D: ProGANDiscriminator, x: torch.Tensor, schedule: GrowthSchedule, *,
                 batch_size: int, generator: torch.Generator, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.0, 0.99), lam: float = 10.0, eps_drift: float = 1e-3,
                 ema_decay: float = 0.999, name: str = "progan") -> tuple[ProGANGenerator, list[float]]:
    """Train G and D on x (N, 1, R, R) in [-1, 1] following the schedule. One Adam runs throughout: it keeps
    a step count per parameter, so a new layer's first steps get their own bias correction while the
    trained layers keep their statistics (the official code restarts Adam at each resolution). Returns the
    running average of G's weights, which the paper samples from, and the critic loss of every step."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = x.device
    objective = progan_objective(lam, eps_drift, generator)
    G_avg = copy.deepcopy(G).requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    d_losses = []
    for t in run.progress(range(schedule.steps), desc=name):
        resolution, alpha = schedule(t)
        real = lambda: reals_at(x[torch.randint(len(x), (batch_size,), generator=generator).to(device)],
                                resolution, alpha)
        noise = lambda: torch.randn(batch_size, G.nz, generator=generator).to(device)
        d_loss, g_loss = train_step(lambda z: G(z, resolution, alpha), lambda im: D(im, alpha), opt_g, opt_d,
                                    objective, real, noise)
        with torch.no_grad():
            # \bar\theta \leftarrow \beta \bar\theta + (1 - \beta)\, \theta
            torch._foreach_lerp_(list(G_avg.parameters()), list(G.parameters()), 1 - ema_decay)
        d_losses.append(d_loss.item())
        if t % 50 == 0 or t == schedule.steps - 1:
            run.log(t, **{f"{name}_d_loss": d_loss, f"{name}_g_loss": g_loss})
    return G_avg, d_losses


# --- progan/growing-vs-direct: the same nets trained with and without growing ------------------------


@dataclass
class GrowingConfig:
    nz: int = 32
    width: int = 32  # channels at 4x4, halved at each doubling of the resolution (the paper's 512 -> 16)
    steps: int = 1000  # generator steps per method, the same for both (one critic step each): ~70 CPU-s in all
    batch_size: int = 16  # the paper's batch at its highest resolutions
    # Adam, betas (0, 0.99) as the paper; its lr 1e-3 moves the N(0, 1)-stored weights too slowly for a
    # run this short (at 4x4, G's pixel spread was still 4x the data's after 100 steps and 2x after 300)
    lr: float = 3e-3
    ema_decay: float = 0.99  # samples come from the running average of G (the paper: 0.999 over ~10^6 steps)
    lam: float = 10.0
    eps_drift: float = 1e-3
    n_samples: int = 1000
    judge_epochs: int = 8


def _supported(m: dict) -> bool:
    # a remedy for instability: growing ends with samples no worse than direct training's, and its critic
    # loss swings no more over the last third of training
    return m["growing_fd"] <= m["direct_fd"] and m["growing_d_volatility"] <= m["direct_d_volatility"]


@lab(
    "progan/growing-vs-direct",
    card="progan",
    config=GrowingConfig,
    scales={
        "quick": {"width": 4, "steps": 12, "batch_size": 8, "n_samples": 100, "judge_epochs": 1},
        "default": {},
        "full": {"width": 128, "steps": 20_000, "lr": 1e-3, "ema_decay": 0.999},
    },
    goals=[Goal("growing_fd_vs_baseline", "<=", 0.5)],
    claims=[
        Check(
            "progan-growing-stabilises",
            _supported,
            "One run of each method, {steps} generator steps, the same nets, loss and Adam: LeNet-5 Frechet "
            "distance {growing_fd:.2f} growing 4->8->16, {direct_fd:.2f} trained at 16x16 from the start (real "
            "digits through the 16x16 round trip {real_roundtrip_fd:.2f}, independent pixels {baseline_fd:.2f}); "
            "std of the critic loss over the last third {growing_d_volatility:.3f} vs {direct_d_volatility:.3f}; "
            "confident samples {growing_confident:.0%} vs {direct_confident:.0%}; CPU seconds {growing_cpu_s:.1f} "
            "vs {direct_cpu_s:.1f}. Supported when growing's FD is no worse and its critic-loss std no larger",
        ),
    ],
    budget_s=90,
    threads=1,  # 8-32 channels on maps of at most 16x16: a second thread mostly waits
)
def growing_vs_direct(run, cfg: GrowingConfig) -> dict:
    """Progressive growing against direct training at 16x16 at equal generator steps, judged by LeNet-5."""
    data = mnist_subset(flatten=False)
    # 28 -> 16 by area averaging, in [-1, 1]
    x = F.interpolate(data.x_train, size=16, mode="area").to(run.device) * 2 - 1  # (N, 1, 16, 16)
    judge = digit_judge(run, cfg.judge_epochs)
    metrics: dict = {"judge_test_acc": judge.test_acc} | reference_numbers(run, judge)
    roundtrip = to_judge(F.interpolate(data.x_test[:cfg.n_samples], size=16, mode="area"))
    r = judge.evaluate(roundtrip, data.x_train)
    metrics |= {"real_roundtrip_fd": r["fd"], "real_roundtrip_confident": r["confident_share"]}
    channels = (cfg.width, cfg.width // 2, cfg.width // 4)  # (c_4, c_8, c_16)
    schedules = {"growing": growing_schedule(cfg.steps), "direct": direct_schedule(cfg.steps)}
    tail = slice(cfg.steps - max(2, cfg.steps // 3), None)  # the last third of training

    curves, grids = {}, {}
    for name, schedule in schedules.items():
        g = torch.Generator().manual_seed(run.seed)  # both methods start from the same nets
        G = ProGANGenerator(cfg.nz, channels, generator=g).to(run.device)
        D = ProGANDiscriminator(channels, generator=g).to(run.device)
        cpu = time.process_time()
        G_avg, d_losses = train_progan(run, G, D, x, schedule, batch_size=cfg.batch_size, generator=g, lr=cfg.lr,
                                       lam=cfg.lam, eps_drift=cfg.eps_drift, ema_decay=cfg.ema_decay, name=name)
        cpu = time.process_time() - cpu
        samples = to_judge(G_avg.sample(cfg.n_samples, g).cpu())  # (n, 1, 28, 28)
        r = judge.evaluate(samples, data.x_train)
        metrics |= {f"{name}_fd": r["fd"], f"{name}_confident": r["confident_share"],
                    f"{name}_classes": r["class_coverage"], f"{name}_fd_vs_baseline": r["fd"] / metrics["baseline_fd"],
                    # \mathrm{std}(\mathcal{L}_D) over the last third of the steps
                    f"{name}_d_volatility": torch.tensor(d_losses[tail]).std().item(), f"{name}_cpu_s": cpu}
        curves[name], grids[name] = d_losses, samples[:64]
    metrics["steps"] = cfg.steps

    with run.figure("samples", ncols=3, size=(12, 4.4)) as (fig, axes):
        image_grid(axes[0], grids["growing"], 8, f"growing 4->8->16 (FD {metrics['growing_fd']:.1f})")
        image_grid(axes[1], grids["direct"], 8, f"direct 16x16 (FD {metrics['direct_fd']:.1f})")
        image_grid(axes[2], roundtrip[:64], 8, f"real, 28->16->28 (FD {metrics['real_roundtrip_fd']:.1f})")
    with run.figure("critic_loss", size=(7, 4)) as (fig, ax):
        for name, color in (("growing", "C0"), ("direct", "C3")):
            c = torch.tensor(curves[name])
            ax.plot(c.unfold(0, min(25, len(c)), 1).mean(1), color=color, lw=0.8, label=name)
        for b in (sum(schedules["growing"].stage_steps[:i + 1]) for i in range(2)):
            ax.axvline(b, color="grey", ls=":", lw=0.8)
        ax.axvspan(cfg.steps - max(2, cfg.steps // 3), cfg.steps, color="grey", alpha=0.1)
        ax.set(xlabel="generator step (dotted: growing's new resolutions; shaded: the volatility window)",
               ylabel="critic loss (moving mean)", title="critic loss")
        ax.legend()
    return metrics
