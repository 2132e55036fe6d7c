"""RealNVP: affine coupling layers with alternating masks.

NICE's additive coupling becomes affine: the dimensions a mask keeps scale and shift the others by
networks of the kept ones. The Jacobian stays triangular, so however deep s and t are, the step is
inverted exactly and its log-determinant is the sum of the log-scales; alternating masks transform
every dimension in turn. (`AffineCoupling` itself lives in deepatlas.nn.flows: Glow and Flow++ reuse it.)

    y = b \\odot x + (1 - b) \\odot (x \\odot e^{s(b \\odot x)} + t(b \\odot x)),   \\log|\\det J| = \\sum_j s_j

Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepatlas.data.toy2d import toy_split
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.flows import AffineCoupling, Flow, alternating_masks, fit_density
from deepatlas.registry import register_model
from deepatlas.zoo.generative.glow import glow_flow
from deepatlas.zoo.generative.nice import nice_flow


def realnvp_flow(dim: int = 2, n_couplings: int = 8, hidden: int = 64, depth: int = 2,
                 generator: torch.Generator | None = None) -> Flow:
    """Affine couplings whose masks alternate between even and odd dimensions."""
    return Flow([AffineCoupling(b, hidden, depth, generator=generator)
                 for b in alternating_masks(dim, n_couplings)], (dim,))


@register_model("realnvp", card="realnvp", example=lambda: (torch.randn(8, 2),))
def realnvp(dim: int = 2, n_couplings: int = 8, hidden: int = 64) -> Flow:
    return realnvp_flow(dim, n_couplings, hidden)


@register_model("realnvp-digits", card="realnvp", example=lambda: (torch.randn(4, 64),))
def realnvp_digits(dim: int = 64, n_couplings: int = 8, hidden: int = 128) -> Flow:
    return realnvp_flow(dim, n_couplings, hidden)


def gaussian_fit_log_prob(x_train: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The trivial baseline: log-density of the maximum-likelihood Gaussian of the training data."""
    mean = x_train.mean(0)
    cov = torch.cov(x_train.T, correction=0)
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)


@torch.no_grad()
def grid_integral(log_prob, lo: torch.Tensor, hi: torch.Tensor, n: int = 400,
                  dtype: torch.dtype = torch.float32) -> tuple[float, tuple]:
    """\\int p \\approx \\sum_{cells} p(\\text{centre}) \\Delta x \\Delta y on an n x n midpoint grid over [lo, hi]."""
    edges = [torch.linspace(float(lo[i]), float(hi[i]), n + 1, dtype=torch.float64) for i in range(2)]
    centres = [(e[1:] + e[:-1]) / 2 for e in edges]
    g0, g1 = torch.meshgrid(*centres, indexing="xy")
    grid = torch.stack([g0.ravel(), g1.ravel()], 1)  # (n^2, 2)
    p = torch.cat([log_prob(chunk.to(dtype)).double().exp() for chunk in grid.split(40_000)]).reshape(n, n)
    cell = (edges[0][1] - edges[0][0]) * (edges[1][1] - edges[1][0])
    return float(p.sum() * cell), (g0, g1, p)


@torch.no_grad()
def inversion_errors(flow: Flow, x: torch.Tensor) -> tuple[float, float]:
    """max |f^{-1}(f(x)) - x| and max |log-det - log|det autograd Jacobian|| in float64, per point."""
    flow = flow.double()
    x = x.double()
    z, log_det = flow(x)
    inv_err = (flow.inverse(z) - x).abs().max().item()
    with torch.enable_grad():
        jac = torch.stack([torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], xi) for xi in x])
    ld_err = (torch.linalg.slogdet(jac).logabsdet - log_det).abs().max().item()
    flow.float()
    return inv_err, ld_err


# --- realnvp/density: exact likelihood on two moons and the checkerboard --------------------------

@dataclass
class DensityConfig:
    n_train: int = 2000
    n_test: int = 2000
    steps: int = 800
    batch_size: int = 256
    lr: float = 3e-3
    hidden: int = 64
    n_couplings: int = 8  # RealNVP and NICE couplings; Glow gets n_couplings / 2 steps of 3 layers
    grid: int = 400  # cells per side of the integration grid
    margin: float = 1.0  # the grid covers the data's bounding box widened by this much on every side
    wide_margin: float = 6.0  # a second, wider grid that should hold all of the mass
    compare: bool = False  # also train NICE and a Glow-style flow (tripling the cost: full scale only)


DATASETS = ("moons", "checkerboard")


