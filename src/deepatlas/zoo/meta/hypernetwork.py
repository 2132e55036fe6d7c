"""HyperNetworks: a network whose output is the weights of another network.

A small generator g_phi reads an embedding z (of a layer, a time step or, here, a task) and emits
every weight of a target network, which then computes as usual with those weights; only phi is
trained, end to end through the target's loss. Conditioned on a task embedding, one generator
gives every task its own network, and a task never seen in training gets weights in one pass.

    \\theta(z) = g_\\phi(z),   \\hat y = f(x; \\theta(z)),   \\min_\\phi \\mathbb{E}_{(z, x, y)} \\mathcal{L}(f(x; g_\\phi(z)), y)

Ha, Dai & Le, "HyperNetworks", ICLR 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from deepatlas.data import split_seeds
from deepatlas.data.sinusoid import sample_tasks
from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.optimizers import Adam
from deepatlas.optim.schedules import CosineAnnealingLR
from deepatlas.registry import register_model
from deepatlas.zoo.fundamentals.mlp import MLP
from deepatlas.zoo.meta.maml import mse, sinusoid_learner


class HyperNetwork(nn.Module):
    """g_phi: an MLP from a task embedding (B, d_z) to all the weights of `target`, which keeps only its
    architecture. forward(z (B, d_z), x (B, n, d_in)) -> target's output on each task's own weights (B, n, d_out).

    The last layer's bias starts at the target's own initial weights and its matrix near zero, so the
    first generated networks are ordinarily initialised ones."""

    def __init__(self, target: nn.Module, d_z: int, hidden: int = 64):
        super().__init__()
        self.shapes = {name: p.shape for name, p in target.named_parameters()}
        flat = torch.cat([p.detach().flatten() for p in target.parameters()])
        self.target = target.requires_grad_(False)  # its weights come from g_phi
        self.g = nn.Sequential(nn.Linear(d_z, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                               nn.Linear(hidden, len(flat)))
        with torch.no_grad():
            self.g[-1].weight.mul_(0.1)
            self.g[-1].bias.copy_(flat)

    def weights(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """\\theta(z) = g_\\phi(z), split into the target's parameters: {name: (B, *shape)}."""
        flat = self.g(z)  # (B, P)
        sizes = [math.prod(s) for s in self.shapes.values()]
        return {name: chunk.view(len(z), *shape)
                for (name, shape), chunk in zip(self.shapes.items(), flat.split(sizes, -1))}

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # \hat y = f(x; \theta(z)), each task with its own weights
        return vmap(lambda p, xi: functional_call(self.target, p, (xi,)))(self.weights(z), x)


def task_embedding(amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """z = (A, sin phi, cos phi) for a sine wave: (B,), (B,) -> (B, 3)."""
    return torch.stack([amplitude, phase.sin(), phase.cos()], -1)


@register_model("hypernetwork-sinusoid", card="hypernetwork",
                example=lambda: (torch.randn(2, 3), torch.randn(2, 5, 1)))
def hypernetwork_sinusoid(target_hidden: int = 20, hidden: int = 64) -> HyperNetwork:
    return HyperNetwork(sinusoid_learner(target_hidden), d_z=3, hidden=hidden)


class ConcatConditioned(nn.Module):
    """The plain alternative: one network on [x, z], the same weights for every task."""

    def __init__(self, d_z: int, hidden: int = 40):
        super().__init__()
        self.net = MLP([1 + d_z, hidden, hidden, 1], activation="relu")

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, z[:, None].expand(-1, x.shape[1], -1)], -1))


class Unconditioned(nn.Module):
    """The baseline that ignores the task: one network for all sine waves."""

    def __init__(self, hidden: int = 40):
        super().__init__()
        self.net = sinusoid_learner(hidden)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --- hypernetwork/task-conditioned: weights for sine waves never seen ------------------------------

@dataclass
class TaskConditionedConfig:
    steps: int = 3000
    batch: int = 32  # tasks per step
    n_points: int = 20  # points per task
    lr: float = 1e-3  # Adam, cosine-annealed
    target_hidden: int = 20  # the generated network: 1 -> h -> h -> 1
    hidden: int = 64  # the generator
    n_test: int = 500  # held-out tasks
    test_points: int = 100


