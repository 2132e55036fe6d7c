"""Generated shape scenes: shapes, ranges, determinism, geometry, and the train/test split."""

import math

import pytest
import torch

from deepatlas.data import split_seeds
from deepatlas.data import shapes as sh


def test_shapes_dtypes_and_ranges():
    x, m = sh.shapes(50, size=24, seed=0)
    assert x.shape == m.shape == (50, 1, 24, 24)
    assert x.dtype == m.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    covered = m.mean((1, 2, 3))
    assert (covered > 0).all(), "every scene holds at least one shape"
    assert 0.05 < covered.mean() < 0.5


def test_deterministic_by_seed_and_leaves_global_rng_alone():
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    a, b, c = (sh.shapes(20, seed=s) for s in (3, 3, 4))
    assert torch.rand(1) == before, "the global torch RNG must not be used"
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_without_noise_each_shape_has_one_grey_level_apart_from_the_background():
    x, m = sh.shapes(40, size=32, seed=1, max_shapes=1, noise=0.0, texture=0.0)
    for image, mask in zip(x[:, 0], m[:, 0].bool()):
        inside, outside = image[mask], image[~mask]
        assert inside.max() - inside.min() < 1e-6, "a single shape is filled with one grey level"
        # the shape's grey level differs from the background level by >= 0.25 (clamping to [0, 1] keeps
        # more than that), and the background's gradient moves it by < 0.3 / sqrt(2)
        assert (inside[0] - outside).abs().min() > 0.25 - 0.3 / math.sqrt(2)


@pytest.mark.parametrize("kind", sh.KINDS)
def test_each_kind_lies_within_its_circle_and_has_area(kind):
    n, size = 200, 48
    g = torch.Generator().manual_seed(0)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    py, px = coords[None, :, None], coords[None, None, :]
    cx = torch.full((n, 1, 1), 24.0)
    cy = torch.full((n, 1, 1), 24.0)
    r = torch.full((n, 1, 1), 10.0)
    inside = sh.DRAW[kind](px, py, cx, cy, r, g, n)  # (n, H, W)
    dist = ((px - 24).square() + (py - 24).square()).sqrt()
    # a rectangle of half-sides up to r reaches r sqrt(2); a triangle's corners lie on the circle
    reach = {"circle": 10.0, "rectangle": 10.0 * math.sqrt(2), "triangle": 10.0}[kind]
    assert not (inside & (dist > reach + 1e-4)).any()
    area = inside.sum((1, 2)).float()
    disc = math.pi * 100
    low, high = {"circle": (0.95, 1.05), "rectangle": (0.3, 1.3), "triangle": (0.2, 0.45)}[kind]
    assert (area > low * disc).all() and (area < high * disc).all()


def test_kinds_subset_and_bad_arguments():
    x, m = sh.shapes(10, size=16, seed=0, kinds=("circle",))
    assert m.shape == (10, 1, 16, 16)
    with pytest.raises(ValueError, match="kinds"):
        sh.shapes(4, kinds=("hexagon",))
    with pytest.raises(ValueError, match="size"):
        sh.shapes(4, size=4)
    with pytest.raises(ValueError, match="max_shapes"):
        sh.shapes(4, max_shapes=0)


def test_split_uses_different_seeds():
    split = sh.shapes_split(30, 20, seed=5, size=16)
    train_seed, test_seed = split_seeds(5)
    assert split.meta["train_seed"] == train_seed and split.meta["test_seed"] == test_seed
    assert split.x_train.shape == (30, 1, 16, 16) and split.y_test.shape == (20, 1, 16, 16)
    assert torch.equal(split.x_train, sh.shapes(30, size=16, seed=train_seed)[0])
    assert torch.equal(split.y_test, sh.shapes(20, size=16, seed=test_seed)[1])
    assert not torch.equal(split.x_train[:20], split.x_test)
