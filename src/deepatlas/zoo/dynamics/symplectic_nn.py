"""Symplectic network (SympNet): learn the time-h flow map of a Hamiltonian system as a symplectic map.

Instead of a vector field to integrate, a SympNet learns the one-step map (q, p) -> (q', p') directly,
built from shear modules that are symplectic by construction: an "up" module adds to p the gradient of
a scalar function of q, a "down" module adds to q the gradient of one of p. Each has a Jacobian M with
M^T J M = J, and so has their composition; iterating it behaves like a learned symplectic integrator,
whose energy error stays bounded over long rollouts.

    \\text{up}: (q, p) \\mapsto (q,\\ p + K^\\top \\mathrm{diag}(a)\\, \\sigma(K q + b)),   \\text{down}: (q, p) \\mapsto (q + K^\\top \\mathrm{diag}(a)\\, \\sigma(K p + b),\\ p)

Jin, Zhang, Zhu, Tang & Karniadakis, "SympNets: Intrinsic structure-preserving symplectic networks for
identifying Hamiltonian systems", Neural Networks 2020 (arXiv:2001.03750).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.physics import energy, trajectories
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.fundamentals.mlp import MLP


class GradientModule(nn.Module):
    """One shear: p += K^T diag(a) sigma(K q + b) ("up"), or q += ... of p ("down"); sigma = tanh.

    K^T diag(a) tanh(K q + b) is the gradient of V(q) = \\sum_i a_i \\log\\cosh(k_i^\\top q + b_i), a scalar,
    which is what makes the shear symplectic."""

    def __init__(self, dof: int, width: int, up: bool, generator: torch.Generator | None = None):
        super().__init__()
        self.dof, self.up = dof, up
        self.K = nn.Parameter(torch.randn(width, dof, generator=generator) * 0.1)
        self.a = nn.Parameter(torch.randn(width, generator=generator) * 0.1)
        self.b = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2d) -> (B, 2d)
        q, p = x[:, :self.dof], x[:, self.dof:]
        src = q if self.up else p
        # K^\top \mathrm{diag}(a)\, \sigma(K s + b)
        shear = (self.a * torch.tanh(src @ self.K.T + self.b)) @ self.K  # (B, d)
        return torch.cat([q, p + shear] if self.up else [q + shear, p], dim=-1)


class SympNet(nn.Module):
    """A G-SympNet: `modules` gradient modules alternating up and down; forward(x_n) -> x_{n+1}."""

    def __init__(self, dof: int = 1, width: int = 32, modules: int = 6, generator: torch.Generator | None = None):
        super().__init__()
        self.dof = dof
        self.layers = nn.ModuleList(GradientModule(dof, width, up=i % 2 == 0, generator=generator)
                                    for i in range(modules))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ResidualMap(nn.Module):
    """The unstructured baseline: x_{n+1} = x_n + MLP(x_n)."""

    def __init__(self, dof: int = 1, hidden: int = 64, generator: torch.Generator | None = None):
        super().__init__()
        self.net = MLP([2 * dof, hidden, hidden, 2 * dof], activation="tanh", generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


@register_model("sympnet", card="symplectic-nn", example=lambda: (torch.randn(5, 2),))
def sympnet(dof: int = 1, width: int = 16, modules: int = 4) -> SympNet:
    return SympNet(dof, width, modules)


def symplectic_defect(step: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """max over the rows of x of |M^T J M - J|, M the Jacobian of the map at x (zero for a symplectic map)."""
    d = x.shape[-1] // 2
    j = torch.zeros(2 * d, 2 * d, dtype=x.dtype)
    j[:d, d:], j[d:, :d] = torch.eye(d), -torch.eye(d)
    m = torch.func.vmap(torch.func.jacrev(lambda v: step(v[None])[0]))(x)  # (B, 2d, 2d)
    # M^\top J M - J
    return (m.transpose(1, 2) @ j @ m - j).abs().amax()


# --- symplectic-nn/long-rollout: a learned flow map iterated far beyond its training data ---------------

@dataclass
class RolloutConfig:
    n_train: int = 40  # pendulum trajectories
    t_train: float = 5.0
    h: float = 0.1  # the flow map's time step
    width: int = 32
    modules: int = 8
    hidden: int = 64  # the baseline's MLP
    steps: int = 3000
    lr: float = 3e-3
    n_test: int = 20
    rollout_steps: int = 2000  # t = 200


@lab(
    "symplectic-nn/long-rollout",
    card="symplectic-nn",
    config=RolloutConfig,
    scales={
        "quick": {"n_train": 8, "steps": 40, "modules": 4, "width": 8, "n_test": 4, "rollout_steps": 50},
        "default": {},
        "full": {"steps": 20_000, "rollout_steps": 20_000},
    },
    goals=[Goal("sympnet_max_drift", "<=", 0.05), Goal("symplectic_defect", "<=", 1e-4)],
    claims=[
        Check(
            "symplectic-nn-structure-preserving",
            lambda m: m["symplectic_defect"] <= 1e-4 and m["sympnet_late_drift"] <= 2 * m["sympnet_early_drift"]
            and m["sympnet_drift"] < m["baseline_drift"],
            "the learned pendulum flow map is symplectic to {symplectic_defect:.1e}; iterated {rollout_steps} "
            "times (trained on {train_steps} steps), its mean energy error is {sympnet_early_drift:.4f} over the "
            "first tenth and {sympnet_late_drift:.4f} over the last (bounded), ending at {sympnet_drift:.4f}, vs "
            "{baseline_drift:.4f} for a residual MLP map (one-step errors {sympnet_step_err:.1e} and "
            "{baseline_step_err:.1e})",
        ),
    ],
    budget_s=90,
    threads=1,
)
def long_rollout(run, cfg: RolloutConfig) -> dict:
    """SympNet vs a residual MLP map on the pendulum: energy over a long rollout."""
    train = trajectories("pendulum", cfg.n_train, seed=run.seed, t_end=cfg.t_train, dt=cfg.h)
    x = torch.stack([train.q, train.p], -1)  # (n, T + 1, 2)
    x_in, x_out = x[:, :-1].reshape(-1, 2).float(), x[:, 1:].reshape(-1, 2).float()  # consecutive states
    x_in, x_out = x_in.to(run.device), x_out.to(run.device)
    test = trajectories("pendulum", cfg.n_test, seed=run.seed + 1000, t_end=0.0)
    x0 = torch.stack([test.q[:, 0], test.p[:, 0]], -1).float().to(run.device)
    g = torch.Generator().manual_seed(run.seed)
    models = {"sympnet": SympNet(1, cfg.width, cfg.modules, generator=g),
              "baseline": ResidualMap(1, cfg.hidden, generator=g)}
    metrics: dict = {"rollout_steps": cfg.rollout_steps, "train_steps": round(cfg.t_train / cfg.h)}
    curves = {}
    start = time.perf_counter()
    for name, model in models.items():
        model.to(run.device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
        for step in run.progress(range(cfg.steps), desc=name):
            # \mathcal{L} = \| \Phi_\theta(x_n) - x_{n+1} \|^2
            loss = (model(x_in) - x_out).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            if step % 50 == 0 or step == cfg.steps - 1:
                run.log(step, **{f"{name}_loss": loss})
        with torch.no_grad():
            metrics[f"{name}_step_err"] = (model(x_in) - x_out).norm(dim=-1).mean().item()
            xs = [x0]
            for _ in range(cfg.rollout_steps):
                xs.append(model(xs[-1]))
            xs = torch.stack(xs).double()  # (S + 1, n_test, 2)
        e = energy("pendulum", xs[..., 0], xs[..., 1])
        rel = ((e - e[0]) / e[0]).abs().mean(1)  # (S + 1,) mean over test trajectories
        tenth = max(1, cfg.rollout_steps // 10)
        metrics[f"{name}_drift"] = rel[-1].item()
        metrics[f"{name}_max_drift"] = rel.max().item()
        metrics[f"{name}_early_drift"] = rel[1:tenth + 1].mean().item()
        metrics[f"{name}_late_drift"] = rel[-tenth:].mean().item()
        curves[name] = (xs, rel)
    metrics["train_s"] = time.perf_counter() - start
    probe = torch.stack([test.q[:, 0], test.p[:, 0]], -1).double()
    metrics["symplectic_defect"] = symplectic_defect(models["sympnet"].double().cpu(), probe).item()
    metrics["baseline_defect"] = symplectic_defect(models["baseline"].double().cpu(), probe).item()
    _plot(run, curves, cfg.h)
    return metrics


def _plot(run, curves, h) -> None:
    with run.figure("long_rollout", ncols=2) as (fig, (ax_phase, ax_e)):
        for name, c in (("baseline", "tab:orange"), ("sympnet", "tab:blue")):
            xs, rel = curves[name]
            ax_phase.plot(xs[:, 0, 0].cpu(), xs[:, 0, 1].cpu(), color=c, lw=0.5, label=name)
            ax_e.plot(h * torch.arange(len(rel)), rel.cpu(), color=c, label=name)
        ax_phase.set(xlabel="q", ylabel="p", title="one rollout")
        ax_phase.legend()
        ax_e.set(xlabel="t", ylabel="mean |E(t) - E(0)| / E(0)", yscale="log", title="energy error")
        ax_e.legend()
