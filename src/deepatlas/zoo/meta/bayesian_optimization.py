"""Bayesian optimisation: a GP surrogate of an expensive black box picks each next trial by expected improvement.

After every trial a Gaussian process (Matérn 5/2 kernel, hyper-parameters by maximum marginal
likelihood) is fitted to the (x, f(x)) pairs seen so far; its posterior mean mu(x) and standard
deviation sigma(x) give, in closed form, the expected amount by which f(x) would beat the best value
f* so far. The next trial maximises that expected improvement, which is large where mu is low
(exploitation) or sigma is high (exploration). Random search draws every trial blindly.

    \\gamma(x) = (f^* - \\mu(x)) / \\sigma(x),   \\mathrm{EI}(x) = \\sigma(x) [\\gamma \\Phi(\\gamma) + \\phi(\\gamma)]

Snoek, Larochelle & Adams, "Practical Bayesian Optimization of Machine Learning Algorithms", NIPS 2012;
Jones, Schonlau & Welch, "Efficient Global Optimization of Expensive Black-Box Functions", J. Global Optim. 1998.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from deepatlas.labs import Check, Goal, lab
from deepatlas.zoo.bayesian.gaussian_process import GPRegression, fit_marginal_likelihood

Objective = Callable[[torch.Tensor], torch.Tensor]  # (N, D) in the unit cube -> (N,), to be minimised


# --- the acquisition function ---------------------------------------------------------------------

def expected_improvement(mean: torch.Tensor, std: torch.Tensor, best: float | torch.Tensor) -> torch.Tensor:
    """E[max(f* - f, 0)] for f ~ N(mean, std^2), elementwise (minimisation); 0 where std is 0 and mean >= f*."""
    if (std < 0).any():
        raise ValueError("std must be >= 0")
    safe = std.clamp_min(1e-12)
    # \gamma = (f^* - \mu) / \sigma
    gamma = (best - mean) / safe
    normal = torch.distributions.Normal(torch.zeros((), dtype=mean.dtype), torch.ones((), dtype=mean.dtype))
    # \mathrm{EI} = \sigma [\gamma \Phi(\gamma) + \phi(\gamma)]
    ei = safe * (gamma * normal.cdf(gamma) + normal.log_prob(gamma).exp())
    return torch.where(std > 0, ei, (best - mean).clamp_min(0))


# --- the search loops -----------------------------------------------------------------------------

def random_search(f: Objective, dim: int, n_trials: int, generator: torch.Generator) -> torch.Tensor:
    """f at n_trials uniform points of the unit cube, in the order tried: (n_trials,)."""
    return f(torch.rand(n_trials, dim, generator=generator, dtype=torch.float64))


def bayesian_optimization(f: Objective, dim: int, n_trials: int, generator: torch.Generator, n_init: int = 3,
                          n_candidates: int = 500, fit_steps: int = 15) -> torch.Tensor:
    """f at each trial, in the order tried: (n_trials,). The first n_init trials are uniform; each later one
    maximises EI over n_candidates points (half uniform, half jittered around the best point so far)."""
    if not 1 <= n_init <= n_trials:
        raise ValueError(f"need 1 <= n_init <= n_trials, got n_init={n_init}, n_trials={n_trials}")
    x = torch.rand(n_init, dim, generator=generator, dtype=torch.float64)  # (n, D)
    y = f(x)  # (n,)
    gp = GPRegression("matern52", lengthscale=0.3, variance=1.0, noise_var=1e-3).double()
    while len(y) < n_trials:
        z = (y - y.mean()) / y.std().clamp_min(1e-9)  # standardised targets
        fit_marginal_likelihood(gp, x, z, steps=fit_steps)  # warm-started from the previous trial's fit
        with torch.no_grad():
            gp.log_noise_var.clamp_(math.log(1e-5), math.log(0.1))
            gp.log_lengthscale.clamp_(math.log(0.02), math.log(10.0))
            best = x[z.argmin()]
            local = best + 0.05 * torch.randn(n_candidates // 2, dim, generator=generator, dtype=torch.float64)
            cand = torch.cat([torch.rand(n_candidates - len(local), dim, generator=generator, dtype=torch.float64),
                              local.clamp(0, 1)])  # (C, D)
            mean, var = gp(x, z, cand)
            # x_{n+1} = \arg\max_x \mathrm{EI}(x)
            nxt = cand[expected_improvement(mean, var.sqrt(), z.min()).argmax()][None]
        x, y = torch.cat([x, nxt]), torch.cat([y, f(nxt)])
    return y


# --- standard test functions on the unit cube -----------------------------------------------------

def branin(u: torch.Tensor) -> torch.Tensor:
    """Branin-Hoo, x1 in [-5, 10], x2 in [0, 15] mapped from the unit square: (N, 2) -> (N,); min 0.397887."""
    x1, x2 = 15 * u[:, 0] - 5, 15 * u[:, 1]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * torch.cos(x1) + 10


_H3_A = torch.tensor([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]], dtype=torch.float64)
_H3_P = 1e-4 * torch.tensor([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]],
                            dtype=torch.float64)
_H3_ALPHA = torch.tensor([1.0, 1.2, 3.0, 3.2], dtype=torch.float64)


def hartmann3(u: torch.Tensor) -> torch.Tensor:
    """Hartmann-3 on [0, 1]^3: (N, 3) -> (N,); min -3.86278 at (0.114614, 0.555649, 0.852547)."""
    # f(x) = -\sum_i \alpha_i \exp(-\sum_j A_{ij} (x_j - P_{ij})^2)
    return -(_H3_ALPHA * torch.exp(-(_H3_A * (u[:, None, :] - _H3_P) ** 2).sum(-1))).sum(-1)


FUNCTIONS = {"branin": (branin, 2, 0.397887), "hartmann3": (hartmann3, 3, -3.86278)}


# --- bayesian-optimization/vs-random-search -------------------------------------------------------

@dataclass
class VsRandomConfig:
    n_trials: int = 40  # evaluations of the black box per search
    repeats: int = 8  # independent searches per method and function
    n_init: int = 3  # uniform trials before BO starts using its GP
    n_candidates: int = 500  # points EI is maximised over per trial
    fit_steps: int = 15  # Adam steps on the GP's marginal likelihood per trial
    good_regret: float = 0.05  # a "good configuration": simple regret f(x_best) - f_min at most this


def trials_to_good(regret: torch.Tensor, good: float) -> torch.Tensor:
    """Per search, the first trial (1-based) whose best-so-far regret is <= good; n_trials + 1 if never:
    regret (R, T) -> (R,)."""
    hit = regret <= good
    first = hit.float().argmax(1) + 1
    return torch.where(hit.any(1), first, torch.full_like(first, regret.shape[1] + 1)).double()


@lab(
    "bayesian-optimization/vs-random-search",
    card="bayesian-optimization",
    config=VsRandomConfig,
    scales={
        "quick": {"n_trials": 8, "repeats": 2, "n_candidates": 100, "fit_steps": 5},
        "default": {},
        "full": {"n_trials": 100, "repeats": 30, "n_candidates": 10000, "fit_steps": 100},
    },
    goals=[Goal("bo_regret_branin", "<=", 0.05), Goal("bo_regret_hartmann3", "<=", 0.05)],
    claims=[
        Check(
            "bayesian-optimization-fewer-trials",
            lambda m: all(m[f"bo_trials_{n}"] < m[f"random_trials_{n}"] for n in FUNCTIONS),
            "median trials to reach simple regret <= {good_regret} over {repeats} searches ({n_trials}+1 = never "
            "within {n_trials}): Branin BO {bo_trials_branin:.0f} vs random search {random_trials_branin:.0f} (a "
            "uniform draw is that good with probability {p_good_branin:.4f}), Hartmann-3 BO "
            "{bo_trials_hartmann3:.0f} vs {random_trials_hartmann3:.0f} (probability {p_good_hartmann3:.4f}); mean "
            "regret after {n_trials} trials BO {bo_regret_branin:.4f} / {bo_regret_hartmann3:.4f} vs random "
            "{random_regret_branin:.4f} / {random_regret_hartmann3:.4f}. Test functions stand in for a validation "
            "loss. Rule: BO's median is below random search's on both functions",
        ),
    ],
    budget_s=90,
    threads=1,
)
def vs_random_search(run, cfg: VsRandomConfig) -> dict:
    """GP + expected improvement against random search on Branin and Hartmann-3, regret per trial."""
    metrics: dict = {"n_trials": cfg.n_trials, "repeats": cfg.repeats, "good_regret": cfg.good_regret}
    curves: dict = {}
    for name, (f, dim, f_min) in FUNCTIONS.items():
        for method in ("bo", "random"):
            regrets = []
            for r in run.progress(range(cfg.repeats), desc=f"{method} {name}"):
                g = torch.Generator().manual_seed(1000 * run.seed + r)
                if method == "bo":
                    y = bayesian_optimization(f, dim, cfg.n_trials, g, cfg.n_init, cfg.n_candidates, cfg.fit_steps)
                else:
                    y = random_search(f, dim, cfg.n_trials, g)
                # simple regret r_t = \min_{s \le t} f(x_s) - f_{\min}
                regrets.append(y.cummin(0).values - f_min)
                run.log(r, **{f"{method}_{name}_regret": regrets[-1][-1]})
            regret = torch.stack(regrets)  # (R, T)
            curves[name, method] = regret
            metrics[f"{method}_regret_{name}"] = regret[:, -1].mean().item()
            metrics[f"{method}_trials_{name}"] = trials_to_good(regret, cfg.good_regret).median().item()
        u = torch.rand(200_000, dim, generator=torch.Generator().manual_seed(run.seed), dtype=torch.float64)
        metrics[f"p_good_{name}"] = (f(u) - f_min <= cfg.good_regret).double().mean().item()
    _plot(run, cfg, curves)
    return metrics


def _plot(run, cfg: VsRandomConfig, curves: dict) -> None:
    with run.figure("regret", ncols=len(FUNCTIONS), size=(5 * len(FUNCTIONS), 3.6)) as (fig, axes):
        for ax, name in zip(axes, FUNCTIONS):
            trials = torch.arange(1, cfg.n_trials + 1)
            for method, style in (("bo", "o-"), ("random", "x--")):
                regret = curves[name, method].clamp_min(1e-6)
                log_mean = regret.log10().mean(0)
                ax.plot(trials, 10 ** log_mean, style, ms=3, label="GP + EI" if method == "bo" else "random search")
                ax.fill_between(trials, regret.quantile(0.25, 0).numpy(), regret.quantile(0.75, 0).numpy(), alpha=0.2)
            ax.axhline(cfg.good_regret, color="grey", lw=1, ls=":")
            ax.set(xlabel="trial", ylabel="simple regret", yscale="log",
                   title=f"{name}: geometric mean and quartiles of {cfg.repeats} searches")
            ax.legend(fontsize=8)
