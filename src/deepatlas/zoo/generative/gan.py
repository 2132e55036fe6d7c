"""Generative adversarial network: a generator learns to fool a discriminator that learns to catch it.

The generator G maps noise z to a sample; the discriminator D maps a sample to the probability that
it is real. D ascends the log-likelihood of telling real from fake, G descends it. For a fixed G the
best D is p_data / (p_data + p_g), and against that D the game value is 2 JSD(p_data || p_g) - log 4,
minimised exactly when p_g = p_data. In practice G does not minimise log(1 - D(G(z))), which saturates
when D rejects its samples, but maximises log D(G(z)) (the "non-saturating" loss of the same paper).

    \\min_G \\max_D\\; \\mathbb{E}_{x}[\\log D(x)] + \\mathbb{E}_{z}[\\log(1 - D(G(z)))]

Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville & Bengio, "Generative Adversarial
Nets", NeurIPS 2014 (arXiv 1406.2661).

This file holds the objective apart from the networks (an `Objective` is a discriminator loss, a
generator loss and how often the discriminator steps; `train_step` plays one round with any G and D),
the small MLPs used on 2-D data, and the lab on the saturating loss. WGAN, WGAN-GP and BigGAN's hinge
loss are further `Objective`s in their own files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.toy2d import eight_gaussians_modes, toy_split
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.linear import Linear
from deepatlas.nn.losses import softplus
from deepatlas.nn.metrics import mode_coverage, sliced_wasserstein
from deepatlas.registry import register_model

# --- the objective, apart from G and D -------------------------------------------------------------
# D outputs a logit s; D(x) = \sigma(s). With \log\sigma(s) = -\mathrm{softplus}(-s) and
# \log(1 - \sigma(s)) = -\mathrm{softplus}(s), every loss below is a softplus of logits (stable in float32).


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's side of the minimax game: binary cross-entropy, real = 1, fake = 0."""
    # \mathcal{L}_D = -\mathbb{E}_x[\log D(x)] - \mathbb{E}_z[\log(1 - D(G(z)))]
    return softplus(-real_logits).mean() + softplus(fake_logits).mean()


def generator_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's side of the minimax game itself; flat when D confidently rejects G's samples."""
    # \mathcal{L}_G = \mathbb{E}_z[\log(1 - D(G(z)))],  \partial \mathcal{L}_G / \partial s = -D(G(z))
    return -softplus(fake_logits).mean()


def generator_loss_non_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator loss used in practice: same fixed point, strong gradient where D rejects G's samples."""
    # \mathcal{L}_G = -\mathbb{E}_z[\log D(G(z))],  \partial \mathcal{L}_G / \partial s = -(1 - D(G(z)))
    return softplus(-fake_logits).mean()


@dataclass(frozen=True)
class Objective:
    """A GAN training rule: losses on D's outputs, how many D steps per G step, and a constraint on D.

    `d_loss(D, x_real, x_fake)` sees D itself so that a penalty on D's gradient (WGAN-GP) fits;
    `constrain(D)` runs after every D step (WGAN's weight clipping)."""

    name: str
    d_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]
    n_critic: int = 1
    constrain: Callable[[nn.Module], None] | None = None


def _d_loss_standard(D: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    return discriminator_loss(D(x_real), D(x_fake))


MINIMAX = Objective("minimax GAN", _d_loss_standard, generator_loss_saturating)
NON_SATURATING = Objective("GAN", _d_loss_standard, generator_loss_non_saturating)


def train_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               objective: Objective, real_batch: Callable[[], torch.Tensor],
               noise: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """One round of the game: `n_critic` steps of D on fresh real and fake batches, then one step of G.

    `real_batch()` and `noise()` draw a batch each call; returns the last D loss and the G loss (detached)."""
    for _ in range(objective.n_critic):
        with torch.no_grad():
            x_fake = G(noise())  # G is held fixed while D learns
        d_loss = objective.d_loss(D, real_batch(), x_fake)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        if objective.constrain is not None:
            objective.constrain(D)
    g_loss = objective.g_loss(D(G(noise())))  # D's parameters get gradients here too, but opt_g only moves G
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return d_loss.detach(), g_loss.detach()


# --- the networks: small MLPs on 2-D data ----------------------------------------------------------

class MLPGenerator(nn.Module):
    """G: z (B, z_dim) -> x (B, x_dim) through `depth` ReLU layers of `hidden` units."""

    def __init__(self, z_dim: int = 2, x_dim: int = 2, hidden: int = 128, depth: int = 3,
                 generator: torch.Generator | None = None):
        super().__init__()
        sizes = [z_dim, *[hidden] * depth, x_dim]
        self.z_dim = z_dim
        self.layers = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, z_dim) -> (B, x_dim)
        for layer in self.layers[:-1]:
            z = torch.relu(layer(z))
        return self.layers[-1](z)


