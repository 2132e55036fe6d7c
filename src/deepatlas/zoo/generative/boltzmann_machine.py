"""Boltzmann machine: binary stochastic units, all symmetrically connected, visible and hidden.

The network's states follow the Boltzmann distribution of an energy; running it means Gibbs sampling,
one unit at a time, each turning on with the logistic of its total input. Learning needs only two
correlations per weight: how often its two units are on together with the data clamped on the visible
units, and when the network runs freely. Hidden units let it represent dependencies of any order
among the visible units, which pairwise weights alone cannot (three-bit parity is the classic case).
A tiny machine can be solved exactly by enumerating its 2^n states.

    E(\\mathbf{s}) = -\\sum_{i<j} w_{ij} s_i s_j - \\sum_i b_i s_i,   P(\\mathbf{s}) = e^{-E(\\mathbf{s})} / Z,
    P(s_i = 1 \\mid \\mathbf{s}_{-i}) = \\sigma\\big(\\textstyle\\sum_j w_{ij} s_j + b_i\\big),
    \\Delta w_{ij} = \\eta\\big(\\langle s_i s_j \\rangle_{\\text{data}}
        - \\langle s_i s_j \\rangle_{\\text{model}}\\big)

Ackley, Hinton & Sejnowski, "A Learning Algorithm for Boltzmann Machines", Cognitive Science 9(1), 1985.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.labs import Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.generative.rbm import all_states, bernoulli


class BoltzmannMachine(nn.Module):
    """n_visible + n_hidden units (visible first); W symmetric with a zero diagonal, biases b.
    forward(s) is the energy E(s) of states s (B, n)."""

    def __init__(self, n_visible: int, n_hidden: int = 0, generator: torch.Generator | None = None,
                 init_std: float = 1.0):
        super().__init__()
        if n_visible < 1 or n_hidden < 0:
            raise ValueError(f"need n_visible >= 1 and n_hidden >= 0, got {n_visible}, {n_hidden}")
        n = n_visible + n_hidden
        self.n_visible, self.n_hidden = n_visible, n_hidden
        # only the upper triangle is used; weights of order 1 break the symmetry that small ones leave the
        # hidden units in (parity has no pairwise correlations to pull them out of it)
        self.U = nn.Parameter(init_std * torch.randn(n, n, generator=generator))
        self.b = nn.Parameter(torch.zeros(n))

    @property
    def W(self) -> torch.Tensor:
        """(n, n) symmetric, zero diagonal: w_ij = w_ji = U_ij for i < j."""
        upper = self.U.triu(1)
        return upper + upper.T

    def energy(self, s: torch.Tensor) -> torch.Tensor:
        # E(s) = -\frac{1}{2} s^T W s - b^T s  (each pair counted once)
        return -0.5 * ((s @ self.W) * s).sum(-1) - s @ self.b

    forward = energy

    def log_partition(self) -> torch.Tensor:
        s = all_states(self.n_visible + self.n_hidden, self.U.dtype, self.U.device)
        return torch.logsumexp(-self.energy(s), 0)

    def log_likelihood(self, v: torch.Tensor) -> torch.Tensor:
        """\\log P(v) = \\log \\sum_h e^{-E(v, h)} - \\log Z, exactly: (B,)."""
        h = all_states(self.n_hidden, v.dtype, v.device)  # (2^n_h, n_h)
        s = torch.cat([v[:, None].expand(-1, len(h), -1), h[None].expand(len(v), -1, -1)], -1)  # (B, 2^n_h, n)
        return torch.logsumexp(-self.energy(s), 1) - self.log_partition()


# --- learning: the correlations, exactly or by Gibbs sampling ------------------------------------

def exact_correlations(bm: BoltzmannMachine, v: torch.Tensor | None = None) -> torch.Tensor:
    """<s s^T> under P(s), or with v (B, n_v) clamped: averaged over the data of P(h | v). (n, n)."""
    s = all_states(bm.n_visible + bm.n_hidden, bm.U.dtype, bm.U.device)  # (2^n, n)
    with torch.no_grad():
        log_p = -bm.energy(s)
        if v is None:
            p = (log_p - torch.logsumexp(log_p, 0)).exp()  # (2^n,)
        else:  # each data vector spreads its weight over the states that agree with it, by P(h | v)
            agree = (s[None, :, :bm.n_visible] == v[:, None]).all(-1)  # (B, 2^n)
            cond = torch.where(agree, log_p, -torch.inf)
            p = (cond - torch.logsumexp(cond, 1, keepdim=True)).exp().mean(0)
    return (p[:, None, None] * s[:, :, None] * s[:, None, :]).sum(0)


@torch.no_grad()
def gibbs_sweeps(bm: BoltzmannMachine, s: torch.Tensor, sweeps: int, generator: torch.Generator,
                 clamp_visible: bool = False) -> torch.Tensor:
    """Update the units one at a time, `sweeps` times over all (or only the hidden) units: (B, n) -> (B, n)."""
    s, W = s.clone(), bm.W
    first = bm.n_visible if clamp_visible else 0
    for _ in range(sweeps):
        for i in range(first, s.shape[1]):
            # P(s_i = 1 | s_{-i}) = \sigma(\sum_j w_{ij} s_j + b_i)
            s[:, i] = bernoulli(torch.sigmoid(s @ W[i] + bm.b[i]), generator)
    return s


def sampled_correlations(bm: BoltzmannMachine, s: torch.Tensor) -> torch.Tensor:
    return s.T @ s / len(s)  # (n, n)


def apply_rule(bm: BoltzmannMachine, clamped: torch.Tensor, free: torch.Tensor, lr: float) -> None:
    """\\Delta w_{ij} = \\eta(<s_i s_j>_{data} - <s_i s_j>_{model}); the diagonal carries the bias update
    (s_i^2 = s_i for binary units)."""
    delta = clamped - free
    with torch.no_grad():
        bm.U += lr * delta.triu(1)
        bm.b += lr * delta.diagonal()


@register_model("boltzmann_machine", card="boltzmann-machine",
                example=lambda: ((torch.rand(4, 5) < 0.5).float(),))
def boltzmann_machine(n_visible: int = 3, n_hidden: int = 2, **kw) -> BoltzmannMachine:
    return BoltzmannMachine(n_visible, n_hidden, **kw)


# --- boltzmann-machine/parity: hidden units learn what pairwise weights cannot ---------------------

@dataclass
class ParityConfig:
    bits: int = 3  # the data: every string of this many bits with even parity, equally likely
    n_hidden: int = 4
    steps: int = 2000  # full-batch updates of the learning rule
    lr: float = 2.0
    lr_sampled: float = 0.2  # the sampled rule's noisy estimates need smaller steps
    chains: int = 200  # free-running chains of the sampled rule (persistent)
    sweeps: int = 2  # Gibbs sweeps per phase and update


def parity_data(bits: int) -> torch.Tensor:
    s = all_states(bits)
    return s[s.sum(1) % 2 == 0]  # (2^(bits-1), bits)


def kl_to_data(bm: BoltzmannMachine, data: torch.Tensor) -> float:
    """KL(data || model) for data spread uniformly over its distinct rows."""
    with torch.no_grad():
        return (-math.log(len(data)) - bm.log_likelihood(data).mean()).item()


@lab(
    "boltzmann-machine/parity",
    card="boltzmann-machine",
    config=ParityConfig,
    scales={"quick": {"steps": 30, "chains": 20}, "default": {}, "full": {"bits": 4, "n_hidden": 4, "steps": 5000}},
    # with hidden units the machine must get at least half-way from the uniform distribution (ln 2) to the data
    goals=[Goal("kl_exact", "<", math.log(2) / 2), Goal("kl_visible_only", ">", 0.69)],
    budget_s=60,
    threads=1,
)
def parity(run, cfg: ParityConfig) -> dict:
    """Three-bit parity: a machine with hidden units learns it (exact and sampled rule); one without cannot."""
    data = parity_data(cfg.bits).to(run.device)
    metrics: dict = {"bits": cfg.bits, "n_hidden": cfg.n_hidden, "kl_uniform": math.log(2)}
    curves = {}
    for name, n_hidden, sampled in (("visible_only", 0, False), ("exact", cfg.n_hidden, False),
                                    ("sampled", cfg.n_hidden, True)):
        g = torch.Generator().manual_seed(run.seed)
        bm = BoltzmannMachine(cfg.bits, n_hidden, g).to(run.device)
        n = cfg.bits + n_hidden
        chains = bernoulli(torch.full((cfg.chains, n), 0.5), g).to(run.device)
        reps = data.repeat(max(1, cfg.chains // len(data)), 1)
        curves[name] = []
        for step in run.progress(range(1, cfg.steps + 1), desc=name):
            if sampled:  # the 1985 rule: clamped and free phases estimated by Gibbs sampling
                clamped_s = gibbs_sweeps(bm, torch.cat([reps, chains[:len(reps), cfg.bits:]], 1), cfg.sweeps, g,
                                         clamp_visible=True)
                chains = gibbs_sweeps(bm, chains, cfg.sweeps, g)
                apply_rule(bm, sampled_correlations(bm, clamped_s), sampled_correlations(bm, chains), cfg.lr_sampled)
            else:
                apply_rule(bm, exact_correlations(bm, data), exact_correlations(bm), cfg.lr)
            if step % 50 == 0 or step == cfg.steps:
                curves[name].append((step, kl_to_data(bm, data)))
                run.log(step, **{f"kl_{name}": curves[name][-1][1]})
        metrics[f"kl_{name}"] = kl_to_data(bm, data)
    with run.figure("parity") as (fig, ax):
        for name, c in curves.items():
            ax.plot(*zip(*c), label=name.replace("_", " "))
        ax.axhline(math.log(2), color="k", ls=":", label="uniform over all strings")
        ax.set(xlabel="update", ylabel="KL(data || model) (nats)", yscale="log",
               title=f"{cfg.bits}-bit parity, {cfg.n_hidden} hidden units")
        ax.legend()
    return metrics
