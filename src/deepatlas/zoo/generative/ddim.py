"""DDIM: sample a trained DDPM along a short, deterministic path.

The DDPM loss only constrains the marginals q(x_t | x_0), so any process with the same marginals
fits the same network. DDIM picks a family of non-Markovian ones indexed by eta: each update
estimates x_0 from the predicted noise and re-noises it to an earlier step s. With eta = 1 and every
step it is DDPM's ancestral sampler; with eta = 0 it is deterministic (x_T fixes the sample), and
the jump from t to s may skip many steps, so 50 or 10 network calls replace 1000.

    \\hat x_0 = \\frac{x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon_\\theta(x_t, t)}{\\sqrt{\\bar\\alpha_t}},\\quad
    x_s = \\sqrt{\\bar\\alpha_s}\\,\\hat x_0 + \\sqrt{1-\\bar\\alpha_s-\\sigma_t^2}\\,\\epsilon_\\theta(x_t, t) + \\sigma_t z,\\quad
    \\sigma_t = \\eta\\sqrt{\\tfrac{1-\\bar\\alpha_s}{1-\\bar\\alpha_t}}\\sqrt{1-\\tfrac{\\bar\\alpha_t}{\\bar\\alpha_s}}

Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021 (arXiv 2010.02502).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from deepatlas.data.toy2d import eight_gaussians_modes, gaussian_fit
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.denoisers import TimeMLP
from deepatlas.zoo.generative.ddpm import DDPM, Diffusion, EpsFn, _at, eight_gaussian_sets, randn, train, two_d_report


def ddim_step(diffusion: Diffusion, eps_fn: EpsFn, x_t: torch.Tensor, t: int, s: int, eta: float = 0.0,
              z: torch.Tensor | None = None, clip: float | None = None) -> torch.Tensor:
    """x_t -> x_s (s < t; s = -1 returns \\hat x_0). `z` is needed when eta > 0; `clip` bounds \\hat x_0."""
    tt = torch.full((len(x_t),), t, dtype=torch.long, device=x_t.device)
    ab_t, ab_s = _at(diffusion.alpha_bar, tt, x_t), diffusion.alpha_bar_at(tt - t + s, x_t)
    eps = eps_fn(x_t, tt)
    x0 = diffusion.predict_x0(x_t, tt, eps)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
        # the noise that the clipped \hat x_0 implies: \epsilon = (x_t - \sqrt{\bar\alpha_t}\hat x_0) / \sqrt{1-\bar\alpha_t}
        eps = (x_t - ab_t.sqrt() * x0) / (1 - ab_t).sqrt()
    # \sigma_t = \eta \sqrt{(1-\bar\alpha_s)/(1-\bar\alpha_t)} \sqrt{1-\bar\alpha_t/\bar\alpha_s}
    sigma = eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)).sqrt()
    # x_s = \sqrt{\bar\alpha_s}\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma_t^2}\,\hat\epsilon + \sigma_t z
    x_s = ab_s.sqrt() * x0 + (1 - ab_s - sigma**2).clamp_min(0).sqrt() * eps
    if eta > 0:
        if z is None:
            raise ValueError("a stochastic DDIM step (eta > 0) needs the noise z")
        x_s = x_s + sigma * z
    return x_s


@torch.no_grad()
def ddim_sample(diffusion: Diffusion, eps_fn: EpsFn, shape: tuple[int, ...], generator: torch.Generator,
                steps: int = 50, eta: float = 0.0, clip: float | None = None,
                x_T: torch.Tensor | None = None) -> torch.Tensor:
    """DDIM from x_T ~ N(0, I) along `diffusion.timesteps(steps)`: `steps` network calls. eta = 0 draws no noise
    after x_T; eta = 1 draws it in the same order as `Diffusion.sample`, which it then reproduces."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    x = randn(shape, generator) if x_T is None else x_T
    seq = diffusion.timesteps(steps)
    for t, s in zip(seq, seq[1:] + [-1]):
        z = randn(shape, generator).to(x.device) if eta > 0 else None
        x = ddim_step(diffusion, eps_fn, x, t, s, eta, z, clip)
    return x


# --- ddim/speed-quality: one trained model, 1000 ancestral steps against 50 and 10 DDIM steps ------------

@dataclass
class SpeedConfig:
    n_train: int = 4000
    n_eval: int = 2000
    T: int = 1000
    hidden: int = 128
    depth: int = 3
    steps: int = 3000
    batch_size: int = 256
    lr: float = 2e-3
    radius: float = 0.6
    repeats: int = 2  # each sampler is timed this many times; the fastest run counts (the machine is shared)
    tolerance: float = 0.1  # "almost no loss": SW gap to DDPM at most this share of (Gaussian SW - held-out SW)


class CountingEps:
    """Wraps eps_theta and counts its calls."""

    def __init__(self, fn: EpsFn):
        self.fn, self.calls = fn, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fn(x, t)


