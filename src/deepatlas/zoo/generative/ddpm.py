"""DDPM: destroy data with T small Gaussian steps, learn to undo one step at a time.

A fixed forward process adds noise with variances beta_1..beta_T until x_T is almost N(0, I).
Because every step is Gaussian, x_t given x_0 has a closed form, so training draws a random t,
noises x_0 in one go and asks a network to predict the noise (the "simple" loss, a reweighted
variational bound). Sampling runs the learned reverse chain from pure noise: T network calls.

    x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon,\\quad
    \\bar\\alpha_t = \\prod_{s \\le t} (1 - \\beta_s),\\quad
    L = \\mathbb{E}\\,\\lVert \\epsilon - \\epsilon_\\theta(x_t, t) \\rVert^2

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (arXiv 2006.11239);
the cosine schedule: Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021.

The process (`Diffusion`: schedule, q_sample, loss, posterior, ancestral sampler) knows nothing of
the network: it takes any eps_fn(x_t, t). Steps are 0-based in code: index t is the paper's t + 1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.data.toy2d import eight_gaussians, eight_gaussians_modes, gaussian_fit
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.denoisers import TimeMLP, UNet, n_params
from deepatlas.nn.metrics import mmd_rbf, mode_coverage, sliced_wasserstein
from deepatlas.registry import register_model
from deepatlas.zoo.generative.judge import digit_judge, reference_numbers

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # eps_theta(x_t, t) -> (B, ...)


def beta_schedule(kind: str, T: int) -> torch.Tensor:
    """(T,) float64 noise variances: "linear" (Ho et al.: 1e-4 to 0.02 at T = 1000, scaled by 1000 / T so
    that other T keep the same total noise) or "cosine" (Nichol & Dhariwal); both capped at 0.999."""
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if kind == "linear":
        scale = 1000 / T
        return torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64).clamp(max=0.999)
    if kind == "cosine":
        s = 0.008
        u = torch.arange(T + 1, dtype=torch.float64) / T
        # \bar\alpha(u) = \cos^2\big(\frac{u + s}{1 + s}\frac{\pi}{2}\big) / \bar\alpha(0)
        f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        # \beta_t = 1 - \bar\alpha_t / \bar\alpha_{t-1}
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown beta schedule {kind!r}; choose 'linear' or 'cosine'")


def _at(v: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """v[t] as a (B, 1, ..., 1) tensor in x's dtype, to broadcast over a batch shaped like x."""
    return v.to(x.device)[t].to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def randn(shape, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)


