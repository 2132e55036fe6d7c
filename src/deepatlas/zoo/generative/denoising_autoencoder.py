"""Denoising autoencoder: corrupt the input, train the network to give back the clean original.

An autoencoder that sees a corrupted x~ (pixels masked, Gaussian noise added) but must output x cannot
learn the identity, so it has to learn where the data lie. With Gaussian noise of scale sigma and squared
error, the best denoiser is the posterior mean E[x | x~], and Tweedie's formula turns it into the score of
the noised density: the denoiser's residual r(x~) - x~, divided by sigma^2, estimates grad log p_sigma(x~)
(Vincent 2011), the quantity that score-based and diffusion models learn.

    \\mathcal{L} = \\mathbb{E}_{x,\\ \\tilde x \\sim q(\\tilde x | x)} \\lVert x - r(\\tilde x) \\rVert^2,\\qquad
    r^*(\\tilde x) = \\tilde x + \\sigma^2 \\nabla_{\\tilde x} \\log p_\\sigma(\\tilde x)

Vincent, Larochelle, Bengio & Manzagol, "Extracting and Composing Robust Features with Denoising
Autoencoders", ICML 2008; Vincent, "A Connection Between Score Matching and Denoising Autoencoders",
Neural Computation 2011.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deepatlas.data.toy2d import eight_gaussians, eight_gaussians_modes
from deepatlas.labs import Goal, lab
from deepatlas.nn.losses import logsumexp, mse_loss
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model
from deepatlas.zoo.generative.autoencoder import Autoencoder
from deepatlas.zoo.generative.vae import batches, randn_like

CORRUPTIONS = ("gaussian", "mask")


def corrupt(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """q(x~ | x): "gaussian" adds N(0, level^2) noise; "mask" zeroes each entry with probability `level`."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {', '.join(CORRUPTIONS)}")
    if level < 0 or (kind == "mask" and level >= 1):
        raise ValueError(f"corruption level must be >= 0 (and < 1 for masking), got {level}")
    if kind == "gaussian":
        # \tilde x = x + \sigma \epsilon
        return x + level * randn_like(x, generator)
    keep = torch.rand(x.shape, generator=generator, device=generator.device if generator else x.device)
    return x * (keep.to(x.device) >= level).to(x.dtype)


@register_model("denoising-autoencoder", card="denoising-autoencoder", example=lambda: (torch.rand(4, 784),))
def denoising_autoencoder(sizes: list[int] | None = None, **kw) -> Autoencoder:
    """The network is a plain autoencoder; what makes it denoising is the objective (see fit_denoiser)."""
    return Autoencoder(sizes or [784, 256, 64], sigmoid_output=True, **kw)


