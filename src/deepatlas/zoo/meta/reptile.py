"""Reptile: meta-learn an initialisation by repeatedly moving it towards the weights that plain SGD
reaches on one task.

Sample a task, run k steps of SGD on it from the current initialisation theta to reach
theta-tilde, and move theta a fraction epsilon of the way there. No query set, no second
derivatives: only plain training runs. A Taylor expansion shows that, for k > 1, the update
contains the same term as first-order MAML, which rewards initialisations where the gradients of
different batches of one task agree. Here a meta-batch of tasks runs at once (vmap over per-task
weights), and theta moves towards their mean.

    \\tilde\\theta_i = U^k_{\\mathcal{T}_i}(\\theta),   \\theta \\leftarrow \\theta + \\epsilon \\big(\\tfrac1B \\textstyle\\sum_i \\tilde\\theta_i - \\theta\\big)

Nichol, Achiam & Schulman, "On First-Order Meta-Learning Algorithms", arXiv 1803.02999, 2018.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.data.sinusoid import sample_tasks
from deepatlas.registry import register_model
from deepatlas.zoo.meta.maml import MAML, inner_loop, mse, per_task, sinusoid_learner


class Reptile(MAML):
    """The same learner and inner loop as MAML (first-order, `steps` SGD steps of size alpha); only the
    meta-update differs: see `reptile_step`. forward(x_s, y_s, x_q) predicts after the inner steps."""

    def __init__(self, learner: nn.Module, alpha: float = 0.01, steps: int = 5, loss=mse):
        super().__init__(learner, alpha, steps, first_order=True, loss=loss)


@torch.no_grad()
def reptile_step(model: Reptile, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> None:
    """One meta-update from a batch of tasks x (B, K, d_in), y (B, K, d_out): k SGD steps each, then
    theta moves a fraction epsilon towards the mean adapted weights."""
    theta = dict(model.learner.named_parameters())
    start = {n: p.detach().requires_grad_() for n, p in per_task(theta, len(x)).items()}
    with torch.enable_grad():
        # \tilde\theta_i = U^k_{\mathcal{T}_i}(\theta): k steps of SGD on task i
        adapted = inner_loop(model.learner, start, x, y, model.rates(), model.steps, create_graph=False,
                             loss=model.loss)
    for name, p in theta.items():
        # \theta \leftarrow \theta + \epsilon (\bar{\tilde\theta} - \theta)
        p.add_(epsilon * (adapted[name].mean(0) - p))


def reptile_train(model: Reptile, k: int, steps: int, meta_batch: int, epsilon: float, g: torch.Generator,
                  run, name: str = "reptile") -> None:
    """`steps` Reptile updates on meta_batch sine-wave tasks of k points each, epsilon annealed linearly to 0
    (as in the paper)."""
    device = next(model.parameters()).device
    for step in range(steps):
        tasks = sample_tasks(meta_batch, k, g)
        x, y = tasks.x.to(device), tasks.y.to(device)
        reptile_step(model, x, y, epsilon * (1 - step / steps))
        if (step + 1) % 500 == 0:
            run.log(step + 1, **{f"{name}_loss": mse(model.learner(x), y)})


@register_model("reptile-sinusoid", card="reptile",
                example=lambda: (torch.randn(2, 5, 1), torch.randn(2, 5, 1), torch.randn(2, 7, 1)))
def reptile_sinusoid(hidden: int = 40, alpha: float = 0.01, steps: int = 5) -> Reptile:
    return Reptile(sinusoid_learner(hidden), alpha, steps)
