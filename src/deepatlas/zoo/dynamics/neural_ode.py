"""Neural ODE: a network gives the time derivative of the hidden state, and an ODE solver is the forward pass.

A residual block h + f(h) is one Euler step; letting the step go to zero gives dh/dt = f_theta(h, t),
and the output is h(t1), computed by any ODE solver. Here are the solvers (fixed-step Euler and RK4,
adaptive Dormand-Prince 5(4) with error control) and both ways to get gradients: backpropagation
through the solver's operations, and the adjoint method, which solves a second ODE backwards in time
and stores no intermediate state (see the adjoint-method card).

    h(t_1) = h(t_0) + \\int_{t_0}^{t_1} f_\\theta(h(t), t)\\, dt
    da/dt = -a^\\top \\partial f/\\partial h,   dL/d\\theta = \\int_{t_0}^{t_1} a^\\top \\partial f/\\partial\\theta\\, dt

Chen, Rubanova, Bettencourt & Duvenaud, "Neural Ordinary Differential Equations", NeurIPS 2018.
Dormand & Prince, "A family of embedded Runge-Kutta formulae", J. Comp. Appl. Math. 1980.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.linear import Linear
from deepatlas.registry import register_model

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # f(t, y) -> dy/dt, same shape as y

# --- fixed-step solvers ---------------------------------------------------------------------------


def euler_step(f: Field, t, y, h):
    # y_{n+1} = y_n + h f(t_n, y_n)
    return y + h * f(t, y)


def rk4_step(f: Field, t, y, h):
    k1 = f(t, y)
    k2 = f(t + h / 2, y + h / 2 * k1)
    k3 = f(t + h / 2, y + h / 2 * k2)
    k4 = f(t + h, y + h * k3)
    # y_{n+1} = y_n + \frac{h}{6}(k_1 + 2 k_2 + 2 k_3 + k_4)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


FIXED = {"euler": euler_step, "rk4": rk4_step}

# --- Dormand-Prince 5(4): the Butcher tableau, 5th-order solution, embedded 4th-order estimate --------

DOPRI_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
DOPRI_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
DOPRI_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
DOPRI_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
DOPRI_E = tuple(b5 - b4 for b5, b4 in zip(DOPRI_B5, DOPRI_B4))


def dopri5_step(f: Field, t, y, h, k1):
    """One Dormand-Prince step; returns (y_{n+1}, error estimate, f(t + h, y_{n+1})), the last being
    the next step's first stage (first same as last: 6 new evaluations a step, not 7)."""
    k = [k1]
    for i in range(1, 7):
        # y_i = y_n + h \sum_j a_{ij} k_j,   k_i = f(t_n + c_i h, y_i)
        yi = y + h * sum(a * kj for a, kj in zip(DOPRI_A[i], k) if a != 0.0)
        k.append(f(t + DOPRI_C[i] * h, yi))
    y_next = yi  # the last stage is the 5th-order solution: a_{7j} = b_j
    # e = h \sum_i (b_i - b^*_i) k_i   (5th- minus 4th-order solution)
    err = h * sum(e * ki for e, ki in zip(DOPRI_E, k) if e != 0.0)
    return y_next, err, k[6]


def _rms(x: torch.Tensor) -> float:
    return x.detach().pow(2).mean().sqrt().item()


def _initial_step(f: Field, t0, y0, f0, direction: float, rtol: float, atol: float) -> float:
    """Hairer, Norsett & Wanner's starting step: a small Euler probe gauges the field's scale and curvature."""
    scale = atol + rtol * y0.detach().abs()
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = f(t0 + direction * h0, y0 + direction * h0 * f0)
    d2 = _rms((f1 - f0) / scale) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
    return min(100 * h0, h1)


