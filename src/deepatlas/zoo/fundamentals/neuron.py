"""The artificial neuron: a weighted sum of the inputs plus a bias, passed through an activation.

McCulloch and Pitts (1943) modelled a neuron as a threshold on a weighted sum; learning its
weights came later (Rosenblatt 1958, gradient descent with a sigmoid). The bias is the part
that does not depend on the input: it moves the decision boundary w^T x + b = 0 off the origin.
The neuron itself is `deepatlas.nn.linear.Neuron`; this file holds its lab.

    z = w^\\top x + b, \\qquad \\hat y = \\phi(z)

McCulloch & Pitts, "A logical calculus of the ideas immanent in nervous activity", 1943.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.linear import Neuron
from deepatlas.nn.losses import binary_cross_entropy_with_logits
from deepatlas.optim.optimizers import Adam


@dataclass
class BiasConfig:
    n: int = 400
    spread: float = 0.35  # std of each blob
    steps: int = 300
    lr: float = 0.1  # Adam, full batch
    angles: int = 3600  # directions tried for the best boundary through the origin


def shifted_blobs(n: int, spread: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs on the diagonal, at (1, 1) and (2.5, 2.5): every separating line x1 + x2 = c
    has c > 0, and both blobs lie in the same direction from the origin."""
    y = torch.arange(n) % 2  # (n,) balanced labels
    centre = torch.where(y[:, None] == 1, 2.5, 1.0).expand(n, 2)
    return centre + spread * torch.randn(n, 2, generator=g), y


@lab(
    "neuron/bias",
    card="neuron",
    config=BiasConfig,
    scales={"quick": {"n": 100, "steps": 50, "angles": 360}, "default": {}, "full": {"n": 4000, "steps": 1000}},
    goals=[Goal("acc_bias", ">=", 0.98)],
    claims=[
        Check(
            "neuron-bias-shifts-boundary",
            lambda m: m["acc_bias"] >= 0.98 and m["acc_no_bias_best"] <= 0.75,
            "on two blobs whose separating line misses the origin, a trained sigmoid neuron with bias reaches "
            "accuracy {acc_bias:.3f}; without bias it reaches {acc_no_bias:.3f}, and the best of {angles} lines "
            "through the origin classifies only {acc_no_bias_best:.3f}",
        ),
    ],
    budget_s=10,
    threads=1,
)
def bias(run, cfg: BiasConfig) -> dict:
    """The bias lets a neuron's decision boundary leave the origin; without it, shifted data cannot be fit."""
    g = torch.Generator().manual_seed(run.seed)
    x, y = shifted_blobs(cfg.n, cfg.spread, g)
    neurons = {"bias": Neuron(2, generator=g), "no_bias": Neuron(2, bias=False, generator=g)}
    metrics: dict = {"angles": cfg.angles}
    for name, neuron in neurons.items():
        opt = Adam(neuron.parameters(), lr=cfg.lr)
        for step in range(cfg.steps):
            # \mathcal{L} = \mathrm{BCE}(\sigma(w^\top x + b), y)
            loss = binary_cross_entropy_with_logits(neuron.pre_activation(x), y.float())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 10 == 0:
                run.log(step, **{f"loss_{name}": loss})
        with torch.no_grad():
            # \sigma(z) > 1/2 \iff z > 0
            metrics[f"acc_{name}"] = ((neuron.pre_activation(x) > 0).long() == y).float().mean().item()

    # every line through the origin is w^T x = 0 for a unit w at some angle; either side may be class 1
    theta = torch.arange(cfg.angles) * (2 * math.pi / cfg.angles)
    w = torch.stack([theta.cos(), theta.sin()], 1)  # (A, 2)
    acc = ((x @ w.T > 0).long() == y[:, None]).float().mean(0)  # (A,)
    metrics["acc_no_bias_best"] = acc.max().item()
    best_w = w[acc.argmax()]

    with run.figure("neuron_bias") as (fig, ax):
        ax.scatter(x[:, 0], x[:, 1], c=["#1f77b4" if t == 0 else "#d62728" for t in y], s=8)
        t = torch.linspace(-1, 4.5, 2)
        wb, bb = neurons["bias"].unit.weight[0].detach(), neurons["bias"].unit.bias.detach()
        ax.plot(t, -(wb[0] * t + bb) / wb[1], "k-", label=f"with bias ({metrics['acc_bias']:.2f})")
        ax.plot(t, -best_w[0] * t / best_w[1], "k--", label=f"best through origin ({metrics['acc_no_bias_best']:.2f})")
        ax.scatter([0], [0], marker="+", c="k", s=80)
        ax.set(xlim=(-1, 4.5), ylim=(-1, 4.5), aspect="equal", title="a neuron's boundary w^T x + b = 0")
        ax.legend(fontsize=8)
    return metrics
