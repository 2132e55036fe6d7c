"""Logical neural networks: one neuron per formula node, weighted Łukasiewicz logic, truth bounds in both directions.

Every node of a formula graph is a neuron: a proposition, or a connective whose activation is a
weighted real-valued logic that reduces to classical logic on {0, 1} (with unit weights and bias
beta = 1 it is exactly Łukasiewicz logic on [0, 1]). Each neuron holds bounds [L, U] on its truth
rather than a value, so unknown facts stay [0, 1] (an open world). Inference alternates an upward
pass (a connective's bounds from its operands', by monotonicity) with a downward pass (an operand's
bounds from the connective's and its siblings', by inverting the activation: modus ponens, modus
tollens, and their real-valued generalisations) until no bound moves; a node whose L exceeds its U
exposes a contradiction. Here AND, OR and IMPLIES share one form: a clamped weighted sum of terms
t_j = x_j or 1 - x_j.

    \\beta\\text{-}\\textstyle\\bigwedge_j x_j^{\\otimes w_j} = f\\big(\\beta - \\sum_j w_j (1 - x_j)\\big),\\quad
    \\beta\\text{-}\\bigvee_j x_j^{\\oplus w_j} = f\\big(1 - \\beta + \\sum_j w_j x_j\\big),\\quad
    x \\to_\\beta y = f\\big(1 - \\beta + w_x (1 - x) + w_y\\, y\\big),\\quad f(s) = \\max(0, \\min(1, s))
    \\mathcal{L}_{\\text{contra}} = \\textstyle\\sum_k \\max(0, L_k - U_k)

Riegel, Gray, Luus, Khan, Makondo, Akhalwaya, Qian, Fagin et al., "Logical Neural Networks",
arXiv 2006.13155 (2020).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.registry import register_model

EPS = 1e-9  # weights below this carry no information downward (division by w_i); nor do bounds within EPS of
# 0 or 1, where rounding would otherwise pass for knowledge (the inverse jumps at L_k = 0 and at U_k = 1)


def f(s: torch.Tensor) -> torch.Tensor:
    # f(s) = \max(0, \min(1, s))
    return s.clamp(0, 1)


class LNN(nn.Module):
    """A formula graph of named propositions and weighted connectives, with a learnable beta and
    weights per connective. Node bounds live in a tensor (N, 2) of [L, U] in `self.names` order.

        net = LNN(); net.proposition("Rain"); net.proposition("Wet")
        net.implies("Rain", "Wet", name="rule")
        bounds = net.infer({"rule": (1, 1), "Rain": (1, 1)})   # Wet becomes [1, 1]
    """

    def __init__(self):
        super().__init__()
        self.names: list[str] = []
        self.nodes: list[tuple] = []  # ("prop",) or (kind, operand indices, polarities: 1 for x_j, 0 for 1 - x_j)
        self.beta = nn.ParameterList()
        self.weights = nn.ParameterList()

    def _add(self, name: str, node: tuple) -> str:
        if name in self.names:
            raise ValueError(f"node {name!r} exists already")
        self.names.append(name)
        self.nodes.append(node)
        return name

    def proposition(self, name: str) -> str:
        return self._add(name, ("prop",))

    def _connective(self, kind: str, operands: list[str], polarity: list[int], name: str | None,
                    beta: float, weights: list[float] | None) -> str:
        missing = [o for o in operands if o not in self.names]
        if missing:
            raise ValueError(f"unknown operands {missing}: add them before the connective that uses them")
        if weights is not None and len(weights) != len(operands):
            raise ValueError(f"{len(weights)} weights for {len(operands)} operands")
        name = name or f"{kind}({', '.join(operands)})"
        self._add(name, (kind, [self.names.index(o) for o in operands], polarity, len(self.beta)))
        self.beta.append(nn.Parameter(torch.tensor(float(beta), dtype=torch.float64)))
        self.weights.append(nn.Parameter(torch.tensor(weights or [1.0] * len(operands), dtype=torch.float64)))
        return name

    def conj(self, *operands: str, name=None, beta=1.0, weights=None) -> str:
        return self._connective("and", list(operands), [1] * len(operands), name, beta, weights)

    def disj(self, *operands: str, name=None, beta=1.0, weights=None) -> str:
        return self._connective("or", list(operands), [1] * len(operands), name, beta, weights)

    def implies(self, premise: str, conclusion: str, name=None, beta=1.0, weights=None) -> str:
        return self._connective("implies", [premise, conclusion], [0, 1], name, beta, weights)

    def _affine(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A connective as s = c + \\sum_j w_j t_j over its terms t_j: the offset c and the weights w."""
        kind, _, _, p = self.nodes[k]
        beta, w = self.beta[p], self.weights[p]
        # AND: \beta - \sum_j w_j (1 - x_j) = (\beta - \sum_j w_j) + \sum_j w_j x_j;  OR, IMPLIES: 1 - \beta + \dots
        c = beta - w.sum() if kind == "and" else 1 - beta
        return c, w

    def truth(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """The activation of connective k on operand truths x (..., n) -> (...)."""
        _, _, polarity, _ = self.nodes[k]
        c, w = self._affine(k)
        pol = torch.tensor(polarity, dtype=x.dtype)
        t = pol * x + (1 - pol) * (1 - x)  # (..., n): terms x_j or 1 - x_j
        return f(c + t @ w)

    def initial_bounds(self, facts: dict[str, tuple[float, float]] | None = None) -> torch.Tensor:
        """(N, 2): [0, 1] everywhere (unknown), except the given nodes' [L, U]."""
        bounds = torch.tensor([[0.0, 1.0]] * len(self.names), dtype=torch.float64)
        for name, (lo, hi) in (facts or {}).items():
            if name not in self.names:
                raise ValueError(f"unknown node {name!r}; nodes are {self.names}")
            bounds[self.names.index(name)] = torch.tensor([lo, hi], dtype=torch.float64)
        return bounds

    def upward(self, bounds: torch.Tensor) -> torch.Tensor:
        """Each connective's bounds from its operands', in the order the nodes were added (operands first)."""
        L, U = list(bounds[:, 0]), list(bounds[:, 1])
        for k, node in enumerate(self.nodes):
            if node[0] == "prop":
                continue
            _, ops, polarity, _ = node
            c, w = self._affine(k)
            lo, hi = self._term_bounds(ops, polarity, L, U)
            # the activation increases in every term:
            # [f(c + \sum_j w_j \underline t_j),\ f(c + \sum_j w_j \overline t_j)]
            L[k] = torch.maximum(L[k], f(c + lo @ w))
            U[k] = torch.minimum(U[k], f(c + hi @ w))
        return torch.stack([torch.stack(L), torch.stack(U)], 1)

    def downward(self, bounds: torch.Tensor) -> torch.Tensor:
        """Each operand's bounds from its connective's and its siblings', in reverse order."""
        L, U = list(bounds[:, 0]), list(bounds[:, 1])
        for k in reversed(range(len(self.nodes))):
            node = self.nodes[k]
            if node[0] == "prop":
                continue
            _, ops, polarity, _ = node
            c, w = self._affine(k)
            lo, hi = self._term_bounds(ops, polarity, L, U)
            safe_w = w.clamp_min(EPS)
            for j, (i, pol) in enumerate(zip(ops, polarity)):
                others = [m for m in range(len(ops)) if m != j]
                rest_hi = hi[others] @ w[others]  # \sum_{m \neq j} w_m \overline t_m
                rest_lo = lo[others] @ w[others]  # \sum_{m \neq j} w_m \underline t_m
                informative = w[j] > EPS
                # L_k > 0 forces s \geq L_k:  t_j \geq (L_k - c - \sum_{m \neq j} w_m \overline t_m) / w_j
                t_lo = torch.where(informative & (L[k] > EPS), (L[k] - c - rest_hi) / safe_w[j], lo[j].new_tensor(0.0))
                # U_k < 1 forces s \leq U_k:  t_j \leq (U_k - c - \sum_{m \neq j} w_m \underline t_m) / w_j
                t_hi = torch.where(informative & (U[k] < 1 - EPS), (U[k] - c - rest_lo) / safe_w[j],
                                   lo[j].new_tensor(1.0))
                t_lo, t_hi = t_lo.clamp(0, 1), t_hi.clamp(0, 1)
                new_lo, new_hi = (t_lo, t_hi) if pol else (1 - t_hi, 1 - t_lo)  # t_j = 1 - x_j swaps the bounds
                L[i] = torch.maximum(L[i], new_lo)
                U[i] = torch.minimum(U[i], new_hi)
        return torch.stack([torch.stack(L), torch.stack(U)], 1)

    @staticmethod
    def _term_bounds(ops, polarity, L, U) -> tuple[torch.Tensor, torch.Tensor]:
        """Bounds on the terms t_j (n,): [L, U] of x_j, or [1 - U, 1 - L] of 1 - x_j."""
        lo = torch.stack([L[i] if p else 1 - U[i] for i, p in zip(ops, polarity)])
        hi = torch.stack([U[i] if p else 1 - L[i] for i, p in zip(ops, polarity)])
        return lo, hi

    def infer(self, facts: dict[str, tuple[float, float]] | torch.Tensor | None = None, max_sweeps: int = 50,
              tol: float = 1e-12, history: list | None = None) -> torch.Tensor:
        """Upward then downward passes until no bound moves by more than tol; returns bounds (N, 2).
        `facts` is a dict of node bounds or a full bounds tensor; `history` collects every sweep's bounds."""
        bounds = facts if isinstance(facts, torch.Tensor) else self.initial_bounds(facts)
        for _ in range(max_sweeps):
            new = self.downward(self.upward(bounds))
            if history is not None:
                history.append(new.detach())
            moved = (new - bounds).abs().max().item()
            bounds = new
            if moved <= tol:
                break
        return bounds

    def forward(self, bounds: torch.Tensor) -> torch.Tensor:  # (N, 2) initial bounds -> (N, 2) inferred bounds
        return self.infer(bounds)


def contradiction(bounds: torch.Tensor) -> torch.Tensor:
    """The contradiction penalty of bounds (N, 2); zero exactly when every L <= U."""
    # \mathcal{L}_{\text{contra}} = \sum_k \max(0, L_k - U_k)
    return (bounds[:, 0] - bounds[:, 1]).clamp_min(0).sum()


def fit_connective(net: LNN, node: str, inputs: torch.Tensor, targets: torch.Tensor, steps: int = 500,
                   lr: float = 0.05) -> list[float]:
    """Learn a connective's beta and weights from operand truths (M, n) and target truths (M,) by gradient
    descent on the squared error, projecting beta and the weights back to >= 0 after each step."""
    k = net.names.index(node)
    if net.nodes[k][0] == "prop":
        raise ValueError(f"{node!r} is a proposition: only connectives have weights")
    p = net.nodes[k][3]
    params = [net.beta[p], net.weights[p]]
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = (net.truth(k, inputs) - targets).square().mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for q in params:
                q.clamp_(min=0)
        losses.append(loss.item())
    return losses


def _rain_example() -> LNN:
    net = LNN()
    for p in ("Rain", "Sprinkler", "Cold", "Snow"):
        net.proposition(p)
    net.implies(net.conj("Rain", "Cold"), "Snow", name="rain and cold give snow")
    net.disj("Rain", "Sprinkler", name="rain or sprinkler")
    return net


@register_model("lnn-rain", card="lnn",
                example=lambda: (torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.2],
                                               [0.0, 1.0], [0.9, 1.0], [1.0, 1.0]], dtype=torch.float64),))
def lnn_rain() -> LNN:
    """Rain and cold give snow; rain or the sprinkler (wets the grass): from no sprinkler and no snow,
    downward inference derives rain, then not cold."""
    return _rain_example()
