"""Markov logic networks: weighted first-order formulas as the features of a log-linear model over worlds.

A Markov logic network is a set of first-order formulas F_i with real weights w_i. Over a finite set of
constants every formula is grounded (its variables replaced by constants in every way), every ground
atom becomes a binary variable, and a world x (a truth value for each ground atom) has probability
proportional to the exponential of the weighted number of true groundings. A large weight makes a
formula almost a hard constraint; a finite one lets worlds violate it at a price. On a tiny domain the
worlds can be enumerated, so inference and the log-likelihood gradient are exact; pseudo-likelihood
replaces the partition function by each atom's conditional given the rest (its Markov blanket).

    P(X = x) = \\frac{1}{Z} \\exp\\Big(\\sum_i w_i\\, n_i(x)\\Big),\\qquad
    \\frac{\\partial}{\\partial w_i} \\log P(x) = n_i(x) - \\mathbb{E}_{w}[n_i(X)],\\qquad
    \\log P^*(x) = \\sum_l \\log P(x_l \\mid x_{\\mathrm{MB}(l)})

Richardson & Domingos, "Markov Logic Networks", Machine Learning 62(1-2), 2006.

Formulas are written in Alchemy's style: predicates and constants capitalised, variables lower case,
`!` for negation, `v` for or, `^` for and, and `=>` for implication with a conjunctive premise and a
disjunctive conclusion, e.g. `Friends(x, y) ^ Smokes(x) => Smokes(y)`. Each formula becomes one clause;
the domain is untyped (every variable ranges over all constants).
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.labs import Goal, lab
from deepatlas.registry import register_model

Literal = tuple[bool, str, tuple[str, ...]]  # (positive, predicate, arguments: constants or variables)
MAX_ATOMS = 20  # exact inference enumerates 2^atoms worlds


def is_var(term: str) -> bool:
    return term[0].islower()


def _parse_literal(text: str) -> Literal:
    m = re.fullmatch(r"\s*(!?)\s*([A-Z][A-Za-z0-9_]*)\s*\(([^()]*)\)\s*", text)
    if not m:
        raise ValueError(f"cannot parse literal {text!r}: expected [!]Predicate(arg, ...) with a capitalised name")
    args = tuple(a.strip() for a in m.group(3).split(","))
    if any(not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", a) for a in args):
        raise ValueError(f"bad arguments in {text!r}: variables are lower case, constants capitalised")
    return (m.group(1) != "!", m.group(2), args)


def parse_formula(text: str) -> list[Literal]:
    """'A(x) ^ B(x) => C(x) v D(x)' -> the clause !A(x) v !B(x) v C(x) v D(x), as a list of literals."""
    premise, _, conclusion = text.rpartition("=>")
    # a_1 \land \dots \land a_k \Rightarrow c_1 \lor \dots \lor c_m \;\equiv\; \lnot a_1 \lor \dots \lor \lnot a_k \lor c_1 \lor \dots \lor c_m
    negated = [(not pos, p, args) for pos, p, args in map(_parse_literal, premise.split("^"))] if premise else []
    return negated + [_parse_literal(c) for c in re.split(r"\sv\s", conclusion)]


def format_atom(predicate: str, args: tuple[str, ...]) -> str:
    return f"{predicate}({', '.join(args)})"


class MLN(nn.Module):
    """A Markov logic network grounded over `domain`, with one learnable weight per formula.

    Worlds are float tensors (..., A) of 0/1 truth values in the order of `self.atoms`.
    """

    def __init__(self, formulas: list[str], domain: list[str], weights: list[float] | None = None):
        super().__init__()
        if not formulas or not domain:
            raise ValueError("an MLN needs at least one formula and one constant")
        if weights is not None and len(weights) != len(formulas):
            raise ValueError(f"{len(weights)} weights for {len(formulas)} formulas")
        self.formulas, self.domain = list(formulas), list(domain)
        clauses = [parse_formula(f) for f in formulas]
        arity: dict[str, int] = {}
        for clause in clauses:
            for _, pred, args in clause:
                if arity.setdefault(pred, len(args)) != len(args):
                    raise ValueError(f"predicate {pred} used with {arity[pred]} and {len(args)} arguments")
                unknown = [a for a in args if not is_var(a) and a not in self.domain]
                if unknown:
                    raise ValueError(f"constants {unknown} of {pred} are not in the domain {self.domain}")
        # every ground atom, predicate by predicate, arguments in domain order
        self.atoms = [(p, args) for p in sorted(arity) for args in itertools.product(self.domain, repeat=arity[p])]
        if len(self.atoms) > MAX_ATOMS:
            raise ValueError(f"{len(self.atoms)} ground atoms: exact inference enumerates 2^atoms worlds, "
                             f"keep it <= {MAX_ATOMS} (fewer constants)")
        self.index = {atom: a for a, atom in enumerate(self.atoms)}
        self.names = [format_atom(p, args) for p, args in self.atoms]
        self.groundings = [self._ground(clause) for clause in clauses]
        init = torch.zeros(len(formulas), dtype=torch.float64) if weights is None else torch.tensor(
            weights, dtype=torch.float64)
        self.w = nn.Parameter(init)  # (F,)

    def _ground(self, clause: list[Literal]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every substitution of the clause's variables: atom indices (G, L) and literal signs (L,)."""
        variables = sorted({a for _, _, args in clause for a in args if is_var(a)})
        rows = []
        for values in itertools.product(self.domain, repeat=len(variables)):
            theta = dict(zip(variables, values))
            rows.append([self.index[(p, tuple(theta.get(a, a) for a in args))] for _, p, args in clause])
        return torch.tensor(rows), torch.tensor([pos for pos, _, _ in clause])

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    def counts(self, x: torch.Tensor) -> torch.Tensor:
        """n_i(x): the number of true groundings of each formula. (..., A) -> (..., F)."""
        out = []
        for idx, sign in self.groundings:
            v = x[..., idx]  # (..., G, L): truth of each literal's atom
            # a ground clause is true when one of its literals is: \max_l [\![x_l = s_l]\!]
            true = torch.where(sign, v, 1 - v).amax(-1)  # (..., G)
            out.append(true.sum(-1))
        return torch.stack(out, -1)

    def worlds(self) -> torch.Tensor:
        """All 2^A worlds, (2^A, A), world k holding the bits of k (atom 0 the most significant)."""
        A = self.n_atoms
        k = torch.arange(2 ** A)[:, None]
        return ((k >> torch.arange(A - 1, -1, -1)) & 1).to(self.w.dtype)

    def log_partition(self, worlds: torch.Tensor | None = None) -> torch.Tensor:
        worlds = self.worlds() if worlds is None else worlds
        # \log Z = \log \sum_{x'} \exp(\sum_i w_i n_i(x'))
        return torch.logsumexp(self.counts(worlds) @ self.w, 0)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log P(x) for worlds (..., A) -> (...)."""
        # \log P(x) = \sum_i w_i n_i(x) - \log Z
        return self.counts(x.to(self.w.dtype)) @ self.w - self.log_partition()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, A) worlds -> (B,) log-probabilities
        return self.log_prob(x)

    def distribution(self, evidence: dict[str, bool] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Every world consistent with the evidence, (W, A), and its probability given the evidence, (W,)."""
        worlds = self.worlds()
        for name, value in (evidence or {}).items():
            if name not in self.names:
                raise ValueError(f"unknown ground atom {name!r}; atoms are {self.names}")
            worlds = worlds[worlds[:, self.names.index(name)] == float(value)]
        return worlds, torch.softmax(self.counts(worlds) @ self.w, 0)

    def marginals(self, evidence: dict[str, bool] | None = None) -> torch.Tensor:
        """P(atom true | evidence) for every ground atom, (A,)."""
        worlds, p = self.distribution(evidence)
        return p @ worlds

    def query(self, atom: str, evidence: dict[str, bool] | None = None) -> float:
        return self.marginals(evidence)[self.names.index(atom)].item()

    def expected_counts(self) -> torch.Tensor:
        """E_w[n_i(X)], (F,)."""
        worlds, p = self.distribution()
        return p @ self.counts(worlds)

    def log_likelihood_grad(self, data: torch.Tensor) -> torch.Tensor:
        """The exact gradient of the mean log-likelihood of worlds (N, A) in w, (F,)."""
        # \tfrac{\partial}{\partial w_i} \tfrac1N \sum_n \log P(x^n) = \bar n_i(\text{data}) - \mathbb{E}_w[n_i]
        return self.counts(data.to(self.w.dtype)).mean(0) - self.expected_counts()

    def pseudo_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """\\sum_l \\log P(x_l | all other atoms) for worlds (N, A) -> (N,): no partition function."""
        x = x.to(self.w.dtype)
        N, A = x.shape
        eye = torch.eye(A, dtype=x.dtype)
        rest = x[:, None] * (1 - eye)  # (N, A, A): world n with atom l set to 0
        flips = torch.stack([rest, rest + eye], 2)  # (N, A, 2, A): atom l set to 0 and to 1
        s = self.counts(flips) @ self.w  # (N, A, 2): the score of each completion
        # \log P(x_l \mid x_{-l}) = s(x_l) - \log(e^{s(x_l = 0)} + e^{s(x_l = 1)})
        s_obs = torch.where(x.bool(), s[..., 1], s[..., 0])  # (N, A)
        return (s_obs - torch.logsumexp(s, -1)).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact samples (n, A), drawn from the enumerated distribution."""
        worlds, p = self.distribution()
        return worlds[torch.multinomial(p.detach(), n, replacement=True, generator=generator)]


def fit(mln: MLN, data: torch.Tensor, objective: str = "likelihood", max_iter: int = 100) -> list[float]:
    """Set the weights to maximise the exact log-likelihood or the pseudo-log-likelihood of worlds (N, A).

    Both objectives are concave in w, so L-BFGS finds the optimum; returns the objective per evaluation.
    """
    if objective not in ("likelihood", "pseudo"):
        raise ValueError(f"objective must be 'likelihood' or 'pseudo', got {objective!r}")
    # the objectives depend on the data only through the frequency of each distinct world
    worlds, freq = torch.unique(data.to(mln.w.dtype), dim=0, return_counts=True)  # (K, A), (K,)
    freq = freq.to(mln.w.dtype) / len(data)
    per_world = mln.log_prob if objective == "likelihood" else mln.pseudo_log_likelihood
    opt = torch.optim.LBFGS([mln.w], max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")
    history: list[float] = []

    def closure():
        opt.zero_grad()
        value = freq @ per_world(worlds)
        (-value).backward()
        history.append(value.item())
        return -value

    opt.step(closure)
    return history


SMOKERS = [
    "Smokes(x)",
    "Smokes(x) => Cancer(x)",
    "Friends(x, y) ^ Smokes(x) => Smokes(y)",
]
SMOKERS_WEIGHTS = [-0.5, 1.5, 1.1]  # 1.5 and 1.1 as in Richardson & Domingos' running example


def smokers(people: tuple[str, ...] = ("Anna", "Bob"), weights: list[float] | None = None) -> MLN:
    """The friends-and-smokers MLN: smoking causes cancer, friends have similar smoking habits."""
    return MLN(SMOKERS, list(people), SMOKERS_WEIGHTS if weights is None else weights)


@register_model("mln-smokers", card="mln", example=lambda: (torch.eye(8, dtype=torch.float64)[:4],))
def mln_smokers(people: tuple[str, ...] = ("Anna", "Bob")) -> MLN:
    return smokers(people)


@dataclass
class SmokersConfig:
    people: int = 3  # 3 people: 15 ground atoms, 32768 worlds
    n_samples: int = 5000  # worlds sampled from the generating MLN
    hard_weights: str = "0,0.5,1,2,4,8,16"  # rule weights for the hard-constraint curve


@lab(
    "mln/smokers",
    card="mln",
    config=SmokersConfig,
    scales={"quick": {"people": 2, "n_samples": 2000}, "default": {}, "full": {"n_samples": 50000}},
    goals=[Goal("w_err_likelihood", "<=", 0.2), Goal("w_err_pseudo", "<=", 0.2)],
    budget_s=30,
    threads=1,
)
def smokers_lab(run, cfg: SmokersConfig) -> dict:
    """Sample worlds from the friends-and-smokers MLN, learn its weights back by exact likelihood and by
    pseudo-likelihood, answer queries with the learned weights, and watch a rule turn hard as its weight grows."""
    names = ("Anna", "Bob", "Chris", "Dana")[:cfg.people]
    truth = smokers(names)
    data = truth.sample(cfg.n_samples, torch.Generator().manual_seed(run.seed))
    learned, seconds = {}, {}
    for objective in ("likelihood", "pseudo"):
        mln = smokers(names, [0.0] * len(SMOKERS))
        t0 = time.perf_counter()
        history = fit(mln, data, objective)
        seconds[objective] = time.perf_counter() - t0
        for step, value in enumerate(history):
            run.log(step, **{f"objective_{objective}": value})
        learned[objective] = mln

    a, b = names[0], names[1]
    queries = {  # name -> (query atom, evidence)
        "cancer_given_smokes": (f"Cancer({a})", {f"Smokes({a})": True}),
        "smokes_given_friend_smokes": (f"Smokes({b})", {f"Friends({a}, {b})": True, f"Smokes({a})": True}),
    }
    metrics = {"n_atoms": truth.n_atoms, "n_worlds": 2 ** truth.n_atoms}
    with torch.no_grad():
        for objective, mln in learned.items():
            metrics[f"w_err_{objective}"] = (mln.w - truth.w).abs().max().item()
            metrics[f"fit_s_{objective}"] = seconds[objective]
            for q, (atom, evidence) in queries.items():
                metrics[f"{q}_{objective}"] = mln.query(atom, evidence)
        for q, (atom, evidence) in queries.items():
            metrics[f"{q}_true"] = truth.query(atom, evidence)

        # the hard limit: P(Cancer | Smokes) -> 1 and P(Smokes | not Cancer) -> 0 as the rule's weight grows
        rule_w = [float(v) for v in cfg.hard_weights.split(",")]
        ponens, tollens = [], []
        for w in rule_w:
            mln = MLN(["Smokes(x) => Cancer(x)"], list(names), [w])
            ponens.append(mln.query(f"Cancer({a})", {f"Smokes({a})": True}))
            tollens.append(mln.query(f"Smokes({a})", {f"Cancer({a})": False}))
        metrics["hard_ponens"], metrics["hard_tollens"] = ponens[-1], tollens[-1]

    with run.figure("smokers", ncols=2) as (fig, (ax_w, ax_h)):
        x = list(range(len(SMOKERS)))
        bars = (("generating", truth), ("max likelihood", learned["likelihood"]),
                ("max pseudo-likelihood", learned["pseudo"]))
        for shift, (label, mln) in zip((-0.25, 0, 0.25), bars):
            ax_w.bar([i + shift for i in x], mln.w.tolist(), 0.25, label=label)
        ax_w.set_xticks(x, ["Smokes(x)", "S(x) => C(x)", "F(x,y) ^ S(x)\n=> S(y)"], fontsize=7)
        ax_w.set(ylabel="weight", title=f"weights from {cfg.n_samples} sampled worlds")
        ax_w.legend(fontsize=7)
        ax_h.plot(rule_w, ponens, "o-", label="P(Cancer | Smokes)")
        ax_h.plot(rule_w, tollens, "s-", label="P(Smokes | not Cancer)")
        ax_h.set(xlabel="weight of Smokes(x) => Cancer(x)", ylabel="probability", title="toward a hard rule")
        ax_h.legend(fontsize=7)
    return metrics
