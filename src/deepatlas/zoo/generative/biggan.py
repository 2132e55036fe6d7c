"""BigGAN-style class conditioning: spectral normalisation, the hinge loss, conditional batch norm, projection.

BigGAN trains a class-conditional GAN at scale by combining stabilisers: every weight matrix of the
discriminator (and generator) is divided by its largest singular value, estimated by one step of power
iteration per training step (Miyato et al. 2018), which bounds each layer's Lipschitz constant by 1;
the adversarial loss is the hinge loss; the generator receives the class through conditional batch norm
(the gain and bias of each batch norm are linear functions of a shared class embedding); the
discriminator receives it through a projection, the inner product of a class embedding with its features.

    \\bar W = W / \\sigma(W),\\quad \\sigma(W) \\approx u^\\top W v,\\; v \\leftarrow \\frac{W^\\top u}{\\lVert W^\\top u\\rVert},\\;
    u \\leftarrow \\frac{W v}{\\lVert W v\\rVert};\\qquad D(x, y) = \\psi(\\phi(x)) + e_y^\\top \\phi(x)

Brock, Donahue & Simonyan, "Large Scale GAN Training for High Fidelity Natural Image Synthesis", ICLR 2019
(arXiv 1809.11096); Miyato, Kataoka, Koyama & Yoshida, "Spectral Normalization for Generative Adversarial
Networks", ICLR 2018 (arXiv 1802.05957); Miyato & Koyama, "cGANs with Projection Discriminator", ICLR 2018.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from deepatlas.data.toy2d import eight_gaussians_modes, gaussian_fit, toy_split
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.linear import Linear
from deepatlas.nn.norms import BatchNorm
from deepatlas.registry import register_model
from deepatlas.zoo.generative.gan import RADIUS, quality_2d

# --- spectral normalisation, written out --------------------------------------------------------------


def power_iteration(w: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n_iter: int = 1,
                    eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """n_iter rounds of u <- Wv / |Wv|, v <- W^T u / |W^T u| for w (m, n), u (m,), v (n,); returns (u, v)."""
    for _ in range(n_iter):
        # u \leftarrow W v / \lVert W v \rVert
        u = F.normalize(w @ v, dim=0, eps=eps)
        # v \leftarrow W^\top u / \lVert W^\top u \rVert
        v = F.normalize(w.T @ u, dim=0, eps=eps)
    return u, v


class SpectralNorm(nn.Module):
    """A parametrisation W -> W / sigma(W), sigma from power iteration on W reshaped to (out, -1).

    Like torch.nn.utils.parametrizations.spectral_norm: u and v are buffers that persist between calls,
    updated (without gradient) by `n_power_iterations` rounds on every training-mode call; sigma = u^T W v
    is differentiated through W only, so the gradient sees the normalisation."""

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1, eps: float = 1e-12,
                 generator: torch.Generator | None = None):
        super().__init__()
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be at least 1, got {n_power_iterations}")
        if weight.dim() < 2:
            raise ValueError(f"spectral norm needs a matrix or a convolution kernel, got shape {tuple(weight.shape)}")
        self.n_power_iterations, self.eps = n_power_iterations, eps
        w = weight.detach().flatten(1)  # (out, in * k_h * k_w)
        u = F.normalize(torch.randn(w.shape[0], generator=generator).to(w), dim=0, eps=eps)
        v = F.normalize(torch.randn(w.shape[1], generator=generator).to(w), dim=0, eps=eps)
        u, v = power_iteration(w, u, v, 15, eps)  # start near the top singular pair, as torch does
        self.register_buffer("u", u)  # (out,)
        self.register_buffer("v", v)  # (in * k_h * k_w,)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight.flatten(1)  # (out, in * k_h * k_w)
        if self.training:
            with torch.no_grad():
                u, v = power_iteration(w, self.u, self.v, self.n_power_iterations, self.eps)
                self.u.copy_(u)
                self.v.copy_(v)
        u, v = self.u.clone(), self.v.clone()  # the next call updates the buffers in place; this graph keeps these
        # \sigma(W) \approx u^\top W v
        sigma = torch.dot(u, w @ v)
        # \bar W = W / \sigma(W)
        return weight / sigma


def spectral_norm(module: nn.Module, n_power_iterations: int = 1, generator: torch.Generator | None = None
                  ) -> nn.Module:
    """Reparametrise `module.weight` as W / sigma(W) (in place); returns the module."""
    parametrize.register_parametrization(
        module, "weight", SpectralNorm(module.weight, n_power_iterations, generator=generator))
    return module


# --- the hinge loss ------------------------------------------------------------------------------------

def d_hinge_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """D is pushed to score real samples above +1 and fakes below -1, and no further."""
    # \mathcal{L}_D = \mathbb{E}[\max(0, 1 - D(x, y))] + \mathbb{E}[\max(0, 1 + D(G(z, y), y))]
    return torch.relu(1 - real_scores).mean() + torch.relu(1 + fake_scores).mean()


def g_hinge_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    # \mathcal{L}_G = -\mathbb{E}[D(G(z, y), y)]
    return -fake_scores.mean()


# --- class conditioning ---------------------------------------------------------------------------------

class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine map; the gain and bias are linear in a class embedding e (B, E)."""

    def __init__(self, num_features: int, embed_dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.bn = BatchNorm(num_features, affine=False)
        self.gain = Linear(embed_dim, num_features, bias=False, generator=generator)
        self.bias = Linear(embed_dim, num_features, bias=False, generator=generator)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:  # h (B, C) or (B, C, H, W), e (B, E)
        shape = (len(h), -1) + (1,) * (h.dim() - 2)
        # \mathrm{CBN}(h, y) = (1 + \gamma(e_y)) \hat h + \beta(e_y)
        return (1 + self.gain(e).reshape(shape)) * self.bn(h) + self.bias(e).reshape(shape)


class ConditionalGenerator(nn.Module):
    """G(z, y): an MLP whose hidden layers pass through conditional batch norm on a shared class embedding."""

    def __init__(self, num_classes: int = 8, z_dim: int = 2, x_dim: int = 2, hidden: int = 64, depth: int = 3,
                 embed_dim: int = 16, generator: torch.Generator | None = None):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.embed = nn.Embedding(num_classes, embed_dim)
        nn.init.normal_(self.embed.weight, generator=generator)
        sizes = [z_dim, *[hidden] * depth]
        self.layers = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))
        self.norms = nn.ModuleList(ConditionalBatchNorm(hidden, embed_dim, generator) for _ in range(depth))
        self.out = Linear(hidden, x_dim, generator=generator)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # z (B, z_dim), y (B,) -> (B, x_dim)
        e = self.embed(y)  # (B, E): shared by every layer
        h = z
        for layer, norm in zip(self.layers, self.norms):
            h = torch.relu(norm(layer(h), e))
        return self.out(h)


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = psi(phi(x)) + <e_y, phi(x)>; every weight spectrally normalised when `sn`."""

    def __init__(self, num_classes: int = 8, x_dim: int = 2, hidden: int = 64, depth: int = 3, sn: bool = True,
                 generator: torch.Generator | None = None):
        super().__init__()
        sizes = [x_dim, *[hidden] * depth]
        self.layers = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))
        self.psi = Linear(hidden, 1, generator=generator)
        self.embed = nn.Embedding(num_classes, hidden)
        nn.init.normal_(self.embed.weight, std=hidden ** -0.5, generator=generator)
        self.sn = sn
        if sn:
            for module in [*self.layers, self.psi, self.embed]:
                spectral_norm(module, generator=generator)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # x (B, x_dim), y (B,) -> (B,)
        h = x
        for layer in self.layers:
            h = torch.relu(layer(h))  # phi(x): (B, hidden)
        # D(x, y) = \psi(\phi(x)) + e_y^\top \phi(x)
        return self.psi(h)[:, 0] + (self.embed(y) * h).sum(1)


def _labels() -> torch.Tensor:
    return torch.arange(8) % 8


@register_model("biggan-mlp-generator", card="biggan", example=lambda: (torch.randn(8, 2), _labels()))
def biggan_mlp_generator(**kw) -> ConditionalGenerator:
    return ConditionalGenerator(**kw)


@register_model("biggan-mlp-discriminator", card="biggan", example=lambda: (torch.randn(8, 2), _labels()))
def biggan_mlp_discriminator(**kw) -> ProjectionDiscriminator:
    return ProjectionDiscriminator(**kw)


def hinge_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               real_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
               noise: Callable[[], tuple[torch.Tensor, torch.Tensor]], n_d: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """One round of the class-conditional hinge game: n_d steps of D, then one of G.

    `real_batch()` gives (x, y) with the data's labels; `noise()` gives (z, y) with sampled labels."""
    for _ in range(n_d):
        x, y = real_batch()
        z, y_fake = noise()
        with torch.no_grad():
            x_fake = G(z, y_fake)
        d_loss = d_hinge_loss(D(x, y), D(x_fake, y_fake))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    z, y_fake = noise()
    g_loss = g_hinge_loss(D(G(z, y_fake), y_fake))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return d_loss.detach(), g_loss.detach()


