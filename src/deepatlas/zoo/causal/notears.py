"""NOTEARS: learn a DAG by continuous optimisation under a smooth acyclicity constraint.

Searching the super-exponential space of DAGs is replaced by one equality-constrained program over
a weighted adjacency W: a least-squares score with an L1 penalty, subject to h(W) = tr(e^{W o W}) - d
= 0, which holds exactly when W has no directed cycle. An augmented Lagrangian turns it into a few
smooth problems, each solved by L-BFGS-B; small weights are cut at a threshold at the end. The MLP
variant replaces x W by one MLP per node and measures the edge i -> j by the norm of the first-layer
weights that read x_i in the MLP of x_j.

    \\min_W \\frac{1}{2n}\\|X - XW\\|_F^2 + \\lambda\\|W\\|_1 \\ \\ \\text{s.t.}\\ \\ h(W) = \\mathrm{tr}(e^{W\\circ W}) - d = 0

Zheng, Aragam, Ravikumar & Xing, "DAGs with NO TEARS: Continuous Optimization for Structure Learning",
NeurIPS 2018 (arXiv 1803.01422); Zheng, Dan, Aragam, Ravikumar & Xing, "Learning Sparse Nonparametric
DAGs", AISTATS 2020 (arXiv 1909.13189).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.optimize as sopt
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from deepatlas.data.causal import edge_weights, er_dag, linear_sem
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.causal.graphs import (CONSTRAINTS, augmented_lagrangian, notears_h, structure_metrics,
                                         threshold_to_dag)

# --- linear NOTEARS: the score, the constraint, the solver ---------------------------------------


def least_squares(W: torch.Tensor, S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The score F(W) = ||X - XW||^2 / 2n and its gradient -X^T (X - XW) / n, both through the
    covariance S = X^T X / n (d, d), so that an evaluation costs O(d^3) whatever n is."""
    M = torch.eye(len(W), dtype=W.dtype) - W  # (d, d)
    SM = S @ M
    # F(W) = \frac{1}{2n}\|X - XW\|_F^2 = \tfrac12 \mathrm{tr}\big((I - W)^\top S (I - W)\big)
    return 0.5 * (M * SM).sum(), -SM


def notears_linear(X: torch.Tensor, lambda1: float = 0.1, w_threshold: float = 0.3, max_iter: int = 100,
                   h_tol: float = 1e-8, rho_max: float = 1e16, constraint: str = "expm",
                   progress=None) -> tuple[torch.Tensor, dict]:
    """Linear NOTEARS on data X (n, d): returns the thresholded weights W (d, d) and a record
    {W_raw, history}. W = W+ - W- with W+, W- >= 0 makes the L1 term smooth for L-BFGS-B, and the
    bounds pin the diagonal at zero. constraint "expm" is the paper's h; "polynomial" is DAG-GNN's."""
    if constraint not in CONSTRAINTS:
        raise ValueError(f"unknown constraint {constraint!r}; choose from {', '.join(CONSTRAINTS)}")
    h_and_grad = CONSTRAINTS[constraint]
    X = torch.as_tensor(X, dtype=torch.float64)
    X = X - X.mean(0)  # the score has no intercept
    S = X.T @ X / len(X)  # (d, d)
    d = X.shape[1]
    bounds = [(0, 0) if i == j else (0, None) for _ in range(2) for i in range(d) for j in range(d)]

    def split(w: np.ndarray) -> torch.Tensor:  # (2 d^2,) -> W (d, d)
        w = torch.from_numpy(w)
        return (w[:d * d] - w[d * d:]).reshape(d, d)

    def objective(w: np.ndarray, rho: float, alpha: float):
        W = split(w)
        F, G_F = least_squares(W, S)
        h, G_h = h_and_grad(W)
        # L(W) = F(W) + \frac{\rho}{2} h(W)^2 + \alpha h(W) + \lambda \sum (W^+ + W^-)
        value = F + 0.5 * rho * h * h + alpha * h + lambda1 * w.sum()
        G = G_F + (rho * h + alpha) * G_h  # (d, d)
        grad = torch.cat([G + lambda1, -G + lambda1]).reshape(-1)  # d/dW+ and d/dW-
        return value.item(), grad.numpy()

    def inner(w, rho, alpha):
        with threadpool_limits(1):  # measured: BLAS threads make L-BFGS-B's small steps ~10x slower
            return sopt.minimize(objective, w, args=(rho, alpha), jac=True, method="L-BFGS-B", bounds=bounds).x

    w, history = augmented_lagrangian(inner, lambda w: h_and_grad(split(w))[0], np.zeros(2 * d * d),
                                      max_iter=max_iter, h_tol=h_tol, rho_max=rho_max, progress=progress)
    W_raw = split(w)
    W = W_raw * threshold_to_dag(W_raw, w_threshold)
    return W, {"W_raw": W_raw, "history": history}


