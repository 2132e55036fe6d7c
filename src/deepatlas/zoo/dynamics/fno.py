"""Fourier neural operator: layers that act on functions through their lowest Fourier modes.

Each Fourier layer transforms its input function with the FFT, multiplies each of the lowest k_max
modes by a learned complex matrix (the rest are dropped), transforms back, adds a pointwise linear map
and applies a nonlinearity. The weights belong to modes, not grid points, so one trained model can be
evaluated on any grid fine enough to hold those modes: here trained at one resolution, tested at a finer one.

    v_{\\ell+1}(x) = \\sigma\\big(W v_\\ell(x) + \\mathcal{F}^{-1}(R_\\phi \\cdot \\mathcal{F} v_\\ell)(x)\\big)

Li, Kovachki, Azizzadenesheli, Liu, Bhattacharya, Stuart & Anandkumar, "Fourier Neural Operator for
Parametric Partial Differential Equations", ICLR 2021 (arXiv:2010.08895).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.pde import burgers_operator_split
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.linear import Linear
from deepatlas.registry import register_model
from deepatlas.zoo.dynamics.deeponet import DeepONet


class SpectralConv1d(nn.Module):
    """(B, C_in, N) -> (B, C_out, N): a learned complex C_in x C_out matrix on each of the lowest `modes` modes."""

    def __init__(self, in_channels: int, out_channels: int, modes: int, generator: torch.Generator | None = None):
        super().__init__()
        self.modes = modes
        scale = 1 / (in_channels * out_channels)
        # R_\phi(k) for k = 0..modes-1, real and imaginary parts (the paper's initialisation)
        self.weight = nn.Parameter(scale * torch.rand(in_channels, out_channels, modes, 2, generator=generator))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        n = v.shape[-1]
        if n // 2 + 1 < self.modes:
            raise ValueError(f"a grid of {n} points holds {n // 2 + 1} modes, fewer than the layer's {self.modes}")
        v_hat = torch.fft.rfft(v)  # (B, C_in, N/2 + 1); irfft's 1/N makes the layer independent of N
        r = torch.view_as_complex(self.weight)  # (C_in, C_out, modes)
        out = v_hat.new_zeros(v.shape[0], r.shape[1], n // 2 + 1)
        # (R_\phi \cdot \mathcal{F}v)(k) = R_\phi(k) (\mathcal{F}v)(k) for k < k_{max}, 0 above
        out[..., :self.modes] = torch.einsum("bik,iok->bok", v_hat[..., :self.modes], r)
        return torch.fft.irfft(out, n=n)  # (B, C_out, N)


class FNO1d(nn.Module):
    """forward(a (B, N)) -> u (B, N) on the same periodic grid of [0, 1), whatever N is (>= 2 modes)."""

    def __init__(self, modes: int = 16, width: int = 64, layers: int = 4, generator: torch.Generator | None = None):
        super().__init__()
        self.lift = Linear(2, width, generator=generator)  # P: (a(x), x) -> v_0(x)
        self.spectral = nn.ModuleList(SpectralConv1d(width, width, modes, generator) for _ in range(layers))
        self.pointwise = nn.ModuleList(Linear(width, width, generator=generator) for _ in range(layers))  # W
        self.project = nn.Sequential(Linear(width, 128, generator=generator), nn.GELU(),
                                     Linear(128, 1, generator=generator))  # Q

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        n = a.shape[-1]
        x = torch.arange(n, dtype=a.dtype, device=a.device) / n  # the grid, so the model knows where it is
        v = self.lift(torch.stack([a, x.expand_as(a)], dim=-1))  # (B, N, width)
        v = v.transpose(1, 2)  # (B, width, N)
        for i, (k, w) in enumerate(zip(self.spectral, self.pointwise)):
            # v_{\ell+1} = \sigma(W v_\ell + \mathcal{F}^{-1}(R_\phi \cdot \mathcal{F} v_\ell))
            v = k(v) + w(v.transpose(1, 2)).transpose(1, 2)
            if i < len(self.spectral) - 1:
                v = nn.functional.gelu(v)
        return self.project(v.transpose(1, 2))[..., 0]  # (B, N)


@register_model("fno-1d", card="fno", example=lambda: (torch.randn(2, 64),))
def fno_1d(modes: int = 8, width: int = 16, layers: int = 4) -> FNO1d:
    return FNO1d(modes, width, layers)


def rel_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over samples of \\|pred - target\\|_2 / \\|target\\|_2 (the paper's metric), rows (B, N)."""
    return ((pred - target).norm(dim=-1) / target.norm(dim=-1)).mean()