# --- biggan/spectral-norm: the same conditional hinge GAN with and without SN in D -------------------------

@dataclass
class SpectralNormConfig:
    n_train: int = 20_000
    n_eval: int = 2000
    hidden: int = 64
    depth: int = 3
    g_steps: int = 1000
    n_d: int = 2  # D steps per G step, as BigGAN
    batch_size: int = 128
    lr_d: float = 4e-4  # the two-timescale rates of SAGAN/BigGAN, Adam (0, 0.9)
    lr_g: float = 1e-4
    restarts: int = 3


@lab(
    "biggan/spectral-norm",
    card="biggan",
    config=SpectralNormConfig,
    scales={
        "quick": {"n_train": 2000, "n_eval": 400, "hidden": 16, "g_steps": 30, "restarts": 1},
        "default": {},
        "full": {"hidden": 256, "g_steps": 10_000, "restarts": 5},
    },
    goals=[Goal("sn_class_acc", ">=", 0.9), Goal("sn_sw", "<", 0.2)],
    claims=[
        Check(
            "biggan-spectral-norm",
            lambda m: m["sn_failed_runs"] <= m["plain_failed_runs"] and m["sn_sw_std"] < m["plain_sw_std"]
            and m["sn_sw"] <= m["plain_sw"],
            "over {restarts} restarts of the same class-conditional hinge GAN, with spectral norm in D the final "
            "sliced W2 is {sn_sw:.3f} ± {sn_sw_std:.3f} (worst {sn_sw_max:.3f}; {sn_failed_runs} runs missed a mode), "
            "without it {plain_sw:.3f} ± {plain_sw_std:.3f} (worst {plain_sw_max:.3f}; {plain_failed_runs} missed a "
            "mode); D's mean |score| at the end {sn_d_scale:.2f} vs {plain_d_scale:.2f}; class accuracy "
            "{sn_class_acc:.2f} vs {plain_class_acc:.2f} (held-out data SW {real_sw:.3f}, Gaussian fit {gauss_sw:.3f})",
        ),
    ],
    budget_s=90,
    threads=1,
)
def spectral_norm_lab(run, cfg: SpectralNormConfig) -> dict:
    """A class-conditional hinge GAN on eight Gaussians with and without spectral norm in D, over restarts."""
    data = toy_split("eight_gaussians", cfg.n_train, 2 * cfg.n_eval, seed=run.seed)
    modes = eight_gaussians_modes().to(run.device)
    x = data.x_train.to(run.device)
    y = torch.cdist(x, modes).argmin(1)  # (N,) the class of a point: its nearest centre
    x_ref, x_real = data.x_test[:cfg.n_eval].to(run.device), data.x_test[cfg.n_eval:].to(run.device)
    g = torch.Generator().manual_seed(run.seed)

    def real_batch():
        idx = torch.randint(len(x), (cfg.batch_size,), generator=g)
        return x[idx], y[idx]

    def noise():
        return torch.randn(cfg.batch_size, 2, generator=g), torch.randint(8, (cfg.batch_size,), generator=g)

    results = {"sn": [], "plain": []}
    curves, samples = {}, {}
    for r, name in run.progress([(r, n) for r in range(cfg.restarts) for n in results], desc="with / without SN"):
        G = ConditionalGenerator(hidden=cfg.hidden, depth=cfg.depth, generator=g).to(run.device)
        D = ProjectionDiscriminator(hidden=cfg.hidden, depth=cfg.depth, sn=name == "sn", generator=g).to(run.device)
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(0.0, 0.9))
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(0.0, 0.9))
        curve = []
        for step in range(cfg.g_steps):
            d_loss, g_loss = hinge_step(G, D, opt_g, opt_d, real_batch, noise, cfg.n_d)
            if step % 25 == 0 or step == cfg.g_steps - 1:
                curve.append((step, d_loss.item(), g_loss.item()))
                run.log(step, **{f"{name}_{r}_d_loss": curve[-1][1], f"{name}_{r}_g_loss": curve[-1][2]})
        G.eval()
        D.eval()
        with torch.no_grad():
            y_eval = torch.arange(cfg.n_eval) % 8
            pts = G(torch.randn(cfg.n_eval, 2, generator=g), y_eval)
            q = quality_2d(pts, x_ref, run.seed)
            d = torch.cdist(pts, modes)
            # a sample is of its requested class when it lies within the radius of that class's centre
            q["class_acc"] = (d.gather(1, y_eval[:, None])[:, 0] <= RADIUS).double().mean().item()
            q["d_scale"] = D(x_real, torch.cdist(x_real, modes).argmin(1)).abs().mean().item()
        results[name].append(q)
        if r == 0:
            curves[name], samples[name] = curve, (pts, y_eval)

    metrics: dict = {"restarts": cfg.restarts, "g_steps": cfg.g_steps}
    for name, runs in results.items():
        sw = torch.tensor([q["sw"] for q in runs], dtype=torch.float64)
        metrics[f"{name}_sw"] = sw.mean().item()
        metrics[f"{name}_sw_std"] = sw.std(correction=0).item()
        metrics[f"{name}_sw_max"] = sw.max().item()
        metrics[f"{name}_failed_runs"] = sum(q["modes"] < 8 for q in runs)
        for key in ("modes", "hq", "class_acc", "d_scale"):
            metrics[f"{name}_{key}"] = sum(q[key] for q in runs) / len(runs)
    metrics["real_sw"] = quality_2d(x_real, x_ref, run.seed)["sw"]
    metrics["gauss_sw"] = quality_2d(gaussian_fit(x, cfg.n_eval, g), x_ref, run.seed)["sw"]

    with run.figure("spectral_norm", ncols=3, size=(14, 4)) as (fig, axes):
        for name, color in (("sn", "C0"), ("plain", "C3")):
            steps, d_loss, _ = zip(*curves[name])
            axes[0].plot(steps, d_loss, color=color, label=f"{'with' if name == 'sn' else 'without'} SN")
        axes[0].set(xlabel="generator step", ylabel="D hinge loss", title="discriminator loss (run 1)")
        axes[0].legend()
        for ax, name in zip(axes[1:], ("sn", "plain")):
            pts, labels = samples[name]
            ax.scatter(*pts.cpu().T, c=labels, cmap="tab10", s=2)
            ax.scatter(*modes.cpu().T, marker="x", c="k", s=25)
            ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal",
                   title=f"{'with' if name == 'sn' else 'without'} SN: SW {metrics[f'{name}_sw']:.3f} "
                         f"± {metrics[f'{name}_sw_std']:.3f}")
    return metrics