def odeint(f: Field, y0: torch.Tensor, t: torch.Tensor, method: str = "dopri5", rtol: float = 1e-7,
           atol: float = 1e-9, step_size: float | None = None, max_steps: int = 100_000) -> torch.Tensor:
    """Solve dy/dt = f(t, y) from y(t[0]) = y0; returns y at every time of t, shape (len(t), *y0.shape).

    t is 1-D and strictly monotone (forwards or backwards in time). Fixed-step methods take steps of at
    most `step_size` (one step per interval when None); dopri5 adapts its step so that the local error
    stays below atol + rtol |y| in RMS norm, and lands exactly on every output time. Operations are
    ordinary torch ops, so autograd can backpropagate through the whole solve.
    """
    if t.dim() != 1 or len(t) < 2:
        raise ValueError(f"t must be a 1-D tensor of at least two times, got shape {tuple(t.shape)}")
    dt = t[1:] - t[:-1]
    if not ((dt > 0).all() or (dt < 0).all()):
        raise ValueError("t must be strictly increasing or strictly decreasing")
    if method not in (*FIXED, "dopri5"):
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join([*FIXED, 'dopri5'])}")
    times = [float(s) for s in t]
    if method in FIXED:
        return _fixed(FIXED[method], f, y0, t, times, step_size)
    return _adaptive(f, y0, t, times, rtol, atol, max_steps)


def _fixed(step, f, y0, t, times, step_size):
    ys, y = [y0], y0
    for i in range(len(times) - 1):
        span = times[i + 1] - times[i]
        n = 1 if step_size is None else max(1, math.ceil(abs(span) / step_size - 1e-9))
        h = span / n
        for j in range(n):
            y = step(f, t[i] + j * h, y, h)
        ys.append(y)
    return torch.stack(ys)


def _adaptive(f, y0, t, times, rtol, atol, max_steps, safety=0.9, shrink=0.2, grow=10.0):
    direction = 1.0 if times[-1] > times[0] else -1.0
    s, y = times[0], y0
    k1 = f(t[0], y0)
    h = _initial_step(f, t[0], y0, k1, direction, rtol, atol)
    ys, steps = [y0], 0
    for target in times[1:]:
        while direction * (target - s) > 0:
            if steps >= max_steps:
                raise RuntimeError(f"dopri5 took {max_steps} steps before t = {target}; the problem may be stiff")
            last = h >= abs(target - s)
            h_step = abs(target - s) if last else h  # land exactly on the output time
            y_new, err, k7 = dopri5_step(f, t.new_tensor(s), y, direction * h_step, k1)
            # \|e\| = \mathrm{RMS}\big(e / (\mathrm{atol} + \mathrm{rtol}\max(|y_n|, |y_{n+1}|))\big)
            norm = _rms(err / (atol + rtol * torch.maximum(y.detach().abs(), y_new.detach().abs())))
            steps += 1
            if norm <= 1.0:  # accept
                s = target if last else s + direction * h_step
                y, k1 = y_new, k7
            # h_{new} = h \cdot \mathrm{clip}(0.9\, \|e\|^{-1/5}, 0.2, 10)
            factor = grow if norm == 0 else min(grow, max(shrink, safety * norm ** (-1 / 5)))
            h = h_step * factor if not (last and norm <= 1.0) else max(h, h_step * factor)
        ys.append(y)
    return torch.stack(ys)


# --- the adjoint method: gradients from a backward solve of the augmented state --------------------------

