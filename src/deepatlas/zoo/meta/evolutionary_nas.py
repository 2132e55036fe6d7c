"""Regularised (aging) evolution: search architectures with a population, tournament selection and mutation.

The population is a queue of trained architectures. Each step samples S of them, mutates the best
of the sample (one operation changed) into a child, trains and scores the child, appends it and
removes the OLDEST member, not the worst: every architecture dies young unless its descendants keep
winning, which regularises the search towards architectures that stay good. Hill climbing keeps one
architecture and moves only to a better mutant; random search samples blindly.

    \\mathcal{S} \\sim \\mathrm{Uniform}\\big(\\binom{P}{S}\\big),  a_{child} = \\mathrm{mutate}(\\arg\\max_{a \\in \\mathcal{S}} f(a)),
    P \\leftarrow (P \\cup \\{a_{child}\\}) \\setminus \\{a_{oldest}\\}

Real, Aggarwal, Huang & Le, "Regularized Evolution for Image Classifier Architecture Search", AAAI 2019.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepatlas.data.real import digits
from deepatlas.labs import Check, Goal, lab
from deepatlas.optim.optimizers import Adam

OPS = ("skip", "linear", "relu", "tanh", "sigmoid")  # the choice at every layer of the search space
Fitness = Callable[[tuple[int, ...]], float]


# --- the search space: a stack of L layers, each one op of OPS -------------------------------------

def all_architectures(n_layers: int, n_ops: int = len(OPS)) -> torch.Tensor:
    """Every architecture as op indices, in row-major order (index = base-n_ops number): (n_ops^L, L)."""
    return torch.cartesian_prod(*[torch.arange(n_ops)] * n_layers).reshape(-1, n_layers)


def arch_index(arch: tuple[int, ...], n_ops: int = len(OPS)) -> int:
    """The row of `arch` in all_architectures."""
    index = 0
    for op in arch:
        index = index * n_ops + op
    return index


def mutate(arch: tuple[int, ...], generator: torch.Generator, n_ops: int = len(OPS)) -> tuple[int, ...]:
    """One layer, chosen uniformly, switched to a different op, chosen uniformly."""
    layer = int(torch.randint(len(arch), (), generator=generator))
    new = (arch[layer] + 1 + int(torch.randint(n_ops - 1, (), generator=generator))) % n_ops
    return arch[:layer] + (new,) + arch[layer + 1:]


def random_arch(n_layers: int, generator: torch.Generator, n_ops: int = len(OPS)) -> tuple[int, ...]:
    return tuple(torch.randint(n_ops, (n_layers,), generator=generator).tolist())


def mixed_layer(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """One layer of A independent networks, each applying its own op: h (A, N, d), W (A, d, d), b (A, d),
    ops (A,) indices into OPS -> (A, N, d)."""
    z = torch.baddbmm(b[:, None, :], h, W)  # (A, N, d)
    out = h.clone()  # "skip" everywhere, then each other op on the networks that chose it
    for k, act in enumerate((torch.nn.Identity(), torch.relu, torch.tanh, torch.sigmoid), start=1):
        chose = ops == k  # (A,)
        out[chose] = act(z[chose])
    return out


def train_architectures(archs: torch.Tensor, x: torch.Tensor, y: torch.Tensor, width: int, steps: int, lr: float,
                        generator: torch.Generator, run=None) -> dict[str, torch.Tensor]:
    """Train A networks stem -> L chosen layers -> head on (x, y), each with its own weights (stand-alone
    training, batched): archs (A, L), x (N, D), y (N,) -> their parameters {name: (A, ...)}."""
    n_archs, n_layers = archs.shape
    d_in, n_classes = x.shape[1], int(y.max()) + 1

    def init(fan_in: int, *shape: int) -> torch.Tensor:
        return ((torch.rand(n_archs, *shape, generator=generator) * 2 - 1) / fan_in ** 0.5).requires_grad_()

    params = {"stem": init(d_in, d_in, width), "stem_b": init(d_in, width),
              "W": init(width, n_layers, width, width), "b": init(width, n_layers, width),
              "head": init(width, width, n_classes), "head_b": init(width, n_classes)}
    opt = Adam(params.values(), lr=lr)
    for step in range(steps):
        logits = forward_architectures(params, archs, x)  # (A, N, C)
        # \sum_a \mathrm{CE}_a: the networks share no weights, so each gets its own gradient
        loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(n_archs), reduction="sum") / len(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if run is not None and (step + 1) % 20 == 0:
            run.log(step + 1, mean_train_loss=loss.detach() / n_archs)
    return params


def forward_architectures(params: dict[str, torch.Tensor], archs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Logits of A networks on the same inputs: archs (A, L), x (N, D) -> (A, N, C)."""
    h = torch.relu(x @ params["stem"] + params["stem_b"][:, None, :])  # (A, N, width)
    for layer in range(archs.shape[1]):
        h = mixed_layer(h, params["W"][:, layer], params["b"][:, layer], archs[:, layer])
    return torch.baddbmm(params["head_b"][:, None, :], h, params["head"])


