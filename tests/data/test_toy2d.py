"""2-D toy densities: shapes, labels, determinism, and that each has its intended shape."""

import math

import pytest
import torch

from deepatlas.data import toy2d

LABELLED = ["moons", "circles", "spirals"]
DENSITIES = ["eight_gaussians", "checkerboard", "swiss_roll"]


@pytest.mark.parametrize("name", LABELLED)
def test_labelled_sets(name):
    x, y = toy2d.sample_toy(name, 101, seed=0)
    assert x.shape == (101, 2) and x.dtype == torch.float32
    assert y.shape == (101,) and y.dtype == torch.int64
    assert y.bincount().tolist() == [50, 51]
    assert len(set(y[:20].tolist())) == 2, "labels should come shuffled"


@pytest.mark.parametrize("name", DENSITIES)
def test_densities(name):
    x = toy2d.sample_toy(name, 100, seed=0)
    assert x.shape == (100, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()


@pytest.mark.parametrize("name", LABELLED + DENSITIES)
def test_deterministic_by_seed_and_leaves_global_rng_alone(name):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = (toy2d.sample_toy(name, 50, seed=s) for s in (1, 1, 2))
    assert torch.rand(1) == before, "the global torch RNG must not be used"
    first = lambda out: out[0] if isinstance(out, tuple) else out  # noqa: E731
    assert torch.equal(first(a), first(b)) and not torch.equal(first(a), first(c))


def test_circles_radii():
    x, y = toy2d.circles(400, seed=0, noise=0.0, factor=0.5)
    radius = x.norm(dim=1)
    assert torch.allclose(radius[y == 0], torch.tensor(1.0))
    assert torch.allclose(radius[y == 1], torch.tensor(0.5))


def test_eight_gaussians_cover_all_modes():
    modes = toy2d.eight_gaussians_modes()
    assert modes.shape == (8, 2) and torch.allclose(modes.norm(dim=1), torch.tensor(2.0))
    x = toy2d.eight_gaussians(800, seed=0)
    nearest = torch.cdist(x, modes).argmin(dim=1)
    assert nearest.bincount(minlength=8).min() > 60


def test_checkerboard_only_dark_cells():
    x = toy2d.checkerboard(1000, seed=0, scale=1.0)
    assert x.min() >= -2 and x.max() <= 2
    cells = (x.floor() + 2).long()
    assert ((cells[:, 0] + cells[:, 1]) % 2 == 0).all()


def test_swiss_roll_radius():
    x = toy2d.swiss_roll(500, seed=0, noise=0.0)
    radius = x.norm(dim=1) * 5
    assert radius.min() >= 1.5 * math.pi - 1e-4 and radius.max() <= 4.5 * math.pi + 1e-4


def test_toy_split():
    split = toy2d.toy_split("moons", 80, 20, seed=3)
    assert split.x_train.shape == (80, 2) and split.y_test.shape == (20,)
    assert not torch.equal(split.x_train[:20], split.x_test)
    density = toy2d.toy_split("checkerboard", 30, 10, seed=3)
    assert density.y_train is None and density.x_test.shape == (10, 2)
    assert torch.equal(toy2d.toy_split("moons", 80, 20, seed=3).x_test, split.x_test)


def test_unknown_toy():
    with pytest.raises(ValueError, match="moons"):
        toy2d.sample_toy("moon", 10)


def test_gaussian_fit_matches_mean_and_covariance_in_the_input_dtype():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4000, 2, generator=g) @ torch.tensor([[2.0, 0.0], [0.5, 0.3]]) + torch.tensor([1.0, -2.0])
    y = toy2d.gaussian_fit(x, 200_000, g)
    assert y.shape == (200_000, 2) and y.dtype == torch.float32
    torch.testing.assert_close(y.mean(0), x.mean(0), atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(y.T), torch.cov(x.T), atol=0.03, rtol=0)