class _AdjointSolve(torch.autograd.Function):
    """ys = odeint(func, y0, t) whose backward pass solves the adjoint ODE instead of unrolling the solver."""

    @staticmethod
    def forward(ctx, y0, t, func, options, *params):
        with torch.no_grad():
            ys = odeint(func, y0, t, **options)
        ctx.func, ctx.options = func, options
        ctx.save_for_backward(t, ys, *params)  # the outputs only: memory independent of the step count
        return ys

    @staticmethod
    def backward(ctx, grad_ys):
        t, ys, *params = ctx.saved_tensors
        func, shape, n = ctx.func, ys.shape[1:], ys[0].numel()
        sizes = [p.numel() for p in params]

        def augmented(s, state):  # the state [h, a, g] and its dynamics [f, -a^T df/dh, -a^T df/dtheta]
            h, a = state[:n].view(shape), state[n:2 * n].view(shape)
            with torch.enable_grad():
                h = h.detach().requires_grad_()
                dh = func(s, h)
                # -a^\top \partial f / \partial h  and  -a^\top \partial f / \partial \theta  as one vector-Jacobian product
                vjp = torch.autograd.grad(dh, (h, *params), -a, allow_unused=True)
            vjp = [torch.zeros_like(x) if v is None else v for v, x in zip(vjp, (h, *params))]
            return torch.cat([dh.detach().reshape(-1), *(v.reshape(-1) for v in vjp)])

        a = grad_ys[-1]  # a(t_N) = \partial L / \partial h(t_N)
        g = ys.new_zeros(sum(sizes))
        for i in range(len(t) - 1, 0, -1):
            state = torch.cat([ys[i].reshape(-1), a.reshape(-1), g])
            state = odeint(augmented, state, torch.stack([t[i], t[i - 1]]), **ctx.options)[-1]
            # the backward solve's h is discarded for the forward pass's value at t_{i-1} (as torchdiffeq does);
            # a jumps by the loss's direct dependence on h(t_{i-1})
            a = state[n:2 * n].view(shape) + grad_ys[i - 1]
            g = state[2 * n:]
        grads = list(torch.split(g, sizes)) if sizes else []
        return (a, None, None, None, *(gp.view_as(p) for gp, p in zip(grads, params)))


def odeint_adjoint(func: nn.Module, y0: torch.Tensor, t: torch.Tensor, **options) -> torch.Tensor:
    """odeint whose gradients (w.r.t. y0 and func's parameters) come from the adjoint method."""
    params = [p for p in func.parameters() if p.requires_grad]
    return _AdjointSolve.apply(y0, t, func, options, *params)


# --- the model: a vector field and the solver around it ----------------------------------------------------

class ODEFunc(nn.Module):
    """f_theta(h, t): an MLP vector field (tanh), optionally on a fixed feature map of h (y^3 for the spiral).

    Counts its evaluations in `nfe`, the cost measure of ODE solvers."""

    def __init__(self, dim: int, hidden: int = 50, depth: int = 1, cube: bool = False,
                 generator: torch.Generator | None = None):
        super().__init__()
        sizes = [dim, *[hidden] * depth, dim]
        self.layers = nn.ModuleList(Linear(a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:]))
        self.cube, self.nfe = cube, 0

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # (B, dim) -> (B, dim)
        self.nfe += 1
        x = h**3 if self.cube else h
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
        return self.layers[-1](x)


