"""do-calculus: interventional distributions from a causal DAG, and from observational data.

do(X = x) cuts every arrow into X. With the causal Bayesian network known, the interventional joint is
the truncated factorisation: the product of every conditional except X's, with X set to x. With only
observational data, a set Z that blocks every back-door path from X to Y (and holds no descendant of
X) turns the interventional query into observable ones: the back-door adjustment. Conditioning on
X = x instead mixes in the causes of X, which is why p(y | x) and p(y | do(x)) differ under confounding.

    p(v \\mid \\mathrm{do}(x)) = \\prod_{i \\ne X} p(v_i \\mid \\mathrm{pa}_i)\\big|_{X = x},\\qquad
    p(y \\mid \\mathrm{do}(x)) = \\sum_z p(y \\mid x, z)\\,p(z)

Pearl, "Causal diagrams for empirical research", Biometrika 82(4), 1995.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepatlas.labs import Check, Goal, lab
from deepatlas.zoo.causal.bayesian_network import BayesianNetwork, Factor, variable_elimination


def truncated_factorisation(bn: BayesianNetwork, do: dict[str, int]) -> Factor:
    """The joint over the non-intervened variables under do(...): every factor but the intervened ones,
    each reduced to the forced values."""
    factors = [Factor(bn.parents[v] + (v,), bn.cpds[v]).reduce(do) for v in bn.cards if v not in do]
    joint = factors[0]
    for f in factors[1:]:
        # p(v \mid \mathrm{do}(x)) = \prod_{i \ne X} p(v_i \mid \mathrm{pa}_i)\big|_{X = x}
        joint = joint * f
    return joint


def marginal(f: Factor, keep: list[str]) -> Factor:
    for v in [v for v in f.variables if v not in keep]:
        f = f.sum_out(v)
    return Factor(tuple(keep), f.table.permute([f.variables.index(v) for v in keep]))


def fit_tables(data: dict[str, torch.Tensor], cards: dict[str, int], parents: dict[str, tuple[str, ...]],
               pseudocount: float = 1.0) -> BayesianNetwork:
    """Maximum a posteriori tables (counts plus a pseudocount) of a network with a known graph."""
    cpds = {}
    for v in cards:
        ps = tuple(parents.get(v, ()))
        counts = torch.full(tuple(cards[p] for p in ps) + (cards[v],), pseudocount, dtype=torch.float64)
        counts.index_put_(tuple(data[p] for p in ps) + (data[v],), torch.ones(len(data[v]), dtype=torch.float64),
                          accumulate=True)
        cpds[v] = counts / counts.sum(-1, keepdim=True)
    return BayesianNetwork(cards, parents, cpds)


def backdoor_adjustment(bn: BayesianNetwork, x: str, x_value: int, y: str, z: list[str]) -> torch.Tensor:
    """p(y | do(x = x_value)) (card_y,) = sum_z p(y | x, z) p(z), each term an observational query."""
    p_z = variable_elimination(bn, z)  # p(z) over the adjustment set
    out = torch.zeros(bn.cards[y], dtype=torch.float64)
    for index in torch.cartesian_prod(*[torch.arange(bn.cards[v]) for v in z]).reshape(-1, len(z)).tolist():
        evidence = dict(zip(z, index)) | {x: x_value}
        # p(y \mid \mathrm{do}(x)) = \sum_z p(y \mid x, z)\, p(z)
        out += variable_elimination(bn, [y], evidence).table * p_z.table[tuple(index)]
    return out


def smoking_network() -> BayesianNetwork:
    """A confounded network: genotype G -> smoking S, G -> cancer C, S -> tar T -> C, and age A -> G, A -> C.
    The back-door set {G, A} blocks S <- G -> C and S <- G <- A -> C; conditioning on S alone does not."""
    return BayesianNetwork(
        {"A": 2, "G": 2, "S": 2, "T": 2, "C": 2},
        {"G": ("A",), "S": ("G",), "T": ("S",), "C": ("T", "G", "A")},
        {"A": torch.tensor([0.6, 0.4]),
         "G": torch.tensor([[0.8, 0.2], [0.4, 0.6]]),
         "S": torch.tensor([[0.85, 0.15], [0.2, 0.8]]),
         "T": torch.tensor([[0.9, 0.1], [0.15, 0.85]]),
         "C": torch.tensor([[[[0.95, 0.05], [0.8, 0.2]], [[0.6, 0.4], [0.4, 0.6]]],
                            [[[0.85, 0.15], [0.6, 0.4]], [[0.5, 0.5], [0.3, 0.7]]]])},
    )


@dataclass
class BackdoorConfig:
    n: int = 20_000  # observational samples the adjusted estimate is computed from
    n_do: int = 20_000  # samples of each randomised experiment (the interventional truth, sampled)


@lab(
    "do-calculus/backdoor",
    card="do-calculus",
    config=BackdoorConfig,
    scales={"quick": {"n": 4000, "n_do": 4000}, "default": {}, "full": {"n": 200_000, "n_do": 200_000}},
    goals=[Goal("adjusted_err", "<=", 0.02)],
    claims=[
        Check(
            "do-calculus-backdoor-adjustment",
            lambda m: m["adjusted_err"] <= 0.02 and m["naive_err"] >= 0.05,
            "from {n} observational samples, back-door adjustment over {{G, A}} estimates the effect of smoking "
            "p(C=1 | do(S=1)) - p(C=1 | do(S=0)) = {adjusted_ate:.3f} against the truncated-factorisation truth "
            "{true_ate:.3f} (a randomised experiment of {n_do} per arm gives {sampled_ate:.3f}); worst error "
            "{adjusted_err:.3f}, while the conditional p(C | S) is off by {naive_err:.3f} (difference {naive_ate:.3f})",
        ),
    ],
    budget_s=20,
    threads=1,
)
def backdoor(run, cfg: BackdoorConfig) -> dict:
    """Back-door adjustment from observational data against the interventional truth."""
    g = torch.Generator().manual_seed(run.seed)
    truth_bn = smoking_network()
    data = truth_bn.sample(cfg.n, g)
    fitted = fit_tables(data, truth_bn.cards, truth_bn.parents)
    true, adjusted, naive, sampled = {}, {}, {}, {}
    for s in (0, 1):
        true[s] = marginal(truncated_factorisation(truth_bn, {"S": s}), ["C"]).normalise().table[1].item()
        adjusted[s] = backdoor_adjustment(fitted, "S", s, "C", ["G", "A"])[1].item()
        naive[s] = variable_elimination(fitted, ["C"], {"S": s}).table[1].item()
        sampled[s] = truth_bn.sample(cfg.n_do, g, do={"S": s})["C"].double().mean().item()
        run.log(s, true=true[s], adjusted=adjusted[s], naive=naive[s])
    with run.figure("backdoor") as (fig, ax):
        width = 0.2
        for k, (name, values) in enumerate([("truth (truncated factorisation)", true), ("randomised experiment", sampled),
                                            ("back-door adjusted", adjusted), ("conditional p(C | S)", naive)]):
            ax.bar([s + (k - 1.5) * width for s in (0, 1)], [values[0], values[1]], width, label=name)
        ax.set(xticks=[0, 1], xticklabels=["S = 0", "S = 1"], ylabel="p(C = 1)",
               title="effect of smoking S on cancer C, confounded by G and A")
        ax.legend(fontsize=7)
    return {
        "adjusted_err": max(abs(adjusted[s] - true[s]) for s in (0, 1)),
        "naive_err": max(abs(naive[s] - true[s]) for s in (0, 1)),
        "sampled_err": max(abs(sampled[s] - true[s]) for s in (0, 1)),
        "true_ate": true[1] - true[0], "adjusted_ate": adjusted[1] - adjusted[0], "naive_ate": naive[1] - naive[0],
        "sampled_ate": sampled[1] - sampled[0], "n": cfg.n, "n_do": cfg.n_do,
    }
