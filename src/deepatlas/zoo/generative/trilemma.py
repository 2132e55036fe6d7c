"""GAN, VAE and diffusion side by side: sample quality, diversity and sampling speed on the same digits.

The three families trade the same three goods against each other (the "generative learning trilemma"):
a GAN draws a sample in one generator pass but may drop modes; a VAE also decodes in one pass and
covers the data, but its pixel-wise likelihood averages out detail; a diffusion model covers the data
with sharp samples at the price of running its denoiser once per sampling step. This lab trains one
of each on the MNIST subset and measures all three goods with the same instruments.

    \\text{sharpness}(x) = \\tfrac{1}{HW} \\sum_{i,j} (x_{i+1,j} - x_{i,j})^2 + (x_{i,j+1} - x_{i,j})^2

Xiao, Kreis & Vahdat, "Tackling the Generative Learning Trilemma with Denoising Diffusion GANs", ICLR 2022.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.zoo.generative.dcgan import fit_dcgan, image_grid
from deepatlas.zoo.generative.ddpm import fit_ddpm
from deepatlas.zoo.generative.judge import digit_judge, reference_numbers
from deepatlas.zoo.generative.vae import fit_vae

MODELS = ("gan", "vae", "ddpm")


def sharpness(x: torch.Tensor) -> float:
    """Mean squared difference between neighbouring pixels of images (N, 1, H, W): high for crisp strokes,
    low for blurred ones."""
    # \frac{1}{HW} \sum (x_{i+1,j} - x_{i,j})^2 + (x_{i,j+1} - x_{i,j})^2
    return (x.diff(dim=2).square().mean() + x.diff(dim=3).square().mean()).item()


def class_entropy(labels: torch.Tensor) -> float:
    """Entropy of the judged class histogram over log 10: 1 when the ten digits are equally frequent."""
    p = torch.bincount(labels, minlength=10).double() / len(labels)
    # H = -\sum_k p_k \log p_k / \log 10
    return -(p[p > 0] * p[p > 0].log()).sum().item() / math.log(10) + 0.0  # + 0.0: no "-0" for one class


def time_per_sample(draw, n: int) -> float:
    """Milliseconds per sample of draw(n), one batch of n."""
    start = time.perf_counter()
    draw(n)
    return 1000 * (time.perf_counter() - start) / n


@dataclass
class VsGanVaeConfig:
    gan_steps: int = 450  # GAN : VAE : DDPM steps in the proportion 2 : 5 : 4
    vae_steps: int = 1125
    ddpm_steps: int = 900
    batch_size: int = 32
    ddpm_sample_steps: int = 50  # ancestral steps respaced over the T = 1000 trained ones, for the judged samples
    n_samples: int = 300
    n_timed: int = 16  # samples per model in the timing run (one batch); DDPM is also timed at all 1000 steps
    judge_epochs: int = 8


def _evidence(what: str) -> str:
    return what + (" FD to the training digits (LeNet-5 features): GAN {gan_fd:.1f}, VAE {vae_fd:.1f}, DDPM "
                   "{ddpm_fd:.1f} (real test digits {real_fd:.1f}, independent pixels {baseline_fd:.1f}); class "
                   "entropy GAN {gan_entropy:.3f}, VAE {vae_entropy:.3f}, DDPM {ddpm_entropy:.3f}; sharpness against "
                   "real digits GAN {gan_sharpness:.2f}, VAE {vae_sharpness:.2f}, DDPM {ddpm_sharpness:.2f}; ms per "
                   "sample GAN {gan_ms:.3f}, VAE {vae_ms:.3f}, DDPM {ddpm_ms:.1f} at {ddpm_sample_steps} steps and "
                   "{ddpm_full_ms:.1f} at 1000.")


@lab(
    "ddpm/vs-gan-vae",
    card="ddpm",
    config=VsGanVaeConfig,
    scales={
        "quick": {"gan_steps": 10, "vae_steps": 10, "ddpm_steps": 10, "n_samples": 60, "n_timed": 4,
                  "ddpm_sample_steps": 5, "judge_epochs": 1},
        "default": {},
        "full": {"gan_steps": 6000, "vae_steps": 15000, "ddpm_steps": 20000, "batch_size": 64, "n_samples": 2000,
                 "n_timed": 32},
    },
    goals=[Goal("ddpm_fd_vs_baseline", "<=", 0.5)],
    claims=[
        Check("ddpm-quality-beats-gan",
              lambda m: m["ddpm_fd"] < min(m["gan_fd"], m["vae_fd"])
              and m["ddpm_entropy"] >= max(m["gan_entropy"], m["vae_entropy"])
              and m["ddpm_ms"] > max(m["gan_ms"], m["vae_ms"]),
              _evidence("Rule: supported when DDPM has the lowest FD, the highest class entropy and the slowest "
                        "sampling.")),
        Check("vae-stable-but-blurry",
              lambda m: m["vae_sharpness"] < m["gan_sharpness"],
              _evidence("Rule: supported when the VAE's samples (Bernoulli means) are less sharp than the GAN's; "
                        "training stability is judged in wgan-gp/eight-gaussians, not here.")),
        Check("gan-fast-sampling",
              lambda m: m["gan_ms"] < min(m["vae_ms"], m["ddpm_ms"]),
              _evidence("Rule: supported when the GAN draws a sample faster than both others; the stability half "
                        "of the claim is gan-mode-collapse's (wgan-gp/eight-gaussians).")),
    ],
    budget_s=90,
    threads=None,
)
def vs_gan_vae(run, cfg: VsGanVaeConfig) -> dict:
    """A DCGAN, a VAE and a DDPM on the MNIST subset, judged by LeNet-5 on quality, diversity, sharpness and speed."""
    torch.manual_seed(run.seed)
    g = torch.Generator().manual_seed(run.seed)
    x = mnist_subset(flatten=False).x_train
    judge = digit_judge(run, cfg.judge_epochs)
    models = {
        "gan": fit_dcgan(run, x, steps=cfg.gan_steps, batch_size=cfg.batch_size, generator=g, name="gan"),
        "vae": fit_vae(run, x, steps=cfg.vae_steps, batch_size=cfg.batch_size, generator=g, name="vae"),
        "ddpm": fit_ddpm(run, x, steps=cfg.ddpm_steps, batch_size=cfg.batch_size, generator=g, name="ddpm_loss"),
    }
    draw = {"gan": lambda n: models["gan"].sample(n, g), "vae": lambda n: models["vae"].sample(n, g),
            "ddpm": lambda n: models["ddpm"].sample(n, g, steps=cfg.ddpm_sample_steps)}
    metrics = reference_numbers(run, judge, n=cfg.n_samples)
    real_sharpness = sharpness(mnist_subset(flatten=False).x_test[:cfg.n_samples])
    samples = {}
    with torch.no_grad():
        for name in MODELS:
            samples[name] = draw[name](cfg.n_samples).cpu()
            r = judge.evaluate(samples[name], x)
            metrics |= {f"{name}_fd": r["fd"], f"{name}_confident": r["confident_share"],
                        f"{name}_classes": r["class_coverage"],
                        f"{name}_entropy": class_entropy(judge.predict(samples[name])),
                        f"{name}_sharpness": sharpness(samples[name]) / real_sharpness,
                        f"{name}_ms": time_per_sample(draw[name], cfg.n_timed)}
        metrics["ddpm_full_ms"] = time_per_sample(lambda n: models["ddpm"].sample(n, g, steps=1000), cfg.n_timed)
    metrics |= {"ddpm_fd_vs_baseline": metrics["ddpm_fd"] / metrics["baseline_fd"],
                "ddpm_sample_steps": cfg.ddpm_sample_steps}

    with run.figure("gan_vae_ddpm_samples", ncols=3, size=(12, 4.4)) as (fig, axes):
        for ax, name in zip(axes, MODELS):
            image_grid(ax, samples[name][:36], 6, f"{name.upper()}: FD {metrics[f'{name}_fd']:.1f}, "
                       f"{metrics[f'{name}_ms']:.2g} ms/sample")
    return metrics