class LinearSEM(nn.Module):
    """The model NOTEARS fits: every node regressed linearly on the others, x_hat = x W (no self-loops)."""

    def __init__(self, d: int):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(d, d))  # W[i, j]: weight of the edge i -> j

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, d) -> (n, d)
        W = self.W * (1 - torch.eye(len(self.W), device=self.W.device))
        return x @ W

    def h(self) -> torch.Tensor:
        return notears_h(self.W)


@register_model("notears-linear", card="notears", example=lambda: (torch.randn(8, 5),))
def notears_linear_model(d: int = 5) -> LinearSEM:
    model = LinearSEM(d)
    nn.init.normal_(model.W, std=0.1)
    return model


# --- NOTEARS-MLP ----------------------------------------------------------------------------------


class NotearsMLP(nn.Module):
    """One MLP per node, x_hat_j = MLP_j(x), all d run at once. The first layer (d m, d) is split into
    W+ - W- (for the L1 term under bounds); the edge strength i -> j is A_ij = ||W1[j's units, i]||^2,
    and h(A) = tr(e^A) - d (A is already non-negative)."""

    def __init__(self, d: int, hidden: int = 10, generator: torch.Generator | None = None):
        super().__init__()
        self.d, self.m = d, hidden
        bound = 1 / np.sqrt(d)
        w1 = (torch.rand(d * hidden, d, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        self.fc1_pos = nn.Parameter(w1.clamp(min=0))  # (d m, d): row j m + k reads all inputs
        self.fc1_neg = nn.Parameter((-w1).clamp(min=0))
        self.fc1_bias = nn.Parameter(torch.zeros(d * hidden, dtype=torch.float64))
        self.fc2 = nn.Parameter((torch.rand(d, hidden, generator=generator, dtype=torch.float64) * 2 - 1)
                                / np.sqrt(hidden))  # (d, m): node j's output layer
        self.fc2_bias = nn.Parameter(torch.zeros(d, dtype=torch.float64))
        self.register_buffer("no_self", (1 - torch.eye(d, dtype=torch.float64)).repeat_interleave(hidden, 0))

    def first_layer(self) -> torch.Tensor:  # (d m, d), the inputs x_j of node j's own MLP masked out
        return (self.fc1_pos - self.fc1_neg) * self.no_self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, d) -> (n, d)
        hidden = torch.sigmoid(x.to(self.fc1_bias.dtype) @ self.first_layer().T + self.fc1_bias)  # (n, d m)
        hidden = hidden.reshape(len(x), self.d, self.m)  # (n, d, m)
        return (hidden * self.fc2).sum(-1) + self.fc2_bias

    def adjacency(self) -> torch.Tensor:  # (d, d)
        # A_{ij} = \sum_k \big(W^{(1)}_{j,k,i}\big)^2
        return self.first_layer().reshape(self.d, self.m, self.d).pow(2).sum(1).T

    def h(self) -> torch.Tensor:
        A = self.adjacency()
        # h(A) = \mathrm{tr}(e^{A}) - d
        return torch.linalg.matrix_exp(A).diagonal().sum() - self.d

    def l1(self) -> torch.Tensor:
        return (self.fc1_pos + self.fc1_neg).sum()

    def l2(self) -> torch.Tensor:
        return (self.fc1_pos - self.fc1_neg).pow(2).sum() + self.fc2.pow(2).sum()


@register_model("notears-mlp", card="notears", example=lambda: (torch.randn(8, 4, dtype=torch.float64),))
def notears_mlp_model(d: int = 4, hidden: int = 10) -> NotearsMLP:
    return NotearsMLP(d, hidden, generator=torch.Generator().manual_seed(0))


def _lbfgsb(model: nn.Module, loss_fn, bounds: dict[str, tuple], max_fun: int = 15000) -> None:
    """Minimise loss_fn() over the model's parameters with scipy's L-BFGS-B, each parameter within
    bounds[name] = (low, high) (elementwise tensors or None)."""
    params = list(model.named_parameters())
    sizes = [p.numel() for _, p in params]
    box = []
    for name, p in params:
        low, high = bounds.get(name, (None, None))
        low = [None] * p.numel() if low is None else low.reshape(-1).tolist()
        high = [None] * p.numel() if high is None else high.reshape(-1).tolist()
        box += list(zip(low, high))

    def set_flat(x: np.ndarray) -> None:
        with torch.no_grad():
            for (_, p), chunk in zip(params, torch.from_numpy(x).split(sizes)):
                p.copy_(chunk.reshape(p.shape))

    def fun(x: np.ndarray):
        set_flat(x)
        model.zero_grad()
        loss = loss_fn()
        loss.backward()
        grad = torch.cat([p.grad.reshape(-1) for _, p in params])
        return loss.item(), grad.numpy().astype(np.float64)

    x0 = torch.cat([p.detach().reshape(-1) for _, p in params]).numpy().astype(np.float64)
    with threadpool_limits(1):  # BLAS threads only slow L-BFGS-B down on problems this small
        set_flat(sopt.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=box, options={"maxfun": max_fun}).x)


