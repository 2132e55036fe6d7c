"""Generated segmentation scenes: filled circles, rectangles and triangles on a textured background.

Every scene is a pure function of (n, size, seed, ...) drawn from its own torch.Generator.
An image holds 1 to `max_shapes` shapes (circles, rotated rectangles, triangles), each filled
with its own grey level, brighter or darker than a background that carries a linear gradient
and a faint sinusoidal texture; Gaussian pixel noise lies on top. The mask marks the pixels
whose centre lies inside any shape, so its boundary is exact at pixel level. Because shapes
may be darker or brighter than the background and the background brightness varies, no single
threshold on the grey level separates shape from background: a model needs local context.

    image (n, 1, size, size) float32, roughly in [0, 1];  mask (n, 1, size, size) float32 in {0, 1}
"""

from __future__ import annotations

import math

import torch

from deepatlas.data import Split, split_seeds

KINDS = ("circle", "rectangle", "triangle")


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _circle(px, py, cx, cy, r, g, n) -> torch.Tensor:
    """(n, H, W) bool: inside the disc of centre (cx, cy) and radius r."""
    return (px - cx).square() + (py - cy).square() <= r.square()


def _rectangle(px, py, cx, cy, r, g, n) -> torch.Tensor:
    """(n, H, W) bool: inside a rectangle of half-sides (r a, r b) rotated by theta around its centre."""
    theta = _uniform(g, n, 0.0, math.pi)[:, None, None]
    a, b = _uniform(g, n, 0.5, 1.0)[:, None, None], _uniform(g, n, 0.5, 1.0)[:, None, None]
    dx, dy = px - cx, py - cy
    # (u, v) = R(-\theta) (x - c): coordinates along the rectangle's sides
    u, v = dx * theta.cos() + dy * theta.sin(), -dx * theta.sin() + dy * theta.cos()
    return (u.abs() <= r * a) & (v.abs() <= r * b)


def _triangle(px, py, cx, cy, r, g, n) -> torch.Tensor:
    """(n, H, W) bool: inside a triangle whose corners lie on the circle of radius r, spread around it."""
    start = _uniform(g, n, 0.0, 2 * math.pi)
    gaps = 2 * math.pi / 3 + _uniform(g, 2 * n, -0.5, 0.5).reshape(2, n)  # two gaps; the third closes the turn
    angles = torch.stack([start, start + gaps[0], start + gaps[0] + gaps[1]])  # (3, n), counter-clockwise
    corners_x = cx[None, :, 0, 0] + r[None, :, 0, 0] * angles.cos()  # (3, n)
    corners_y = cy[None, :, 0, 0] + r[None, :, 0, 0] * angles.sin()
    inside = torch.ones(px.shape[-2:], dtype=torch.bool).expand(n, -1, -1)
    for k in range(3):
        x0, y0 = corners_x[k][:, None, None], corners_y[k][:, None, None]
        x1, y1 = corners_x[(k + 1) % 3][:, None, None], corners_y[(k + 1) % 3][:, None, None]
        # a point is inside a counter-clockwise triangle when it lies left of every edge:
        # (x_1 - x_0)(p_y - y_0) - (y_1 - y_0)(p_x - x_0) \ge 0
        inside = inside & ((x1 - x0) * (py - y0) - (y1 - y0) * (px - x0) >= 0)
    return inside


DRAW = {"circle": _circle, "rectangle": _rectangle, "triangle": _triangle}


def shapes(n: int = 1000, size: int = 32, seed: int = 0, max_shapes: int = 3, noise: float = 0.08,
           texture: float = 0.05, kinds: tuple[str, ...] = KINDS) -> tuple[torch.Tensor, torch.Tensor]:
    """n scenes of size x size pixels: (image, mask), both (n, 1, size, size) float32.

    Shape radii are 10-30% of the side; each shape's grey level differs from the local
    background by 0.25-0.5, brighter or darker at random."""
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    if max_shapes < 1:
        raise ValueError(f"max_shapes must be at least 1, got {max_shapes}")
    unknown = set(kinds) - set(KINDS)
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds}")
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32) + 0.5  # pixel centres
    py, px = coords[None, :, None], coords[None, None, :]  # (1, H, 1), (1, 1, W)

    # background: a level, a linear gradient in a random direction, and a faint sinusoidal texture
    level = _uniform(g, n, 0.3, 0.7)[:, None, None]
    slope, direction = _uniform(g, n, 0.0, 0.3)[:, None, None], _uniform(g, n, 0.0, 2 * math.pi)[:, None, None]
    ramp = ((px - size / 2) * direction.cos() + (py - size / 2) * direction.sin()) / size
    freq, phase = _uniform(g, n, 0.5, 1.5)[:, None, None], _uniform(g, n, 0.0, 2 * math.pi)[:, None, None]
    image = level + slope * ramp + texture * torch.sin(freq * (px + 0.7 * py) + phase)  # (n, H, W)
    mask = torch.zeros(n, size, size, dtype=torch.bool)

    count = torch.randint(1, max_shapes + 1, (n,), generator=g)
    for slot in range(max_shapes):
        kind = torch.randint(0, len(kinds), (n,), generator=g)
        r = _uniform(g, n, 0.10 * size, 0.30 * size)[:, None, None]
        cx = _uniform(g, n, 0.2 * size, 0.8 * size)[:, None, None]
        cy = _uniform(g, n, 0.2 * size, 0.8 * size)[:, None, None]
        sign = torch.randint(0, 2, (n,), generator=g)[:, None, None] * 2 - 1
        contrast = _uniform(g, n, 0.25, 0.5)[:, None, None]
        inside = torch.zeros(n, size, size, dtype=torch.bool)
        for k, name in enumerate(kinds):  # every kind draws its parameters, so the stream never depends on kind
            inside |= DRAW[name](px, py, cx, cy, r, g, n) & (kind == k)[:, None, None]
        inside &= (slot < count)[:, None, None]
        image = torch.where(inside, level + sign * contrast, image)  # later shapes cover earlier ones
        mask |= inside

    image = image + noise * torch.randn(image.shape, generator=g)
    return image[:, None].clamp(0.0, 1.0), mask[:, None].float()


def shapes_split(n_train: int = 1000, n_test: int = 500, seed: int = 0, **kw) -> Split:
    """Train and test scenes drawn from different seeds (deepatlas.data.split_seeds);
    x is the image and y the mask, both (N, 1, size, size)."""
    train_seed, test_seed = split_seeds(seed)
    x_train, y_train = shapes(n_train, seed=train_seed, **kw)
    x_test, y_test = shapes(n_test, seed=test_seed, **kw)
    meta = {"source": "shapes", "origin": "generated by deepatlas.data.shapes", "seed": seed,
            "train_seed": train_seed, "test_seed": test_seed, "n_train": n_train, "n_test": n_test,
            "shape": tuple(x_train.shape[1:]), **kw}
    return Split(x_train, y_train, x_test, y_test, meta)
