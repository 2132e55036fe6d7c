"""Optimiser race: SGD, momentum, Nesterov, AdaGrad, RMSProp and Adam on three landscapes.

An ill-conditioned quadratic (curvatures from 1 to kappa in a random basis) shows why plain
gradient descent is slow: its rate is capped by the steepest direction, so the flattest one
crawls; momentum builds speed along it. The Rosenbrock function adds a curved valley, and an
MLP on MNIST-1D adds mini-batch noise. Each optimiser gets its best rate from one grid on the
two deterministic problems (a (G, 1) rate tensor runs the whole grid at once) and a fixed,
once-tuned rate on the MLP. The lab then checks what the textbooks say about each of them.

    f(x) = \\tfrac12 x^\\top A x,\\ A = Q\\,\\mathrm{diag}(1 \\dots \\kappa)\\,Q^\\top;\\qquad
    f(x, y) = (1 - x)^2 + 100 (y - x^2)^2

Rosenbrock, The Computer Journal 1960; Polyak 1964; Nesterov 1983; Duchi et al. 2011;
Tieleman & Hinton 2012; Kingma & Ba, ICLR 2015 (arXiv 1412.6980); Greydanus, "Scaling down
deep learning" 2020 (arXiv 2011.14439) for MNIST-1D.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.real import mnist1d
from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.optimizers import SGD, AdaGrad, Adam, RMSProp
from deepatlas.zoo.fundamentals.mlp import MLP

OPTIMIZERS = {  # name: (params, lr) -> optimiser; momentum 0.9 and RMSProp's decay 0.9 as in the cards
    "SGD": lambda params, lr: SGD(params, lr=lr),
    "momentum": lambda params, lr: SGD(params, lr=lr, momentum=0.9),
    "Nesterov": lambda params, lr: SGD(params, lr=lr, momentum=0.9, nesterov=True),
    "AdaGrad": lambda params, lr: AdaGrad(params, lr=lr),
    "RMSProp": lambda params, lr: RMSProp(params, lr=lr, alpha=0.9),
    "Adam": lambda params, lr: Adam(params, lr=lr),
}
COLORS = {"SGD": "#7f7f7f", "momentum": "#1f77b4", "Nesterov": "#17becf", "AdaGrad": "#2ca02c",
          "RMSProp": "#ff7f0e", "Adam": "#d62728"}


@dataclass
class RaceConfig:
    dim: int = 20
    kappa: float = 100.0  # condition number of the quadratic
    quad_steps: int = 1000
    quad_tol: float = 1e-6  # reached when f(x) <= tol * f(x_0)
    rosen_steps: int = 2000
    rosen_tol: float = 1e-4  # reached when f(x, y) <= tol (the minimum is 0 at (1, 1))
    lr_min: float = 1e-4  # the rate grid: lr_points rates, log-spaced from lr_min to lr_max
    lr_max: float = 1.0
    lr_points: int = 9
    samples: int = 4000  # MNIST-1D signals (80% train)
    hidden: int = 128
    batch_size: int = 128
    mlp_steps: int = 800
    # MLP rates: each optimiser's best of {1e-3, 1e-2, 1e-1, 1} by training loss, measured once (seed 0)
    lr_sgd: float = 1.0
    lr_momentum: float = 0.1
    lr_nesterov: float = 0.1
    lr_adagrad: float = 0.1
    lr_rmsprop: float = 0.01
    lr_adam: float = 0.01
    loss_scale: float = 1000.0  # Adam's scale-invariance test
    scale_steps: int = 200
    grad_batches: int = 256  # mini-batch gradients averaged in the unbiasedness test
    grad_batch_size: int = 32


# ------------------------------------------------------------ the two deterministic landscapes


def make_quadratic(dim: int, kappa: float, g: torch.Generator, device):
    """A = Q diag(lambda) Q^T with lambda log-spaced in [1, kappa] and a random rotation Q; a start x_0."""
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    lam = torch.logspace(0, math.log10(kappa), dim, dtype=torch.float64)
    a = (q @ torch.diag(lam) @ q.T).to(device)  # (d, d)

    def f_and_grad(x):  # x: (G, d), one row per run
        ax = x @ a
        # f(x) = \tfrac12 x^\top A x,   \nabla f = A x
        return 0.5 * (x * ax).sum(1), ax

    return f_and_grad, torch.randn(dim, generator=g, dtype=torch.float64).to(device)


def rosenbrock(p):  # p: (G, 2)
    x, y = p.unbind(1)
    r = y - x * x
    # f = (1 - x)^2 + 100 (y - x^2)^2
    f = (1 - x) ** 2 + 100 * r * r
    # \partial_x f = -2 (1 - x) - 400 x (y - x^2),   \partial_y f = 200 (y - x^2)
    return f, torch.stack([2 * (x - 1) - 400 * x * r, 200 * r], 1)


def sweep(f_and_grad, x0, make_opt, rates, steps):
    """Descend from x0 at every rate at once: row i of X uses rates[i]. Returns f, (G, steps + 1)."""
    x = x0.repeat(len(rates), 1).requires_grad_()  # (G, d)
    opt = make_opt([x], rates[:, None])  # (G, 1) rates broadcast over each row
    history = []
    for _ in range(steps):
        with torch.no_grad():
            f, x.grad = f_and_grad(x)
        history.append(f)
        opt.step()
    history.append(f_and_grad(x.detach())[0])
    return torch.stack(history, 1)  # diverged rows hold inf or nan


def steps_to(losses, tol, cap):
    """(G,) the step from which the loss stays <= tol to the end, or `cap` for a row that never settles
    (a rate that dips below tol and blows up again has not converged)."""
    stays = (losses <= tol).flip(1).int().cummin(1).values.flip(1).bool()  # (G, T+1): <= tol from here on
    first = stays.int().argmax(1)
    return torch.where(stays[:, -1], first, torch.full_like(first, cap))


def race(f_and_grad, x0, rates, steps, tol):
    """Every optimiser over the rate grid; its best rate is the fastest to settle below tol (else the
    lowest final f)."""
    out = {}
    for name, make_opt in OPTIMIZERS.items():
        losses = sweep(f_and_grad, x0, make_opt, rates, steps)  # (G, steps + 1)
        n_steps = steps_to(losses, tol, steps)
        final = torch.nan_to_num(losses[:, -1], nan=math.inf)
        best = int(n_steps.argmin()) if bool((n_steps < steps).any()) else int(final.argmin())
        out[name] = {"losses": losses, "steps": n_steps, "best": best}
    return out


# ------------------------------------------------------------ the MLP on MNIST-1D


def effective_step(opt) -> float:
    """Median over all weights of lr / (sqrt(s) + eps), s the optimiser's squared-gradient statistic."""
    steps = []
    for group in opt.param_groups:
        for w in group["params"]:
            state = opt.state[w]
            if "sum_sq" in state:  # AdaGrad: s = r_t, the running sum
                s = state["sum_sq"]
            elif "exp_avg_sq" in state:  # Adam: s = \hat v_t
                s = state["exp_avg_sq"] / (1 - group["betas"][1] ** state["step"])
            else:  # RMSProp: s = v_t
                s = state["square_avg"]
            steps.append((group["lr"] / (s.sqrt() + group["eps"])).ravel())
    return torch.cat(steps).median().item()