class Diffusion:
    """The Gaussian diffusion process of T steps: everything of DDPM except the network."""

    def __init__(self, T: int = 1000, schedule: str = "linear"):
        self.T, self.schedule = T, schedule
        self.betas = beta_schedule(schedule, T)  # (T,) float64
        self.alphas = 1 - self.betas
        # \bar\alpha_t = \prod_{s \le t} \alpha_s
        self.alpha_bar = torch.cumprod(self.alphas, 0)

    def alpha_bar_at(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """\\bar\\alpha at steps t (B,); t = -1 means "before the first step" (x_0 itself): 1."""
        padded = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar])
        return _at(padded, t + 1, x)

    def q_step(self, x_prev: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One forward step x_{t-1} -> x_t (for tests; training jumps straight to x_t)."""
        # x_t = \sqrt{1 - \beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon
        return _at(self.alphas, t, x_prev).sqrt() * x_prev + _at(self.betas, t, x_prev).sqrt() * noise

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The closed form of t + 1 forward steps: x_t ~ q(x_t | x_0)."""
        ab = _at(self.alpha_bar, t, x0)
        # x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def loss(self, eps_fn: EpsFn, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """L_simple: a uniform step per example, the noise it gets, and the error of predicting that noise."""
        t = torch.randint(0, self.T, (len(x0),), generator=generator, device=generator.device).to(x0.device)
        eps = randn(x0.shape, generator).to(x0.device)
        # L_{\text{simple}} = \lVert \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t} x_0 + \sqrt{1-\bar\alpha_t}\epsilon, t) \rVert^2
        return F.mse_loss(eps_fn(self.q_sample(x0, t, eps), t), eps)

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        ab = _at(self.alpha_bar, t, x_t)
        # \hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon) / \sqrt{\bar\alpha_t}
        return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()

    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                  s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_s | x_t, x_0) for s < t (s = t - 1 normally; s = -1 is x_0 itself):
        the forward process from s to t has \\beta' = 1 - \\bar\\alpha_t / \\bar\\alpha_s, so skipping steps
        ("respacing") is the same formula on a shorter chain."""
        ab_t, ab_s = _at(self.alpha_bar, t, x_t), self.alpha_bar_at(s, x_t)
        beta = 1 - ab_t / ab_s
        # \tilde\mu = \frac{\sqrt{\bar\alpha_s}\beta'}{1-\bar\alpha_t} x_0 + \frac{\sqrt{1-\beta'}(1-\bar\alpha_s)}{1-\bar\alpha_t} x_t
        mean = ab_s.sqrt() * beta / (1 - ab_t) * x0 + (1 - beta).sqrt() * (1 - ab_s) / (1 - ab_t) * x_t
        # \tilde\beta = \frac{1-\bar\alpha_s}{1-\bar\alpha_t}\beta'
        return mean, (1 - ab_s) / (1 - ab_t) * beta

    def p_step(self, eps_fn: EpsFn, x_t: torch.Tensor, t: int, s: int, z: torch.Tensor,
               clip: float | None = None) -> torch.Tensor:
        """One ancestral step x_t -> x_s: the posterior around the predicted x_0, variance \\tilde\\beta.

        Without clipping this is the paper's x_{t-1} = (x_t - \\beta_t/\\sqrt{1-\\bar\\alpha_t}\\,\\epsilon_\\theta)/\\sqrt{\\alpha_t}
        + \\sigma_t z; `clip` bounds \\hat x_0 to [-clip, clip] as the authors' code does for images."""
        tt = torch.full((len(x_t),), t, dtype=torch.long, device=x_t.device)
        x0 = self.predict_x0(x_t, tt, eps_fn(x_t, tt))
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        mean, var = self.posterior(x0, x_t, tt, tt - t + s)
        return mean + var.sqrt() * z if s >= 0 else mean

    def timesteps(self, steps: int | None = None) -> list[int]:
        """An evenly spaced subsequence of `steps` indices ending at T - 1 (all T by default), descending."""
        steps = self.T if steps is None else steps
        if not 1 <= steps <= self.T:
            raise ValueError(f"steps must be in 1..T={self.T}, got {steps}")
        return sorted({round(i * self.T / steps) - 1 for i in range(1, steps + 1)}, reverse=True)

    @torch.no_grad()
    def sample(self, eps_fn: EpsFn, shape: tuple[int, ...], generator: torch.Generator, steps: int | None = None,
               clip: float | None = None, x_T: torch.Tensor | None = None) -> torch.Tensor:
        """Ancestral sampling from x_T ~ N(0, I): one network call per step of `timesteps(steps)`."""
        x = randn(shape, generator) if x_T is None else x_T
        seq = self.timesteps(steps)
        for t, s in zip(seq, seq[1:] + [-1]):
            x = self.p_step(eps_fn, x, t, s, randn(shape, generator).to(x.device), clip)
        return x


