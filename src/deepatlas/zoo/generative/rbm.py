"""Restricted Boltzmann machine: binary visible and hidden units, connected only across the two layers.

With no connections inside a layer, the units of one layer are independent given the other, so
inference (visible -> hidden) and generation (hidden -> visible) are each one parallel step, and Gibbs
sampling alternates them. The log-likelihood gradient is the data term minus a model expectation;
contrastive divergence (CD-k) estimates the model term with a Gibbs chain started at the data and run
only k steps, persistent CD (PCD) keeps one chain running across updates. With a small hidden layer
the partition function is an exact sum over the 2^{n_h} hidden states, so the likelihood is exact.

    E(\\mathbf{v}, \\mathbf{h}) = -\\mathbf{a}^\\top \\mathbf{v} - \\mathbf{b}^\\top \\mathbf{h}
        - \\mathbf{v}^\\top W \\mathbf{h},
    F(\\mathbf{v}) = -\\mathbf{a}^\\top \\mathbf{v} - \\sum_j \\log(1 + e^{b_j + \\mathbf{v}^\\top W_{:j}}),
    -\\nabla_\\theta \\log p(\\mathbf{v}) = \\nabla_\\theta F(\\mathbf{v})
        - \\mathbb{E}_{p}[\\nabla_\\theta F(\\mathbf{v}')]

Smolensky, "Information Processing in Dynamical Systems: Foundations of Harmony Theory", PDP Vol. 1, 1986;
Hinton, "Training Products of Experts by Minimizing Contrastive Divergence", Neural Computation 2002;
Tieleman, "Training Restricted Boltzmann Machines using Approximations to the Likelihood Gradient", ICML 2008.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import digits
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model

MAX_ENUMERATED = 22  # 2^22 states of the smaller layer is as far as the exact partition function goes


def all_states(n: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Every binary vector of length n, (2^n, n)."""
    bits = torch.arange(2 ** n, device=device)[:, None] >> torch.arange(n, device=device)
    return (bits & 1).to(dtype)


