"""What the causal-discovery models share: acyclicity functions, the augmented Lagrangian, and scores.

A weighted adjacency W (d, d) is a DAG exactly when no power of its support has a non-zero trace.
NOTEARS writes this as one smooth equation, h(W) = tr(e^{W o W}) - d = 0 (each closed walk of length
k adds (W o W)^k / k! >= 0 to the trace); DAG-GNN uses the polynomial tr[(I + a W o W)^d] - d, which
needs only matrix products. The continuous programs min F(W) s.t. h(W) = 0 are solved by the
augmented Lagrangian that the NOTEARS paper uses: minimise F + rho/2 h^2 + alpha h, then raise the
multiplier alpha += rho h and the penalty rho until h is tiny.

Zheng, Aragam, Ravikumar & Xing, "DAGs with NO TEARS", NeurIPS 2018 (arXiv 1803.01422);
Yu, Chen, Gao & Yu, "DAG-GNN", ICML 2019 (arXiv 1904.10098).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from deepatlas.data.causal import topological_order


def notears_h(W: torch.Tensor) -> torch.Tensor:
    """h(W) = tr(e^{W o W}) - d: zero exactly on DAGs, positive otherwise; gradient (e^{W o W})^T o 2W."""
    # h(W) = \mathrm{tr}\big(e^{W \circ W}\big) - d
    return torch.linalg.matrix_exp(W * W).diagonal(dim1=-2, dim2=-1).sum(-1) - W.shape[-1]


def notears_h_and_grad(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """h(W) and its gradient in closed form, for solvers that do without autograd."""
    E = torch.linalg.matrix_exp(W * W)  # (d, d)
    # \nabla h(W) = \big(e^{W \circ W}\big)^\top \circ 2W
    return E.diagonal().sum() - W.shape[-1], E.T * 2 * W


def polynomial_h(W: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
    """DAG-GNN's h(W) = tr[(I + alpha W o W)^d] - d with alpha = 1/d by default: zero exactly on DAGs."""
    d = W.shape[-1]
    alpha = 1.0 / d if alpha is None else alpha
    # h(A) = \mathrm{tr}\big[(I + \alpha A \circ A)^d\big] - d
    M = torch.eye(d, dtype=W.dtype, device=W.device) + alpha * W * W
    return torch.linalg.matrix_power(M, d).diagonal(dim1=-2, dim2=-1).sum(-1) - d


def polynomial_h_and_grad(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """polynomial_h with alpha = 1/d and its closed-form gradient (the form gcastle's NOTEARS uses)."""
    d = W.shape[-1]
    M = torch.eye(d, dtype=W.dtype) + W * W / d
    E = torch.linalg.matrix_power(M, d - 1)  # (d, d)
    # \nabla h(W) = \big((I + W \circ W / d)^{d-1}\big)^\top \circ 2W
    return (E.T * M).sum() - d, E.T * 2 * W


CONSTRAINTS = {"expm": notears_h_and_grad, "polynomial": polynomial_h_and_grad}


def is_dag(B: torch.Tensor) -> bool:
    try:
        topological_order(B)
    except ValueError:
        return False
    return True


def threshold_to_dag(W: torch.Tensor, threshold: float) -> torch.Tensor:
    """The 0/1 graph of |W| > threshold; if that still has a cycle (h is only ~0, not 0), the smallest
    surviving weights are dropped one at a time until it is a DAG (as the NOTEARS code does)."""
    W = W.detach().abs().double().clone()
    W[W <= threshold] = 0
    while not is_dag(W):
        nz = W.nonzero()
        i, j = nz[W[nz[:, 0], nz[:, 1]].argmin()]
        W[i, j] = 0
    return (W != 0).double()


def augmented_lagrangian(inner: Callable, h_of: Callable, state, *, max_iter: int = 100, h_tol: float = 1e-8,
                         rho_max: float = 1e16, progress: Callable | None = None):
    """NOTEARS' outer loop. `inner(state, rho, alpha)` minimises F + rho/2 h^2 + alpha h from `state` and
    returns the new state; `h_of(state)` is its constraint value. rho grows tenfold until h shrinks to a
    quarter of its last value; then alpha += rho h. Returns (state, history of (rho, alpha, h))."""
    rho, alpha, h = 1.0, 0.0, math.inf
    history = []
    for _ in range(max_iter):
        while rho < rho_max:
            candidate = inner(state, rho, alpha)
            h_new = float(h_of(candidate))
            if h_new > 0.25 * h:
                rho *= 10
            else:
                break
        state, h = candidate, h_new
        # \alpha \leftarrow \alpha + \rho\, h(W)
        alpha += rho * h
        history.append((rho, alpha, h))
        if progress is not None:
            progress(len(history), rho, h)
        if h <= h_tol or rho >= rho_max:
            break
    return state, history


def structure_metrics(B_est: torch.Tensor, B_true: torch.Tensor) -> dict:
    """Scores of an estimated graph, as NOTEARS reports them. A reversed edge counts once in the SHD.

    shd = extra + missing + reversed (on the skeleton); tpr = correct directed edges / true edges;
    fdr = (reversed + extra) / predicted edges."""
    est, true = (B_est != 0), (B_true != 0)
    if est.diagonal().any():
        raise ValueError("the estimated graph has self-loops")
    skel_est, skel_true = est | est.T, true | true.T
    correct = (est & true).sum().item()
    reversed_ = (est & true.T & ~true).sum().item()
    extra = (est & ~skel_true).sum().item()
    missing = (true & ~skel_est).sum().item()
    n_pred, n_true = est.sum().item(), true.sum().item()
    return {
        "shd": extra + missing + reversed_, "tpr": correct / max(n_true, 1),
        "fdr": (reversed_ + extra) / max(n_pred, 1), "n_pred": n_pred, "n_true": n_true,
        "extra": extra, "missing": missing, "reversed": reversed_,
    }