def architecture_table(n_layers: int, n_train: int, width: int, steps: int, lr: float, run) -> torch.Tensor:
    """Validation accuracy of every architecture of the space, each trained alone on the first n_train images
    of digits' training split and scored on the rest of it: (len(OPS)^n_layers,) float64."""
    data = digits()
    x, y = data.x_train.float(), data.y_train
    archs = all_architectures(n_layers)  # (A, L)
    params = train_architectures(archs, x[:n_train], y[:n_train], width, steps, lr,
                                 torch.Generator().manual_seed(run.seed), run)
    with torch.no_grad():
        logits = forward_architectures(params, archs, x[n_train:])  # (A, N_val, C)
        return (logits.argmax(-1) == y[n_train:]).float().mean(1).double()


# --- the search algorithms: each returns the fitness of every trial, in order ----------------------

def random_search(fitness: Fitness, n_layers: int, budget: int, generator: torch.Generator) -> list[float]:
    return [fitness(random_arch(n_layers, generator)) for _ in range(budget)]


def hill_climbing(fitness: Fitness, n_layers: int, budget: int,
                  generator: torch.Generator) -> tuple[list[float], tuple[int, ...]]:
    """Stochastic first-improvement hill climbing: move to a mutant only if it is strictly better. The
    fitness of every trial and the architecture it ends on."""
    current = random_arch(n_layers, generator)
    history = [fitness(current)]
    while len(history) < budget:
        child = mutate(current, generator)
        history.append(fitness(child))
        if history[-1] > fitness(current):
            current = child
    return history, current


def regularized_evolution(fitness: Fitness, n_layers: int, budget: int, generator: torch.Generator,
                          population_size: int = 10, sample_size: int = 3) -> list[float]:
    """Real et al.'s Algorithm 1: a queue of population_size, tournaments of sample_size, the oldest dies."""
    if not 1 <= sample_size <= population_size <= budget:
        raise ValueError(f"need 1 <= sample_size <= population_size <= budget, got {sample_size}, "
                         f"{population_size}, {budget}")
    population: deque = deque()
    history = []
    while len(population) < population_size:
        arch = random_arch(n_layers, generator)
        population.append(arch)
        history.append(fitness(arch))
    while len(history) < budget:
        # \mathcal{S} \sim \mathrm{Uniform}(\binom{P}{S}),   a_{parent} = \arg\max_{a \in \mathcal{S}} f(a)
        sample = [population[i] for i in torch.randperm(population_size, generator=generator)[:sample_size]]
        child = mutate(max(sample, key=fitness), generator)
        population.append(child)
        history.append(fitness(child))
        # P \leftarrow (P \cup \{a_{child}\}) \setminus \{a_{oldest}\}
        population.popleft()
    return history


def local_optima(table: torch.Tensor, n_layers: int, n_ops: int = len(OPS)) -> torch.Tensor:
    """Which architectures score at least as well as each of their one-mutation neighbours: (n_ops^L,) bool."""
    archs = all_architectures(n_layers, n_ops)
    best_neighbour = torch.full_like(table, -float("inf"))
    powers = n_ops ** torch.arange(n_layers - 1, -1, -1)  # (L,) place value of each layer in the index
    for layer in range(n_layers):
        for shift in range(1, n_ops):
            neighbour = archs.clone()
            neighbour[:, layer] = (neighbour[:, layer] + shift) % n_ops
            best_neighbour = torch.maximum(best_neighbour, table[(neighbour * powers).sum(1)])
    return table >= best_neighbour


# --- evolutionary-nas/vs-hill-climbing -------------------------------------------------------------

@dataclass
class VsHillConfig:
    n_layers: int = 3  # choice layers: len(OPS)^n_layers architectures, all trained for the table
    width: int = 16
    n_train: int = 500  # of digits' training split; the rest of it is the validation set (the fitness)
    train_steps: int = 60  # full-batch Adam steps per architecture (brief training, as in proxy NAS)
    lr: float = 0.01
    budget: int = 30  # architectures each search trains (table look-ups here)
    repeats: int = 100  # searches per method
    population_size: int = 8
    sample_size: int = 3
    top_fraction: float = 0.01  # a search "finds a top architecture" if it reaches this top fraction


