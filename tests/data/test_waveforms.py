"""The generated waveform family: deterministic, bounded, and the wave it claims to be."""

import pytest
import torch

from deepatlas.data.waveforms import PERIOD, SHAPES, periodic_shape, sample_waveforms, waveform_split


def test_same_seed_same_waves_and_global_rng_untouched():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a, b = sample_waveforms(8, 64, 3), sample_waveforms(8, 64, 3)
    assert torch.equal(a.x, b.x) and torch.equal(a.shape, b.shape)
    assert torch.equal(torch.rand(1), before)
    assert not torch.equal(a.x, sample_waveforms(8, 64, 4).x)


def test_range_and_parameters():
    w = sample_waveforms(200, 128, 0)
    assert w.x.shape == (200, 128) and w.x.abs().max() <= 1.0
    assert set(w.shape.tolist()) == set(range(len(SHAPES)))
    assert PERIOD[0] <= w.period.min() and w.period.max() <= PERIOD[1]


def test_shapes_closed_forms():
    u = torch.tensor([[0.0, 0.25, 0.5, 0.75]])
    expect = {"sine": [0, 1, 0, -1], "square": [1, 1, -1, -1], "sawtooth": [-1, -0.5, 0, 0.5],
              "triangle": [-1, 0, 1, 0]}
    for i, name in enumerate(SHAPES):
        got = periodic_shape(u, torch.tensor([i]))[0]
        assert torch.allclose(got, torch.tensor(expect[name], dtype=torch.float32), atol=1e-6), name


def test_ar_noise_has_the_stated_autocorrelation():
    w0 = sample_waveforms(400, 300, 5, noise=0.0)
    w = sample_waveforms(400, 300, 5, noise=0.01, rho=0.8)
    n = (w.x - w0.x)[:, 50:250]  # no clipping at this noise level except at +-1
    n = n[(w0.x.abs() < 0.95).all(1)]
    lag1 = (n[:, 1:] * n[:, :-1]).mean() / n.square().mean()
    assert abs(lag1 - 0.8) < 0.05
    assert abs(n.std() - 0.01 / (1 - 0.64) ** 0.5) < 0.002


def test_split_and_errors():
    s = waveform_split(10, 4, 32, seed=2)
    assert s.x_train.shape == (10, 32) and s.x_test.shape == (4, 32) and s.y_train.shape == (10,)
    assert not torch.equal(s.x_train[:4], s.x_test)
    with pytest.raises(ValueError, match="length"):
        sample_waveforms(3, 1)
    with pytest.raises(ValueError, match="rho"):
        sample_waveforms(3, 10, rho=1.0)