class RBM(nn.Module):
    """Bernoulli-Bernoulli RBM: W (n_visible, n_hidden), visible biases a, hidden biases b.
    forward(v) is the free energy F(v) (B,)."""

    def __init__(self, n_visible: int, n_hidden: int, generator: torch.Generator | None = None):
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(f"an RBM needs at least one visible and one hidden unit, got {n_visible}, {n_hidden}")
        self.W = nn.Parameter(0.01 * torch.randn(n_visible, n_hidden, generator=generator))
        self.a = nn.Parameter(torch.zeros(n_visible))
        self.b = nn.Parameter(torch.zeros(n_hidden))

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        # E(v, h) = -a^T v - b^T h - v^T W h
        return -v @ self.a - h @ self.b - ((v @ self.W) * h).sum(-1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:  # (B, n_v) -> (B,)
        # F(v) = -a^T v - \sum_j \mathrm{softplus}(b_j + v^T W_{:j})
        return -v @ self.a - F.softplus(v @ self.W + self.b).sum(-1)

    forward = free_energy

    def p_h(self, v: torch.Tensor) -> torch.Tensor:
        # p(h_j = 1 | v) = \sigma(b_j + \sum_i W_{ij} v_i)
        return torch.sigmoid(v @ self.W + self.b)  # (B, n_h)

    def p_v(self, h: torch.Tensor) -> torch.Tensor:
        # p(v_i = 1 | h) = \sigma(a_i + \sum_j W_{ij} h_j)
        return torch.sigmoid(h @ self.W.T + self.a)  # (B, n_v)

    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """Up to the hidden layer and back down, mean-field: p(v | E[h | v])."""
        return self.p_v(self.p_h(v))

    def log_partition(self) -> torch.Tensor:
        """log Z, exactly, by summing over every state of the smaller layer."""
        n_v, n_h = self.W.shape
        if min(n_v, n_h) > MAX_ENUMERATED:
            raise ValueError(f"exact log Z enumerates 2^{min(n_v, n_h)} states; keep one layer <= {MAX_ENUMERATED}")
        if n_h <= n_v:
            h = all_states(n_h, self.W.dtype, self.W.device)  # (2^n_h, n_h)
            # \log Z = \log \sum_h \exp(b^T h + \sum_i \mathrm{softplus}(a_i + W_{i:} h))
            return torch.logsumexp(h @ self.b + F.softplus(h @ self.W.T + self.a).sum(-1), 0)
        v = all_states(n_v, self.W.dtype, self.W.device)
        return torch.logsumexp(-self.free_energy(v), 0)

    def log_likelihood(self, v: torch.Tensor) -> torch.Tensor:
        """\\log p(v) = -F(v) - \\log Z, exact: (B,)."""
        return -self.free_energy(v) - self.log_partition()


# --- sampling and learning, apart from the model ----------------------------------------------------

def bernoulli(p: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return (torch.rand(p.shape, generator=generator, dtype=p.dtype).to(p.device) < p).to(p.dtype)


@torch.no_grad()
def gibbs(rbm: RBM, v: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """k steps of block Gibbs sampling v -> h -> v, (B, n_v) -> (B, n_v)."""
    for _ in range(k):
        h = bernoulli(rbm.p_h(v), generator)
        v = bernoulli(rbm.p_v(h), generator)
    return v


def cd_loss(rbm: RBM, v_data: torch.Tensor, v_model: torch.Tensor) -> torch.Tensor:
    """A surrogate whose gradient is the (CD or PCD) estimate of -\\nabla \\log p:
    \\nabla [\\bar F(v_{data}) - \\bar F(v_{model})] with v_model held fixed."""
    return rbm.free_energy(v_data).mean() - rbm.free_energy(v_model.detach()).mean()


def contrastive_divergence(rbm: RBM, v_data: torch.Tensor, k: int, generator: torch.Generator | None = None):
    """CD-k: negatives from a Gibbs chain that starts at the data and runs k steps."""
    return gibbs(rbm, v_data, k, generator)


class PersistentChains:
    """PCD: fantasy particles that keep running between parameter updates (Tieleman 2008)."""

    def __init__(self, v: torch.Tensor):
        self.v = v.clone()

    def negatives(self, rbm: RBM, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        self.v = gibbs(rbm, self.v, k, generator)
        return self.v


@register_model("rbm", card="rbm", example=lambda: ((torch.rand(4, 64) < 0.5).float(),))
def rbm(n_visible: int = 64, n_hidden: int = 16, **kw) -> RBM:
    return RBM(n_visible, n_hidden, **kw)


# --- rbm/cd-k: CD-1, CD-k and PCD on binarised digits, scored by the exact likelihood -------------

@dataclass
class CdkConfig:
    n_hidden: int = 16  # small enough for the exact partition function (2^16 hidden states)
    k: int = 10  # the longer chain of CD-k
    epochs: int = 60
    batch_size: int = 32
    lr: float = 0.01  # SGD with momentum 0.9, the same for the three estimators
    sample_steps: int = 1000  # Gibbs steps from noise for the drawn digits
    n_samples: int = 100


def binary_digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 8x8 digits thresholded at half intensity: (N, 64) binary, and their labels."""
    data = digits(flatten=True)
    return (data.x_train > 0.5).float(), data.y_train, (data.x_test > 0.5).float(), data.y_test


def train_rbm(run, rbm: RBM, x: torch.Tensor, method: str, k: int, cfg, g: torch.Generator, name: str) -> RBM:
    """SGD on the CD-k ('cd') or PCD ('pcd') estimate of the gradient; one persistent chain per batch row."""
    opt = torch.optim.SGD(rbm.parameters(), lr=cfg.lr, momentum=0.9)
    steps = len(x) // cfg.batch_size
    chains = PersistentChains(bernoulli(torch.full((cfg.batch_size, x.shape[1]), 0.5), g).to(x.device))
    step = 0
    for _ in run.progress(range(cfg.epochs), desc=name):
        order = torch.randperm(len(x), generator=g).to(x.device)
        for i in range(steps):
            v = x[order[i * cfg.batch_size:(i + 1) * cfg.batch_size]]
            neg = contrastive_divergence(rbm, v, k, g) if method == "cd" else chains.negatives(rbm, k, g)
            loss = cd_loss(rbm, v, neg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        run.log(step, **{f"{name}_cd_loss": loss})
    return rbm


def nearest_hamming(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean over samples of the Hamming distance to the nearest reference image."""
    return torch.cdist(samples, reference, p=1).min(1).values.mean().item()


@lab(
    "rbm/cd-k",
    card="rbm",
    config=CdkConfig,
    scales={
        "quick": {"n_hidden": 8, "k": 3, "epochs": 1, "sample_steps": 20, "n_samples": 16},
        "default": {},
        "full": {"n_hidden": 20, "k": 25, "epochs": 200, "sample_steps": 10_000},
    },
    goals=[Goal("pcd_ll_gain", ">", 0.0), Goal("cd1_ll_gain", ">", 0.0),
           Goal("recon_ratio", "<", 1.0)],
    claims=[
        Check("rbm-two-way-energy-network",
              lambda m: m["recon_ratio"] < 1 and m["sample_nn"] < m["baseline_sample_nn"],
              "one set of weights, run both ways on binarised 8x8 digits ({n_hidden} hidden units, PCD): "
              "up-and-down reconstruction error {recon_err:.4f} (mean squared, held-out digits) against "
              "{baseline_recon_err:.4f} for the mean image; {n_samples} Gibbs samples from noise lie "
              "{sample_nn:.2f} pixels from the nearest held-out digit, independent-pixel samples "
              "{baseline_sample_nn:.2f}; exact test log-likelihood {pcd_ll:.2f} nats (independent pixels "
              "{baseline_ll:.2f})"),
    ],
    budget_s=60,
    threads=1,
)
def cd_k(run, cfg: CdkConfig) -> dict:
    """CD-1, CD-k and PCD on binarised 8x8 digits, scored by the exact log-likelihood; reconstructions, samples."""
    x_train, _, x_test, _ = binary_digits()
    x_train, x_test = x_train.to(run.device), x_test.to(run.device)
    metrics: dict = {"n_hidden": cfg.n_hidden, "k": cfg.k, "n_samples": cfg.n_samples}
    models = {}
    for name, method, k in (("cd1", "cd", 1), ("cdk", "cd", cfg.k), ("pcd", "pcd", 1)):
        g = torch.Generator().manual_seed(run.seed)
        models[name] = train_rbm(run, RBM(64, cfg.n_hidden, g).to(run.device), x_train, method, k, cfg, g, name)
        with torch.no_grad():
            metrics[f"{name}_ll"] = models[name].log_likelihood(x_test).mean().item()
            metrics[f"{name}_train_ll"] = models[name].log_likelihood(x_train).mean().item()

    # the independent-pixel baseline: Bernoulli(Laplace-smoothed training mean) per pixel
    p = (x_train.sum(0) + 1) / (len(x_train) + 2)  # (64,)
    metrics["baseline_ll"] = (x_test * p.log() + (1 - x_test) * (1 - p).log()).sum(1).mean().item()
    for name in models:
        metrics[f"{name}_ll_gain"] = metrics[f"{name}_ll"] - metrics["baseline_ll"]

    best = models["pcd"]
    g = torch.Generator().manual_seed(run.seed + 1)
    with torch.no_grad():
        recon = best.reconstruct(x_test)
        metrics["recon_err"] = (recon - x_test).square().mean().item()
        metrics["baseline_recon_err"] = (p - x_test).square().mean().item()
        metrics["recon_ratio"] = metrics["recon_err"] / metrics["baseline_recon_err"]
        noise = bernoulli(torch.full((cfg.n_samples, 64), 0.5), g).to(run.device)
        samples = gibbs(best, noise, cfg.sample_steps, g)
        independent = bernoulli(p.expand(cfg.n_samples, 64).cpu(), g).to(run.device)
    metrics["sample_nn"] = nearest_hamming(samples, x_test)
    metrics["baseline_sample_nn"] = nearest_hamming(independent, x_test)

    side = min(8, math.isqrt(cfg.n_samples))
    show = min(8, len(x_test))

    def tile(imgs, rows, cols):
        return imgs[:rows * cols].cpu().reshape(rows, cols, 8, 8).permute(0, 2, 1, 3).reshape(rows * 8, cols * 8)

    with run.figure("rbm", ncols=3, size=(13, 4.5)) as (fig, (ax_ll, ax_r, ax_s)):
        names = ["independent", "CD-1", f"CD-{cfg.k}", "PCD-1"]
        values = [metrics[k] for k in ("baseline_ll", "cd1_ll", "cdk_ll", "pcd_ll")]
        ax_ll.bar(names, values, color=["C7", "C0", "C1", "C2"])
        for i, v in enumerate(values):
            ax_ll.text(i, v, f"{v:.1f}", ha="center", va="top")
        ax_ll.set(ylabel="exact test log-likelihood (nats / image)", title=f"{cfg.n_hidden} hidden units")
        ax_r.imshow(torch.cat([tile(x_test, 1, show), tile(recon, 1, show)]), cmap="gray_r")
        ax_r.set(title="held-out digits (top), reconstructions (bottom)", xticks=[], yticks=[])
        ax_s.imshow(tile(samples, side, side), cmap="gray_r")
        ax_s.set(title=f"PCD samples after {cfg.sample_steps} Gibbs steps", xticks=[], yticks=[])
    return metrics
