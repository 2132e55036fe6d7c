"""Three textbook claims about SGD, AdaGrad and RMSProp, each measured on the smallest problem that shows it.

Saddles: exact gradient descent started on a saddle's stable manifold never leaves it, while the
noise of mini-batch sampling from the same finite sum pushes SGD off. Sparse features: AdaGrad's
per-coordinate accumulator r grows with how often a coordinate gets a gradient, so rare features
keep a large step. Moving targets: RMSProp's moving average forgets, AdaGrad's sum does not, so
only RMSProp's step follows a 100x drop in curvature. All three use deepatlas.optim.optimizers.

    f_i(x, y) = \\tfrac12 (x - a_i)^2 - \\tfrac12 (y - b_i)^2 + \\tfrac14 y^4;\\quad
    \\text{AdaGrad: } \\eta / (\\sqrt{r_t} + \\epsilon);\\quad \\text{RMSProp: } \\eta / (\\sqrt{v_t} + \\epsilon)

Robbins & Monro 1951; Ge et al., "Escaping from saddle points", COLT 2015 (arXiv 1503.02101);
Duchi, Hazan & Singer, JMLR 2011; Tieleman & Hinton, Coursera lecture 6.5, 2012.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.optimizers import SGD, AdaGrad, RMSProp

# ------------------------------------------------------------ SGD escapes a saddle


@dataclass
class SaddleConfig:
    n: int = 64  # terms in the finite sum
    runs: int = 200  # independent SGD runs per batch size
    steps: int = 600
    lr: float = 0.1
    batch_size: int = 8  # the SGD batch of the claim; the plot also sweeps batch_sizes
    escape: float = 0.5  # escaped once |y| > escape (the minima are at y = +-1)
    near: float = 1e-8  # GD's second start: y_0 = near, just off the stable manifold


def saddle_grad(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean gradient of f_i over a batch: w (R, 2), a and b (R, B) -> (R, 2)."""
    x, y = w.unbind(1)
    # \nabla_x = x - \bar a_B,   \nabla_y = -(y - \bar b_B) + y^3
    return torch.stack([x - a.mean(1), -(y - b.mean(1)) + y**3], 1)


def descend(w0: torch.Tensor, a: torch.Tensor, b: torch.Tensor, batch: int, cfg: SaddleConfig,
            g: torch.Generator) -> torch.Tensor:
    """SGD on mini-batches of `batch` of the n terms (a, b: (n,)), drawn without replacement
    (batch = n is exact GD). Returns |y| after every step, (steps, R)."""
    w = w0.clone().requires_grad_()  # (R, 2)
    opt = SGD([w], lr=cfg.lr)
    runs, path = len(w0), []
    for _ in range(cfg.steps):
        idx = torch.rand(runs, cfg.n, generator=g).argsort(1)[:, :batch]  # (R, B)
        w.grad = saddle_grad(w.detach(), a[idx], b[idx])
        opt.step()
        path.append(w.detach()[:, 1].abs())
    return torch.stack(path)


def first_escape(abs_y: torch.Tensor, threshold: float, cap: int) -> torch.Tensor:
    """(R,) first step with |y| > threshold, or `cap` for a run that never escapes."""
    out = abs_y > threshold  # (T, R)
    first = out.int().argmax(0) + 1
    return torch.where(out.any(0), first, torch.full_like(first, cap))


