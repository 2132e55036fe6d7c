"""MNIST digits rendered in two styles, for unpaired image-to-image translation (CycleGAN).

Style A is the digit as written; style B is the same kind of digit slanted by a horizontal shear
(`pair="slant"`) or drawn with thicker strokes by a 3x3 grey-level dilation (`pair="stroke"`). The
4,000 training images of `mnist_subset` are split by a seeded permutation into two disjoint halves:
the first half is shown only in style A, the second only in style B, so no training image has its
twin in the other style (unpaired). The 1,000 test images are rendered in both styles, so the true
translation of each test digit is known for evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepatlas.data.real import mnist_subset

PAIRS = ("slant", "stroke")


@dataclass
class DigitStyles:
    """Unpaired training images of two styles and paired test images, all (N, 1, 28, 28) in [0, 1]."""

    a_train: torch.Tensor  # (N_a, 1, 28, 28): style A only
    y_a_train: torch.Tensor  # (N_a,)
    b_train: torch.Tensor  # (N_b, 1, 28, 28): style B only, other digits than a_train
    y_b_train: torch.Tensor  # (N_b,)
    a_test: torch.Tensor  # (M, 1, 28, 28)
    b_test: torch.Tensor  # (M, 1, 28, 28): b_test[i] is a_test[i] in style B
    y_test: torch.Tensor  # (M,)
    meta: dict


def shear(x: torch.Tensor, amount: float) -> torch.Tensor:
    """Slant images (N, C, H, W) to the right: the row at height v (from -1 at the top to 1 at the
    bottom, about the centre) moves by -amount * v half-widths; bilinear, zero outside."""
    # output (u, v) reads input (u + amount * v, v)
    theta = torch.tensor([[1.0, amount, 0.0], [0.0, 1.0, 0.0]], dtype=x.dtype).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def thicken(x: torch.Tensor) -> torch.Tensor:
    """Grey-level dilation by a 3x3 square: every pixel takes the largest value around it."""
    return F.max_pool2d(x, 3, stride=1, padding=1)


def render(x: torch.Tensor, pair: str, amount: float = 0.4) -> torch.Tensor:
    """Style B of images x (N, 1, 28, 28) in [0, 1] for the given pair."""
    if pair == "slant":
        return shear(x, amount).clamp(0, 1)
    if pair == "stroke":
        return thicken(x)
    raise ValueError(f"unknown style pair {pair!r}; choose one of {', '.join(PAIRS)}")


def digit_styles(pair: str = "slant", amount: float = 0.4, seed: int = 0) -> DigitStyles:
    """The two-style digits; `amount` is the shear of the slanted style; `seed` fixes the A/B split."""
    if pair not in PAIRS:
        raise ValueError(f"unknown style pair {pair!r}; choose one of {', '.join(PAIRS)}")
    if pair == "slant" and not 0 < abs(amount) <= 1:
        raise ValueError(f"the shear must be in (0, 1] in absolute value, got {amount}")
    data = mnist_subset(flatten=False)
    order = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(seed))
    half = len(order) // 2
    a, b = order[:half], order[half:]
    meta = {"source": "digit_styles", "pair": pair, "amount": amount if pair == "slant" else None,
            "seed": seed, "n_a_train": len(a), "n_b_train": len(b), "n_test": len(data.x_test),
            "origin": "mnist_subset rendered in two styles; unpaired train halves, paired test"}
    return DigitStyles(
        a_train=data.x_train[a], y_a_train=data.y_train[a],
        b_train=render(data.x_train[b], pair, amount), y_b_train=data.y_train[b],
        a_test=data.x_test, b_test=render(data.x_test, pair, amount), y_test=data.y_test, meta=meta,
    )
