"""Sinusoid tasks: ranges, the wave itself, determinism, splits."""

import math

import pytest
import torch

from deepatlas.data.sinusoid import sample_tasks, sinusoid_tasks


def test_ranges_and_wave():
    t = sample_tasks(200, 30, 0)
    assert t.x.shape == t.y.shape == (200, 30, 1)
    assert 0.1 <= t.amplitude.min() and t.amplitude.max() <= 5.0
    assert 0 <= t.phase.min() and t.phase.max() <= math.pi
    assert -5 <= t.x.min() and t.x.max() <= 5
    torch.testing.assert_close(t.y, t.amplitude[:, None, None] * torch.sin(t.x - t.phase[:, None, None]))
    assert (t.y.abs().amax((1, 2)) <= t.amplitude + 1e-6).all()


def test_deterministic_and_global_rng_untouched():
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    a, b, c = sinusoid_tasks(10, 5, seed=1), sinusoid_tasks(10, 5, seed=1), sinusoid_tasks(10, 5, seed=2)
    assert torch.rand(1) == before
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)


def test_split():
    x_s, y_s, x_q, y_q = sample_tasks(3, 12, 0).split(5)
    assert x_s.shape == (3, 5, 1) and y_q.shape == (3, 7, 1)
    with pytest.raises(ValueError, match="support size"):
        sample_tasks(3, 12, 0).split(12)
    with pytest.raises(ValueError):
        sample_tasks(0, 12, 0)
