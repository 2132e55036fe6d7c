"""Logic tensor networks: first-order logic made differentiable (Real Logic), trained to satisfy a knowledge base.

Real Logic grounds every symbol in tensors: a constant is a learned vector, a predicate a network
that returns a truth value in [0, 1], a connective a fuzzy operator (product t-norm for and,
probabilistic sum for or, Reichenbach implication), and a quantifier an aggregator over all
groundings of its variable (a generalised p-mean: forall is one minus the p-mean of the errors, so
larger p approaches the minimum). The truth of every axiom, facts and rules alike, is then a
differentiable function of the parameters, and training maximises the aggregated satisfaction.

    a \\land b = ab,\\quad a \\lor b = a + b - ab,\\quad a \\to b = 1 - a + ab,
    \\forall x\\, \\varphi(x) = 1 - \\big(\\tfrac1n \\textstyle\\sum_i (1 - \\varphi(x_i))^p\\big)^{1/p},\\quad
    \\exists x\\, \\varphi(x) = \\big(\\tfrac1n \\textstyle\\sum_i \\varphi(x_i)^p\\big)^{1/p},\\quad
    \\theta^* = \\arg\\max_\\theta \\mathrm{SatAgg}_{\\varphi \\in \\mathcal{K}}\\, \\mathcal{G}_\\theta(\\varphi)

Serafini & d'Avila Garcez, "Logic Tensor Networks: Deep Learning and Logical Reasoning from Data and
Knowledge", arXiv 1606.04422 (2016); Badreddine, d'Avila Garcez, Serafini & Spranger, "Logic Tensor
Networks", Artificial Intelligence 303 (2022) (the p-mean aggregators and SatAgg used here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.registry import register_model

# --- Real Logic: fuzzy connectives and aggregators ------------------------------------------------


def And(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # a \land b = a b   (product t-norm)
    return a * b


def Or(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # a \lor b = a + b - a b   (probabilistic sum, the product t-conorm)
    return a + b - a * b


def Not(a: torch.Tensor) -> torch.Tensor:
    # \lnot a = 1 - a
    return 1 - a


def Implies(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # a \to b = 1 - a + a b   (Reichenbach)
    return 1 - a + a * b


def _root(m: torch.Tensor, p: float) -> torch.Tensor:
    """m^{1/p}, with the gradient at m = 0 set to 0 instead of infinity."""
    positive = m > 0
    return torch.where(positive, m, torch.ones_like(m)) ** (1 / p) * positive


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return x.mean()
    return (x * mask).sum() / mask.sum().clamp_min(1)


def Forall(truth: torch.Tensor, p: float = 2.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """p-mean error over every grounding (the entries of `truth`, or those where `mask` is 1)."""
    if p < 1:
        raise ValueError(f"Forall needs p >= 1, got {p}")
    # \forall x\, \varphi = 1 - (\tfrac1n \sum_i (1 - \varphi_i)^p)^{1/p}
    return 1 - _root(_masked_mean((1 - truth) ** p, mask), p)


def Exists(truth: torch.Tensor, p: float = 2.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """p-mean over every grounding: p = 1 is the mean, p -> infinity the maximum."""
    if p < 1:
        raise ValueError(f"Exists needs p >= 1, got {p}")
    # \exists x\, \varphi = (\tfrac1n \sum_i \varphi_i^p)^{1/p}
    return _root(_masked_mean(truth ** p, mask), p)


def SatAgg(truths: list[torch.Tensor], p: float = 2.0) -> torch.Tensor:
    """The knowledge base's satisfaction: a Forall over the truth values of its axioms."""
    return Forall(torch.stack(truths), p)


# --- grounding a relational knowledge base --------------------------------------------------------