@lab(
    "hypernetwork/task-conditioned",
    card="hypernetwork",
    config=TaskConditionedConfig,
    scales={
        "quick": {"steps": 20, "n_test": 20},
        "default": {},
        "full": {"steps": 50000, "target_hidden": 40, "hidden": 128},
    },
    goals=[Goal("hyper_mse", "<=", 0.1)],
    claims=[
        Check(
            "hypernetwork-generates-weights",
            lambda m: m["hyper_mse"] <= 0.1 * m["unconditioned_mse"],
            "a generator reading the task embedding (amplitude, sin phase, cos phase) writes all "
            "{target_params} weights of a 1-{target_hidden}-{target_hidden}-1 regressor; on {n_test} sine waves "
            "never seen in training those networks reach MSE {hyper_mse:.4f}, against {unconditioned_mse:.3f} for "
            "one network shared by all tasks and {concat_mse:.4f} for a network given the embedding as an extra "
            "input. Rule: generated networks at most 0.1x the shared network's MSE",
        ),
    ],
    budget_s=60,
    threads=1,
)
def task_conditioned(run, cfg: TaskConditionedConfig) -> dict:
    """A task-conditioned hypernetwork writing the weights of a sine-wave regressor."""
    train_seed, test_seed = split_seeds(run.seed)
    torch.manual_seed(train_seed)
    models = {"hyper": hypernetwork_sinusoid(cfg.target_hidden, cfg.hidden), "concat": ConcatConditioned(3),
              "unconditioned": Unconditioned()}
    test = sample_tasks(cfg.n_test, cfg.test_points, torch.Generator().manual_seed(test_seed))
    z_test = task_embedding(test.amplitude, test.phase).to(run.device)
    metrics: dict = {"n_test": cfg.n_test, "target_hidden": cfg.target_hidden,
                     "target_params": sum(p.numel() for p in models["hyper"].target.parameters())}
    curves = {}
    for name, model in run.progress(models.items(), total=len(models), desc="models"):
        model.to(run.device)
        opt = Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
        schedule = CosineAnnealingLR(opt, T_max=cfg.steps)
        g = torch.Generator().manual_seed(train_seed)  # the same tasks for every model
        curves[name] = []
        for step in range(cfg.steps):
            tasks = sample_tasks(cfg.batch, cfg.n_points, g)
            z = task_embedding(tasks.amplitude, tasks.phase).to(run.device)
            # \mathcal{L} = \| f(x; g_\phi(z)) - y \|^2
            loss = mse(model(z, tasks.x.to(run.device)), tasks.y.to(run.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            if (step + 1) % 100 == 0:
                curves[name].append(loss.item())
                run.log(step + 1, **{f"{name}_loss": curves[name][-1]})
        with torch.no_grad():
            metrics[f"{name}_mse"] = mse(model(z_test, test.x.to(run.device)), test.y.to(run.device)).item()

    with run.figure("task_conditioned", ncols=2, size=(10, 3.8)) as (fig, (ax_fit, ax_loss)):
        grid = torch.linspace(-5, 5, 200)[None, :, None].expand(3, -1, -1)
        with torch.no_grad():
            pred = models["hyper"](z_test[:3], grid.to(run.device)).cpu()
        for i in range(3):
            truth = test.amplitude[i] * torch.sin(grid[i, :, 0] - test.phase[i])
            ax_fit.plot(grid[i, :, 0], truth, f"C{i}", lw=2, alpha=0.5)
            ax_fit.plot(grid[i, :, 0], pred[i, :, 0], f"C{i}--")
        ax_fit.set(xlabel="x", ylabel="y", title="held-out waves (solid) and generated networks (dashed)")
        for name, curve in curves.items():
            ax_loss.plot(range(100, 100 * len(curve) + 1, 100), curve, label=name)
        ax_loss.set(xlabel="step", ylabel="training MSE", yscale="log", title="training")
        ax_loss.legend(fontsize=8)
    return metrics