def fit_denoiser(run, model: Autoencoder, x: torch.Tensor, *, kind: str, level: float, steps: int,
                 batch_size: int, lr: float, generator: torch.Generator) -> Autoencoder:
    """Adam (cosine-decayed lr) on || x - r(corrupt(x)) ||^2 with a fresh corruption at every step."""
    opt = Adam(model.parameters(), lr=lr)
    for step, idx in enumerate(run.progress(batches(len(x), batch_size, steps, generator), total=steps, desc="dae")):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        xb = x[idx.to(x.device)]
        # \mathcal{L} = \lVert x - r(\tilde x) \rVert^2,\ \tilde x \sim q(\tilde x | x)
        loss = mse_loss(model(corrupt(xb, kind, level, generator)), xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            run.log(step, loss=loss)
    return model.eval()


def mixture_score(x: torch.Tensor, means: torch.Tensor, std: float) -> torch.Tensor:
    """grad_x log p(x) for an equal-weight mixture of isotropic Gaussians N(means_k, std^2 I): (N, D)."""
    d2 = torch.cdist(x, means).square()  # (N, K)
    # w_k(x) = \mathrm{softmax}_k(-\lVert x - m_k \rVert^2 / 2 s^2)
    w = torch.softmax(-d2 / (2 * std**2), dim=1)
    # \nabla \log p(x) = \sum_k w_k(x) (m_k - x) / s^2
    return (w @ means - x) / std**2


def mixture_log_prob(x: torch.Tensor, means: torch.Tensor, std: float) -> torch.Tensor:
    """log p(x) of the same mixture, (N,)."""
    d2 = torch.cdist(x, means).square()  # (N, K)
    dim = x.shape[1]
    return logsumexp(-d2 / (2 * std**2), dim=1) - math.log(len(means)) - dim / 2 * math.log(2 * math.pi * std**2)


# --- denoising-autoencoder/score: the denoiser's residual is the score of the noised data -----------------

@dataclass
class ScoreConfig:
    sigma: float = 0.3  # Gaussian corruption
    data_std: float = 0.2  # of each of the eight Gaussians
    hidden: int = 128
    steps: int = 3000
    batch_size: int = 256
    lr: float = 3e-3
    n_train: int = 5000
    n_test: int = 2000


@lab(
    "denoising-autoencoder/score",
    card="denoising-autoencoder",
    config=ScoreConfig,
    scales={
        "quick": {"steps": 100, "n_train": 500, "n_test": 200, "hidden": 32},
        "default": {},
        "full": {"steps": 20_000, "hidden": 256},
    },
    goals=[Goal("score_cosine", ">=", 0.9), Goal("score_rel_error", "<", 0.5)],
    budget_s=30,
    threads=1,
)
def score(run, cfg: ScoreConfig) -> dict:
    """A denoising autoencoder on eight Gaussians: (r(x~) - x~) / sigma^2 against the exact score of p_sigma."""
    x = eight_gaussians(cfg.n_train, seed=run.seed, std=cfg.data_std).to(run.device)  # (N, 2)
    g = torch.Generator().manual_seed(run.seed)
    model = Autoencoder([2, cfg.hidden, cfg.hidden], activation="relu", generator=g).to(run.device)
    fit_denoiser(run, model, x, kind="gaussian", level=cfg.sigma, steps=cfg.steps, batch_size=cfg.batch_size,
                 lr=cfg.lr, generator=g)

    modes = eight_gaussians_modes().to(run.device)
    x_test = eight_gaussians(cfg.n_test, seed=run.seed + 10_000, std=cfg.data_std).to(run.device)
    x_tilde = corrupt(x_test, "gaussian", cfg.sigma, g)  # (M, 2) draws from p_sigma
    noised_std = math.sqrt(cfg.data_std**2 + cfg.sigma**2)  # p_sigma is the mixture with widened components
    with torch.no_grad():
        # s(\tilde x) = (r(\tilde x) - \tilde x) / \sigma^2
        estimate = (model(x_tilde) - x_tilde) / cfg.sigma**2
    exact = mixture_score(x_tilde, modes, noised_std)
    # the trivial baseline: the score of one Gaussian fitted to the noised data
    mean, cov = x_tilde.mean(0), torch.cov(x_tilde.T)
    gaussian = (mean - x_tilde) @ torch.linalg.inv(cov)

    def cosine(a: torch.Tensor) -> float:
        return torch.nn.functional.cosine_similarity(a, exact, dim=1).mean().item()

    def rel_error(a: torch.Tensor) -> float:
        return ((a - exact).norm(dim=1).square().mean() / exact.norm(dim=1).square().mean()).sqrt().item()

    metrics = {"score_cosine": cosine(estimate), "score_rel_error": rel_error(estimate),
               "gaussian_cosine": cosine(gaussian), "gaussian_rel_error": rel_error(gaussian),
               "sigma": cfg.sigma}
    _plot_score(run, x_tilde, estimate, exact, modes, noised_std)
    return metrics


def _plot_score(run, x_tilde, estimate, exact, modes, noised_std) -> None:
    lim = 3.2
    g0, g1 = torch.meshgrid(torch.linspace(-lim, lim, 120), torch.linspace(-lim, lim, 120), indexing="xy")
    density = mixture_log_prob(torch.stack([g0.ravel(), g1.ravel()], 1), modes.cpu(), noised_std).exp()
    pts, est, ex = x_tilde[:150].cpu(), estimate[:150].cpu(), exact[:150].cpu()
    with run.figure("score", ncols=2, size=(10, 4.6)) as (fig, axes):
        for ax, field, title in ((axes[0], ex, "exact score of p_sigma"),
                                 (axes[1], est, "denoiser: (r(x~) - x~) / sigma^2")):
            ax.contourf(g0, g1, density.view(g0.shape), levels=20, cmap="Greys")
            ax.quiver(pts[:, 0], pts[:, 1], field[:, 0], field[:, 1], color="tab:red", angles="xy", scale=150)
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=title)
