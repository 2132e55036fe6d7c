"""Lagrangian neural network: learn L(q, qdot) and get the acceleration from the Euler-Lagrange equations.

An HNN needs canonical momenta p, which are often unknown; an LNN needs only positions and velocities.
A network gives a scalar Lagrangian L_theta(q, qdot), and the Euler-Lagrange equations
d/dt (dL/dqdot) = dL/dq, written out with the chain rule and solved for qdot-dot, give the dynamics.
Like an HNN's, they conserve an energy (here E = qdot . dL/dqdot - L), so rollouts do not drift.

    \\ddot q = (\\nabla_{\\dot q}\\nabla_{\\dot q}^\\top L)^{-1}\\big[\\nabla_q L - (\\nabla_q\\nabla_{\\dot q}^\\top L)\\,\\dot q\\big]

Cranmer, Greydanus, Hoyer, Battaglia, Spergel & Ho, "Lagrangian Neural Networks", ICLR 2020 workshop
on Integration of Deep Neural Models and Differential Equations (arXiv:2003.04630).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.physics import energy, trajectories
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.linear import Linear
from deepatlas.registry import register_model
from deepatlas.zoo.dynamics.hnn import fit_field, rollout


class LNN(nn.Module):
    """forward(x (B, 2d) = (q, qdot)) -> dx/dt = (qdot, qddot) from the learned scalar L_theta (softplus MLP,
    whose second derivatives are smooth and non-zero, as in the paper)."""

    def __init__(self, dof: int = 1, hidden: int = 128, depth: int = 3, generator: torch.Generator | None = None):
        super().__init__()
        self.dof = dof
        sizes = [2 * dof, *[hidden] * depth]
        self.layers = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))
        self.layers.append(Linear(hidden, 1, bias=False, generator=generator))  # a constant in L changes nothing

    def lagrangian(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2d) -> (B,)
        for layer in self.layers[:-1]:
            x = nn.functional.softplus(layer(x))
        return self.layers[-1](x)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dof
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_()
            (grad,) = torch.autograd.grad(self.lagrangian(x).sum(), x, create_graph=True)  # (B, 2d)
            # rows of the Hessian that involve qdot: \partial/\partial x of \partial L / \partial \dot q_i
            rows = [torch.autograd.grad(grad[:, d + i].sum(), x, create_graph=True)[0] for i in range(d)]
        hess = torch.stack(rows, dim=1)  # (B, d, 2d): [\nabla_q \nabla_{\dot q}^\top L, \nabla_{\dot q}\nabla_{\dot q}^\top L]
        qdot, dl_dq = x[:, d:], grad[:, :d]
        mixed, mass = hess[:, :, :d], hess[:, :, d:]  # (B, d, d) each
        # \ddot q = (\nabla_{\dot q}\nabla_{\dot q}^\top L)^{-1} [\nabla_q L - (\nabla_q \nabla_{\dot q}^\top L) \dot q]
        rhs = dl_dq - (mixed @ qdot[..., None])[..., 0]
        # solve_ex does not raise where a poorly trained L has a singular mass matrix: the rollout then
        # shows non-finite states, which the energy metrics report
        qddot = torch.linalg.solve_ex(mass, rhs[..., None])[0][..., 0]
        return torch.cat([qdot, qddot], dim=-1)


class BaselineAcceleration(nn.Module):
    """An MLP predicting qddot from (q, qdot) directly; dq/dt = qdot is given to it, as to the LNN."""

    def __init__(self, dof: int = 1, hidden: int = 128, depth: int = 3, generator: torch.Generator | None = None):
        super().__init__()
        self.dof = dof
        sizes = [2 * dof, *[hidden] * depth, dof]
        self.layers = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.layers[:-1]:
            h = nn.functional.softplus(layer(h))
        return torch.cat([x[:, self.dof:], self.layers[-1](h)], dim=-1)


@register_model("lagrangian-nn", card="lagrangian-nn", example=lambda: (torch.randn(5, 2),))
def lagrangian_nn(dof: int = 1, hidden: int = 32, depth: int = 2) -> LNN:
    return LNN(dof, hidden, depth)


# --- lagrangian-nn/energy-conservation: from positions and velocities only -------------------------------

@dataclass
class EnergyConfig:
    n_train: int = 20  # pendulum trajectories, sampled every 0.1 over [0, t_train]
    t_train: float = 3.0
    hidden: int = 64
    depth: int = 2
    steps: int = 1500
    lr: float = 3e-3
    n_test: int = 20
    t_rollout: float = 100.0
    dt: float = 0.05


@lab(
    "lagrangian-nn/energy-conservation",
    card="lagrangian-nn",
    config=EnergyConfig,
    scales={
        "quick": {"n_train": 8, "hidden": 16, "steps": 60, "n_test": 4, "t_rollout": 5.0},
        "default": {},
        "full": {"steps": 10_000, "t_rollout": 1000.0},
    },
    goals=[Goal("drift_ratio", ">=", 10.0)],
    claims=[
        Check(
            "lagrangian-nn-conservation",
            lambda m: m["drift_ratio"] >= 10,
            "trained on (q, dq/dt, d2q/dt2) of the pendulum without momenta, the LNN's RK4 rollouts to t = "
            "{t_rollout:.0f} end with relative energy drift {lnn_drift:.4f} vs {baseline_drift:.4f} for an MLP "
            "predicting the acceleration ({drift_ratio:.0f}x lower; acceleration errors {lnn_loss:.1e} and "
            "{baseline_loss:.1e})",
        ),
    ],
    budget_s=90,
    threads=1,
)
def energy_conservation(run, cfg: EnergyConfig) -> dict:
    """LNN vs an MLP on the pendulum from (q, qdot) alone: energy drift over long rollouts."""
    train = trajectories("pendulum", cfg.n_train, seed=run.seed, t_end=cfg.t_train)
    # with m = l = 1 the velocity is p; the models only ever see (q, qdot) and qddot = dp/dt
    x = torch.stack([train.q, train.p], -1).reshape(-1, 2).float().to(run.device)  # (N, 2) = (q, qdot)
    dxdt = torch.stack([train.dq, train.dp], -1).reshape(-1, 2).float().to(run.device)  # (qdot, qddot)
    test = trajectories("pendulum", cfg.n_test, seed=run.seed + 1000, t_end=0.0)
    x0 = torch.stack([test.q[:, 0], test.p[:, 0]], -1).float().to(run.device)
    g = torch.Generator().manual_seed(run.seed)
    metrics: dict = {"t_rollout": cfg.t_rollout}
    curves = {}
    start = time.perf_counter()
    for name, model in (("lnn", LNN(1, cfg.hidden, cfg.depth, generator=g)),
                        ("baseline", BaselineAcceleration(1, cfg.hidden, cfg.depth, generator=g))):
        model = model.to(run.device)
        metrics[f"{name}_loss"] = fit_field(run, name, model, x, dxdt, cfg.steps, cfg.lr)
        xs = rollout(model, x0, cfg.dt, round(cfg.t_rollout / cfg.dt)).double()  # (T + 1, n_test, 2)
        e = energy("pendulum", xs[..., 0], xs[..., 1])
        rel = (e - e[0]) / e[0]
        metrics[f"{name}_drift"] = rel[-1].abs().mean().item()
        metrics[f"{name}_max_drift"] = rel.abs().max().item()
        curves[name] = (xs, rel.abs().mean(1))
    metrics["drift_ratio"] = metrics["baseline_drift"] / max(metrics["lnn_drift"], 1e-12)
    metrics["train_s"] = time.perf_counter() - start
    with run.figure("lnn_energy", ncols=2) as (fig, (ax_phase, ax_e)):
        for name, c in (("baseline", "tab:orange"), ("lnn", "tab:blue")):
            xs, drift = curves[name]
            ax_phase.plot(xs[:, 0, 0].cpu(), xs[:, 0, 1].cpu(), color=c, lw=0.6, label=name)
            ax_e.plot(cfg.dt * torch.arange(len(drift)), drift.cpu(), color=c, label=name)
        ax_phase.set(xlabel="q", ylabel="dq/dt", title="pendulum: one long rollout")
        ax_phase.legend()
        ax_e.set(xlabel="t", ylabel="mean |E(t) - E(0)| / E(0)", yscale="log", title="energy drift")
        ax_e.legend()
    return metrics