class NeuralODE(nn.Module):
    """h(t) for every t from h(t_0) = y0: forward(y0 (B, dim), t (T,)) -> (T, B, dim)."""

    def __init__(self, func: nn.Module, method: str = "dopri5", adjoint: bool = False, **options):
        super().__init__()
        self.func, self.adjoint = func, adjoint
        self.options = {"method": method, **options}

    def forward(self, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        solve = odeint_adjoint if self.adjoint else odeint
        return solve(self.func, y0, t, **self.options)


def _example():
    return torch.randn(4, 2), torch.linspace(0, 1, 5)


@register_model("neural-ode", card="neural-ode", example=_example)
def neural_ode(dim: int = 2, hidden: int = 16, method: str = "dopri5", rtol: float = 1e-5,
               atol: float = 1e-6) -> NeuralODE:
    return NeuralODE(ODEFunc(dim, hidden), method=method, rtol=rtol, atol=atol)


@register_model("neural-ode-rk4", card="neural-ode", example=_example)
def neural_ode_rk4(dim: int = 2, hidden: int = 16, step_size: float = 0.05) -> NeuralODE:
    return NeuralODE(ODEFunc(dim, hidden), method="rk4", step_size=step_size)


@register_model("neural-ode-adjoint", card="adjoint-method", example=_example)
def neural_ode_adjoint(dim: int = 2, hidden: int = 16, rtol: float = 1e-5, atol: float = 1e-6) -> NeuralODE:
    return NeuralODE(ODEFunc(dim, hidden), adjoint=True, rtol=rtol, atol=atol)


# --- neural-ode/spiral: Chen et al.'s demo, dy/dt = y^3 A -------------------------------------------------

SPIRAL_A = ((-0.1, 2.0), (-2.0, -0.1))


def spiral_trajectory(n_points: int, t_end: float, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """The true spiral from y0 = (2, 0): (t (T,), y (T, 1, 2)), solved by dopri5 at tight tolerance."""
    a = torch.tensor(SPIRAL_A, dtype=dtype)
    t = torch.linspace(0, t_end, n_points, dtype=dtype)
    # \frac{dy}{dt} = y^3 A
    y = odeint(lambda s, y: y**3 @ a, torch.tensor([[2.0, 0.0]], dtype=dtype), t, rtol=1e-10, atol=1e-12)
    return t, y


def saved_bytes(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Run fn and count the bytes autograd keeps for the backward pass (distinct storages, parameters excluded)."""
    seen: dict[int, int] = {}

    def pack(x):
        if not isinstance(x, nn.Parameter):
            storage = x.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        out = fn()
    return out, sum(seen.values())


@dataclass
class SpiralConfig:
    n_points: int = 1000  # samples of the true trajectory on [0, t_end]
    t_end: float = 25.0
    batch_time: int = 5  # each training segment spans this many samples
    batch_size: int = 200
    iters: int = 2000
    hidden: int = 50
    lr: float = 1e-2  # Adam, cosine-annealed
    train_method: str = "rk4"  # rk4 on the sample grid for training; dopri5 for every evaluation
    eval_rtol: float = 1e-7
    eval_atol: float = 1e-9


@lab(
    "neural-ode/spiral",
    card="neural-ode",
    config=SpiralConfig,
    scales={
        "quick": {"n_points": 200, "t_end": 5.0, "iters": 30, "hidden": 16},
        "default": {},
        "full": {"iters": 4000, "train_method": "dopri5"},
    },
    goals=[Goal("traj_rel_err", "<=", 0.3), Goal("grad_rel_diff", "<=", 1e-4)],
    claims=[
        Check(
            "neural-ode-continuous-dynamics",
            lambda m: m["traj_rel_err"] <= 0.3,
            "trained on random {batch_time}-sample segments, the learned field integrated from y(0) alone "
            "follows the spiral over the whole horizon t in [0, {t_end:.0f}] with relative L2 error "
            "{traj_rel_err:.3f} (final-point error {final_err:.3f}; dopri5 used {eval_nfe} evaluations)",
        ),
    ],
    budget_s=90,
    threads=1,
)
def spiral(run, cfg: SpiralConfig) -> dict:
    """Neural ODE on the spiral dy/dt = y^3 A: whole-horizon error, adjoint = backprop, memory of both."""
    t, y_true = spiral_trajectory(cfg.n_points, cfg.t_end)
    t, y_true = t.to(run.device), y_true.to(run.device)  # (T,), (T, 1, 2)
    g = torch.Generator().manual_seed(run.seed)
    func = ODEFunc(2, cfg.hidden, cube=True, generator=g).double().to(run.device)
    opt = torch.optim.Adam(func.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.iters)
    dt = cfg.t_end / (cfg.n_points - 1)
    start = time.perf_counter()
    for it in run.progress(range(cfg.iters), desc="spiral"):
        # random segments: y(s_i) as initial values, the next batch_time samples as targets
        s = torch.randint(0, cfg.n_points - cfg.batch_time, (cfg.batch_size,), generator=g).to(run.device)
        y0 = y_true[s, 0]  # (B, 2)
        target = torch.stack([y_true[s + i, 0] for i in range(cfg.batch_time)])  # (batch_time, B, 2)
        span = t[:cfg.batch_time]
        options = {"step_size": dt} if cfg.train_method in FIXED else {"rtol": 1e-5, "atol": 1e-6}
        pred = odeint(func, y0, span, method=cfg.train_method, **options)
        loss = (pred - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if it % 25 == 0 or it == cfg.iters - 1:
            run.log(it, loss=loss)
    train_s = time.perf_counter() - start

    func.nfe = 0
    with torch.no_grad():
        y_pred = odeint(func, y_true[0], t, rtol=cfg.eval_rtol, atol=cfg.eval_atol)  # (T, 1, 2)
    eval_nfe = func.nfe
    # \|y_\theta - y\|_2 / \|y\|_2 over the whole trajectory
    traj_rel_err = ((y_pred - y_true).norm() / y_true.norm()).item()
    final_err = (y_pred[-1] - y_true[-1]).norm().item()

    metrics = {"traj_rel_err": traj_rel_err, "final_err": final_err, "eval_nfe": eval_nfe, "train_s": train_s,
               "batch_time": cfg.batch_time, "t_end": cfg.t_end, "iters": cfg.iters}
    every = max(1, cfg.n_points // 100)  # 100 output times: each one is a point the adaptive solver must land on
    metrics.update(_adjoint_vs_direct(func, t[::every], y_true[::every]))
    _plot_spiral(run, t, y_true, y_pred)
    return metrics


def _adjoint_vs_direct(func: ODEFunc, t: torch.Tensor, y_true: torch.Tensor) -> dict:
    """The same loss on the whole trajectory differentiated both ways, at a loose and a tight tolerance."""
    out = {}
    params = list(func.parameters())
    grads = {}
    for name, rtol in (("loose", 1e-5), ("tight", 1e-8)):
        for how, solve in (("direct", odeint), ("adjoint", odeint_adjoint)):
            func.nfe = 0
            ys, nbytes = saved_bytes(lambda: solve(func, y_true[0], t, rtol=rtol, atol=rtol * 1e-2))
            forward_nfe = func.nfe
            # L = \frac{1}{T} \sum_i \|y_\theta(t_i) - y(t_i)\|^2
            loss = (ys - y_true).pow(2).sum(-1).mean()
            grads[how, name] = torch.cat([gp.reshape(-1) for gp in torch.autograd.grad(loss, params)])
            out[f"{how}_bytes_{name}"] = nbytes
            out[f"nfe_{name}"] = forward_nfe
    # relative difference of the two gradients at the tight tolerance
    d, a = grads["direct", "tight"], grads["adjoint", "tight"]
    out["grad_rel_diff"] = ((d - a).norm() / d.norm()).item()
    out["grad_rel_diff_loose"] = ((grads["direct", "loose"] - grads["adjoint", "loose"]).norm()
                                  / grads["direct", "loose"].norm()).item()
    out["memory_ratio"] = out["direct_bytes_tight"] / out["adjoint_bytes_tight"]
    return out


def _plot_spiral(run, t, y_true, y_pred) -> None:
    with run.figure("spiral", ncols=2) as (fig, (ax_phase, ax_time)):
        ax_phase.plot(y_true[:, 0, 0], y_true[:, 0, 1], "k-", lw=1.5, label="true")
        ax_phase.plot(y_pred[:, 0, 0], y_pred[:, 0, 1], "r--", lw=1.2, label="Neural ODE")
        ax_phase.set(xlabel="$y_1$", ylabel="$y_2$", title="phase portrait")
        ax_phase.legend()
        for i, c in enumerate("br"):
            ax_time.plot(t, y_true[:, 0, i], c + "-", lw=1, label=f"$y_{i + 1}$ true")
            ax_time.plot(t, y_pred[:, 0, i], c + "--", lw=1, label=f"$y_{i + 1}$ learned")
        ax_time.set(xlabel="t", title="whole horizon from y(0)")
        ax_time.legend(fontsize=7)