# --- fno/burgers: u(., 0) -> u(., 1) for viscous Burgers, trained coarse, tested fine ---------------------

@dataclass
class BurgersConfig:
    n_train: int = 1000
    n_test: int = 200
    nu: float = 0.01  # on [0, 1): the solution keeps steep fronts at t = 1 (at 0.1 it has nearly decayed)
    solver_grid: int = 256
    train_grid: int = 64  # FNO and DeepONet see every (solver_grid / train_grid)-th point
    modes: int = 16
    width: int = 32
    layers: int = 4
    epochs: int = 40
    batch_size: int = 20
    lr: float = 2e-3  # Adam, peak of a one-cycle schedule
    deeponet_epochs: int = 100
    deeponet_lr: float = 1e-3


@lab(
    "fno/burgers",
    card="fno",
    config=BurgersConfig,
    scales={
        "quick": {"n_train": 60, "n_test": 20, "solver_grid": 128, "train_grid": 32, "modes": 8, "width": 8,
                  "epochs": 2, "deeponet_epochs": 2},
        "default": {},
        "full": {"n_train": 2000, "solver_grid": 1024, "train_grid": 256, "width": 64, "epochs": 500,
                 "deeponet_epochs": 1000},
    },
    goals=[Goal("fno_test_rel_l2", "<=", 0.02), Goal("fno_fine_rel_l2", "<=", 0.02)],
    claims=[
        Check(
            "fno-resolution-invariant-operator",
            lambda m: m["fno_test_rel_l2"] <= 0.02 and m["fno_fine_rel_l2"] <= 0.02,
            "trained on {train_grid}-point grids, FNO maps held-out initial conditions to u(., 1) with relative "
            "L2 error {fno_test_rel_l2:.4f}; the same weights on the {solver_grid}-point grid give "
            "{fno_fine_rel_l2:.4f} (copying the input would give {identity_rel_l2:.3f})",
        ),
        Check(
            "deeponet-operator-learning",
            lambda m: m["deeponet_test_rel_l2"] <= 0.1,
            "DeepONet on the same data (branch reads {train_grid} sensors) reaches relative L2 error "
            "{deeponet_test_rel_l2:.4f} on held-out functions, {deeponet_fine_rel_l2:.4f} when its trunk is "
            "queried on the {solver_grid}-point grid (FNO: {fno_test_rel_l2:.4f}; copying the input: "
            "{identity_rel_l2:.3f})",
        ),
    ],
    budget_s=90,
    threads=1,
)
def burgers(run, cfg: BurgersConfig) -> dict:
    """FNO on 1-D Burgers, trained coarse and tested on a finer grid; DeepONet on the same data."""
    start = time.perf_counter()
    data = burgers_operator_split(cfg.n_train, cfg.n_test, seed=run.seed, nu=cfg.nu, n_grid=cfg.solver_grid,
                                  dt=min(4e-3, 1.0 / cfg.solver_grid))
    data_s = time.perf_counter() - start
    sub = cfg.solver_grid // cfg.train_grid
    a_tr, u_tr = data.x_train[:, ::sub].to(run.device), data.y_train[:, ::sub].to(run.device)  # (n, train_grid)
    a_te, u_te = data.x_test.to(run.device), data.y_test.to(run.device)  # (n_test, solver_grid)
    g = torch.Generator().manual_seed(run.seed)

    fno = FNO1d(cfg.modes, cfg.width, cfg.layers, generator=g).to(run.device)
    fno_curve = _fit(run, "fno", fno, lambda a: fno(a), a_tr, u_tr, cfg.epochs, cfg.batch_size, cfg.lr, g)
    y_coarse = torch.arange(cfg.train_grid, device=run.device, dtype=a_tr.dtype) / cfg.train_grid
    y_fine = torch.arange(cfg.solver_grid, device=run.device, dtype=a_tr.dtype) / cfg.solver_grid
    onet = DeepONet(cfg.train_grid, p=64, hidden=128, depth=3, fourier=16, generator=g).to(run.device)
    onet_curve = _fit(run, "deeponet", onet, lambda a: onet(a, y_coarse), a_tr, u_tr, cfg.deeponet_epochs,
                      cfg.batch_size, cfg.deeponet_lr, g)

    with torch.no_grad():
        fno_coarse, fno_fine = fno(a_te[:, ::sub]), fno(a_te)
        onet_coarse, onet_fine = onet(a_te[:, ::sub], y_coarse), onet(a_te[:, ::sub], y_fine)
        metrics = {
            "fno_test_rel_l2": rel_l2(fno_coarse, u_te[:, ::sub]).item(),
            "fno_fine_rel_l2": rel_l2(fno_fine, u_te).item(),
            "deeponet_test_rel_l2": rel_l2(onet_coarse, u_te[:, ::sub]).item(),
            "deeponet_fine_rel_l2": rel_l2(onet_fine, u_te).item(),
            "identity_rel_l2": rel_l2(a_te, u_te).item(),  # u(., 1) guessed as u(., 0)
            "fno_train_rel_l2": fno_curve[-1], "deeponet_train_rel_l2": onet_curve[-1],
            # \|u(\cdot, 1)\| / \|u(\cdot, 0)\|: how much of the initial condition survives to t = 1
            "energy_ratio": (u_te.norm(dim=-1) / a_te.norm(dim=-1)).mean().item(),
        }
    metrics.update(data_s=data_s, train_grid=cfg.train_grid, solver_grid=cfg.solver_grid, nu=cfg.nu,
                   fno_params=sum(p.numel() for p in fno.parameters()),
                   deeponet_params=sum(p.numel() for p in onet.parameters()))
    _plot(run, a_te, u_te, fno_fine, onet_fine, fno_curve, onet_curve, sub)
    return metrics


