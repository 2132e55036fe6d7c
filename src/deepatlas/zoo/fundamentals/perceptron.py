"""Rosenblatt's perceptron: a thresholded linear unit and its error-driven learning rule.

On a mistake the weights move towards the misclassified input (or away from it); the
perceptron convergence theorem guarantees a separating line is found whenever one
exists. XOR has none, so no weights classify more than three of its four points
(Minsky & Papert, 1969) - the limit that a hidden layer removes.

    \\hat y = \\mathbb{1}[w^\\top x + b > 0],   w \\leftarrow w + \\eta (y - \\hat y) x,   b \\leftarrow b + \\eta (y - \\hat y)

Rosenblatt, "The perceptron: a probabilistic model for information storage and
organization in the brain", Psychological Review 1958.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.fundamentals.mlp import MLP

TRUTH_TABLES = {  # inputs (4, 2) are the corners of the unit square
    "and": [0, 0, 0, 1],
    "or": [0, 1, 1, 1],
    "xor": [0, 1, 1, 0],
}
CORNERS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


class Perceptron(nn.Module):
    """A single threshold unit trained by the perceptron rule, not by gradients."""

    def __init__(self, n_in: int):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n_in), requires_grad=False)
        self.b = nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, n_in) -> (B,) of 0/1
        return (x @ self.w + self.b > 0).float()

    @torch.no_grad()
    def update(self, x: torch.Tensor, y: torch.Tensor, lr: float = 1.0) -> int:
        """One pass of the rule over (x, y), sample by sample; returns the number of mistakes."""
        mistakes = 0
        for xi, yi in zip(x, y):
            err = yi - self(xi[None])[0]  # +1, 0 or -1
            self.w += lr * err * xi
            self.b += lr * err
            mistakes += int(err != 0)
        return mistakes


@register_model("perceptron", card="perceptron", example=lambda: (CORNERS,))
def perceptron(n_in: int = 2) -> Perceptron:
    return Perceptron(n_in)


@dataclass
class XorConfig:
    perceptron_epochs: int = 100
    hidden: int = 8
    steps: int = 1000
    lr: float = 0.05


@lab(
    "perceptron/xor",
    card="perceptron",
    config=XorConfig,
    scales={
        "quick": {"perceptron_epochs": 20, "steps": 300},
        "default": {},
        "full": {"perceptron_epochs": 1000, "steps": 5000},
    },
    goals=[
        Goal("perceptron_and_acc", ">=", 1.0),
        Goal("perceptron_or_acc", ">=", 1.0),
        Goal("perceptron_xor_best_acc", "<=", 0.75),
        Goal("mlp_xor_acc", ">=", 1.0),
    ],
    claims=[
        Check(
            "perceptron-xor",
            lambda m: m["perceptron_xor_best_acc"] <= 0.75 and m["perceptron_and_acc"] == 1.0,
            "the perceptron rule learns AND ({perceptron_and_acc:.2f}) and OR ({perceptron_or_acc:.2f}) "
            "but its best XOR accuracy over {perceptron_epochs} epochs is {perceptron_xor_best_acc:.2f}",
        ),
        Check(
            "mlp-solves-xor",
            lambda m: m["mlp_xor_acc"] == 1.0,
            "a 2-{hidden}-1 tanh MLP reaches XOR accuracy {mlp_xor_acc:.2f} (loss {mlp_final_loss:.4f})",
        ),
    ],
    budget_s=10,
    threads=1,
)
def xor(run, cfg: XorConfig) -> dict:
    """XOR: the perceptron rule solves AND and OR but never XOR; one hidden layer does."""
    x = CORNERS.to(run.device)
    metrics: dict = {"perceptron_epochs": cfg.perceptron_epochs, "hidden": cfg.hidden}
    boundaries = {}
    for name, table in TRUTH_TABLES.items():
        y = torch.tensor(table, dtype=torch.float32, device=x.device)
        p = Perceptron(2).to(x.device)
        best = 0.0
        for _ in range(cfg.perceptron_epochs):
            p.update(x, y)
            best = max(best, (p(x) == y).float().mean().item())
        metrics[f"perceptron_{name}_acc"] = (p(x) == y).float().mean().item()
        metrics[f"perceptron_{name}_best_acc"] = best
        boundaries[f"perceptron, {name.upper()}"] = p

    y = torch.tensor(TRUTH_TABLES["xor"], dtype=torch.float32, device=x.device)
    net = MLP([2, cfg.hidden, 1]).to(x.device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    losses = []
    for step in run.progress(range(cfg.steps), desc="MLP on XOR"):
        # \mathcal{L} = \mathrm{BCE}(\sigma(f(x)), y)
        loss = nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            run.log(step, loss=loss)
            losses.append((step, loss.item()))
    with torch.no_grad():
        metrics["mlp_xor_acc"] = ((net(x).squeeze(1) > 0).float() == y).float().mean().item()
    metrics["mlp_final_loss"] = losses[-1][1]
    boundaries["MLP, XOR"] = net

    _plot(run, x, boundaries, losses)
    return metrics


def _plot(run, x, models: dict, losses: list) -> None:
    grid = torch.linspace(-0.5, 1.5, 200)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    points = torch.stack([gx.ravel(), gy.ravel()], 1).to(x.device)
    with run.figure("xor", ncols=len(models) + 1) as (fig, axes):
        for ax, (title, model) in zip(axes, models.items()):
            with torch.no_grad():
                out = model(points).reshape(gx.shape)
            region = out if isinstance(model, Perceptron) else (out > 0).float()
            ax.contourf(gx, gy, region.cpu(), levels=[-0.5, 0.5, 1.5], colors=["#dbe9f6", "#f6dbdb"])
            table = TRUTH_TABLES[title.split(", ")[1].lower()]
            ax.scatter(x[:, 0].cpu(), x[:, 1].cpu(), c=["#1f77b4" if t == 0 else "#d62728" for t in table],
                       s=80, edgecolors="black")
            ax.set_title(title)
            ax.set_aspect("equal")
        steps, values = zip(*losses)
        axes[-1].plot(steps, values)
        axes[-1].set(title="MLP training loss", xlabel="step", ylabel="BCE", yscale="log")
