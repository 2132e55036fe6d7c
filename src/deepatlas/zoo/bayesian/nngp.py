"""NNGP: a randomly initialised network becomes a Gaussian process as its layers grow wide.

With independent weights W_ij ~ N(0, sigma_w^2 / fan_in) and biases N(0, sigma_b^2), each unit of
the next layer is a sum of many independent terms, so by the central limit theorem the output at
any finite set of inputs becomes jointly Gaussian as the width H grows. Its covariance, the
NNGP kernel, follows layer by layer; for ReLU each step is the arc-cosine kernel. At finite width
the kernel that a network's last hidden layer induces, K_H, fluctuates around the limit by
O(1/sqrt(H)).

    K^{l}(x, x') = \\sigma_b^2 + \\sigma_w^2 \\mathbb{E}_{(u, v) \\sim \\mathcal{N}(0, K^{l-1})}[\\mathrm{relu}(u)\\,\\mathrm{relu}(v)]
    \\hat K_H(x, x') = \\sigma_b^2 + \\frac{\\sigma_w^2}{H} \\sum_{j=1}^{H} \\mathrm{relu}(h_j(x))\\,\\mathrm{relu}(h_j(x'))

Neal, "Priors for Infinite Networks", Tech. Report CRG-TR-94-1, University of Toronto 1994;
Cho & Saul, "Kernel Methods for Deep Learning", NIPS 2009; Lee et al., "Deep Neural Networks as
Gaussian Processes", ICLR 2018 (arXiv:1711.00165).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.kernels import arccos_relu
from deepatlas.registry import register_model


class NNGPMLP(nn.Module):
    """A ReLU MLP in the NNGP parameterisation: W ~ N(0, weight_var / fan_in), b ~ N(0, bias_var).

    Its output at a fixed set of inputs, over random draws of the weights, has covariance
    arccos_relu(x, x, depth, weight_var, bias_var) as the width goes to infinity."""

    def __init__(self, in_features: int = 2, width: int = 64, depth: int = 2, weight_var: float = 2.0,
                 bias_var: float = 0.1, generator: torch.Generator | None = None):
        super().__init__()
        if depth < 1 or width < 1 or in_features < 1:
            raise ValueError(f"need depth, width and in_features >= 1, got {depth}, {width}, {in_features}")
        sizes = [in_features] + [width] * depth + [1]
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(a, b)) for a, b in zip(sizes[:-1], sizes[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(b)) for b in sizes[1:])
        self.weight_var, self.bias_var = weight_var, bias_var
        self.resample(generator)

    @torch.no_grad()
    def resample(self, generator: torch.Generator | None = None) -> None:
        """A fresh draw of every weight and bias from the prior."""
        for W, b in zip(self.weights, self.biases):
            # W_{ij} \sim \mathcal{N}(0, \sigma_w^2 / \text{fan-in}),   b_i \sim \mathcal{N}(0, \sigma_b^2)
            W.copy_(torch.randn(W.shape, generator=generator) * math.sqrt(self.weight_var / W.shape[0]))
            b.copy_(torch.randn(b.shape, generator=generator) * math.sqrt(self.bias_var))

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (N, in) -> (N, width): the last hidden layer
        h = x
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            # h^{l} = \mathrm{relu}(h^{l-1} W^{l} + b^{l})
            h = torch.relu(h @ W + b)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, in) -> (N,)
        return (self.features(x) @ self.weights[-1] + self.biases[-1])[:, 0]

    def empirical_kernel(self, x: torch.Tensor) -> torch.Tensor:
        """The output's covariance given this net's last hidden layer (the output layer still random): (N, N)."""
        a = self.features(x)  # (N, H)
        # \hat K_H = \sigma_b^2 + \sigma_w^2 a a^\top / H
        return self.bias_var + self.weight_var * a @ a.T / a.shape[1]


@register_model("nngp-mlp", card="nngp", example=lambda: (torch.randn(5, 2),))
def nngp_mlp(**kw) -> NNGPMLP:
    return NNGPMLP(**kw)


# --- nngp/width-limit: random ReLU nets approach the arc-cosine kernel as they widen ---------------

@dataclass
class WidthLimitConfig:
    widths: list[int] = field(default_factory=lambda: [16, 64, 256, 1024, 4096])
    depth: int = 2  # hidden layers
    n_nets: int = 20  # random networks per width
    n_points: int = 8  # inputs in 3-D
    weight_var: float = 2.0
    bias_var: float = 0.1


def _rel_err(K_hat: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    # \lVert \hat K - K \rVert_F / \lVert K \rVert_F
    return torch.linalg.matrix_norm(K_hat - K) / torch.linalg.matrix_norm(K)


@lab(
    "nngp/width-limit",
    card="nngp",
    config=WidthLimitConfig,
    scales={
        "quick": {"widths": [16, 64, 256], "n_nets": 5},
        "default": {},
        "full": {"widths": [16, 64, 256, 1024, 4096, 8192], "depth": 3, "n_nets": 100},
    },
    goals=[Goal("kernel_err_widest", "<=", 0.05), Goal("err_slope", "<=", -0.4)],
    claims=[
        Check(
            "nngp-width-limit",
            lambda m: m["err_slope"] <= -0.4 and m["kernel_err_widest"] <= 0.05 and m["kurtosis_widest"] <= 0.05,
            "over {n_nets} random {depth}-hidden-layer ReLU nets per width, the kernel a net's last layer induces "
            "differs from the arc-cosine (NNGP) kernel by {kernel_err_narrowest:.3f} (relative Frobenius) at width "
            "{narrowest} and {kernel_err_widest:.3f} at width {widest}, falling as width^{err_slope:.2f} "
            "(theory: -0.5); the output's excess kurtosis (0 for a Gaussian) falls from {kurtosis_narrowest:.3f} "
            "to {kurtosis_widest:.4f}",
        ),
        Check(
            "gaussian-process-infinite-width-bnn",
            lambda m: m["cov_err_widest"] <= 0.05 and m["kurtosis_widest"] <= 0.05 and m["err_slope"] <= -0.4,
            "the covariance of the outputs of {n_nets} random ReLU nets (prior draws of a BNN) approaches the "
            "GP's arc-cosine kernel as the hidden width grows: relative error {cov_err_narrowest:.3f} at width "
            "{narrowest}, {cov_err_widest:.3f} at width {widest}; the outputs turn Gaussian (excess kurtosis "
            "{kurtosis_narrowest:.3f} -> {kurtosis_widest:.4f})",
        ),
    ],
    budget_s=30,
    threads=None,  # width x width matrix products
)
def width_limit(run, cfg: WidthLimitConfig) -> dict:
    """The empirical kernel of random ReLU nets converges to the arc-cosine kernel as 1/sqrt(width)."""
    g = torch.Generator().manual_seed(run.seed)
    x = torch.randn(cfg.n_points, 3, generator=g)  # (N, 3)
    K = arccos_relu(x.double(), x.double(), cfg.depth, cfg.weight_var, cfg.bias_var).float()  # (N, N) the limit
    rows = []
    for width in run.progress(cfg.widths, desc="widths"):
        net = NNGPMLP(3, width, cfg.depth, cfg.weight_var, cfg.bias_var).to(run.device)
        errs, kernels = [], []
        with torch.no_grad():
            for _ in range(cfg.n_nets):
                net.resample(g)
                K_hat = net.empirical_kernel(x.to(run.device)).cpu()
                kernels.append(K_hat)
                errs.append(_rel_err(K_hat, K).item())
        stack = torch.stack(kernels)  # (S, N, N)
        diag = stack.diagonal(dim1=1, dim2=2)  # (S, N): Var f(x) given each net's hidden layer
        # f | \hat K \sim \mathcal{N}(0, \hat K(x,x)):  excess kurtosis = 3 \mathrm{Var}[\hat K(x,x)] / \mathbb{E}[\hat K(x,x)]^2
        kurtosis = (3 * diag.var(0) / diag.mean(0) ** 2).mean().item()
        # \mathrm{Cov}[f(x), f(x')] over nets = \mathbb{E}_{\text{nets}}[\hat K(x, x')]
        cov_err = _rel_err(stack.mean(0), K).item()
        rows.append({"width": width, "kernel_err": sum(errs) / len(errs), "cov_err": cov_err, "kurtosis": kurtosis})
        run.log(width, kernel_err=rows[-1]["kernel_err"], cov_err=cov_err, kurtosis=kurtosis)
        widest_kernel = stack[0]  # the last width, kept for the plot

    w = torch.tensor([r["width"] for r in rows], dtype=torch.float64).log()
    e = torch.tensor([r["kernel_err"] for r in rows], dtype=torch.float64).log()
    # least-squares slope of \log \text{err} against \log H
    slope = (((w - w.mean()) * (e - e.mean())).sum() / ((w - w.mean()) ** 2).sum()).item()
    _plot_width(run, rows, slope, K, widest_kernel, cfg)
    first, last = rows[0], rows[-1]
    return {
        "kernel_err_narrowest": first["kernel_err"], "kernel_err_widest": last["kernel_err"], "err_slope": slope,
        "cov_err_narrowest": first["cov_err"], "cov_err_widest": last["cov_err"],
        "kurtosis_narrowest": first["kurtosis"], "kurtosis_widest": last["kurtosis"],
        "narrowest": first["width"], "widest": last["width"], "n_nets": cfg.n_nets, "depth": cfg.depth,
    }


def _plot_width(run, rows, slope, K, K_widest, cfg) -> None:
    widths = [r["width"] for r in rows]
    with run.figure("width_limit", ncols=2) as (fig, (ax, ax_k)):
        ax.loglog(widths, [r["kernel_err"] for r in rows], "o-", label=f"one net's kernel (slope {slope:.2f})")
        ax.loglog(widths, [r["cov_err"] for r in rows], "s-", label=f"covariance over {cfg.n_nets} nets")
        ref = rows[0]["kernel_err"] * (torch.tensor(widths, dtype=torch.float64) / widths[0]) ** -0.5
        ax.loglog(widths, ref, "k--", lw=1, label="$\\propto H^{-1/2}$")
        ax.set(xlabel="hidden width H", ylabel="relative error vs arc-cosine kernel",
               title=f"{cfg.depth}-hidden-layer ReLU nets")
        ax.legend(fontsize=7)
        ax_k.plot(K.flatten(), K_widest.flatten(), ".", ms=5)
        lim = [K.min().item(), K.max().item()]
        ax_k.plot(lim, lim, "k--", lw=1)
        ax_k.set(xlabel="arc-cosine kernel $K(x, x')$", ylabel="one net's $\\hat K_H(x, x')$",
                 title=f"width {widths[-1]}: entries against the limit")