class RelationalLTN(nn.Module):
    """Constants as learned vectors, each binary predicate its own one-hidden-layer network.

    truth() -> (R, E, E): G(P_r)(e_x, e_y) = sigmoid(w_r^T relu(W_r [e_x; e_y] + b_r) + c_r) for every
    predicate and every pair of constants at once.
    """

    def __init__(self, n_entities: int, n_relations: int, dim: int = 16, hidden: int = 32,
                 generator: torch.Generator | None = None):
        super().__init__()
        if min(n_entities, n_relations, dim, hidden) < 1:
            raise ValueError("RelationalLTN needs positive n_entities, n_relations, dim and hidden")
        self.emb = nn.Parameter(torch.randn(n_entities, dim, generator=generator))  # (E, d)
        bound = (1 / (2 * dim)) ** 0.5
        self.w_head = nn.Parameter(torch.empty(n_relations, dim, hidden).uniform_(-bound, bound, generator=generator))
        self.w_tail = nn.Parameter(torch.empty(n_relations, dim, hidden).uniform_(-bound, bound, generator=generator))
        self.b = nn.Parameter(torch.zeros(n_relations, hidden))  # (R, H)
        self.w_out = nn.Parameter(torch.empty(n_relations, hidden).uniform_(-hidden ** -0.5, hidden ** -0.5,
                                                                           generator=generator))
        self.c = nn.Parameter(torch.zeros(n_relations))  # (R,)

    def truth(self) -> torch.Tensor:  # (R, E, E)
        x = torch.einsum("ed,rdh->reh", self.emb, self.w_head)  # (R, E, H): W_r^{head} e_x
        y = torch.einsum("ed,rdh->reh", self.emb, self.w_tail)  # (R, E, H): W_r^{tail} e_y
        h = F.relu(x[:, :, None] + y[:, None] + self.b[:, None, None])  # (R, E, E, H)
        # \mathcal{G}(P_r)(x, y) = \sigma(w_r^\top h + c_r)
        return torch.sigmoid(torch.einsum("rxyh,rh->rxy", h, self.w_out) + self.c[:, None, None])

    def forward(self, facts: torch.Tensor) -> torch.Tensor:  # (N, 3) (relation, head, tail) -> (N,) truths
        return self.truth()[facts[:, 0], facts[:, 1], facts[:, 2]]


def definition_truth(T: torch.Tensor, head: int, bodies: list[list[tuple[int, bool]]], p: float = 2.0) -> torch.Tensor:
    """The converse of a predicate's rules (its completion): head(x, y) holds only if some body does.

    \\forall x, y:\\ head(x, y) \\to \\bigvee_j \\exists z\\ body_j(x, z, y), with the maximum over z as the
    existential aggregator (the p-mean's limit p -> infinity), x != y.
    """
    E = T.shape[1]
    off_diag = 1 - torch.eye(E, dtype=T.dtype, device=T.device)
    some = torch.zeros_like(T[head])
    for body in bodies:
        atoms = [T[r].T if inverse else T[r] for r, inverse in body]
        if len(atoms) == 1:
            holds = atoms[0]
        else:
            # \exists z\ r_1(x, z) \land r_2(z, y) = \max_z r_1(x, z)\, r_2(z, y)
            holds = And(atoms[0][:, :, None], atoms[1][None, :, :]).amax(1)
        some = Or(some, holds)
    return Forall(Implies(T[head], some), p, off_diag)


def rule_truth(T: torch.Tensor, head: int, body: list[tuple[int, bool]], p: float = 2.0) -> torch.Tensor:
    """Truth of a universally quantified rule over the grounded predicates T (R, E, E), x != y.

    body of one atom (r, inverse): \\forall x, y:\\ r(x, y) \\to head(x, y)   (r(y, x) when inverse)
    body of two atoms:             \\forall x, y, z:\\ r_1(x, z) \\land r_2(z, y) \\to head(x, y)
    """
    E = T.shape[1]
    off_diag = 1 - torch.eye(E, dtype=T.dtype, device=T.device)  # (E, E): groundings with x != y
    atoms = [T[r].T if inverse else T[r] for r, inverse in body]
    if len(atoms) == 1:
        return Forall(Implies(atoms[0], T[head]), p, off_diag)
    if len(atoms) == 2:
        premise = And(atoms[0][:, :, None], atoms[1][None, :, :])  # (x, z, y): r_1(x, z) \land r_2(z, y)
        conclusion = T[head][:, None, :].expand_as(premise)  # (x, z, y): head(x, y)
        return Forall(Implies(premise, conclusion), p, off_diag[:, None, :].expand_as(premise))
    raise ValueError(f"rule bodies of one or two atoms only, got {len(body)}")


@register_model("ltn-relational", card="ltn", example=lambda: (torch.tensor([[0, 0, 1], [1, 2, 3]]),))
def ltn_relational(n_entities: int = 4, n_relations: int = 2, dim: int = 8, hidden: int = 16) -> RelationalLTN:
    return RelationalLTN(n_entities, n_relations, dim, hidden)