class MLPDiscriminator(nn.Module):
    """D: x (B, x_dim) -> one real-valued score per sample (B,): a logit for a GAN, a critic value for a WGAN."""

    def __init__(self, x_dim: int = 2, hidden: int = 128, depth: int = 3, generator: torch.Generator | None = None):
        super().__init__()
        sizes = [x_dim, *[hidden] * depth, 1]
        self.layers = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, x_dim) -> (B,)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)[:, 0]


@register_model("gan-mlp-generator", card="gan", example=lambda: (torch.randn(8, 2),))
def gan_mlp_generator(**kw) -> MLPGenerator:
    return MLPGenerator(**kw)


@register_model("gan-mlp-discriminator", card="gan", example=lambda: (torch.randn(8, 2),))
def gan_mlp_discriminator(**kw) -> MLPDiscriminator:
    return MLPDiscriminator(**kw)


# --- helpers shared by the 2-D labs -------------------------------------------------------------------

MODE_STD = 0.2  # eight_gaussians' default spread
RADIUS = 3 * MODE_STD  # a sample within three standard deviations of a centre counts as high quality


def sampler(x: torch.Tensor, batch_size: int, g: torch.Generator) -> Callable[[], torch.Tensor]:
    """Draws minibatches of `x` with replacement from generator `g`."""
    return lambda: x[torch.randint(len(x), (batch_size,), generator=g)]


def gaussian_noise(batch_size: int, z_dim: int, g: torch.Generator) -> Callable[[], torch.Tensor]:
    return lambda: torch.randn(batch_size, z_dim, generator=g)


def quality_2d(samples: torch.Tensor, x_test: torch.Tensor, seed: int) -> dict:
    """Modes covered, high-quality share and sliced Wasserstein-2 to held-out data on the eight Gaussians."""
    modes, good = mode_coverage(samples, eight_gaussians_modes(), RADIUS)
    sw = sliced_wasserstein(samples, x_test, generator=torch.Generator().manual_seed(seed)).item()
    return {"modes": modes, "hq": good, "sw": sw}


# --- gan/saturating-loss: where D wins, log(1 - D(G(z))) goes flat -----------------------------------

@dataclass
class SaturatingConfig:
    n_train: int = 5000
    n_test: int = 2000
    hidden: int = 128
    pretrain_d_steps: int = 500  # D trained alone against the untrained G: a discriminator that wins
    g_steps: int = 500  # then G trains with each loss from that same state
    batch_size: int = 256
    lr: float = 2e-4  # Adam (0.5, 0.999), as DCGAN


def _grad_norm(params) -> float:
    return torch.sqrt(sum(p.grad.square().sum() for p in params)).item()