@lab(
    "evolutionary-nas/vs-hill-climbing",
    card="evolutionary-nas",
    config=VsHillConfig,
    scales={
        "quick": {"n_layers": 2, "train_steps": 10, "n_train": 200, "budget": 12, "repeats": 5,
                  "population_size": 5},
        "default": {},
        "full": {"n_layers": 4, "width": 32, "n_train": 1000, "train_steps": 300, "budget": 200, "repeats": 500},
    },
    goals=[Goal("evolution_regret", "<=", 0.01)],
    claims=[
        Check(
            "evolutionary-nas-population",
            lambda m: m["hill_trapped"] >= 0.25 and m["hill_regret"] - m["evolution_regret"] > 2 * m["regret_diff_se"],
            "on a table of {n_archs} MLP architectures trained for {train_steps} steps each on digits ({n_local} "
            "of them local optima under one-op mutation), after {budget} trials the mean validation-accuracy "
            "regret is {evolution_regret:.4f} for regularised evolution, {hill_regret:.4f} for hill climbing and "
            "{random_regret:.4f} for random search ({repeats} searches each; standard error of the "
            "evolution - hill climbing difference {regret_diff_se:.4f}); a top-{top_fraction} architecture "
            "is found in {evolution_top:.2f} / {hill_top:.2f} / {random_top:.2f} of searches; hill climbing ends "
            "stuck on a non-global local optimum in {hill_trapped:.2f} of them. Parallel evaluation is not "
            "measured. Rule: hill climbing is trapped in at least a quarter of searches and evolution's mean "
            "regret is lower than hill climbing's by more than two standard errors",
        ),
    ],
    budget_s=90,
    threads=1,
)
def vs_hill_climbing(run, cfg: VsHillConfig) -> dict:
    """Regularised evolution vs hill climbing vs random search on a table of stand-alone trained MLPs."""
    table = architecture_table(cfg.n_layers, cfg.n_train, cfg.width, cfg.train_steps, cfg.lr, run)
    best = table.max().item()
    top = table.quantile(1 - cfg.top_fraction).item()
    optima = local_optima(table, cfg.n_layers)

    def fitness(arch: tuple[int, ...]) -> float:
        return table[arch_index(arch)].item()

    metrics: dict = {"n_archs": len(table), "train_steps": cfg.train_steps, "budget": cfg.budget,
                     "repeats": cfg.repeats, "top_fraction": cfg.top_fraction, "best_val_acc": best,
                     "median_val_acc": table.median().item(), "n_local": int(optima.sum())}
    curves, trapped = {}, 0
    for method in ("evolution", "hill", "random"):
        histories = []
        for r in run.progress(range(cfg.repeats), desc=method):
            g = torch.Generator().manual_seed(10_000 * run.seed + r)
            if method == "evolution":
                histories.append(regularized_evolution(fitness, cfg.n_layers, cfg.budget, g, cfg.population_size,
                                                       cfg.sample_size))
            elif method == "hill":
                history, end = hill_climbing(fitness, cfg.n_layers, cfg.budget, g)
                histories.append(history)
                trapped += bool(optima[arch_index(end)]) and fitness(end) < best
            else:
                histories.append(random_search(fitness, cfg.n_layers, cfg.budget, g))
        best_so_far = torch.tensor(histories, dtype=torch.float64).cummax(1).values  # (R, budget)
        curves[method] = best - best_so_far
        metrics[f"{method}_regret"] = (best - best_so_far[:, -1]).mean().item()
        metrics[f"{method}_se"] = (best - best_so_far[:, -1]).std().item() / cfg.repeats ** 0.5
        metrics[f"{method}_top"] = (best_so_far[:, -1] >= top).double().mean().item()
    metrics["hill_trapped"] = trapped / cfg.repeats
    metrics["regret_diff_se"] = (metrics.pop("evolution_se") ** 2 + metrics.pop("hill_se") ** 2) ** 0.5
    metrics.pop("random_se")
    _plot(run, cfg, curves, table, optima)
    return metrics


def _plot(run, cfg: VsHillConfig, curves: dict, table: torch.Tensor, optima: torch.Tensor) -> None:
    with run.figure("search", ncols=2, size=(10, 3.6)) as (fig, (ax, hist)):
        for method, style in (("evolution", "-"), ("hill", "--"), ("random", ":")):
            ax.plot(torch.arange(1, cfg.budget + 1), curves[method].mean(0), style, label=method)
        ax.set(xlabel="architectures trained", ylabel="mean regret (validation accuracy)",
               title=f"{cfg.repeats} searches per method")
        ax.legend(fontsize=8)
        hist.hist(table.numpy(), bins=40, label="all architectures")
        hist.hist(table[optima].numpy(), bins=40, label="local optima")
        hist.set(xlabel="validation accuracy", ylabel="architectures", yscale="log", title="the search table")
        hist.legend(fontsize=8)