def batches(n: int, size: int, steps: int, seed: int, device) -> torch.Tensor:
    """(steps, size) indices drawn uniformly, the same for every optimiser."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (steps, size), generator=g).to(device)


def train_mlp(run, name, net, lr, data, idx, track_step: bool):
    """Train on the mini-batches idx; returns per-step losses, {step: effective step}, test acc, train loss."""
    opt = OPTIMIZERS[name](net.parameters(), lr)
    losses, eff = [], {}
    for step in run.progress(range(len(idx)), desc=name):
        loss = nn.functional.cross_entropy(net(data.x_train[idx[step]]), data.y_train[idx[step]])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
        if track_step and (step < 10 or step % 10 == 9):
            eff[step + 1] = effective_step(opt)
        if step % 20 == 0:
            run.log(step, **{f"loss_{name}": loss})
    with torch.no_grad():
        acc = (net(data.x_test).argmax(1) == data.y_test).float().mean().item()
        train_loss = nn.functional.cross_entropy(net(data.x_train), data.y_train).item()
    return torch.stack(losses).cpu(), eff, acc, train_loss


def adam_trajectory(net, data, idx, lr: float, scale: float, eps: float) -> torch.Tensor:
    """Adam on `scale` x the loss, in float64; returns the parameters after each step, (T, P)."""
    net = copy.deepcopy(net)
    opt = Adam(net.parameters(), lr=lr, eps=eps)
    path = []
    for rows in idx:
        loss = scale * nn.functional.cross_entropy(net(data.x_train[rows].double()), data.y_train[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        path.append(torch.cat([p.detach().ravel() for p in net.parameters()]))
    return torch.stack(path)


def minibatch_gradient_error(net, data, idx) -> tuple[float, float]:
    """Relative error of one mini-batch gradient (RMS) and of the mean of len(idx) of them,
    against the full-batch gradient, all at the same weights (float64)."""

    def grad(x, y):
        net.zero_grad()
        nn.functional.cross_entropy(net(x.double()), y).backward()
        return torch.cat([p.grad.ravel() for p in net.parameters()])

    full = grad(data.x_train, data.y_train)  # \nabla \mathcal{L}(w), over all training samples
    each = torch.stack([grad(data.x_train[rows], data.y_train[rows]) for rows in idx])  # (M, P)
    one = ((each - full).norm(dim=1) ** 2).mean().sqrt() / full.norm()
    mean = (each.mean(0) - full).norm() / full.norm()
    return one.item(), mean.item()


# ------------------------------------------------------------ the lab


@lab(
    "adam/optimizer-race",
    card="adam",
    config=RaceConfig,
    scales={
        "quick": {"dim": 10, "quad_steps": 200, "rosen_steps": 300, "lr_points": 5, "samples": 500,
                  "hidden": 32, "mlp_steps": 60, "scale_steps": 20, "grad_batches": 16},
        "default": {},
        "full": {"quad_steps": 5000, "rosen_steps": 20000, "lr_points": 17, "samples": 10000, "mlp_steps": 5000,
                 "scale_steps": 1000, "grad_batches": 2048},
    },
    goals=[
        Goal("quad_best_steps", "<", 1000),
        Goal("rosen_best_steps", "<", 2000),
        Goal("mlp_test_acc_Adam", ">=", 0.5),
        Goal("mlp_train_loss_Adam", "<=", 0.5),
    ],
    claims=[
        Check(
            "adam-scale-invariant",
            lambda m: m["adam_scale_diff_noeps"] <= 1e-9 * m["adam_scale_move"],
            "loss x{loss_scale:g}, {scale_steps} Adam steps on the MLP in float64: with eps = 1e-20 the "
            "parameters never differ by more than {adam_scale_diff_noeps:.1e} (they move {adam_scale_move:.2f}; "
            "supported at <= 1e-9 of that); with the default eps = 1e-8 they part by up to "
            "{adam_scale_diff_eps:.2f}, since weights whose gradients are near eps are not rescaled and the "
            "difference grows as training goes on",
        ),
        Check(
            "momentum-ill-conditioned",
            lambda m: m["momentum_speedup_quad"] >= 2 and m["rosen_steps_momentum_same_lr"] < m["rosen_steps_SGD"],
            "at SGD's own best rate, momentum 0.9 reaches f <= {quad_tol:g} f(x0) on the kappa = {kappa:g} "
            "quadratic in {quad_steps_momentum_same_lr:.0f} steps against SGD's {quad_steps_SGD:.0f} "
            "({momentum_speedup_quad:.1f}x faster; supported at >= 2x), and Rosenbrock f <= {rosen_tol:g} in "
            "{rosen_steps_momentum_same_lr:.0f} steps against SGD's {rosen_steps_SGD:.0f} "
            "(step counts are capped at the budget: {rosen_steps} means never)",
        ),
        Check(
            "nesterov-beats-momentum",
            lambda m: m["nesterov_wins"] >= 2 and m["quad_rises_Nesterov"] <= m["quad_rises_momentum"],
            "Nesterov against momentum, each at its best rate: quadratic {quad_steps_Nesterov:.0f} vs "
            "{quad_steps_momentum:.0f} steps, Rosenbrock {rosen_steps_Nesterov:.0f} vs {rosen_steps_momentum:.0f} "
            "steps, MLP final training loss {mlp_train_loss_Nesterov:.4f} vs {mlp_train_loss_momentum:.4f}: "
            "Nesterov wins {nesterov_wins:.0f} of 3; overshoot: at the same rate {quad_lr_SGD:g} the quadratic's f "
            "goes up at {quad_rises_Nesterov:.0f} steps on Nesterov's way to the tolerance and at "
            "{quad_rises_momentum:.0f} on momentum's (supported at >= 2 wins and no more rises)",
        ),
        Check(
            "adagrad-step-shrinks",
            lambda m: m["adagrad_step_rises"] == 0 and m["adagrad_step_late_ratio"] < 1,
            "on the MLP, AdaGrad's median effective step lr / (sqrt(r_t) + eps) rises at {adagrad_step_rises:.0f} "
            "of {step_checks:.0f} checkpoints (RMSProp's at {rmsprop_step_rises:.0f}): it falls from "
            "{adagrad_step_early:.2e} at step 10 to {adagrad_step_late:.2e} at step {mlp_steps} "
            "({adagrad_step_ratio:.2f}x) and is still shrinking at the end ({adagrad_step_late_ratio:.2f}x over the "
            "second half; supported when it never rises and still shrinks late). It did not get too small to "
            "learn here: the loss still fell {late_progress_AdaGrad:.1f}x in the second half",
        ),
        Check(
            "rmsprop-fixes-adagrad-decay",
            lambda m: m["late_progress_RMSProp"] > m["late_progress_AdaGrad"]
            and m["rosen_final_RMSProp"] < m["rosen_final_AdaGrad"],
            "each at its best rate: in the second half of training the MLP loss falls "
            "{late_progress_RMSProp:.1f}x with RMSProp and {late_progress_AdaGrad:.1f}x with AdaGrad, and "
            "Rosenbrock ends at {rosen_final_RMSProp:.1e} with RMSProp and {rosen_final_AdaGrad:.1e} with AdaGrad "
            "(supported when RMSProp is ahead on both); the median effective step from step 10 to the end goes "
            "{rmsprop_step_ratio:.2f}x for RMSProp and {adagrad_step_ratio:.2f}x for AdaGrad",
        ),
        Check(
            "sgd-slow-oscillating",
            lambda m: m["quad_steps_SGD"] >= 2 * min(m["quad_steps_momentum"], m["quad_steps_Adam"])
            and m["converging_rates_SGD"] < min(m["converging_rates_momentum"], m["converging_rates_Adam"]),
            "best rate against best rate on the quadratic, SGD needs {quad_steps_SGD:.0f} steps, momentum "
            "{quad_steps_momentum:.0f}, Adam {quad_steps_Adam:.0f} (supported at >= 2x the faster); of "
            "{lr_points} rates from {lr_min:g} to {lr_max:g}, {converging_rates_SGD:.0f} reach the tolerance "
            "for SGD, {converging_rates_momentum:.0f} for momentum, {converging_rates_Adam:.0f} for Adam",
        ),
        Check(
            "sgd-unbiased-gradient",
            lambda m: m["grad_error_mean"] < m["grad_error_one"] and 0.5 <= m["grad_error_vs_unbiased"] <= 1.5,
            "at the MLP's initial weights one mini-batch gradient (batch {grad_batch_size}) is off the full "
            "gradient by {grad_error_one:.2f} (relative, RMS); the mean of {grad_batches} is off by "
            "{grad_error_mean:.3f}, {grad_error_vs_unbiased:.2f}x the 1/sqrt(M) an unbiased estimate predicts "
            "(supported within 0.5x to 1.5x; a bias would leave a floor)",
        ),
    ],
    budget_s=30,
    threads=1,
)
def optimizer_race(run, cfg: RaceConfig) -> dict:
    """Optimiser race: six optimisers on an ill-conditioned quadratic, Rosenbrock and an MNIST-1D MLP."""
    dev = run.device
    m: dict = {k: getattr(cfg, k) for k in ("kappa", "quad_tol", "rosen_tol", "rosen_steps", "mlp_steps",
                                             "lr_points", "lr_min", "lr_max", "loss_scale", "scale_steps",
                                             "grad_batches", "grad_batch_size")}
    rates = torch.logspace(math.log10(cfg.lr_min), math.log10(cfg.lr_max), cfg.lr_points,
                           dtype=torch.float64, device=dev)

    # 1. ill-conditioned quadratic and Rosenbrock, every optimiser over the rate grid
    f_quad, x0 = make_quadratic(cfg.dim, cfg.kappa, torch.Generator().manual_seed(run.seed), dev)
    f0 = f_quad(x0[None])[0].item()
    quad = race(f_quad, x0, rates, cfg.quad_steps, cfg.quad_tol * f0)
    rosen = race(rosenbrock, torch.tensor([-1.2, 1.0], dtype=torch.float64, device=dev), rates,
                 cfg.rosen_steps, cfg.rosen_tol)
    for name in OPTIMIZERS:
        m[f"quad_steps_{name}"] = int(quad[name]["steps"][quad[name]["best"]])
        m[f"rosen_steps_{name}"] = int(rosen[name]["steps"][rosen[name]["best"]])
        m[f"quad_lr_{name}"] = rates[quad[name]["best"]].item()
        m[f"rosen_lr_{name}"] = rates[rosen[name]["best"]].item()
        m[f"rosen_final_{name}"] = rosen[name]["losses"][rosen[name]["best"], -1].item()
        m[f"converging_rates_{name}"] = int((quad[name]["steps"] < cfg.quad_steps).sum())
    m["quad_best_steps"] = min(m[f"quad_steps_{n}"] for n in OPTIMIZERS)
    m["rosen_best_steps"] = min(m[f"rosen_steps_{n}"] for n in OPTIMIZERS)
    # momentum at the rate that suits SGD best
    m["quad_steps_momentum_same_lr"] = int(quad["momentum"]["steps"][quad["SGD"]["best"]])
    m["rosen_steps_momentum_same_lr"] = int(rosen["momentum"]["steps"][rosen["SGD"]["best"]])
    m["momentum_speedup_quad"] = m["quad_steps_SGD"] / max(m["quad_steps_momentum_same_lr"], 1)
    for name in ("momentum", "Nesterov"):  # overshoot: how often f goes up on the way down, same rate
        f, n = quad[name]["losses"][quad["SGD"]["best"]], int(quad[name]["steps"][quad["SGD"]["best"]])
        m[f"quad_rises_{name}"] = int((f[1:n + 1] > f[:n]).sum())

    # 2. the MLP on MNIST-1D: same initial weights and the same mini-batches for everyone
    data = mnist1d(cfg.samples).to(dev)
    net0 = MLP([data.x_train.shape[1], cfg.hidden, cfg.hidden, 10], activation="relu").to(dev)
    idx = batches(len(data.y_train), cfg.batch_size, cfg.mlp_steps, run.seed, dev)
    curves, eff = {}, {}
    for name in OPTIMIZERS:
        lr = getattr(cfg, f"lr_{name.lower()}")
        curves[name], eff[name], acc, train_loss = train_mlp(
            run, name, copy.deepcopy(net0), lr, data, idx, track_step=name in ("AdaGrad", "RMSProp", "Adam"))
        m[f"mlp_test_acc_{name}"], m[f"mlp_train_loss_{name}"] = acc, train_loss
        half = cfg.mlp_steps // 2
        window = max(cfg.mlp_steps // 20, 1)  # smooth out the mini-batch noise
        m[f"late_progress_{name}"] = (curves[name][half - window:half].mean()
                                      / curves[name][-window:].mean()).item()
    m["nesterov_wins"] = (int(m["quad_steps_Nesterov"] < m["quad_steps_momentum"])
                          + int(m["rosen_steps_Nesterov"] < m["rosen_steps_momentum"])
                          + int(m["mlp_train_loss_Nesterov"] < m["mlp_train_loss_momentum"]))

    # 3. effective step sizes: AdaGrad's only shrinks, RMSProp's forgets
    for name, key in (("AdaGrad", "adagrad"), ("RMSProp", "rmsprop")):
        e = eff[name]  # {step: median effective step}, steps 1..10 then every 10th
        values = list(e.values())
        last, mid = max(e), 10 * (max(e) // 20)
        m[f"{key}_step_early"], m[f"{key}_step_late"] = e[10], e[last]
        m[f"{key}_step_ratio"] = e[last] / e[10]
        m[f"{key}_step_late_ratio"] = e[last] / e[mid]
        m[f"{key}_step_rises"] = sum(b > a for a, b in zip(values, values[1:]))
    m["step_checks"] = len(eff["AdaGrad"])

    # 4. Adam with the loss x1000, in float64: default eps and eps ~ 0
    net64 = copy.deepcopy(net0).double()
    scale_idx = idx[: cfg.scale_steps]
    path = {(scale, eps): adam_trajectory(net64, data, scale_idx, cfg.lr_adam, scale, eps)
            for scale in (1.0, cfg.loss_scale) for eps in (1e-8, 1e-20)}  # each (scale_steps, P)
    start = torch.cat([p.detach().ravel() for p in net64.parameters()])
    m["adam_scale_move"] = (path[1.0, 1e-8] - start).abs().max().item()
    # \max_t \lVert w_t^{(1000 L)} - w_t^{(L)} \rVert_\infty, with Adam's default eps and with eps ~ 0
    m["adam_scale_diff_eps"] = (path[cfg.loss_scale, 1e-8] - path[1.0, 1e-8]).abs().max().item()
    m["adam_scale_diff_noeps"] = (path[cfg.loss_scale, 1e-20] - path[1.0, 1e-20]).abs().max().item()

    # 5. a mini-batch gradient is an unbiased estimate of the full one
    grad_idx = batches(len(data.y_train), cfg.grad_batch_size, cfg.grad_batches, run.seed + 1, dev)
    one, mean = minibatch_gradient_error(net64, data, grad_idx)
    m["grad_error_one"], m["grad_error_mean"] = one, mean
    m["grad_error_vs_unbiased"] = mean / (one / math.sqrt(cfg.grad_batches))

    _plot(run, cfg, quad, rosen, f0, rates, curves, eff, m)
    return m


def _plot(run, cfg, quad, rosen, f0, rates, curves, eff, m) -> None:
    with run.figure("optimizer_race", ncols=2, nrows=2, size=(11, 8)) as (fig, axes):
        ax_q, ax_r, ax_m, ax_e = axes
        for name in OPTIMIZERS:
            q, r = quad[name], rosen[name]
            ax_q.plot((q["losses"][q["best"]] / f0).cpu(), color=COLORS[name],
                      label=f"{name} (lr {rates[q['best']].item():.1g})")
            ax_r.plot(r["losses"][r["best"]].cpu(), color=COLORS[name],
                      label=f"{name} (lr {rates[r['best']].item():.1g})")
            window = max(cfg.mlp_steps // 40, 1)
            smooth = curves[name].unfold(0, window, window).mean(1)
            ax_m.plot(torch.arange(len(smooth)) * window + window, smooth, color=COLORS[name],
                      label=f"{name} (lr {getattr(cfg, f'lr_{name.lower()}'):g})")
            if eff[name]:
                ax_e.plot(list(eff[name]), list(eff[name].values()), color=COLORS[name], label=name)
        ax_q.axhline(cfg.quad_tol, color="k", ls=":", lw=1)
        ax_q.set(title=f"quadratic, kappa = {cfg.kappa:g} (best rate each)", xlabel="step", ylabel="f / f(x0)",
                 yscale="log", ylim=(1e-12, 10))
        ax_r.axhline(cfg.rosen_tol, color="k", ls=":", lw=1)
        ax_r.set(title="Rosenbrock from (-1.2, 1)", xlabel="step", ylabel="f", yscale="log", ylim=(1e-12, 1e3))
        ax_m.set(title=f"MLP on MNIST-1D (Adam test acc {m['mlp_test_acc_Adam']:.2f})", xlabel="step",
                 ylabel="training loss (mean of windows)", yscale="log")
        ax_e.set(title="median effective step lr / (sqrt(s) + eps), MLP", xlabel="step", xscale="log",
                 yscale="log")
        for ax in axes:
            ax.legend(fontsize=7)
