"""Wasserstein GAN: train a critic to estimate the earth-mover distance, and the generator to shrink it.

When real and generated distributions barely overlap, the Jensen-Shannon divergence behind the
original GAN is stuck at log 2 and gives the generator no direction. The Wasserstein-1 distance still
measures how far the mass must move. By Kantorovich-Rubinstein duality it is a supremum over
1-Lipschitz functions, so a critic f (no sigmoid) maximises the gap between its mean score on real and
on fake samples, kept roughly Lipschitz by clipping every weight to [-c, c] after each step. The critic
is trained n_critic = 5 times per generator step, with RMSProp (momentum hurt with clipping).

    W(p_r, p_g) = \\sup_{\\lVert f\\rVert_L \\le 1} \\mathbb{E}_{x\\sim p_r}[f(x)] - \\mathbb{E}_{x\\sim p_g}[f(x)]

Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017 (arXiv 1701.07875).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.registry import register_model
from deepatlas.zoo.generative.gan import MLPDiscriminator, Objective


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The negated Wasserstein estimate: the critic minimises it, i.e. maximises E f(real) - E f(fake)."""
    # \mathcal{L}_f = \mathbb{E}_z[f(G(z))] - \mathbb{E}_x[f(x)]
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """The generator raises the critic's score of its samples."""
    # \mathcal{L}_G = -\mathbb{E}_z[f(G(z))]
    return -fake_scores.mean()


@torch.no_grad()
def clip_weights(critic: nn.Module, c: float) -> None:
    """Clip every parameter of the critic to [-c, c]: a crude bound on its Lipschitz constant."""
    for p in critic.parameters():
        # w \leftarrow \mathrm{clip}(w, -c, c)
        p.clamp_(-c, c)


def wgan_objective(clip: float = 0.01, n_critic: int = 5) -> Objective:
    """WGAN's rule: the critic loss, clipping after every critic step, n_critic critic steps per G step."""
    if clip <= 0:
        raise ValueError(f"the clipping bound c must be positive, got {clip}")
    if n_critic < 1:
        raise ValueError(f"n_critic must be at least 1, got {n_critic}")
    return Objective(
        name="WGAN",
        d_loss=lambda f, x_real, x_fake: critic_loss(f(x_real), f(x_fake)),
        g_loss=generator_loss,
        n_critic=n_critic,
        constrain=lambda f: clip_weights(f, clip),
    )


@register_model("wgan-mlp-critic", card="wgan", example=lambda: (torch.randn(8, 2),))
def wgan_mlp_critic(clip: float = 0.01, **kw) -> MLPDiscriminator:
    """The 2-D MLP critic with its weights already inside [-clip, clip]."""
    critic = MLPDiscriminator(**kw)
    clip_weights(critic, clip)
    return critic
