"""Two-dimensional toy densities for classifiers and generative models.

Each generator is a pure function of (n, seed, ...): it draws from its own torch.Generator,
never from the global RNG, so the same arguments always give the same tensors.
Classifier sets (moons, circles, spirals) return (x, y) with balanced classes in shuffled
order; densities return x alone. Points are float32 (n, 2), labels int64 (n,).
"""

from __future__ import annotations

import math

import torch

from deepatlas.data import Split, split_seeds


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _two_classes(a: torch.Tensor, b: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack class 0 (`a`) and class 1 (`b`), then shuffle so labels are not in blocks."""
    x = torch.cat([a, b])  # (n, 2)
    y = torch.cat([torch.zeros(len(a), dtype=torch.int64), torch.ones(len(b), dtype=torch.int64)])
    order = torch.randperm(len(x), generator=g)
    return x[order], y[order]


def moons(n: int = 1000, seed: int = 0, noise: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles (as scikit-learn's make_moons); x within about [-1, 2] x [-0.5, 1]."""
    g = _generator(seed)
    t0 = torch.rand(n // 2, generator=g) * math.pi
    t1 = torch.rand(n - n // 2, generator=g) * math.pi
    upper = torch.stack([t0.cos(), t0.sin()], dim=1)
    lower = torch.stack([1 - t1.cos(), 0.5 - t1.sin()], dim=1)
    x, y = _two_classes(upper, lower, g)
    return x + noise * torch.randn(x.shape, generator=g), y


def circles(n: int = 1000, seed: int = 0, noise: float = 0.05,
            factor: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Outer unit circle (class 0) around an inner circle of radius `factor` (class 1)."""
    g = _generator(seed)
    angles = torch.rand(n, generator=g) * 2 * math.pi
    ring = torch.stack([angles.cos(), angles.sin()], dim=1)  # (n, 2)
    x, y = _two_classes(ring[: n // 2], factor * ring[n // 2:], g)
    return x + noise * torch.randn(x.shape, generator=g), y


def spirals(n: int = 1000, seed: int = 0, noise: float = 0.05,
            turns: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Two arms of an Archimedean spiral, the second rotated by half a turn; radius up to 1.

    sqrt spreads points evenly along the arm instead of piling them at the centre."""
    g = _generator(seed)
    r = torch.rand(n, generator=g).sqrt()  # (n,) radius in [0, 1]
    angle = r * turns * 2 * math.pi
    arm = torch.stack([r * angle.cos(), r * angle.sin()], dim=1)  # (n, 2)
    x, y = _two_classes(arm[: n // 2], -arm[n // 2:], g)
    return x + noise * torch.randn(x.shape, generator=g), y


def eight_gaussians_modes(radius: float = 2.0) -> torch.Tensor:
    """The 8 centres (8, 2) of `eight_gaussians`, to count which modes a model covers."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def eight_gaussians(n: int = 1000, seed: int = 0, radius: float = 2.0, std: float = 0.2) -> torch.Tensor:
    """A mixture of 8 equal Gaussians on a circle: the classic test for mode collapse."""
    g = _generator(seed)
    mode = torch.randint(0, 8, (n,), generator=g)
    return eight_gaussians_modes(radius)[mode] + std * torch.randn(n, 2, generator=g)


def checkerboard(n: int = 1000, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    """Uniform on the 8 dark cells of a 4x4 board covering [-2 scale, 2 scale]^2."""
    g = _generator(seed)
    column = torch.randint(0, 4, (n,), generator=g)
    row = 2 * torch.randint(0, 2, (n,), generator=g) + column % 2  # dark cells: row + column even
    corner = torch.stack([column, row], dim=1).float() - 2  # (n, 2) lower-left corner of the cell
    return scale * (corner + torch.rand(n, 2, generator=g))


def swiss_roll(n: int = 1000, seed: int = 0, noise: float = 0.05) -> torch.Tensor:
    """The 2-D swiss roll (scikit-learn's make_swiss_roll seen from the side), scaled by 1/5."""
    g = _generator(seed)
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    x = torch.stack([t * t.cos(), t * t.sin()], dim=1) / 5
    return x + noise * torch.randn(n, 2, generator=g)


TOYS = {f.__name__: f for f in (moons, circles, spirals, eight_gaussians, checkerboard, swiss_roll)}


def sample_toy(name: str, n: int = 1000, seed: int = 0, **kw):
    """Dispatch by name: (x, y) for the classifier sets, x alone for the densities."""
    if name not in TOYS:
        raise ValueError(f"Unknown toy {name!r}; choose one of {', '.join(TOYS)}.")
    return TOYS[name](n, seed=seed, **kw)


def gaussian_fit(x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """The trivial baseline of the 2-D density labs: n draws (n, D), on x's device and in its dtype, from
    the one Gaussian with the mean and covariance of x (N, D), fitted and drawn in float64."""
    x64 = x.detach().cpu().double()
    chol = torch.linalg.cholesky(torch.cov(x64.T))  # (D, D)
    draws = x64.mean(0) + torch.randn(n, x.shape[1], generator=generator, dtype=torch.float64) @ chol.T
    return draws.to(x)


def toy_split(name: str, n_train: int, n_test: int, seed: int = 0, **kw) -> Split:
    """Train and test drawn with different seeds (see `split_seeds`); y is None for densities."""
    train_seed, test_seed = split_seeds(seed)
    train = sample_toy(name, n_train, train_seed, **kw)
    test = sample_toy(name, n_test, test_seed, **kw)
    if isinstance(train, tuple):
        (x_train, y_train), (x_test, y_test) = train, test
    else:
        x_train, y_train, x_test, y_test = train, None, test, None
    meta = {"source": name, "n_train": n_train, "n_test": n_test, "seed": seed,
            "train_seed": train_seed, "test_seed": test_seed, "params": kw,
            "classes": 2 if y_train is not None else None}
    return Split(x_train, y_train, x_test, y_test, meta)