def notears_mlp(X: torch.Tensor, hidden: int = 10, lambda1: float = 0.01, lambda2: float = 0.01,
                w_threshold: float = 0.3, max_iter: int = 100, h_tol: float = 1e-8, rho_max: float = 1e16,
                seed: int = 0, progress=None) -> tuple[torch.Tensor, NotearsMLP]:
    """NOTEARS-MLP on X (n, d): returns the edge strengths sqrt(A) thresholded to a DAG, and the model."""
    X = torch.as_tensor(X, dtype=torch.float64)
    X = X - X.mean(0)
    model = NotearsMLP(X.shape[1], hidden, generator=torch.Generator().manual_seed(seed))
    nonneg = (torch.zeros_like(model.fc1_pos), torch.where(model.no_self > 0, torch.inf, 0.0))
    bounds = {"fc1_pos": nonneg, "fc1_neg": nonneg}

    def inner(state, rho, alpha):
        model.load_state_dict(state)

        def loss_fn():
            h = model.h()
            # \frac{1}{2n}\|X - f(X)\|^2 + \frac{\rho}{2}h^2 + \alpha h + \frac{\lambda_2}{2}\|\theta\|_2^2
            #   + \lambda_1 \|W^{(1)}\|_1
            return (0.5 / len(X) * (X - model(X)).pow(2).sum() + 0.5 * rho * h * h + alpha * h
                    + 0.5 * lambda2 * model.l2() + lambda1 * model.l1())

        _lbfgsb(model, loss_fn, bounds)
        return {k: v.clone() for k, v in model.state_dict().items()}

    def h_of(state):
        model.load_state_dict(state)
        with torch.no_grad():
            return model.h().item()

    state, _ = augmented_lagrangian(inner, h_of, {k: v.clone() for k, v in model.state_dict().items()},
                                    max_iter=max_iter, h_tol=h_tol, rho_max=rho_max, progress=progress)
    model.load_state_dict(state)
    with torch.no_grad():
        strength = model.adjacency().sqrt()
    return strength * threshold_to_dag(strength, w_threshold), model


