"""Neural SDE: a Neural ODE's drift plus a learned diffusion term driven by Brownian motion.

The model is a distribution over trajectories, dX = mu_theta(X, t) dt + sigma_theta(X, t) dW, simulated
with the Euler-Maruyama scheme. Here it is fitted by maximum likelihood of observed increments, each of
which Euler-Maruyama makes Gaussian, N(x + mu dt, sigma^2 dt). A deterministic Neural ODE fitted to the
same paths learns the mean drift, but from one starting point it can only produce one trajectory.

    X_{t+\\Delta t} = X_t + \\mu_\\theta(X_t, t)\\Delta t + \\sigma_\\theta(X_t, t)\\sqrt{\\Delta t}\\,\\xi,   \\xi \\sim \\mathcal N(0, I)

Tzen & Raginsky, "Neural Stochastic Differential Equations: Deep Latent Gaussian Models in the Diffusion
Limit", arXiv:1905.09883, 2019.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.fundamentals.mlp import MLP


class NeuralSDE(nn.Module):
    """Drift mu_theta(x, t) and diagonal diffusion sigma_theta(x, t) > 0 (softplus), each an MLP on (x, t)."""

    def __init__(self, dim: int = 1, hidden: int = 32, generator: torch.Generator | None = None):
        super().__init__()
        self.drift_net = MLP([dim + 1, hidden, hidden, dim], activation="tanh", generator=generator)
        self.diffusion_net = MLP([dim + 1, hidden, dim], activation="tanh", generator=generator)

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # (B, d), (B, 1) -> (B, d)
        return self.drift_net(torch.cat([x, t], -1))

    def diffusion(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.diffusion_net(torch.cat([x, t], -1))) + 1e-4

    def forward(self, x: torch.Tensor, t: torch.Tensor):
        return self.drift(x, t), self.diffusion(x, t)


@register_model("neural-sde", card="neural-sde", example=lambda: (torch.randn(4, 1), torch.rand(4, 1)))
def neural_sde(dim: int = 1, hidden: int = 16) -> NeuralSDE:
    return NeuralSDE(dim, hidden)


def euler_maruyama(drift, diffusion, x0: torch.Tensor, dt: float, n_steps: int, g: torch.Generator) -> torch.Tensor:
    """Simulate dX = drift(X, t) dt + diffusion(X, t) dW from x0 (B, d): returns (n_steps + 1, B, d)."""
    xs = [x0]
    for i in range(n_steps):
        t = torch.full_like(x0[:, :1], i * dt)
        xi = torch.randn(x0.shape, generator=g, dtype=x0.dtype).to(x0.device)
        # X_{t + \Delta t} = X_t + \mu \Delta t + \sigma \sqrt{\Delta t}\, \xi
        xs.append(xs[-1] + drift(xs[-1], t) * dt + diffusion(xs[-1], t) * math.sqrt(dt) * xi)
    return torch.stack(xs)


def em_nll(model: NeuralSDE, x: torch.Tensor, t: torch.Tensor, dt: float) -> torch.Tensor:
    """Mean negative log-likelihood of the increments of paths x (B, T + 1, d) under Euler-Maruyama's Gaussian."""
    x_prev, x_next = x[:, :-1], x[:, 1:]
    tt = t[:-1, None].expand(x.shape[0], -1, 1)  # (B, T, 1)
    mu, sigma = model(x_prev, tt)
    var = sigma**2 * dt
    # -\log \mathcal N(x_{n+1}; x_n + \mu \Delta t, \sigma^2 \Delta t)
    return (0.5 * (x_next - x_prev - mu * dt) ** 2 / var + 0.5 * torch.log(2 * math.pi * var)).mean()


# --- neural-sde/ou-process: an Ornstein-Uhlenbeck process, its spread against a Neural ODE's -------------

def ou_paths(n: int, t_end: float, dt: float, theta: float, mean: float, sigma: float, x0: torch.Tensor,
             g: torch.Generator) -> torch.Tensor:
    """Exact OU samples dX = theta (mean - X) dt + sigma dW on a grid: (n, T + 1), from the Gaussian transition."""
    steps = round(t_end / dt)
    decay = math.exp(-theta * dt)
    # X_{t+\Delta} | X_t \sim \mathcal N(m + (X_t - m) e^{-\theta\Delta}, \frac{\sigma^2}{2\theta}(1 - e^{-2\theta\Delta}))
    sd = sigma * math.sqrt((1 - decay**2) / (2 * theta))
    xs = [x0]
    for _ in range(steps):
        xs.append(mean + (xs[-1] - mean) * decay + sd * torch.randn(n, generator=g, dtype=x0.dtype))
    return torch.stack(xs, 1)


@dataclass
class OUConfig:
    theta: float = 1.0
    mean: float = 0.5
    sigma: float = 0.5
    n_paths: int = 200  # observed training paths, from x0 uniform in [-1.5, 2.5]
    t_end: float = 3.0
    dt: float = 0.05
    hidden: int = 32
    steps: int = 1500
    lr: float = 3e-3
    x0_test: float = 2.0
    n_sim: int = 2000  # simulated paths to measure the spread