@lab(
    "gan/saturating-loss",
    card="gan",
    config=SaturatingConfig,
    scales={
        "quick": {"n_train": 1000, "n_test": 500, "pretrain_d_steps": 100, "g_steps": 60, "hidden": 32},
        "default": {},
        "full": {"g_steps": 5000, "hidden": 512},
    },
    goals=[Goal("grad_ratio", "<=", 0.01)],
    claims=[
        Check(
            "gan-saturating-gradient",
            lambda m: m["d_fake"] <= 0.01 and m["grad_ratio"] <= 0.01,
            "after {pretrain_d_steps} steps of D alone, D(G(z)) averages {d_fake:.1e}: the generator's gradient "
            "norm is {grad_saturating:.2e} under log(1 - D(G(z))) and {grad_non_saturating:.2e} under "
            "-log D(G(z)) (ratio {grad_ratio:.1e}). Trained on from there for {g_steps} steps with Adam, which divides "
            "each step by the gradient's running size and so hides the gap, sliced W2 to held-out data went from "
            "{start_sw:.2f} to {saturating_sw:.2f} (saturating) and {non_saturating_sw:.2f} (non-saturating)",
        ),
    ],
    budget_s=40,
    threads=1,
)
def saturating_loss(run, cfg: SaturatingConfig) -> dict:
    """A strong discriminator starves log(1 - D(G(z))) of gradient; -log D(G(z)) keeps the generator learning."""
    data = toy_split("eight_gaussians", cfg.n_train, cfg.n_test, seed=run.seed)
    x, x_test = data.x_train.to(run.device), data.x_test.to(run.device)
    g = torch.Generator().manual_seed(run.seed)
    G = MLPGenerator(hidden=cfg.hidden, generator=g).to(run.device)
    D = MLPDiscriminator(hidden=cfg.hidden, generator=g).to(run.device)
    real, noise = sampler(x, cfg.batch_size, g), gaussian_noise(cfg.batch_size, G.z_dim, g)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    for step in range(cfg.pretrain_d_steps):
        with torch.no_grad():
            x_fake = G(noise())
        loss = discriminator_loss(D(real()), D(x_fake))
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        if step % 50 == 0:
            run.log(step, d_loss=loss)

    z_probe = torch.randn(2000, G.z_dim, generator=g)
    metrics: dict = {"pretrain_d_steps": cfg.pretrain_d_steps, "g_steps": cfg.g_steps}
    with torch.no_grad():
        fake_logits = D(G(z_probe))
        metrics["d_fake"] = torch.sigmoid(fake_logits).mean().item()
    for name, g_loss in (("saturating", generator_loss_saturating), ("non_saturating", generator_loss_non_saturating)):
        G.zero_grad(set_to_none=True)
        g_loss(D(G(z_probe))).backward()
        metrics[f"grad_{name}"] = _grad_norm(G.parameters())
    metrics["grad_ratio"] = metrics["grad_saturating"] / metrics["grad_non_saturating"]
    with torch.no_grad():
        start_sw = quality_2d(G(z_probe), x_test, run.seed)["sw"]

    state_g, state_d = ({k: v.clone() for k, v in net.state_dict().items()} for net in (G, D))
    curves, samples = {}, {}
    for objective in run.progress([MINIMAX, NON_SATURATING], desc="generator losses"):
        G.load_state_dict(state_g)
        D.load_state_dict(state_d)  # both runs start from the same winning discriminator
        name = "saturating" if objective is MINIMAX else "non_saturating"
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        curves[name] = []
        for step in range(cfg.g_steps):
            train_step(G, D, opt_g, opt_d, objective, real, noise)
            if step % 50 == 0 or step == cfg.g_steps - 1:
                with torch.no_grad():
                    sw = quality_2d(G(z_probe), x_test, run.seed)["sw"]
                curves[name].append((step, sw))
                run.log(step, **{f"{name}_sw": sw})
        with torch.no_grad():
            samples[name] = G(z_probe)
        metrics[f"{name}_sw"] = curves[name][-1][1]
        metrics[f"{name}_sw_gain"] = start_sw - metrics[f"{name}_sw"]
    metrics["start_sw"] = start_sw

    with run.figure("saturating_loss", ncols=3) as (fig, axes):
        s = torch.linspace(-8, 8, 200)
        axes[0].plot(s, -torch.sigmoid(s), label=r"$\partial_s \log(1-\sigma(s))$ (saturating)")
        axes[0].plot(s, -(1 - torch.sigmoid(s)), label=r"$\partial_s\,(-\log\sigma(s))$ (non-saturating)")
        axes[0].set(xlabel="D's logit s on a fake sample", ylabel="dL_G / ds", title="generator gradient per sample")
        axes[0].legend(fontsize=7)
        for name, curve in curves.items():
            axes[1].plot(*zip(*curve), label=name.replace("_", "-"))
        axes[1].set(xlabel="generator step", ylabel="sliced W2 to held-out", title="training from a winning D")
        axes[1].legend()
        axes[2].scatter(*x_test.cpu().T, s=2, c="grey", alpha=0.3, label="data")
        for name, pts in samples.items():
            axes[2].scatter(*pts[:500].cpu().T, s=3, label=name.replace("_", "-"))
        axes[2].set(title="samples after training", aspect="equal")
        axes[2].legend(fontsize=7, markerscale=3)
    return metrics
