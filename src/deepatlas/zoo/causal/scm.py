"""Structural causal model: each variable is a function of its direct causes and its own noise.

The equations x_i := f_i(pa_i, u_i) with independent noises u_i generate the observational
distribution; do(X_j = x) replaces X_j's equation by the constant x and leaves the others, which gives
the interventional distribution; holding a unit's noise fixed while rewriting an equation gives its
counterfactual. One object answers all three rungs of Pearl's ladder: association, intervention and
counterfactual.

    x_i := f_i(\\mathrm{pa}_i, u_i),\\quad u_i \\text{ independent};\\qquad
    \\mathrm{do}(X_j = x):\\ x_j := x

Pearl, "Causality: Models, Reasoning, and Inference", Cambridge University Press 2000.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from deepatlas.data.causal import topological_order
from deepatlas.labs import Check, Goal, lab
from deepatlas.zoo.causal.bayesian_network import BayesianNetwork
from deepatlas.zoo.causal.counterfactual import counterfactual, linear_counterfactual
from deepatlas.zoo.causal.do_calculus import marginal, truncated_factorisation

Mechanism = Callable[[dict, torch.Tensor], torch.Tensor]  # (parent values, noise u) -> value, all (n,)
NoiseSampler = Callable[[int, torch.Generator], torch.Tensor]  # (n, generator) -> u (n,)


def gaussian(std: float = 1.0) -> NoiseSampler:
    return lambda n, g: std * torch.randn(n, generator=g, dtype=torch.float64)


def uniform() -> NoiseSampler:
    return lambda n, g: torch.rand(n, generator=g, dtype=torch.float64)


class SCM:
    """Equations {name: (parents, f, noise)}, with f(pa: dict name -> (n,), u: (n,)) -> (n,).
    `additive=True` promises f(pa, u) = f(pa, 0) + u, which makes abduction exact."""

    def __init__(self, equations: dict[str, tuple[tuple[str, ...], Mechanism, NoiseSampler]],
                 additive: bool = False):
        self.equations = dict(equations)
        self.additive = additive
        names = list(self.equations)
        unknown = {p for ps, _, _ in self.equations.values() for p in ps} - set(names)
        if unknown:
            raise ValueError(f"parents {sorted(unknown)} have no equation")
        B = torch.zeros(len(names), len(names))
        for j, (ps, _, _) in enumerate(self.equations.values()):
            for p in ps:
                B[names.index(p), j] = 1
        self.order = [names[i] for i in topological_order(B)]

    def sample_noise(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {v: self.equations[v][2](n, generator) for v in self.order}

    def solve(self, u: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The values the equations give for noise u, causes first."""
        x: dict[str, torch.Tensor] = {}
        for v in self.order:
            parents, f, _ = self.equations[v]
            # x_i := f_i(\mathrm{pa}_i, u_i)
            x[v] = f({p: x[p] for p in parents}, u[v])
        return x

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.solve(self.sample_noise(n, generator))

    def do(self, **values: float) -> SCM:
        """The intervened model: each named equation replaced by its constant, the noise kept for the others."""
        unknown = set(values) - set(self.equations)
        if unknown:
            raise ValueError(f"cannot intervene on unknown variables {sorted(unknown)}")
        equations = dict(self.equations)
        for v, value in values.items():
            # \mathrm{do}(X_j = x):\ x_j := x
            equations[v] = ((), lambda pa, u, value=value: torch.full_like(u, float(value)), equations[v][2])
        return SCM(equations, additive=self.additive)

    def abduct(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The noise of fully observed units: u_i = x_i - f_i(pa_i, 0), exact for additive noise."""
        if not self.additive:
            raise ValueError("abduction by subtraction needs an additive-noise SCM (additive=True)")
        u = {}
        for v in self.order:
            parents, f, _ = self.equations[v]
            # u_i = x_i - f_i(\mathrm{pa}_i, 0)
            u[v] = x[v] - f({p: x[p] for p in parents}, torch.zeros_like(x[v]))
        return u


def linear_scm(W: torch.Tensor, names: list[str], noise_std: list[float]) -> SCM:
    """x = x W + u as an SCM: x_j := sum_i W_ij x_i + u_j."""
    equations = {}
    for j, v in enumerate(names):
        parents = tuple(names[i] for i in W[:, j].nonzero().flatten().tolist())
        weights = {p: W[names.index(p), j].item() for p in parents}
        equations[v] = (parents, lambda pa, u, w=weights: u + sum(w[p] * pa[p] for p in w), gaussian(noise_std[j]))
    return SCM(equations, additive=True)


def binary_scm(bn: BayesianNetwork) -> SCM:
    """The SCM of a binary Bayesian network: x_i := 1[u_i < p(x_i = 1 | pa_i)] with u_i ~ U(0, 1)."""
    equations = {}
    for v in bn.cards:
        table = bn.cpds[v][..., 1]  # (*parent cards,) p(x_i = 1 | pa_i)
        ps = bn.parents[v]
        equations[v] = (ps, lambda pa, u, t=table, ps=ps: (u < t[tuple(pa[p].long() for p in ps)]).double(), uniform())
    return SCM(equations)


# --- scm/interventions ---------------------------------------------------------------------------


def confounded_network() -> BayesianNetwork:
    """Z -> X, Z -> Y, X -> Y over binary variables: Z raises both X and Y."""
    return BayesianNetwork(
        {"Z": 2, "X": 2, "Y": 2}, {"X": ("Z",), "Y": ("X", "Z")},
        {"Z": torch.tensor([0.5, 0.5]), "X": torch.tensor([[0.8, 0.2], [0.2, 0.8]]),
         "Y": torch.tensor([[[0.9, 0.1], [0.4, 0.6]], [[0.7, 0.3], [0.2, 0.8]]])},
    )


@dataclass
class InterventionsConfig:
    n: int = 50_000  # samples per distribution
    beta: float = 0.5  # causal effect of X on Y in the linear-Gaussian model
    confounding: float = 2.0  # weight of Z -> X and Z -> Y
    n_units: int = 1000  # observed units to answer counterfactuals for


@lab(
    "scm/interventions",
    card="scm",
    config=InterventionsConfig,
    scales={"quick": {"n": 5000, "n_units": 100}, "default": {}, "full": {"n": 1_000_000, "n_units": 10_000}},
    goals=[Goal("do_tv_max", "<=", 0.02), Goal("cf_max_err", "<=", 1e-9)],
    claims=[
        Check(
            "do-calculus-truncated-factorisation",
            lambda m: m["do_tv_max"] <= 3 * m["tv_noise"] and m["obs_do_gap"] >= 10 * m["tv_noise"],
            "sampling the SCM under do(X=x) ({n} draws each) matches the truncated factorisation "
            "p(z) p(y | x, z) within total variation {do_tv_max:.4f} (sampling noise about {tv_noise:.4f}); "
            "conditioning is different: p(Y=1 | X=1) = {p_y_given_x1:.3f} but p(Y=1 | do(X=1)) = {p_y_do_x1:.3f}",
        ),
        Check(
            "counterfactual-three-steps",
            lambda m: m["cf_max_err"] <= 1e-9,
            "abduction, action and prediction on {n_units} observed units of a linear SCM give the closed form "
            "x + (x' - x_X) [(I - W)^-1]_X to {cf_max_err:.1e}",
        ),
        Check(
            "scm-causation-vs-correlation",
            lambda m: abs(m["do_slope"] - m["beta"]) <= 0.05 and abs(m["obs_slope"] - m["beta"]) >= 0.5,
            "with a common cause Z, the regression slope of Y on X is {obs_slope:.3f} while the SCM's "
            "interventions give dE[Y | do(X=x)]/dx = {do_slope:.3f}, the true effect {beta:.2f}",
        ),
    ],
    budget_s=20,
    threads=1,
)
def interventions(run, cfg: InterventionsConfig) -> dict:
    """do() against truncated factorisation, counterfactuals against their closed form, correlation vs effect."""
    g = torch.Generator().manual_seed(run.seed)
    metrics: dict = {"n": cfg.n, "beta": cfg.beta, "n_units": cfg.n_units}

    # 1. discrete: sampling the intervened SCM against the truncated factorisation
    bn = confounded_network()
    scm = binary_scm(bn)
    tvs, p_do = [], {}
    for x in (0, 1):
        sample = scm.do(X=x).sample(cfg.n, g)
        empirical = torch.zeros(2, 2, dtype=torch.float64).index_put_(
            (sample["Z"].long(), sample["Y"].long()), torch.ones(cfg.n, dtype=torch.float64), accumulate=True) / cfg.n
        formula = marginal(truncated_factorisation(bn, {"X": x}), ["Z", "Y"]).table
        # \mathrm{TV} = \tfrac12 \sum_{z, y} |\hat p(z, y \mid \mathrm{do}(x)) - p(z)\,p(y \mid x, z)|
        tvs.append(0.5 * (empirical - formula).abs().sum().item())
        p_do[x] = formula.sum(0)[1].item()
    observed = scm.sample(cfg.n, g)
    p_y_given_x1 = observed["Y"][observed["X"] == 1].mean().item()
    p_y_given_x0 = observed["Y"][observed["X"] == 0].mean().item()
    # sampling noise of the TV over 4 cells: E[TV] <= \tfrac12 \cdot 4 \sqrt{2 \cdot \tfrac14 / (\pi n)}
    metrics.update(do_tv_max=max(tvs), tv_noise=math.sqrt(2 / (math.pi * cfg.n)),
                   p_y_do_x1=p_do[1], p_y_do_x0=p_do[0], p_y_given_x1=p_y_given_x1,
                   obs_do_gap=abs(p_y_given_x1 - p_do[1]))

    # 2. linear-Gaussian: Z -> X, Z -> Y, X -> Y; regression against intervention
    names = ["Z", "X", "Y"]
    W = torch.zeros(3, 3, dtype=torch.float64)
    W[0, 1], W[0, 2], W[1, 2] = cfg.confounding, cfg.confounding, cfg.beta
    lin = linear_scm(W, names, [1.0, 1.0, 1.0])
    obs = lin.sample(cfg.n, g)
    x, y = obs["X"], obs["Y"]
    # \hat\beta_{obs} = \mathrm{cov}(X, Y) / \mathrm{var}(X)
    obs_slope = (((x - x.mean()) * (y - y.mean())).mean() / x.var()).item()
    do_means = {v: lin.do(X=v).sample(cfg.n, g)["Y"].mean().item() for v in (-1.0, 1.0)}
    do_slope = (do_means[1.0] - do_means[-1.0]) / 2
    metrics.update(obs_slope=obs_slope, do_slope=do_slope)

    # 3. counterfactuals of observed units: three steps against the closed form
    units = lin.sample(cfg.n_units, g)
    cf = counterfactual(lin, units, {"X": 2.0})
    closed = linear_counterfactual(W, torch.stack([units[v] for v in names], 1), names.index("X"), 2.0)
    metrics["cf_max_err"] = (torch.stack([cf[v] for v in names], 1) - closed).abs().max().item()
    run.log(0, do_tv=max(tvs), cf_err=metrics["cf_max_err"])

    with run.figure("interventions", ncols=2) as (fig, (ax_bar, ax_lin)):
        ax_bar.bar([-0.2, 0.8], [p_y_given_x0, p_y_given_x1], 0.4, label="p(Y=1 | X=x), observed")
        ax_bar.bar([0.2, 1.2], [p_do[0], p_do[1]], 0.4, label="p(Y=1 | do(X=x))")
        ax_bar.set(xticks=[0, 1], xticklabels=["x = 0", "x = 1"], ylabel="probability",
                   title="seeing vs doing (Z confounds X and Y)")
        ax_bar.legend(fontsize=8)
        show = slice(0, 2000)
        ax_lin.scatter(x[show], y[show], s=2, alpha=0.3, color="grey", label="observational samples")
        grid = torch.linspace(x.min().item(), x.max().item(), 2, dtype=torch.float64)
        ax_lin.plot(grid, y.mean() + obs_slope * (grid - x.mean()), "r-", label=f"regression slope {obs_slope:.2f}")
        ax_lin.plot(grid, (do_means[1.0] + do_means[-1.0]) / 2 + do_slope * grid, "b-",
                    label=f"E[Y | do(X=x)], slope {do_slope:.2f}")
        ax_lin.set(xlabel="X", ylabel="Y", title="correlation vs causal effect")
        ax_lin.legend(fontsize=8)
    return metrics
