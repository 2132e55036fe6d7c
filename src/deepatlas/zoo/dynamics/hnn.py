"""Hamiltonian neural network: learn the energy H(q, p), and take the dynamics from its symplectic gradient.

A plain network that predicts (dq/dt, dp/dt) can learn any vector field, including ones that slowly
pump energy in or out, so its long rollouts drift. An HNN outputs one scalar H_theta(q, p) and moves
along Hamilton's equations; the resulting field is divergence-free and keeps H_theta constant along
exact trajectories, so the true energy only oscillates around its start instead of drifting.

    \\dot q = \\partial H_\\theta / \\partial p,   \\dot p = -\\partial H_\\theta / \\partial q

Greydanus, Dzamba & Yosinski, "Hamiltonian Neural Networks", NeurIPS 2019 (arXiv:1906.01563).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.physics import energy, trajectories
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.dynamics.neural_ode import odeint
from deepatlas.zoo.fundamentals.mlp import MLP


class HNN(nn.Module):
    """forward(x (B, 2d) = (q, p)) -> dx/dt (B, 2d) from the learned scalar H_theta."""

    def __init__(self, dof: int = 1, hidden: int = 200, depth: int = 2, generator: torch.Generator | None = None):
        super().__init__()
        self.dof = dof
        self.net = MLP([2 * dof, *[hidden] * depth, 1], activation="tanh", generator=generator)
        self.net.layers[-1].bias = None  # a constant added to H changes no dynamics, so it gets no gradient

    def hamiltonian(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2d) -> (B,)
        return self.net(x)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():  # the field needs dH/dx even when rolling out under no_grad
            if not x.requires_grad:
                x = x.detach().requires_grad_()
            (dh,) = torch.autograd.grad(self.hamiltonian(x).sum(), x, create_graph=True)
        dh_dq, dh_dp = dh[:, :self.dof], dh[:, self.dof:]
        # (\dot q, \dot p) = (\partial H / \partial p, -\partial H / \partial q)
        return torch.cat([dh_dp, -dh_dq], dim=-1)


class BaselineField(nn.Module):
    """The same MLP predicting (dq/dt, dp/dt) directly: no structure."""

    def __init__(self, dof: int = 1, hidden: int = 200, depth: int = 2, generator: torch.Generator | None = None):
        super().__init__()
        self.net = MLP([2 * dof, *[hidden] * depth, 2 * dof], activation="tanh", generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model("hnn", card="hnn", example=lambda: (torch.randn(5, 2),))
def hnn(dof: int = 1, hidden: int = 32, depth: int = 2) -> HNN:
    return HNN(dof, hidden, depth)


def rollout(field: nn.Module, x0: torch.Tensor, dt: float, n_steps: int) -> torch.Tensor:
    """RK4 rollout of a learned autonomous field: (n_steps + 1, B, 2d), without gradients."""
    t = dt * torch.arange(n_steps + 1, dtype=x0.dtype, device=x0.device)
    with torch.no_grad():
        return odeint(lambda s, x: field(x).detach(), x0, t, method="rk4")


def fit_field(run, name: str, field: nn.Module, x: torch.Tensor, dxdt: torch.Tensor, steps: int, lr: float) -> float:
    """Full-batch Adam on \\|f_theta(x) - dx/dt\\|^2 (the HNN loss when f_theta is an HNN); returns the last loss."""
    opt = torch.optim.Adam(field.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for step in range(steps):
        # \mathcal{L} = \| \partial H / \partial p - \dot q \|^2 + \| \partial H / \partial q + \dot p \|^2
        loss = (field(x) - dxdt).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if step % 50 == 0 or step == steps - 1:
            run.log(step, **{f"{name}_loss": loss})
    return loss.item()


# --- hnn/energy-conservation: HNN vs a baseline MLP on the ideal mass-spring and pendulum ---------------

@dataclass
class EnergyConfig:
    n_train: int = 50  # trajectories per system
    t_train: float = 3.0  # each sampled every 0.1 over [0, t_train]
    noise: float = 0.05  # on the observed (q, p); derivatives exact
    hidden: int = 64
    steps: int = 1500
    lr: float = 1e-3
    n_test: int = 20
    t_rollout: float = 100.0  # far beyond the training window
    dt: float = 0.1  # RK4, the same integrator for both models


@lab(
    "hnn/energy-conservation",
    card="hnn",
    config=EnergyConfig,
    scales={
        "quick": {"n_train": 10, "hidden": 32, "steps": 50, "n_test": 4, "t_rollout": 5.0},
        "default": {},
        "full": {"hidden": 200, "steps": 10_000, "t_rollout": 1000.0, "dt": 0.05},
    },
    goals=[Goal("mass_spring_drift_ratio", ">=", 10.0), Goal("pendulum_drift_ratio", ">=", 10.0)],
    claims=[
        Check(
            "hnn-energy-conservation",
            lambda m: m["mass_spring_drift_ratio"] >= 10 and m["pendulum_drift_ratio"] >= 10,
            "over RK4 rollouts of t = {t_rollout:.0f} (trained on t <= {t_train:.0f}), the relative energy drift at "
            "the end is {mass_spring_hnn_drift:.4f} (HNN) vs {mass_spring_baseline_drift:.4f} (MLP) on the "
            "mass-spring, {mass_spring_drift_ratio:.0f}x lower, and {pendulum_hnn_drift:.4f} vs "
            "{pendulum_baseline_drift:.4f} on the pendulum, {pendulum_drift_ratio:.0f}x lower",
        ),
    ],
    budget_s=90,
    threads=1,
)
def energy_conservation(run, cfg: EnergyConfig) -> dict:
    """HNN vs baseline MLP on ideal mass-spring and pendulum: energy drift over long rollouts."""
    metrics: dict = {"t_rollout": cfg.t_rollout, "t_train": cfg.t_train}
    curves = {}
    start = time.perf_counter()
    for k, system in enumerate(run.progress(("mass_spring", "pendulum"), desc="systems")):
        train = trajectories(system, cfg.n_train, seed=10 * run.seed + k, t_end=cfg.t_train, noise=cfg.noise)
        x = torch.stack([train.q, train.p], -1).reshape(-1, 2).float().to(run.device)  # (N, 2)
        dxdt = torch.stack([train.dq, train.dp], -1).reshape(-1, 2).float().to(run.device)
        test = trajectories(system, cfg.n_test, seed=10 * run.seed + k + 5, t_end=0.0)
        x0 = torch.stack([test.q[:, 0], test.p[:, 0]], -1).float().to(run.device)  # (n_test, 2)
        g = torch.Generator().manual_seed(run.seed)
        n_steps = round(cfg.t_rollout / cfg.dt)
        for name, field in (("hnn", HNN(1, cfg.hidden, generator=g)), ("baseline", BaselineField(1, cfg.hidden,
                                                                                                   generator=g))):
            field = field.to(run.device)
            metrics[f"{system}_{name}_loss"] = fit_field(run, f"{system}_{name}", field, x, dxdt, cfg.steps, cfg.lr)
            xs = rollout(field, x0, cfg.dt, n_steps).double()  # (T + 1, n_test, 2)
            e = energy(system, xs[..., 0], xs[..., 1])  # (T + 1, n_test)
            rel = (e - e[0]) / e[0]
            # drift = \mathrm{mean}_i |E_i(T) - E_i(0)| / E_i(0)
            metrics[f"{system}_{name}_drift"] = rel[-1].abs().mean().item()
            metrics[f"{system}_{name}_max_drift"] = rel.abs().max().item()
            curves[system, name] = (xs, rel.abs().mean(1))
        metrics[f"{system}_drift_ratio"] = (metrics[f"{system}_baseline_drift"]
                                            / max(metrics[f"{system}_hnn_drift"], 1e-12))
    metrics["train_s"] = time.perf_counter() - start
    _plot(run, curves, cfg.dt)
    return metrics


def _plot(run, curves, dt) -> None:
    with run.figure("energy", ncols=2, nrows=2, size=(10, 7.5)) as (fig, axes):
        for row, system in enumerate(("mass_spring", "pendulum")):
            ax_phase, ax_e = axes[2 * row], axes[2 * row + 1]
            for name, c in (("baseline", "tab:orange"), ("hnn", "tab:blue")):
                xs, drift = curves[system, name]
                ax_phase.plot(xs[:, 0, 0].cpu(), xs[:, 0, 1].cpu(), color=c, lw=0.6, label=name)
                ax_e.plot(dt * torch.arange(len(drift)), drift.cpu(), color=c, label=name)
            ax_phase.set(xlabel="q", ylabel="p", title=f"{system}: one long rollout")
            ax_e.set(xlabel="t", ylabel="mean |E(t) - E(0)| / E(0)", yscale="log", title="energy drift")
            ax_e.legend()