# --- notears/er-graphs: linear-Gaussian ER2 graphs with d = 10 and 20 ----------------------------


@dataclass
class ErConfig:
    d_small: int = 10
    d_large: int = 20
    edges_per_node: float = 2.0  # ER2: about 2d edges
    n: int = 1000
    lambda1: float = 0.0  # the paper's NOTEARS row; measured here, 0.1 (its NOTEARS-L1) gave SHD 7 at d = 10
    w_threshold: float = 0.3


@lab(
    "notears/er-graphs",
    card="notears",
    config=ErConfig,
    scales={
        "quick": {"d_small": 5, "d_large": 8, "edges_per_node": 1.0, "n": 200},
        "default": {},
        "full": {"d_small": 20, "d_large": 50, "n": 2000},
    },
    goals=[Goal("shd_small", "<=", 2), Goal("shd_large", "<=", 5)],
    claims=[
        Check(
            "notears-differentiable-structure-learning",
            lambda m: m["shd_small"] <= 2 and m["shd_large"] <= 5 and m["h_large"] <= 1e-8,
            "from n={n} linear-Gaussian samples, NOTEARS recovers an ER graph with d={d_small} "
            "({true_edges_small} edges) at SHD {shd_small} (TPR {tpr_small:.2f}, FDR {fdr_small:.2f}, "
            "{time_small:.1f} s) and one with d={d_large} ({true_edges_large} edges) at SHD {shd_large} "
            "(TPR {tpr_large:.2f}, FDR {fdr_large:.2f}, {time_large:.1f} s); the final h(W) is {h_large:.1e}",
        ),
    ],
    budget_s=90,
    threads=1,
)
def er_graphs(run, cfg: ErConfig) -> dict:
    """NOTEARS on linear-Gaussian ER2 graphs, d = 10 and 20: SHD at most 2 and 5."""
    metrics: dict = {"n": cfg.n, "d_small": cfg.d_small, "d_large": cfg.d_large}
    shown = {}
    for size, d in run.progress([("small", cfg.d_small), ("large", cfg.d_large)], desc="NOTEARS"):
        B = er_dag(d, cfg.edges_per_node, seed=1000 * run.seed + d)
        W_true = edge_weights(B, seed=1000 * run.seed + d + 1)
        X = linear_sem(W_true, cfg.n, seed=1000 * run.seed + d + 2)  # (n, d)
        start = time.perf_counter()
        W, record = notears_linear(X, lambda1=cfg.lambda1, w_threshold=cfg.w_threshold,
                                   progress=lambda it, rho, h, d=d: run.log(it, **{f"h_d{d}": h}))
        seconds = time.perf_counter() - start
        scores = structure_metrics(W, B)
        metrics.update({f"shd_{size}": scores["shd"], f"tpr_{size}": scores["tpr"], f"fdr_{size}": scores["fdr"],
                        f"true_edges_{size}": scores["n_true"], f"pred_edges_{size}": scores["n_pred"],
                        f"time_{size}": seconds, f"h_{size}": record["history"][-1][2],
                        f"outer_iters_{size}": len(record["history"])})
        shown[d] = (W_true, W)
    with run.figure("notears_er", ncols=2 * len(shown), size=(14, 3.6)) as (fig, axes):
        for k, (d, (W_true, W)) in enumerate(shown.items()):
            lim = W_true.abs().max().item()
            for ax, M, title in [(axes[2 * k], W_true, f"true W, d={d}"), (axes[2 * k + 1], W, f"NOTEARS W, d={d}")]:
                im = ax.imshow(M.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
                ax.set(title=title, xticks=[], yticks=[])
            fig.colorbar(im, ax=axes[2 * k + 1], fraction=0.046)
    return metrics
