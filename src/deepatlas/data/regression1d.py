"""One-dimensional regression with a gap in the training inputs, for judging predictive uncertainty.

Training inputs fill [-2, -gap] and [gap, 2]; test inputs fill all of [-2, 2], so part of the
test set lies where no data was seen. A model that knows what it does not know widens its
intervals in the gap ("in-between" uncertainty, Foong et al. 2019, arXiv:1906.11537).

    y = \\sin(2.5 x) + 0.5 x + \\varepsilon,   \\varepsilon \\sim \\mathcal{N}(0, \\sigma^2)

Deterministic from the seed: train draws from seed 2s, test draws from seed 2s + 1.
"""

from __future__ import annotations

import torch

from deepatlas.data import Split, split_seeds

X_RANGE = (-2.0, 2.0)


def true_function(x: torch.Tensor) -> torch.Tensor:
    # f(x) = \sin(2.5 x) + 0.5 x
    return torch.sin(2.5 * x) + 0.5 * x


def gap_regression(n_train: int = 100, n_test: int = 1000, seed: int = 0, noise: float = 0.2,
                   gap: float = 0.5) -> Split:
    """x (N, 1) float32 and y (N,): train inputs outside (-gap, gap), test inputs over the whole range.

    meta: noise, gap, and `in_gap` (n_test,) bool marking the test points inside the gap."""
    lo, hi = X_RANGE
    if not 0 <= gap < hi:
        raise ValueError(f"gap must be in [0, {hi}), got {gap}")
    if n_train < 2 or n_test < 1:
        raise ValueError(f"need n_train >= 2 and n_test >= 1, got {n_train} and {n_test}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    train_seed, test_seed = split_seeds(seed)
    g = torch.Generator().manual_seed(train_seed)
    # |x| \sim \mathcal{U}(gap, 2) with a random sign: half the points on each side of the gap
    side = torch.where(torch.rand(n_train, generator=g) < 0.5, -1.0, 1.0)
    x_train = side * (gap + (hi - gap) * torch.rand(n_train, generator=g))
    y_train = true_function(x_train) + noise * torch.randn(n_train, generator=g)
    g = torch.Generator().manual_seed(test_seed)
    x_test = lo + (hi - lo) * torch.rand(n_test, generator=g)
    y_test = true_function(x_test) + noise * torch.randn(n_test, generator=g)
    meta = {"noise": noise, "gap": gap, "in_gap": x_test.abs() < gap,
            "source": "generated: y = sin(2.5 x) + 0.5 x + N(0, noise^2), train inputs outside the gap"}
    return Split(x_train[:, None], y_train, x_test[:, None], y_test, meta)


__all__ = ["gap_regression", "true_function", "X_RANGE"]
