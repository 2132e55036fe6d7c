"""WGAN-GP: keep the Wasserstein critic 1-Lipschitz with a gradient penalty instead of weight clipping.

Clipping the weights pushes the critic towards very simple functions, or makes its gradients explode or
vanish when the bound c is off. The optimal critic has gradient norm 1 almost everywhere on straight
lines between coupled real and generated points, so WGAN-GP samples points on random such lines and
penalises the critic's gradient norm there for leaving 1 (a soft, two-sided constraint, lambda = 10).
Adam (lr 1e-4, betas 0.5 and 0.9), five critic steps per generator step, no batch norm in the critic.

    \\mathcal{L}_D = \\mathbb{E}_{\\tilde x\\sim p_g}[D(\\tilde x)] - \\mathbb{E}_{x\\sim p_r}[D(x)]
                   + \\lambda\\, \\mathbb{E}_{\\hat x}\\big[(\\lVert \\nabla_{\\hat x} D(\\hat x)\\rVert_2 - 1)^2\\big],
    \\quad \\hat x = \\varepsilon x + (1 - \\varepsilon)\\tilde x,\\; \\varepsilon \\sim U[0, 1]

Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved Training of Wasserstein GANs", NeurIPS 2017
(arXiv 1704.00028).

The lab here is issue 7's first: GAN, WGAN and WGAN-GP with the same MLPs on eight 2-D Gaussians. The
generator keeps the paper's lr 1e-4; every critic and discriminator learns ten times faster (1e-3, a two
time-scale update rule), so that it stays near its optimum, as the Wasserstein argument assumes, within
1000 generator steps instead of the paper's 100,000. With both at 1e-3, one WGAN-GP run in three
oscillated and ended on two or three modes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.toy2d import eight_gaussians_modes, gaussian_fit, toy_split
from deepatlas.labs import Check, Goal, lab
from deepatlas.zoo.generative.gan import (
    NON_SATURATING,
    MLPDiscriminator,
    MLPGenerator,
    Objective,
    gaussian_noise,
    quality_2d,
    sampler,
    train_step,
)
from deepatlas.zoo.generative.wgan import critic_loss, generator_loss, wgan_objective


def gradient_penalty(critic: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] at random points x_hat between paired real and fake samples (B, ...)."""
    if x_real.shape != x_fake.shape:
        raise ValueError(f"real and fake batches must have the same shape, got {tuple(x_real.shape)} "
                         f"and {tuple(x_fake.shape)}")
    eps = torch.rand(len(x_real), *[1] * (x_real.dim() - 1), generator=generator).to(x_real)  # (B, 1, ...)
    # \hat x = \varepsilon x + (1 - \varepsilon) \tilde x
    x_hat = (eps * x_real + (1 - eps) * x_fake.detach()).requires_grad_(True)
    # \nabla_{\hat x} D(\hat x), kept in the graph so that the penalty trains D (a second-order gradient)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    # (\lVert \nabla_{\hat x} D(\hat x) \rVert_2 - 1)^2
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def wgan_gp_objective(lam: float = 10.0, n_critic: int = 5, generator: torch.Generator | None = None) -> Objective:
    """WGAN-GP's rule: the Wasserstein critic loss plus lam times the gradient penalty; no clipping."""
    if lam < 0:
        raise ValueError(f"the penalty weight lambda must be >= 0, got {lam}")
    if n_critic < 1:
        raise ValueError(f"n_critic must be at least 1, got {n_critic}")

    def d_loss(critic, x_real, x_fake):
        # \mathcal{L}_D = \mathbb{E}[D(\tilde x)] - \mathbb{E}[D(x)] + \lambda\, \mathrm{GP}
        return critic_loss(critic(x_real), critic(x_fake)) + lam * gradient_penalty(critic, x_real, x_fake, generator)

    return Objective("WGAN-GP", d_loss, generator_loss, n_critic=n_critic)


# --- wgan-gp/eight-gaussians: GAN, WGAN and WGAN-GP with the same networks -------------------------------