def _ddim_claim(m: dict) -> bool:
    # "1000 down to 50 or 10 steps, 20-100x faster": 50 steps ~20x, 10 steps ~100x. Supported if for 50 or 10
    # steps the wall clock realises at least 80% of the step ratio and the quality loss stays within tolerance
    return any(m[f"speedup_{k}"] >= 0.8 * m["T"] / k and m[f"gap_{k}"] <= m["tolerance"] for k in (50, 10))


@lab(
    "ddim/speed-quality",
    card="ddim",
    config=SpeedConfig,
    scales={"quick": {"steps": 100, "n_train": 1000, "n_eval": 300, "repeats": 1}, "default": {},
            "full": {"steps": 20000, "hidden": 256, "n_eval": 10000}},
    goals=[Goal("speedup_50", ">=", 10), Goal("ddim50_modes", ">=", 8)],
    claims=[
        Check(
            "ddim-speedup",
            _ddim_claim,
            "one MLP DDPM (T = {T}) on eight Gaussians, {n_eval} samples each: DDPM ancestral {ddpm_s:.3f} s "
            "(sliced W2 {ddpm_sw:.3f}), DDIM eta=0 50 steps {ddim50_s:.3f} s ({speedup_50:.1f}x faster, SW "
            "{ddim50_sw:.3f}), 10 steps {ddim10_s:.4f} s ({speedup_10:.1f}x, SW {ddim10_sw:.3f}); the quality gap "
            "to DDPM as a share of the gap between a fitted Gaussian ({gaussian_sw:.3f}) and held-out data "
            "({real_sw:.3f}): {gap_50:.3f} at 50 steps, {gap_10:.3f} at 10; supported if 50 or 10 steps realise "
            "at least 80% of their nominal 20x or 100x speed-up with a gap of at most {tolerance}",
        ),
        Check(
            "ddpm-1000-steps",
            lambda m: m["ddpm_calls"] == 1000 and m["ddpm_s"] >= 10 * m["ddim50_s"],
            "the ancestral sampler called the denoiser {ddpm_calls} times for T = {T} (DDIM: {ddim50_calls} and "
            "{ddim10_calls}); {ddpm_s:.3f} s for {n_eval} samples against {ddim50_s:.3f} s with 50 DDIM steps; "
            "'slow' read as at least 10x the 50-step time",
        ),
    ],
    budget_s=60,
    threads=1,
)
def speed_quality(run, cfg: SpeedConfig) -> dict:
    """DDPM with T = 1000 ancestral steps against DDIM with 50 and 10 steps: wall time and sliced W2."""
    torch.manual_seed(run.seed)
    g = torch.Generator().manual_seed(run.seed)
    x_train, reference, real = eight_gaussian_sets(cfg.n_train, cfg.n_eval, run.seed)
    mean, std = x_train.mean(0), x_train.std(0)
    model = DDPM(TimeMLP(2, cfg.hidden, cfg.depth), cfg.T).to(run.device)
    train(run, model, lambda xb: model.loss(xb, g), ((x_train - mean) / std).to(run.device), steps=cfg.steps,
          batch_size=cfg.batch_size, lr=cfg.lr, generator=g)

    samplers = {
        "ddpm": lambda eps, gen: model.diffusion.sample(eps, (cfg.n_eval, 2), gen),
        "ddim50": lambda eps, gen: ddim_sample(model.diffusion, eps, (cfg.n_eval, 2), gen, steps=50),
        "ddim10": lambda eps, gen: ddim_sample(model.diffusion, eps, (cfg.n_eval, 2), gen, steps=10),
    }
    samples, metrics = {}, {"T": cfg.T, "n_eval": cfg.n_eval, "tolerance": cfg.tolerance}
    for name, sampler in samplers.items():
        times = []
        for _ in range(cfg.repeats):
            eps = CountingEps(model)
            gen = torch.Generator().manual_seed(run.seed + 7)  # every sampler starts from the same x_T
            start = time.perf_counter()
            x = sampler(eps, gen)
            times.append(time.perf_counter() - start)
        samples[name] = x.cpu() * std + mean
        metrics[f"{name}_s"], metrics[f"{name}_calls"] = min(times), eps.calls
    samples["real"], samples["gaussian"] = real, gaussian_fit(x_train, cfg.n_eval, g)
    metrics |= two_d_report(samples, reference, eight_gaussians_modes(), cfg.radius, run.seed)
    span = metrics["gaussian_sw"] - metrics["real_sw"]
    for k in (50, 10):
        metrics[f"speedup_{k}"] = metrics["ddpm_s"] / metrics[f"ddim{k}_s"]
        metrics[f"gap_{k}"] = (metrics[f"ddim{k}_sw"] - metrics["ddpm_sw"]) / span

    with run.figure("ddim_speed_quality", ncols=3, size=(12, 4)) as (fig, axes):
        for ax, name in zip(axes, ("ddpm", "ddim50", "ddim10")):
            ax.scatter(*reference.T, s=2, alpha=0.2, c="grey")
            ax.scatter(*samples[name].T, s=2, alpha=0.5, c="C3")
            ax.set(aspect="equal", title=f"{name}: {metrics[name + '_calls']} calls, {metrics[name + '_s']:.2f} s, "
                                         f"SW {metrics[name + '_sw']:.3f}")
    return metrics
