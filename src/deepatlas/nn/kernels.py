"""Covariance functions (kernels) for Gaussian processes: k(x, x') for every pair of rows.

A kernel says how strongly the function values at two inputs co-vary. The squared-exponential
(RBF) kernel gives infinitely smooth functions; Matérn 5/2 gives twice-differentiable ones; the
arc-cosine kernel is the covariance of the output of an infinitely wide random ReLU network
(the NNGP kernel), computed layer by layer.

    k_{RBF}(x, x') = \\sigma^2 \\exp(-\\lVert x - x' \\rVert^2 / 2\\ell^2)
    k_{M52}(x, x') = \\sigma^2 (1 + \\sqrt5 r + 5 r^2 / 3) e^{-\\sqrt5 r},   r = \\lVert x - x' \\rVert / \\ell
    K^{l}(x, x') = \\sigma_b^2 + \\frac{\\sigma_w^2}{2\\pi} \\sqrt{K^{l-1}(x,x) K^{l-1}(x',x')} (\\sin\\theta + (\\pi - \\theta)\\cos\\theta)

Rasmussen & Williams, "Gaussian Processes for Machine Learning", MIT Press 2006 (ch. 4);
Cho & Saul, "Kernel Methods for Deep Learning", NIPS 2009; Lee et al., "Deep Neural Networks as
Gaussian Processes", ICLR 2018 (arXiv:1711.00165).
"""

from __future__ import annotations

import math

import torch

Scalar = float | torch.Tensor


def _check_inputs(x1: torch.Tensor, x2: torch.Tensor) -> None:
    if x1.dim() != 2 or x2.dim() != 2 or x1.shape[1] != x2.shape[1]:
        raise ValueError(f"kernels take x1 (N, D) and x2 (M, D) with the same D, got {tuple(x1.shape)} "
                         f"and {tuple(x2.shape)}")


def _check_positive(**values: Scalar) -> None:
    for name, v in values.items():
        if not isinstance(v, torch.Tensor) and v <= 0:
            raise ValueError(f"{name} must be positive, got {v!r}")


def scaled_sq_dist(x1: torch.Tensor, x2: torch.Tensor, lengthscale: Scalar) -> torch.Tensor:
    """\\lVert (x - x') / \\ell \\rVert^2 for every pair: (N, D), (M, D) -> (N, M); \\ell a scalar or (D,)."""
    _check_inputs(x1, x2)
    a, b = x1 / lengthscale, x2 / lengthscale
    # \lVert a - b \rVert^2 = \lVert a \rVert^2 + \lVert b \rVert^2 - 2 a^\top b   (clamped: rounding can go below 0)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return d2.clamp_min(0)


def rbf(x1: torch.Tensor, x2: torch.Tensor, lengthscale: Scalar = 1.0, variance: Scalar = 1.0) -> torch.Tensor:
    """The squared-exponential kernel (N, M) (scikit-learn's ConstantKernel * RBF)."""
    _check_positive(lengthscale=lengthscale, variance=variance)
    # k(x, x') = \sigma^2 \exp(-\tfrac12 \lVert x - x' \rVert^2 / \ell^2)
    return variance * torch.exp(-0.5 * scaled_sq_dist(x1, x2, lengthscale))


def matern52(x1: torch.Tensor, x2: torch.Tensor, lengthscale: Scalar = 1.0, variance: Scalar = 1.0) -> torch.Tensor:
    """The Matérn kernel with nu = 5/2 (N, M) (scikit-learn's ConstantKernel * Matern(nu=2.5))."""
    _check_positive(lengthscale=lengthscale, variance=variance)
    # the floor keeps sqrt's gradient finite where x = x' (the kernel is flat there anyway)
    r = scaled_sq_dist(x1, x2, lengthscale).clamp_min(1e-36).sqrt()
    s5r = math.sqrt(5.0) * r
    # k = \sigma^2 (1 + \sqrt5 r + \tfrac53 r^2) e^{-\sqrt5 r}
    return variance * (1 + s5r + s5r * s5r / 3) * torch.exp(-s5r)


class _ArcCosJ(torch.autograd.Function):
    """J(c) = \\sqrt{1 - c^2} + (\\pi - \\arccos c) c, the ReLU arc-cosine factor of a correlation c.

    Written out, autograd would meet 1/\\sqrt{1 - c^2} at c = \\pm 1 (every diagonal entry);
    the derivative itself is finite, dJ/dc = \\pi - \\arccos c, so it is given directly."""

    @staticmethod
    def forward(ctx, c):
        c = c.clamp(-1.0, 1.0)
        theta = torch.arccos(c)
        ctx.save_for_backward(theta)
        # J = \sin\theta + (\pi - \theta)\cos\theta
        return torch.sin(theta) + (math.pi - theta) * c

    @staticmethod
    def backward(ctx, grad):
        (theta,) = ctx.saved_tensors
        # dJ/dc = \pi - \theta
        return grad * (math.pi - theta)


def arccos_j(c: torch.Tensor) -> torch.Tensor:
    """E[relu(u) relu(v)] = J(c) \\sqrt{E u^2 E v^2} / 2\\pi for jointly Gaussian (u, v) of correlation c."""
    return _ArcCosJ.apply(c)


def arccos_relu(x1: torch.Tensor, x2: torch.Tensor, depth: int = 1, weight_var: Scalar = 2.0,
                bias_var: Scalar = 0.0) -> torch.Tensor:
    """The NNGP kernel (N, M) of a ReLU MLP with `depth` hidden layers in the infinite-width limit.

    The network: h^1 = W^1 x + b^1, h^{l+1} = W^{l+1} relu(h^l) + b^{l+1}, output f = h^{depth+1},
    with W_{ij} ~ N(0, weight_var / fan_in) and b_i ~ N(0, bias_var). depth = 0 is the linear kernel."""
    _check_inputs(x1, x2)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be a non-negative integer, got {depth!r}")
    _check_positive(weight_var=weight_var)
    if not isinstance(bias_var, torch.Tensor) and bias_var < 0:
        raise ValueError(f"bias_var must be >= 0, got {bias_var!r}")
    d = x1.shape[1]
    # K^0(x, x') = \sigma_b^2 + \sigma_w^2 x^\top x' / d
    k12 = bias_var + weight_var * (x1 @ x2.T) / d  # (N, M)
    k11 = bias_var + weight_var * (x1 * x1).sum(1) / d  # (N,) the diagonal K^0(x, x)
    k22 = bias_var + weight_var * (x2 * x2).sum(1) / d  # (M,)
    for _ in range(depth):
        norms = (k11[:, None] * k22[None, :]).clamp_min(1e-30).sqrt()  # (N, M)
        # \cos\theta = K(x, x') / \sqrt{K(x, x) K(x', x')}
        c = k12 / norms
        # K^{l}(x, x') = \sigma_b^2 + \frac{\sigma_w^2}{2\pi} \sqrt{K(x,x) K(x',x')} J(\theta)
        k12 = bias_var + weight_var / (2 * math.pi) * norms * arccos_j(c)
        # on the diagonal \theta = 0 and J = \pi: K^{l}(x, x) = \sigma_b^2 + \sigma_w^2 K^{l-1}(x, x) / 2
        k11 = bias_var + weight_var / 2 * k11
        k22 = bias_var + weight_var / 2 * k22
    return k12


KERNELS = {"rbf": rbf, "matern52": matern52}