@lab(
    "sgd/saddle-escape",
    card="sgd",
    config=SaddleConfig,
    scales={"quick": {"runs": 50, "steps": 200}, "default": {}, "full": {"runs": 1000, "steps": 2000}},
    goals=[Goal("sgd_escaped_frac", ">=", 0.95), Goal("sgd_final_loss", "<=", -0.2)],
    claims=[
        Check(
            "sgd-noise-escapes-saddles",
            lambda m: m["sgd_escaped_frac"] >= 0.9 and m["gd_escaped_frac"] == 0.0
            and m["sgd_median_steps"] < m["gd_near_steps"],
            "from the saddle's stable manifold (y = 0) exact gradient descent never escapes "
            "(escaped {gd_escaped_frac:.2f}, max |y| {gd_max_abs_y:.1e} after {steps} steps); SGD with "
            "batches of {batch_size}/{n} escapes in {sgd_escaped_frac:.2f} of {runs} runs, median "
            "{sgd_median_steps:.0f} steps, faster than GD started {near:.0e} off the manifold "
            "({gd_near_steps:.0f} steps)",
        ),
    ],
    budget_s=15,
    threads=1,
)
def saddle_escape(run, cfg: SaddleConfig) -> dict:
    """A saddle: exact gradient descent stalls on its stable manifold, mini-batch SGD escapes."""
    g = torch.Generator().manual_seed(run.seed)
    # a_i, b_i = +-1 in equal numbers: the full sum has exactly zero mean, so GD's y stays exactly 0
    signs = torch.tensor([1.0, -1.0], dtype=torch.float64).repeat(cfg.n // 2)
    a, b = signs[torch.randperm(cfg.n, generator=g)], signs[torch.randperm(cfg.n, generator=g)]
    w0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64).repeat(cfg.runs, 1)  # on the manifold y = 0

    sizes = sorted({2, cfg.batch_size, cfg.n // 2, cfg.n})
    curves, escapes = {}, {}
    for batch in run.progress(sizes, desc="batch sizes"):
        abs_y = descend(w0, a, b, batch, cfg, g)  # (T, R)
        curves[batch], escapes[batch] = abs_y, first_escape(abs_y, cfg.escape, cfg.steps)
        run.log(batch, **{"median_escape_steps": escapes[batch].double().median()})
    near = torch.tensor([[1.0, cfg.near]], dtype=torch.float64)
    gd_near = first_escape(descend(near, a, b, cfg.n, cfg, g), cfg.escape, cfg.steps)

    sgd, gd = escapes[cfg.batch_size], escapes[cfg.n]
    # final full-batch loss of the SGD runs, f = \tfrac12 x^2 - \tfrac12 y^2 + \tfrac14 y^4 (+ const 0)
    w_end = curves[cfg.batch_size][-1]
    metrics = {
        "n": cfg.n, "runs": cfg.runs, "steps": cfg.steps, "batch_size": cfg.batch_size, "near": cfg.near,
        "sgd_escaped_frac": (sgd < cfg.steps).double().mean().item(),
        "sgd_median_steps": sgd.double().median().item(),
        "gd_escaped_frac": (gd < cfg.steps).double().mean().item(),
        "gd_max_abs_y": curves[cfg.n].max().item(),
        "gd_near_steps": float(gd_near[0]),
        "sgd_final_loss": (-0.5 * w_end**2 + 0.25 * w_end**4).mean().item(),
    }
    for batch in sizes:
        metrics[f"median_steps_b{batch}"] = escapes[batch].double().median().item()

    with run.figure("saddle_escape", ncols=2) as (fig, (ax1, ax2)):
        for batch in sizes:
            label = "GD (full batch; |y| = 0 drawn at 1e-17)" if batch == cfg.n else f"SGD, batch {batch}"
            ax1.plot(curves[batch].median(1).values.clamp_min(1e-17), label=label)
        ax1.axhline(cfg.escape, color="gray", ls=":")
        ax1.set(xlabel="step", ylabel="median |y| over runs", yscale="log", title="leaving the saddle")
        ax1.legend(fontsize=8)
        ax2.bar([str(s) for s in sizes], [metrics[f"median_steps_b{s}"] for s in sizes])
        ax2.set(xlabel="batch size (n = full batch)", ylabel=f"median steps to |y| > {cfg.escape}",
                title=f"capped at {cfg.steps} steps")
    return metrics


# ------------------------------------------------------------ AdaGrad on sparse features


@dataclass
class SparseConfig:
    samples: int = 4000
    dense: int = 5  # features active in every sample, x ~ N(0, 1)
    rare: int = 20  # binary features active in p of the samples, p log-spaced in [p_min, p_max]
    p_min: float = 0.01
    p_max: float = 0.05
    noise: float = 0.1
    batch_size: int = 16
    steps: int = 2000
    lr_min: float = 1e-3  # each optimiser takes its best rate (final training loss) from this grid
    lr_max: float = 1.0
    lr_points: int = 7


def sparse_data(cfg: SparseConfig, g: torch.Generator):
    """x (N, dense + rare), y (N,), w* (dense + rare,), p (rare,)."""
    p = torch.logspace(torch.log10(torch.tensor(cfg.p_min)), torch.log10(torch.tensor(cfg.p_max)), cfg.rare)
    x = torch.cat([torch.randn(cfg.samples, cfg.dense, generator=g, dtype=torch.float64),
                   (torch.rand(cfg.samples, cfg.rare, generator=g) < p).double()], 1)  # (N, d)
    w_star = torch.randn(cfg.dense + cfg.rare, generator=g, dtype=torch.float64)
    # y = x^\top w^* + \sigma \varepsilon
    y = x @ w_star + cfg.noise * torch.randn(cfg.samples, generator=g, dtype=torch.float64)
    return x, y, w_star, p


def fit_linear(make_opt, x, y, rates, idx):
    """Least squares with one weight row per rate. Returns w (G, d) and the optimiser."""
    w = torch.zeros(len(rates), x.shape[1], dtype=torch.float64, requires_grad=True)  # (G, d)
    opt = make_opt([w], rates[:, None])
    for rows in idx:
        xb, yb = x[rows], y[rows]  # (B, d), (B,)
        # \nabla_w \tfrac{1}{2B} \lVert X_B w - y_B \rVert^2 = X_B^\top (X_B w - y_B) / B
        w.grad = (w.detach() @ xb.T - yb) @ xb / len(rows)
        opt.step()
    return w.detach(), opt


@lab(
    "adagrad/sparse-features",
    card="adagrad",
    config=SparseConfig,
    scales={"quick": {"steps": 500}, "default": {}, "full": {"samples": 20_000, "steps": 10_000}},
    goals=[Goal("step_ratio_rare_dense", ">=", 2.0), Goal("adagrad_train_loss", "<=", 0.05)],
    claims=[
        Check(
            "adagrad-sparse-features",
            lambda m: m["step_ratio_rare_dense"] > 1.0,
            "after {steps} AdaGrad steps the effective step eta/(sqrt(r)+eps) of weights on features "
            "active in {p_min:.0%}-{p_max:.0%} of samples is {step_ratio_rare_dense:.1f}x that of "
            "always-active features (median {adagrad_step_rare:.3f} vs {adagrad_step_dense:.3f}); "
            "rare-weight relative error: AdaGrad {adagrad_rare_err:.3f}, SGD {sgd_rare_err:.3f} "
            "(each at its best rate)",
        ),
    ],
    budget_s=15,
    threads=1,
)
def sparse_features(run, cfg: SparseConfig) -> dict:
    """AdaGrad keeps large steps for rarely active features and small ones for frequent features."""
    g = torch.Generator().manual_seed(run.seed)
    x, y, w_star, p = sparse_data(cfg, g)
    idx = torch.randint(0, cfg.samples, (cfg.steps, cfg.batch_size), generator=g)  # shared batches
    rates = torch.logspace(torch.log10(torch.tensor(cfg.lr_min)), torch.log10(torch.tensor(cfg.lr_max)),
                           cfg.lr_points, dtype=torch.float64)
    dense, rare = slice(0, cfg.dense), slice(cfg.dense, None)
    metrics = {k: getattr(cfg, k) for k in ("steps", "p_min", "p_max")}
    fits = {}
    for name, make_opt in run.progress({"AdaGrad": AdaGrad, "SGD": SGD}.items(), desc="optimisers"):
        w, opt = fit_linear(lambda params, lr, m=make_opt: m(params, lr=lr), x, y, rates, idx)
        loss = 0.5 * ((w @ x.T - y) ** 2).mean(1)  # (G,)
        best = int(torch.nan_to_num(loss, nan=torch.inf).argmin())
        run.log(0, **{f"loss_{name}": loss[best]})
        err = (w[best] - w_star).abs()
        key = name.lower()
        metrics[f"{key}_train_loss"] = loss[best].item()
        metrics[f"{key}_lr"] = rates[best].item()
        metrics[f"{key}_rare_err"] = (err[rare].norm() / w_star[rare].norm()).item()
        metrics[f"{key}_dense_err"] = (err[dense].norm() / w_star[dense].norm()).item()
        fits[name] = (w[best], opt, best)

    _, opt, best = fits["AdaGrad"]
    state = opt.state[opt.param_groups[0]["params"][0]]
    # effective step of each weight: \eta / (\sqrt{r_T} + \epsilon)
    step = (rates[best] / (state["sum_sq"][best].sqrt() + opt.defaults["eps"]))  # (d,)
    metrics["adagrad_step_dense"] = step[dense].median().item()
    metrics["adagrad_step_rare"] = step[rare].median().item()
    metrics["step_ratio_rare_dense"] = metrics["adagrad_step_rare"] / metrics["adagrad_step_dense"]

    freq = torch.cat([torch.ones(cfg.dense, dtype=torch.float64), p.double()])
    with run.figure("sparse_features", ncols=2) as (fig, (ax1, ax2)):
        ax1.scatter(freq[rare], step[rare], label="rare binary features")
        ax1.scatter(freq[dense], step[dense], label="dense features")
        ax1.set(xscale="log", yscale="log", xlabel="fraction of samples where the feature is active",
                ylabel="AdaGrad effective step", title=f"after {cfg.steps} steps")
        ax1.legend(fontsize=8)
        for name, (w, _, _) in fits.items():
            ax2.scatter(w_star[rare], w[rare], label=f"{name} (lr {metrics[name.lower() + '_lr']:.3g})")
        ax2.plot([-2.5, 2.5], [-2.5, 2.5], color="gray", ls=":")
        ax2.set(xlabel="true weight", ylabel="learned weight", title="rare-feature weights")
        ax2.legend(fontsize=8)
    return metrics


# ------------------------------------------------------------ RMSProp on a moving target


@dataclass
class MovingConfig:
    dim: int = 10
    steps: int = 2000  # the curvature drops by `drop` at steps // 2
    period: int = 250  # the optimum w* jumps every `period` steps
    drop: float = 100.0
    batch_size: int = 32
    alpha: float = 0.9  # RMSProp's decay beta
    lr_min: float = 1e-3  # each optimiser takes its best rate (mean tracking error) from this grid
    lr_max: float = 100.0  # AdaGrad's best, 10, lies inside the grid
    lr_points: int = 11


@lab(
    "rmsprop/moving-target",
    card="rmsprop",
    config=MovingConfig,
    scales={"quick": {"steps": 800, "period": 100}, "default": {}, "full": {"steps": 10_000, "period": 500}},
    goals=[Goal("rmsprop_err_after", "<=", 0.2)],
    claims=[
        Check(
            "rmsprop-nonstationary",
            lambda m: m["rmsprop_err_after"] < m["adagrad_err_after"]
            and m["rmsprop_step_gain"] > 10 * m["adagrad_step_gain"],
            "with the optimum jumping every {period} steps and the curvature dropping {drop:.0f}x halfway, "
            "the mean relative tracking error after the drop is RMSProp {rmsprop_err_after:.3f} vs AdaGrad "
            "{adagrad_err_after:.3f} (before: {rmsprop_err_before:.3f} vs {adagrad_err_before:.3f}; each at "
            "its best rate); across the drop RMSProp's effective step grew {rmsprop_step_gain:.1f}x, "
            "AdaGrad's {adagrad_step_gain:.2f}x",
        ),
    ],
    budget_s=15,
    threads=1,
)
def moving_target(run, cfg: MovingConfig) -> dict:
    """A moving target: RMSProp's forgetting step size follows a 100x curvature drop, AdaGrad's does not."""
    g = torch.Generator().manual_seed(run.seed)
    targets = torch.randn(cfg.steps // cfg.period + 1, cfg.dim, generator=g, dtype=torch.float64)  # (K, d)
    xs = torch.randn(cfg.steps, cfg.batch_size, cfg.dim, generator=g, dtype=torch.float64)  # (T, B, d)
    half = cfg.steps // 2
    # the input scale s drops by sqrt(drop) halfway, so the curvature E[x x^T] = s^2 I drops by `drop`
    scale = torch.where(torch.arange(cfg.steps) < half, 1.0, cfg.drop ** -0.5).double()  # (T,)
    rates = torch.logspace(torch.log10(torch.tensor(cfg.lr_min)), torch.log10(torch.tensor(cfg.lr_max)),
                           cfg.lr_points, dtype=torch.float64)
    makers = {"AdaGrad": lambda p, lr: AdaGrad(p, lr=lr),
              "RMSProp": lambda p, lr: RMSProp(p, lr=lr, alpha=cfg.alpha)}
    metrics = {k: getattr(cfg, k) for k in ("period", "drop")}
    errs, steps_taken = {}, {}
    for name, make_opt in makers.items():
        w = torch.zeros(len(rates), cfg.dim, dtype=torch.float64, requires_grad=True)  # (G, d)
        opt = make_opt([w], rates[:, None])
        err, eff = [], []
        for t in run.progress(range(cfg.steps), desc=name):
            w_star = targets[t // cfg.period]
            xb = scale[t] * xs[t]  # (B, d)
            # \nabla_w \tfrac{1}{2B} \lVert X_B (w - w^*_t) \rVert^2 = X_B^\top X_B (w - w^*_t) / B
            w.grad = (w.detach() - w_star) @ xb.T @ xb / cfg.batch_size
            opt.step()
            err.append((w.detach() - w_star).norm(dim=1) / w_star.norm())  # (G,)
            state = opt.state[w]
            s = state["sum_sq"] if "sum_sq" in state else state["square_avg"]
            # effective step, mean over coordinates: \eta / (\sqrt{s} + \epsilon)
            eff.append((rates[:, None] / (s.sqrt() + opt.defaults["eps"])).mean(1))
            if t % 50 == 0:
                run.log(t, **{f"err_{name}": err[-1].nan_to_num(torch.inf).min()})
        err, eff = torch.nan_to_num(torch.stack(err), nan=torch.inf), torch.stack(eff)  # (T, G)
        best = int(err.mean(0).argmin())
        key = name.lower()
        metrics[f"{key}_lr"] = rates[best].item()
        metrics[f"{key}_err_before"] = err[:half, best].mean().item()
        metrics[f"{key}_err_after"] = err[half:, best].mean().item()
        # gain of the effective step: its value at the end over its value just before the drop
        metrics[f"{key}_step_gain"] = (eff[-1, best] / eff[half - 1, best]).item()
        errs[name], steps_taken[name] = err[:, best], eff[:, best]

    with run.figure("moving_target", ncols=2) as (fig, (ax1, ax2)):
        for name in makers:
            ax1.plot(errs[name], label=f"{name} (lr {metrics[name.lower() + '_lr']:.3g})")
            ax2.plot(steps_taken[name], label=name)
        for ax in (ax1, ax2):
            ax.axvline(half, color="gray", ls=":")
            ax.legend(fontsize=8)
        ax1.set(xlabel="step", ylabel="||w - w*|| / ||w*||", yscale="log",
                title=f"optimum jumps every {cfg.period} steps")
        ax2.set(xlabel="step", ylabel="mean effective step", yscale="log",
                title=f"curvature drops {cfg.drop:.0f}x at step {half}")
    return metrics
