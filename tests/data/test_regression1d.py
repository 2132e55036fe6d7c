"""The 1-D regression with a gap: deterministic, the gap empty of training points, the noise as stated."""

import pytest
import torch

from deepatlas.data.regression1d import gap_regression, true_function


def test_deterministic_from_the_seed():
    a, b, c = gap_regression(seed=3), gap_regression(seed=3), gap_regression(seed=4)
    for t, u in zip(a.tensors(), b.tensors()):
        assert torch.equal(t, u)
    assert not torch.equal(a.x_train, c.x_train)


def test_gap_and_ranges():
    data = gap_regression(n_train=500, n_test=2000, gap=0.5)
    assert data.x_train.shape == (500, 1) and data.y_train.shape == (500,) and data.x_test.shape == (2000, 1)
    assert (data.x_train.abs() >= 0.5).all() and (data.x_train.abs() <= 2).all()
    in_gap = data.meta["in_gap"]
    assert torch.equal(in_gap, data.x_test[:, 0].abs() < 0.5)
    assert 0.2 < in_gap.float().mean() < 0.3  # a quarter of [-2, 2]
    assert 0.4 < (data.x_train < 0).float().mean() < 0.6


def test_noise_level():
    data = gap_regression(n_train=20_000, n_test=10, noise=0.2)
    residual = data.y_train - true_function(data.x_train[:, 0])
    assert abs(residual.std().item() - 0.2) < 0.005 and abs(residual.mean().item()) < 0.005


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="gap"):
        gap_regression(gap=2.5)
    with pytest.raises(ValueError, match="n_train"):
        gap_regression(n_train=1)
    with pytest.raises(ValueError, match="noise"):
        gap_regression(noise=-0.1)