@dataclass
class EightGaussiansConfig:
    n_train: int = 20_000
    n_eval: int = 2000  # samples per model for the metrics, and held-out points to compare them with
    z_dim: int = 2
    hidden: int = 64
    depth: int = 3
    g_steps: int = 1000  # generator steps of each model; WGAN and WGAN-GP take n_critic critic steps per G step
    n_critic: int = 5
    batch_size: int = 128
    lr_g: float = 1e-4  # every generator; GAN and WGAN-GP with Adam (0.5, 0.9), WGAN with RMSProp as its paper says
    lr_d: float = 1e-3  # every discriminator / critic: ten times the generator's
    clip: float = 0.01
    lam: float = 10.0
    restarts: int = 3  # independent runs of each model, from different initialisations


def _optimizer(kind: str, params, lr: float) -> torch.optim.Optimizer:
    if kind == "WGAN":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.9))


@lab(
    "wgan-gp/eight-gaussians",
    card="wgan-gp",
    config=EightGaussiansConfig,
    scales={
        "quick": {"n_train": 2000, "n_eval": 500, "hidden": 32, "g_steps": 40, "restarts": 1},
        "default": {},
        "full": {"hidden": 512, "batch_size": 256, "g_steps": 10_000, "lr_d": 1e-4, "restarts": 5},
    },
    goals=[Goal("wgan_gp_modes_min", ">=", 8)],
    claims=[
        Check(
            "gan-mode-collapse",
            lambda m: m["gan_collapsed_runs"] >= 1,
            "the non-saturating GAN missed at least one of the 8 modes in {gan_collapsed_runs} of {restarts} "
            "runs (modes covered: mean {gan_modes:.1f}, worst {gan_modes_min}; sliced W2 {gan_sw:.3f} "
            "± {gan_sw_std:.3f}), against {wgan_gp_collapsed_runs} of {restarts} for WGAN-GP with the same networks",
        ),
        Check(
            "wgan-stable-gradients",
            lambda m: m["wgan_collapsed_runs"] < m["gan_collapsed_runs"],
            "runs that missed a mode: WGAN (clipping at {clip}) {wgan_collapsed_runs} of {restarts}, GAN "
            "{gan_collapsed_runs} of {restarts}; modes covered WGAN {wgan_modes:.1f} vs GAN {gan_modes:.1f}, "
            "sliced W2 {wgan_sw:.3f} ± {wgan_sw_std:.3f} vs {gan_sw:.3f} ± {gan_sw_std:.3f}, high-quality share "
            "{wgan_hq:.2f} vs {gan_hq:.2f} after {g_steps} generator steps",
        ),
        Check(
            "wgan-gp-penalty-stability",
            lambda m: m["wgan_gp_modes_min"] == 8 and m["wgan_gp_modes"] >= m["wgan_modes"]
            and m["wgan_gp_sw"] <= m["wgan_sw"],
            "WGAN-GP covered 8/8 modes in its worst of {restarts} runs: {wgan_gp_modes_min} (WGAN with clipping: "
            "{wgan_modes_min}); mean modes {wgan_gp_modes:.1f} vs {wgan_modes:.1f}, sliced W2 {wgan_gp_sw:.3f} vs "
            "{wgan_sw:.3f} (held-out real data {real_sw:.3f}, fitted Gaussian {gauss_sw:.3f}), high-quality share "
            "{wgan_gp_hq:.2f} vs {wgan_hq:.2f}",
        ),
    ],
    budget_s=90,
    threads=1,
)
def eight_gaussians(run, cfg: EightGaussiansConfig) -> dict:
    """GAN, WGAN and WGAN-GP on eight 2-D Gaussians: modes covered, sample quality, stability over restarts."""
    data = toy_split("eight_gaussians", cfg.n_train, 2 * cfg.n_eval, seed=run.seed)
    x = data.x_train.to(run.device)
    x_ref, x_real = data.x_test[:cfg.n_eval].to(run.device), data.x_test[cfg.n_eval:].to(run.device)
    g = torch.Generator().manual_seed(run.seed)
    objectives = {
        "gan": NON_SATURATING,
        "wgan": wgan_objective(cfg.clip, cfg.n_critic),
        "wgan_gp": wgan_gp_objective(cfg.lam, cfg.n_critic, generator=g),
    }
    results = {name: [] for name in objectives}
    curves, samples = {}, {}
    for r, name in run.progress([(r, n) for r in range(cfg.restarts) for n in objectives], desc="GAN / WGAN / WGAN-GP"):
        objective = objectives[name]
        G = MLPGenerator(cfg.z_dim, 2, cfg.hidden, cfg.depth, generator=g).to(run.device)
        D = MLPDiscriminator(2, cfg.hidden, cfg.depth, generator=g).to(run.device)
        if name == "wgan":
            objective.constrain(D)  # the critic starts inside the clipping box
        opt_g = _optimizer(objective.name, G.parameters(), cfg.lr_g)
        opt_d = _optimizer(objective.name, D.parameters(), cfg.lr_d)
        real, noise = sampler(x, cfg.batch_size, g), gaussian_noise(cfg.batch_size, cfg.z_dim, g)
        curve = []
        for step in range(cfg.g_steps):
            d_loss, g_loss = train_step(G, D, opt_g, opt_d, objective, real, noise)
            if step % 25 == 0 or step == cfg.g_steps - 1:
                curve.append((step, d_loss.item(), g_loss.item()))
                run.log(step, **{f"{name}_{r}_d_loss": curve[-1][1], f"{name}_{r}_g_loss": curve[-1][2]})
        with torch.no_grad():
            pts = G(torch.randn(cfg.n_eval, cfg.z_dim, generator=g).to(run.device))
        results[name].append(quality_2d(pts, x_ref, run.seed))
        if r == 0:
            curves[name], samples[name] = curve, pts

    metrics: dict = {"restarts": cfg.restarts, "g_steps": cfg.g_steps, "clip": cfg.clip, "lam": cfg.lam}
    for name, runs in results.items():
        modes = torch.tensor([q["modes"] for q in runs], dtype=torch.float64)
        sw = torch.tensor([q["sw"] for q in runs], dtype=torch.float64)
        metrics[f"{name}_modes"] = modes.mean().item()
        metrics[f"{name}_modes_min"] = int(modes.min())
        metrics[f"{name}_collapsed_runs"] = int((modes < 8).sum())
        metrics[f"{name}_hq"] = sum(q["hq"] for q in runs) / len(runs)
        metrics[f"{name}_sw"] = sw.mean().item()
        metrics[f"{name}_sw_std"] = sw.std(correction=0).item()
    samples["real"] = x_real
    samples["gauss"] = gaussian_fit(x, cfg.n_eval, g)
    for name in ("real", "gauss"):
        q = quality_2d(samples[name], x_ref, run.seed)
        metrics.update({f"{name}_modes": q["modes"], f"{name}_hq": q["hq"], f"{name}_sw": q["sw"]})
    _plot(run, cfg, curves, samples, metrics)
    return metrics


TITLES = {"gan": "GAN", "wgan": "WGAN (clipping)", "wgan_gp": "WGAN-GP", "real": "held-out data",
          "gauss": "Gaussian fit"}


def _plot(run, cfg, curves: dict, samples: dict, metrics: dict) -> None:
    with run.figure("losses", ncols=3) as (fig, axes):
        for ax, (name, curve) in zip(axes, curves.items()):
            steps, d_loss, g_loss = zip(*curve)
            ax.plot(steps, d_loss, label="D / critic loss")
            ax.plot(steps, g_loss, label="G loss")
            ax.set(xlabel="generator step", title=f"{TITLES[name]} (run 1)")
            ax.legend(fontsize=8)
    modes = eight_gaussians_modes()
    with run.figure("samples", ncols=5, size=(16, 3.6)) as (fig, axes):
        for ax, (name, pts) in zip(axes, samples.items()):
            ax.scatter(*pts.cpu().T, s=2, alpha=0.4)
            ax.scatter(*modes.T, marker="x", c="k", s=25)
            ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal",
                   title=f"{TITLES[name]}: {metrics[f'{name}_modes']:.3g} modes, SW {metrics[f'{name}_sw']:.2f}")
