"""Koopman autoencoder: learn coordinates in which a nonlinear system evolves linearly.

Koopman theory says a nonlinear flow acts linearly on functions of the state (observables). An encoder
phi learns a few such observables, a matrix K advances them one time step, and a decoder maps back;
predicting m steps ahead is a matrix power, x_{t+m} = phi^{-1}(K^m phi(x_t)). For systems with a
continuous spectrum such as the pendulum, whose frequency depends on the amplitude, Lusch et al. let an
auxiliary network choose K's eigenvalues from the (conserved) radius of the latent state: one matrix per
trajectory, a rotation-and-scaling block exp(mu dt) R(omega dt).

    z_t = \\varphi(x_t),   z_{t+m} = K(\\lambda)^m z_t,   \\hat x_{t+m} = \\varphi^{-1}(K^m \\varphi(x_t))

Lusch, Kutz & Brunton, "Deep learning for universal linear embeddings of nonlinear dynamics",
Nature Communications 2018 (arXiv:1712.09707).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.physics import trajectories
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.fundamentals.mlp import MLP


class KoopmanAE(nn.Module):
    """Encoder 2 -> 2 (one complex-conjugate pair), auxiliary net r^2 -> (mu, omega), decoder 2 -> 2."""

    def __init__(self, state: int = 2, hidden: int = 64, dt: float = 0.1, generator: torch.Generator | None = None):
        super().__init__()
        self.dt = dt
        self.encoder = MLP([state, hidden, hidden, 2], activation="tanh", generator=generator)
        self.decoder = MLP([2, hidden, hidden, state], activation="tanh", generator=generator)
        self.aux = MLP([1, hidden, 2], activation="tanh", generator=generator)

    def koopman_matrix(self, z: torch.Tensor) -> torch.Tensor:
        """K(z) (B, 2, 2) = exp(mu dt) [[cos, -sin], [sin, cos]](omega dt), eigenvalues from |z|^2."""
        mu, omega = self.aux(z.pow(2).sum(-1, keepdim=True)).unbind(-1)  # (B,) each
        c, s = torch.cos(omega * self.dt), torch.sin(omega * self.dt)
        scale = torch.exp(mu * self.dt)
        return scale[:, None, None] * torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)

    def forward(self, x0: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent states z_0..z_steps (steps + 1, B, 2) and decoded states (steps + 1, B, state).

        K is built once from z_0 and then only multiplied: z_m = K^m z_0."""
        z0 = self.encoder(x0)  # (B, 2)
        k = self.koopman_matrix(z0)  # (B, 2, 2)
        # z_{m} = K^{m} z_0
        zs = torch.stack([(torch.linalg.matrix_power(k, m) @ z0[..., None])[..., 0] for m in range(steps + 1)])
        return zs, self.decoder(zs)


@register_model("koopman-ae", card="koopman-nn", example=lambda: (torch.randn(4, 2), 3))
def koopman_ae(state: int = 2, hidden: int = 32, dt: float = 0.1) -> KoopmanAE:
    return KoopmanAE(state, hidden, dt)


def koopman_loss(model: KoopmanAE, x: torch.Tensor, steps: int):
    """Lusch et al.'s losses on windows x (B, steps + 1, state): reconstruction, linearity, prediction."""
    zs, xs_hat = model(x[:, 0], steps)  # (S + 1, B, 2), (S + 1, B, state)
    target = x.transpose(0, 1)  # (S + 1, B, state)
    # \|x_t - \varphi^{-1}(\varphi(x_t))\|^2
    recon = (model.decoder(model.encoder(target[0])) - target[0]).pow(2).mean()
    # \|\varphi(x_{t+m}) - K^m \varphi(x_t)\|^2
    linear = (model.encoder(target[1:]) - zs[1:]).pow(2).mean()
    # \|x_{t+m} - \varphi^{-1}(K^m \varphi(x_t))\|^2
    pred = (xs_hat[1:] - target[1:]).pow(2).mean()
    return recon + linear + pred, recon, linear, pred


def dmd_matrix(x_in: torch.Tensor, x_out: torch.Tensor) -> torch.Tensor:
    """The best linear one-step map in the original coordinates, A = argmin \\|x_in A^T - x_out\\| (least squares)."""
    return torch.linalg.lstsq(x_in, x_out).solution.T


# --- koopman-nn/pendulum --------------------------------------------------------------------------------

@dataclass
class PendulumConfig:
    n_train: int = 200  # trajectories
    t_train: float = 5.0
    dt: float = 0.1
    window: int = 30  # prediction steps in the loss (Lusch et al. use 30 for the pendulum)
    hidden: int = 64
    steps: int = 2000
    batch_size: int = 128
    lr: float = 3e-3
    n_test: int = 50
    horizon: int = 100  # steps predicted on test trajectories (t = 10)