class DDPM(nn.Module):
    """A denoiser together with its diffusion process; forward(x_t, t[, y]) is eps_theta."""

    def __init__(self, denoiser: nn.Module, T: int = 1000, schedule: str = "linear"):
        super().__init__()
        self.denoiser = denoiser
        self.diffusion = Diffusion(T, schedule)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoiser(x_t, t, y)

    def loss(self, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.diffusion.loss(self, x0, generator)


class ImageDDPM(DDPM):
    """DDPM on (N, 1, 28, 28) images in [0, 1]: it trains on 2x - 1 at `side` x `side` (14: a 2x2 average pool)
    and hands samples back at 28 x 28 in [0, 1] (bilinear upsampling from 14), as the digit judge reads them."""

    def __init__(self, denoiser: nn.Module, side: int = 14, T: int = 1000, schedule: str = "linear"):
        super().__init__(denoiser, T, schedule)
        if side not in (14, 28):
            raise ValueError(f"side must be 14 or 28, got {side}")
        self.side = side

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 28, 28) in [0, 1] -> (N, 1, side, side) in [-1, 1]
        if self.side == 14:
            x = F.avg_pool2d(x, 2)
        return 2 * x - 1

    def decode(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, side, side) -> (N, 1, 28, 28) in [0, 1]
        x = ((x + 1) / 2).clamp(0, 1)
        return F.interpolate(x, size=28, mode="bilinear", align_corners=False) if self.side == 14 else x

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.diffusion.loss(self, self.encode(x), generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, steps: int | None = None,
               batch_size: int = 500) -> torch.Tensor:
        """n digits (n, 1, 28, 28) in [0, 1] by ancestral sampling on `steps` of the T steps (all by default)."""
        device = next(self.parameters()).device
        out = [self.diffusion.sample(self, (min(batch_size, n - i), 1, self.side, self.side), generator, steps,
                                     clip=1.0).to(device) for i in range(0, n, batch_size)]
        return self.decode(torch.cat(out))


def _steps(n: int) -> torch.Tensor:
    return torch.randint(0, 1000, (n,))


@register_model("ddpm-mlp", card="ddpm", example=lambda: (torch.randn(8, 2), _steps(8)))
def ddpm_mlp(hidden: int = 128, depth: int = 3, **kw) -> DDPM:
    return DDPM(TimeMLP(2, hidden, depth), **kw)


@register_model("ddpm-unet14", card="ddpm", example=lambda: (torch.randn(2, 1, 14, 14), _steps(2)))
def ddpm_unet14(base: int = 16, **kw) -> ImageDDPM:
    return ImageDDPM(UNet(1, base, (1, 2)), side=14, **kw)


@register_model("ddpm-unet28", card="ddpm", example=lambda: (torch.randn(2, 1, 28, 28), _steps(2)))
def ddpm_unet28(base: int = 16, **kw) -> ImageDDPM:
    return ImageDDPM(UNet(1, base, (1, 2, 2)), side=28, **kw)


def train(run, model: nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, steps: int,
          batch_size: int, lr: float, generator: torch.Generator, name: str = "loss",
          extra: torch.Tensor | None = None) -> list[float]:
    """Adam on random minibatches of x (and of `extra`, labels, passed with them), lr decayed to 0 by a cosine;
    returns the loss averaged over each 1/50 of training. loss_fn(x_batch) or loss_fn(x_batch, extra_batch)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    every = max(1, steps // 50)
    curve, acc = [], torch.zeros((), device=x.device)
    model.train()
    for step in run.progress(range(1, steps + 1), desc=name):
        idx = torch.randint(0, len(x), (batch_size,), generator=generator, device=generator.device).to(x.device)
        loss = loss_fn(x[idx]) if extra is None else loss_fn(x[idx], extra[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        acc += loss.detach()
        if step % every == 0:
            curve.append(acc.item() / every)
            run.log(step, **{name: curve[-1]})
            acc.zero_()
    model.eval()
    return curve


def fit_ddpm(run, x_train: torch.Tensor, *, steps: int, batch_size: int, generator: torch.Generator,
             side: int = 14, base: int = 16, lr: float = 2e-3, T: int = 1000, schedule: str = "linear",
             name: str = "ddpm_loss") -> ImageDDPM:
    """Train a U-Net DDPM on digits x_train (N, 1, 28, 28) in [0, 1]; `.sample(n, generator, steps=...)` gives
    (n, 1, 28, 28) in [0, 1]. The U-Net's weights start from `generator` too, so a seed fixes everything."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator, device=generator.device)))
        model = ImageDDPM(UNet(1, base, (1, 2) if side == 14 else (1, 2, 2)), side, T, schedule).to(run.device)
    x = x_train.to(run.device)
    model.curve = train(run, model, lambda xb: model.loss(xb, generator), x, steps=steps, batch_size=batch_size,
                        lr=lr, generator=generator, name=name)
    return model


# --- ddpm/two-d: eight Gaussians, no mode collapse ------------------------------------------------------