def _fit(run, name, model, predict, a, u, epochs, batch_size, lr, g) -> list[float]:
    """Adam with a one-cycle learning rate on the mean relative L2 loss; returns the training error per epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(len(a) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    curve = []
    for epoch in run.progress(range(epochs), desc=name):
        order = torch.randperm(len(a), generator=g).to(a.device)
        total = torch.zeros((), device=a.device)
        for i in range(0, len(a), batch_size):
            idx = order[i:i + batch_size]
            loss = rel_l2(predict(a[idx]), u[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.detach() * len(idx)
        curve.append(total.item() / len(a))
        run.log(epoch, **{f"{name}_loss": curve[-1]})
    return curve


def _plot(run, a, u, fno_fine, onet_fine, fno_curve, onet_curve, sub) -> None:
    x = torch.arange(a.shape[1]) / a.shape[1]
    with run.figure("fno_burgers", ncols=3, size=(14, 3.8)) as (fig, axes):
        for ax, i in zip(axes[:2], (0, 1)):
            ax.plot(x, a[i].cpu(), color="grey", lw=1, label="u(x, 0)")
            ax.plot(x, u[i].cpu(), "k-", lw=2, label="u(x, 1) solver")
            ax.plot(x, fno_fine[i].cpu(), "r--", lw=1.2, label="FNO (finer grid)")
            ax.plot(x, onet_fine[i].cpu(), "b:", lw=1.2, label="DeepONet")
            ax.set(xlabel="x", title=f"held-out sample {i}")
        axes[0].legend(fontsize=7)
        axes[2].plot(range(1, len(fno_curve) + 1), fno_curve, label="FNO")
        axes[2].plot(range(1, len(onet_curve) + 1), onet_curve, label="DeepONet")
        axes[2].set(xlabel="epoch", ylabel="train relative L2", yscale="log",
                    title=f"training on every {sub}th point")
        axes[2].legend()