@lab(
    "koopman-nn/pendulum",
    card="koopman-nn",
    config=PendulumConfig,
    scales={
        "quick": {"n_train": 20, "window": 5, "hidden": 16, "steps": 20, "n_test": 5, "horizon": 10},
        "default": {},
        "full": {"n_train": 2000, "steps": 20_000, "horizon": 500},
    },
    goals=[Goal("koopman_rel_err", "<=", 0.1)],
    claims=[
        Check(
            "koopman-nn-linearises",
            lambda m: m["koopman_rel_err"] <= 0.1 and m["koopman_rel_err"] < 0.5 * m["dmd_rel_err"],
            "with one matrix per trajectory, built from the encoded initial state and raised to the m-th power, "
            "the Koopman autoencoder predicts held-out pendulum trajectories {horizon} steps ahead with relative "
            "error {koopman_rel_err:.3f} (window trained: {window}); the best linear map on (q, p) itself gives "
            "{dmd_rel_err:.3f}",
        ),
    ],
    budget_s=90,
    threads=1,
)
def pendulum(run, cfg: PendulumConfig) -> dict:
    """Koopman autoencoder on the pendulum (energies up to 2/3 of the separatrix): long-horizon prediction."""
    energy_range = (0.2, 4.0)  # amplitudes up to about 109 degrees: the period varies strongly with energy
    train = trajectories("pendulum", cfg.n_train, seed=run.seed, t_end=cfg.t_train, dt=cfg.dt,
                         energy_range=energy_range)
    x = torch.stack([train.q, train.p], -1).float()  # (n, T + 1, 2)
    windows = x.unfold(1, cfg.window + 1, 1).permute(0, 1, 3, 2).reshape(-1, cfg.window + 1, 2).to(run.device)
    test = trajectories("pendulum", cfg.n_test, seed=run.seed + 1000, t_end=cfg.horizon * cfg.dt, dt=cfg.dt,
                        energy_range=energy_range)
    x_test = torch.stack([test.q, test.p], -1).float().to(run.device)  # (n_test, H + 1, 2)
    g = torch.Generator().manual_seed(run.seed)
    model = KoopmanAE(2, cfg.hidden, cfg.dt, generator=g).to(run.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    start = time.perf_counter()
    for step in run.progress(range(cfg.steps), desc="Koopman AE"):
        idx = torch.randint(0, len(windows), (cfg.batch_size,), generator=g).to(run.device)
        loss, recon, linear, pred = koopman_loss(model, windows[idx], cfg.window)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            run.log(step, loss=loss, recon=recon, linear=linear, pred=pred)
    train_s = time.perf_counter() - start

    a = dmd_matrix(x[:, :-1].reshape(-1, 2), x[:, 1:].reshape(-1, 2)).to(run.device)
    with torch.no_grad():
        _, koop = model(x_test[:, 0], cfg.horizon)  # (H + 1, n_test, 2)
        lin = [x_test[:, 0]]
        for _ in range(cfg.horizon):
            lin.append(lin[-1] @ a.T)
        lin = torch.stack(lin)
    truth = x_test.transpose(0, 1)  # (H + 1, n_test, 2)
    # \|\hat x - x\|_2 / \|x\|_2 over all test trajectories and the whole horizon
    err = lambda pred: ((pred - truth).norm() / truth.norm()).item()  # noqa: E731
    metrics = {"koopman_rel_err": err(koop), "dmd_rel_err": err(lin), "koopman_final_loss": loss.item(),
               "train_s": train_s, "horizon": cfg.horizon, "window": cfg.window}
    with run.figure("koopman", ncols=2) as (fig, (ax_t, ax_phase)):
        t = cfg.dt * torch.arange(cfg.horizon + 1)
        ax_t.plot(t, truth[:, 0, 0].cpu(), "k-", label="true q")
        ax_t.plot(t, koop[:, 0, 0].cpu(), "r--", label="Koopman $K^m$")
        ax_t.plot(t, lin[:, 0, 0].cpu(), "b:", label="best linear map on (q, p)")
        ax_t.set(xlabel="t", ylabel="q", title="held-out trajectory")
        ax_t.legend(fontsize=7)
        for i in range(min(8, cfg.n_test)):
            ax_phase.plot(truth[:, i, 0].cpu(), truth[:, i, 1].cpu(), "k-", lw=0.8)
            ax_phase.plot(koop[:, i, 0].cpu(), koop[:, i, 1].cpu(), "r--", lw=0.8)
        ax_phase.set(xlabel="q", ylabel="p", title="phase portraits (dashed: Koopman)")
    return metrics