@lab(
    "neural-sde/ou-process",
    card="neural-sde",
    config=OUConfig,
    scales={
        "quick": {"n_paths": 20, "steps": 30, "hidden": 8, "n_sim": 100},
        "default": {},
        "full": {"n_paths": 2000, "steps": 10_000, "n_sim": 20_000},
    },
    goals=[Goal("sde_std_rel_err", "<=", 0.1), Goal("sde_mean_abs_err", "<=", 0.05)],
    claims=[
        Check(
            "neural-sde-noisy-systems",
            lambda m: m["sde_std_rel_err"] <= 0.1 and m["ode_std"] < 0.1 * m["true_std"],
            "from x0 = {x0_test}, {n_sim} Euler-Maruyama paths of the fitted Neural SDE spread with standard "
            "deviation within {sde_std_rel_err:.3f} (relative, mean over time) of the exact OU value ({true_std:.3f} at "
            "t = {t_end:.0f}; learned {sde_std:.3f}), mean within {sde_mean_abs_err:.3f}; the Neural ODE fitted "
            "to the same paths gives spread {ode_std:.3f} and mean error {ode_mean_abs_err:.3f}",
        ),
    ],
    budget_s=90,
    threads=1,
)
def ou_process(run, cfg: OUConfig) -> dict:
    """Neural SDE fitted to an Ornstein-Uhlenbeck process: the spread of its paths vs the exact one."""
    g = torch.Generator().manual_seed(run.seed)
    x0 = -1.5 + 4.0 * torch.rand(cfg.n_paths, generator=g)
    paths = ou_paths(cfg.n_paths, cfg.t_end, cfg.dt, cfg.theta, cfg.mean, cfg.sigma, x0, g)
    x = paths[..., None].to(run.device)  # (B, T + 1, 1)
    t = cfg.dt * torch.arange(x.shape[1], dtype=x.dtype, device=run.device)
    sde = NeuralSDE(1, cfg.hidden, generator=g).to(run.device)
    ode = MLP([2, cfg.hidden, cfg.hidden, 1], activation="tanh", generator=g).to(run.device)  # dx/dt = f(x, t)
    start = time.perf_counter()
    for name, model in (("sde", sde), ("ode", ode)):
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
        for step in run.progress(range(cfg.steps), desc=name):
            if name == "sde":
                loss = em_nll(sde, x, t, cfg.dt)
            else:  # a Neural ODE with an Euler step: least squares on the increments
                tt = t[:-1, None].expand(x.shape[0], -1, 1)
                loss = (x[:, 1:] - x[:, :-1] - ode(torch.cat([x[:, :-1], tt], -1)) * cfg.dt).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            if step % 50 == 0 or step == cfg.steps - 1:
                run.log(step, **{f"{name}_loss": loss})
    train_s = time.perf_counter() - start

    n_steps = round(cfg.t_end / cfg.dt)
    start_x = torch.full((cfg.n_sim, 1), cfg.x0_test, device=run.device)
    with torch.no_grad():
        sim_sde = euler_maruyama(sde.drift, sde.diffusion, start_x, cfg.dt, n_steps, g)[..., 0]  # (T + 1, n_sim)
        sim_ode = euler_maruyama(lambda x, s: ode(torch.cat([x, s], -1)), lambda x, s: torch.zeros_like(x),
                                 start_x, cfg.dt, n_steps, g)[..., 0]
    tt = t.cpu()
    # E[X_t] = m + (x_0 - m) e^{-\theta t},   \mathrm{Var}[X_t] = \frac{\sigma^2}{2\theta}(1 - e^{-2\theta t})
    true_mean = cfg.mean + (cfg.x0_test - cfg.mean) * torch.exp(-cfg.theta * tt)
    true_std = cfg.sigma * torch.sqrt((1 - torch.exp(-2 * cfg.theta * tt)) / (2 * cfg.theta))
    sde_std, ode_std = sim_sde.std(1).cpu(), sim_ode.std(1).cpu()
    sde_mean, ode_mean = sim_sde.mean(1).cpu(), sim_ode.mean(1).cpu()
    late = tt >= 0.5  # where the true spread is already established
    metrics = {
        "sde_std_rel_err": ((sde_std - true_std).abs() / true_std)[late].mean().item(),
        "sde_mean_abs_err": (sde_mean - true_mean).abs().mean().item(),
        "ode_mean_abs_err": (ode_mean - true_mean).abs().mean().item(),
        "sde_std": sde_std[-1].item(), "ode_std": ode_std[-1].item(), "true_std": true_std[-1].item(),
        "train_s": train_s, "x0_test": cfg.x0_test, "n_sim": cfg.n_sim, "t_end": cfg.t_end,
    }
    with run.figure("ou_process", ncols=2) as (fig, (ax_paths, ax_stats)):
        for i in range(30):
            ax_paths.plot(tt, sim_sde[:, i].cpu(), color="tab:blue", lw=0.5, alpha=0.6)
        ax_paths.plot(tt, sim_ode[:, 0].cpu(), "r-", lw=2, label="Neural ODE (every path)")
        ax_paths.plot(tt, true_mean, "k--", label="exact mean")
        ax_paths.set(xlabel="t", ylabel="X", title=f"Neural SDE paths from x0 = {cfg.x0_test}")
        ax_paths.legend(fontsize=7)
        ax_stats.plot(tt, true_std, "k-", lw=2, label="exact std")
        ax_stats.plot(tt, sde_std, "b--", label="Neural SDE")
        ax_stats.plot(tt, ode_std, "r:", label="Neural ODE")
        ax_stats.set(xlabel="t", ylabel="std of X_t", title="spread of the paths")
        ax_stats.legend(fontsize=7)
    return metrics