def _models(cfg: DensityConfig, g: torch.Generator) -> dict:
    models = {"realnvp": realnvp_flow(2, cfg.n_couplings, cfg.hidden, generator=g)}
    if cfg.compare:
        models["nice"] = nice_flow(2, cfg.n_couplings, cfg.hidden, generator=g)
        models["glow"] = glow_flow(2, cfg.n_couplings // 2, cfg.hidden, mixing="conv1x1_lu", generator=g)
    return models


@lab(
    "realnvp/density",
    card="realnvp",
    config=DensityConfig,
    scales={
        "quick": {"n_train": 500, "n_test": 500, "steps": 60, "grid": 100},
        "default": {},
        "full": {"n_train": 20_000, "n_test": 10_000, "steps": 10_000, "hidden": 128, "grid": 800, "compare": True},
    },
    goals=[
        Goal("moons_realnvp_integral_err", "<=", 0.02), Goal("checkerboard_realnvp_integral_err", "<=", 0.02),
        Goal("moons_realnvp_gain", ">", 0.0), Goal("checkerboard_realnvp_gain", ">", 0.0),
    ],
    claims=[
        Check(
            "normalizing-flow-exact-likelihood",
            lambda m: max(m["moons_max_integral_err"], m["checkerboard_max_integral_err"]) <= 0.02,
            "the learned densities integrate to {moons_realnvp_integral:.4f} (moons) and "
            "{checkerboard_realnvp_integral:.4f} (checkerboard) for RealNVP on a {grid}x{grid} grid over the data "
            "(margin {margin}); on a grid with margin {wide_margin}, the largest deviation from 1 over all "
            "flows trained is {moons_max_integral_err:.4f} on moons and {checkerboard_max_integral_err:.4f} on "
            "the checkerboard; test NLL {moons_realnvp_test_nll:.3f} / "
            "{checkerboard_realnvp_test_nll:.3f} nats against the Gaussian fit's {moons_gauss_test_nll:.3f} / "
            "{checkerboard_gauss_test_nll:.3f}",
        ),
        Check(
            "realnvp-affine-coupling",
            lambda m: m["realnvp_inverse_err"] <= 1e-9 and m["realnvp_logdet_err"] <= 1e-9,
            "after training, the RealNVP flow inverts its outputs to {realnvp_inverse_err:.1e} and its log-det "
            "(a sum of log-scales) matches the log|det| of the autograd Jacobian to {realnvp_logdet_err:.1e} "
            "(float64, 200 checkerboard test points)",
        ),
    ],
    budget_s=90,
    threads=1,
)
def density(run, cfg: DensityConfig) -> dict:
    """Flows on two moons and the checkerboard: test NLL, and the density integrates to 1."""
    metrics: dict = {"grid": cfg.grid, "steps": cfg.steps, "margin": cfg.margin, "wide_margin": cfg.wide_margin}
    plots = {}
    for ds in DATASETS:
        data = toy_split(ds, cfg.n_train, cfg.n_test, seed=run.seed)
        x, x_test = data.x_train.to(run.device), data.x_test.to(run.device)  # (N, 2)
        g = torch.Generator().manual_seed(run.seed)
        lo = torch.minimum(x.min(0).values, x_test.min(0).values).cpu() - cfg.margin
        hi = torch.maximum(x.max(0).values, x_test.max(0).values).cpu() + cfg.margin
        metrics[f"{ds}_gauss_test_nll"] = -gaussian_fit_log_prob(x, x_test).mean().item()
        errs = []
        for name, flow in run.progress(_models(cfg, g).items(), desc=f"flows on {ds}"):
            flow = flow.to(run.device)
            fit_density(run, f"{ds}_{name}", flow, x, cfg.steps, cfg.lr, cfg.batch_size, g)
            flow.eval()
            with torch.no_grad():
                metrics[f"{ds}_{name}_test_nll"] = -flow.log_prob(x_test).mean().item()
                metrics[f"{ds}_{name}_train_nll"] = -flow.log_prob(x).mean().item()
            flow = flow.cpu()
            integral, field = grid_integral(flow.log_prob, lo, hi, cfg.grid)
            metrics[f"{ds}_{name}_integral"] = integral
            metrics[f"{ds}_{name}_integral_err"] = abs(integral - 1)
            wide, _ = grid_integral(flow.log_prob, lo - cfg.wide_margin + cfg.margin,
                                    hi + cfg.wide_margin - cfg.margin, cfg.grid)
            metrics[f"{ds}_{name}_integral_wide"] = wide
            errs.append(abs(wide - 1))
            if name == "realnvp":
                plots[ds] = (field, x_test.cpu())
                # the NLL gain over the Gaussian fit, in nats per point
                metrics[f"{ds}_realnvp_gain"] = metrics[f"{ds}_gauss_test_nll"] - metrics[f"{ds}_realnvp_test_nll"]
                if ds == "checkerboard":
                    inv, ld = inversion_errors(flow.cpu(), x_test[:200].cpu())
                    metrics["realnvp_inverse_err"], metrics["realnvp_logdet_err"] = inv, ld
        metrics[f"{ds}_max_integral_err"] = max(errs)
    _plot_density(run, plots)
    return metrics


def _plot_density(run, plots: dict) -> None:
    with run.figure("density", ncols=2 * len(plots)) as (fig, axes):
        for k, (ds, ((g0, g1, p), x_test)) in enumerate(plots.items()):
            ax_p, ax_x = axes[2 * k], axes[2 * k + 1]
            ax_p.pcolormesh(g0, g1, p, shading="auto", cmap="viridis")
            ax_p.set(title=f"RealNVP density, {ds}", aspect="equal")
            ax_x.scatter(x_test[:, 0], x_test[:, 1], s=2, alpha=0.5)
            ax_x.set(title=f"{ds} test data", aspect="equal", xlim=(g0.min(), g0.max()), ylim=(g1.min(), g1.max()))