@dataclass
class TwoDConfig:
    n_train: int = 4000
    n_eval: int = 2000  # samples compared with held-out data
    T: int = 1000
    schedule: str = "linear"
    hidden: int = 128
    depth: int = 3
    steps: int = 2000
    batch_size: int = 256
    lr: float = 2e-3
    radius: float = 0.6  # a sample within 3 std (0.2) of a mode is of high quality


def eight_gaussian_sets(n_train: int, n_eval: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 2-D diffusion, score and energy labs' data, from three disjoint seeds: training points, a held-out
    reference the samples are compared with, and a second held-out draw (the best any model can score)."""
    return (eight_gaussians(n_train, seed=1000 + seed), eight_gaussians(n_eval, seed=2000 + seed),
            eight_gaussians(n_eval, seed=3000 + seed))


def two_d_report(samples: dict[str, torch.Tensor], reference: torch.Tensor, modes: torch.Tensor, radius: float,
                 seed: int) -> dict:
    """Sliced W2 and MMD^2 to `reference`, mode coverage and high-quality share, for each named sample set,
    as `<name>_sw, <name>_mmd, <name>_modes, <name>_quality`; the same projections for every set."""
    out = {}
    for name, x in samples.items():
        out[f"{name}_sw"] = sliced_wasserstein(x, reference, generator=torch.Generator().manual_seed(seed)).item()
        out[f"{name}_mmd"] = mmd_rbf(x, reference).item()
        out[f"{name}_modes"], out[f"{name}_quality"] = mode_coverage(x, modes, radius)
    return out


def _mode_balance(x: torch.Tensor, modes: torch.Tensor) -> float:
    """max / min share of samples over their nearest modes (1 is perfectly even)."""
    counts = torch.bincount(torch.cdist(x, modes).argmin(1), minlength=len(modes)).float()
    return (counts.max() / counts.min().clamp_min(1)).item()


@lab(
    "ddpm/two-d",
    card="ddpm",
    config=TwoDConfig,
    scales={"quick": {"steps": 200, "n_train": 1000, "n_eval": 500, "T": 100}, "default": {},
            "full": {"steps": 20000, "hidden": 256}},
    goals=[Goal("ddpm_modes", ">=", 8), Goal("sw_vs_gaussian", "<=", 0.5)],
    claims=[
        Check(
            "ddpm-no-mode-collapse",
            lambda m: m["ddpm_modes"] == 8 and m["mode_balance"] <= 1.5 and m["loss_late_rise"] <= 0.05,
            "eight Gaussians, {steps} Adam steps on the plain noise-prediction loss: samples cover {ddpm_modes}/8 "
            "modes ({ddpm_quality:.1%} within {radius} of one; held-out data {real_quality:.1%}), nearest-mode "
            "counts max/min {mode_balance:.2f} (read as balanced up to 1.5), the loss over the last half of "
            "training rises by {loss_late_rise:.3f} at most between windows (0.05 allowed; one loss, no "
            "adversary); sliced W2 {ddpm_sw:.3f} vs held-out data {real_sw:.3f} and a fitted Gaussian "
            "{gaussian_sw:.3f}. The GAN side of the comparison is measured by the gan/wgan labs",
        ),
    ],
    budget_s=60,
    threads=1,
)
def two_d(run, cfg: TwoDConfig) -> dict:
    """DDPM with an MLP denoiser on eight Gaussians: sliced W2 to held-out data and mode coverage."""
    torch.manual_seed(run.seed)
    g = torch.Generator().manual_seed(run.seed)
    x_train, reference, real = eight_gaussian_sets(cfg.n_train, cfg.n_eval, run.seed)
    mean, std = x_train.mean(0), x_train.std(0)
    model = DDPM(TimeMLP(2, cfg.hidden, cfg.depth), cfg.T, cfg.schedule).to(run.device)
    z_train = ((x_train - mean) / std).to(run.device)
    curve = train(run, model, lambda xb: model.loss(xb, g), z_train, steps=cfg.steps, batch_size=cfg.batch_size,
                  lr=cfg.lr, generator=g)
    samples = model.diffusion.sample(model, (cfg.n_eval, 2), g).cpu() * std + mean
    modes = eight_gaussians_modes()
    metrics = {"steps": cfg.steps, "radius": cfg.radius, "params": n_params(model)}
    metrics |= two_d_report({"ddpm": samples, "real": real, "gaussian": gaussian_fit(x_train, cfg.n_eval, g)},
                            reference, modes, cfg.radius, run.seed)
    metrics["sw_vs_gaussian"] = metrics["ddpm_sw"] / metrics["gaussian_sw"]
    metrics["mode_balance"] = _mode_balance(samples, modes)
    late = curve[len(curve) // 2:]
    metrics["loss_late_rise"] = max(b - a for a, b in zip(late, late[1:])) if len(late) > 1 else 0.0
    metrics["final_loss"] = curve[-1]

    with run.figure("two_d", ncols=2) as (fig, (ax_s, ax_l)):
        ax_s.scatter(*reference.T, s=2, alpha=0.3, c="grey", label="held-out data")
        ax_s.scatter(*samples.T, s=2, alpha=0.5, c="C3", label="DDPM samples")
        ax_s.scatter(*modes.T, marker="x", c="k")
        ax_s.set(aspect="equal", title=f"{metrics['ddpm_modes']}/8 modes, SW {metrics['ddpm_sw']:.3f}")
        ax_s.legend(markerscale=4, fontsize=7)
        ax_l.plot(torch.linspace(0, cfg.steps, len(curve)), curve)
        ax_l.set(xlabel="step", ylabel="noise-prediction MSE", title="training loss")
    return metrics


# --- ddpm/mnist: digits judged by LeNet-5 ---------------------------------------------------------------

@dataclass
class MnistConfig:
    side: int = 14  # the U-Net works at 14x14 (2x2 average pooling); samples are upsampled to 28 for the judge
    base: int = 16
    T: int = 1000
    steps: int = 1200
    batch_size: int = 64
    lr: float = 2e-3
    sample_steps: int = 50  # ancestral steps, evenly respaced over the T trained steps
    n_samples: int = 500
    judge_epochs: int = 8


@lab(
    "ddpm/mnist",
    card="ddpm",
    config=MnistConfig,
    scales={"quick": {"steps": 20, "n_samples": 100, "sample_steps": 5, "base": 8, "judge_epochs": 1},
            "default": {}, "full": {"side": 28, "base": 64, "steps": 30000, "sample_steps": 1000}},
    goals=[Goal("fd_vs_baseline", "<=", 0.5), Goal("ddpm_classes", ">=", 9)],
    budget_s=90,
    threads=None,
)
def mnist(run, cfg: MnistConfig) -> dict:
    """DDPM with a small U-Net on the MNIST subset: the digit judge's Frechet distance and confident share."""
    torch.manual_seed(run.seed)
    g = torch.Generator().manual_seed(run.seed)
    data = mnist_subset(flatten=False)
    judge = digit_judge(run, cfg.judge_epochs)
    model = fit_ddpm(run, data.x_train, steps=cfg.steps, batch_size=cfg.batch_size, generator=g, side=cfg.side,
                     base=cfg.base, lr=cfg.lr, T=cfg.T)
    start = time.perf_counter()
    samples = model.sample(cfg.n_samples, g, steps=cfg.sample_steps)
    seconds = time.perf_counter() - start
    r = judge.evaluate(samples, data.x_train)
    metrics = {"ddpm_fd": r["fd"], "ddpm_confident": r["confident_share"], "ddpm_classes": r["class_coverage"],
               "params": n_params(model), "sample_ms": 1000 * seconds / cfg.n_samples, "final_loss": model.curve[-1]}
    metrics |= reference_numbers(run, judge, n=cfg.n_samples)
    metrics["fd_vs_baseline"] = metrics["ddpm_fd"] / metrics["baseline_fd"]
    with run.figure("ddpm_mnist_samples", size=(6, 6)) as (fig, ax):
        ax.imshow(samples[:64].reshape(8, 8, 28, 28).permute(0, 2, 1, 3).reshape(8 * 28, 8 * 28), cmap="gray")
        ax.set(title=f"DDPM samples ({cfg.side}x{cfg.side}, {cfg.sample_steps} steps), FD {r['fd']:.1f}")
        ax.axis("off")
    return metrics
