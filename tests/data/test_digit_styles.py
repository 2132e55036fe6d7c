"""Two-style digits: deterministic, unpaired training halves, paired test images, the styles as described."""

import pytest
import torch

from deepatlas.data.digit_styles import digit_styles, render, shear, thicken


@pytest.fixture(scope="module")
def slant():
    return digit_styles("slant", amount=0.4, seed=0)


def test_shapes_ranges_and_determinism(slant):
    again = digit_styles("slant", amount=0.4, seed=0)
    assert slant.a_train.shape == (2000, 1, 28, 28) and slant.b_train.shape == (2000, 1, 28, 28)
    assert slant.a_test.shape == slant.b_test.shape == (1000, 1, 28, 28) and slant.y_test.shape == (1000,)
    for x in (slant.a_train, slant.b_train, slant.b_test):
        assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(slant.b_train, again.b_train) and torch.equal(slant.y_a_train, again.y_a_train)
    other = digit_styles("slant", amount=0.4, seed=1)
    assert not torch.equal(slant.y_a_train, other.y_a_train)


def _fingerprints(x: torch.Tensor) -> torch.Tensor:
    """One float64 number per image (a fixed random projection): equal images, equal fingerprints."""
    w = torch.randn(784, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return x.flatten(1).double() @ w  # (N,)


def test_training_halves_are_unpaired(slant):
    """The A half and the B half come from disjoint training digits that together make up the whole set."""
    from deepatlas.data.real import mnist_subset

    x = mnist_subset(flatten=False).x_train  # (4000, 1, 28, 28)
    in_a = torch.isin(_fingerprints(x), _fingerprints(slant.a_train))
    assert in_a.sum() == 2000
    assert torch.equal(render(x[~in_a], "slant", 0.4).sum(), slant.b_train.sum())  # the rest, slanted
    assert not torch.isin(_fingerprints(render(x[in_a], "slant", 0.4)), _fingerprints(slant.b_train)).any()


def test_test_images_are_paired(slant):
    assert torch.equal(slant.b_test, render(slant.a_test, "slant", 0.4))


def test_shear_moves_rows_by_the_closed_form():
    """A vertical line at column c ends up, in row r, near column c - amount * v * W / 2 (v the row's height)."""
    x = torch.zeros(1, 1, 28, 28)
    x[..., :, 14] = 1.0
    y = shear(x, 0.4)[0, 0]  # (28, 28)
    for r in (2, 8, 20, 26):
        v = (2 * r + 1) / 28 - 1  # pixel centre in [-1, 1], top = -1
        centre = (y[r] * torch.arange(28.0)).sum() / y[r].sum()
        assert centre.item() == pytest.approx(14 - 0.4 * v * 14, abs=1e-4)
    assert shear(x, 0.4)[..., 0, :].argmax() > 14  # the top leans right: italic


def test_thicken_is_a_dilation():
    x = torch.zeros(1, 1, 5, 5)
    x[..., 2, 2] = 0.7
    expected = torch.zeros(1, 1, 5, 5)
    expected[..., 1:4, 1:4] = 0.7
    assert torch.equal(thicken(x), expected)
    stroke = digit_styles("stroke")
    assert (stroke.b_test >= stroke.a_test).all() and stroke.b_test.sum() > 1.5 * stroke.a_test.sum()


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown style pair"):
        digit_styles("colour")
    with pytest.raises(ValueError, match="shear"):
        digit_styles("slant", amount=2.0)
