"""Progressive GAN: minibatch std, fade-in at both ends, the growing schedule, training."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.generative.judge import to_judge
from deepatlas.zoo.generative.progan import (
    GrowthSchedule,
    ProGANDiscriminator,
    ProGANGenerator,
    direct_schedule,
    downsample,
    growing_schedule,
    minibatch_stddev,
    progan_objective,
    reals_at,
    train_progan,
    upsample,
)


@settings(max_examples=20, deadline=None)
@given(groups=st.integers(1, 3), group_size=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_minibatch_stddev_against_a_direct_computation(groups, group_size, seed):
    """Sample b's extra map is the mean over (c, h, w) of the std over the samples of its group {b mod M + kM}."""
    B = groups * group_size
    x = torch.randn(B, 3, 2, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out = minibatch_stddev(x, group_size)
    assert out.shape == (B, 4, 2, 2)
    torch.testing.assert_close(out[:, :3], x)
    for b in range(B):
        members = x[b % groups::groups]  # the group of sample b, `group_size` samples
        assert len(members) == group_size
        std = torch.sqrt(((members - members.mean(0)) ** 2).mean(0) + 1e-8)
        torch.testing.assert_close(out[b, 3], std.mean().expand(2, 2))


def test_minibatch_stddev_rejects_uneven_groups():
    with pytest.raises(ValueError, match="multiple"):
        minibatch_stddev(torch.randn(6, 2, 4, 4), 4)


def test_generator_fade_in_end_points():
    """alpha = 1: the new toRGB alone; alpha = 0: the old toRGB at the lower resolution, upsampled."""
    torch.manual_seed(0)
    G = ProGANGenerator(8, (8, 6, 4)).double()
    z = torch.randn(5, 8, dtype=torch.float64)
    for r in (8, 16):
        new = G(z, r, 1.0)
        old = upsample(G(z, r // 2, 1.0))
        assert new.shape == old.shape == (5, 1, r, r)
        torch.testing.assert_close(G(z, r, 0.0), old)
        torch.testing.assert_close(G(z, r, 0.3), 0.7 * old + 0.3 * new)
    assert G(z).shape == (5, 1, 16, 16)
    with pytest.raises(ValueError, match="resolution"):
        G(z, 32)


def test_discriminator_fade_in_end_points():
    """alpha = 0: D reads the 2x2-averaged image through the lower resolution's path; alpha = 1: the new path."""
    torch.manual_seed(0)
    D = ProGANDiscriminator((8, 6, 4)).double()
    x = torch.randn(8, 1, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(D(x, 0.0), D(downsample(x), 1.0))
    assert not torch.allclose(D(x, 1.0), D(x, 0.0))
    assert D(x).shape == (8,)
    with pytest.raises(ValueError, match="resolution"):
        D(torch.randn(4, 1, 12, 12))


def test_reals_are_faded_like_the_generator():
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(reals_at(x, 8, 1.0), downsample(x))
    torch.testing.assert_close(reals_at(x, 8, 0.0), upsample(downsample(downsample(x))))
    torch.testing.assert_close(reals_at(x, 16, 1.0), x)


def test_growth_schedule_resolutions_and_alpha():
    """4x4 for 2 steps, then 8x8 for 4 (alpha 0, 0.5, 1, 1), then 16x16 for 6 (alpha 0, 1/3, 2/3, 1, 1, 1)."""
    s = GrowthSchedule((4, 8, 16), (2, 4, 6))
    got = [s(t) for t in range(s.steps)]
    assert [r for r, _ in got] == [4, 4, 8, 8, 8, 8, 16, 16, 16, 16, 16, 16]
    assert [a for _, a in got] == pytest.approx([1, 1, 0, 0.5, 1, 1, 0, 1 / 3, 2 / 3, 1, 1, 1])
    with pytest.raises(ValueError, match="outside"):
        s(12)
    assert growing_schedule(100).stage_steps == (20, 30, 50)
    assert [direct_schedule(5)(t) for t in range(5)] == [(16, 1.0)] * 5
    with pytest.raises(ValueError):
        GrowthSchedule((4, 8), (3,))
    with pytest.raises(ValueError):
        growing_schedule(10, shares=(0.5, 0.6, 0.1))


def test_objective_adds_the_drift_term():
    """With lambda = 0 the critic loss is E[D(fake)] - E[D(real)] + eps_drift E[D(real)^2]."""
    D = lambda x: x.flatten(1).sum(1)  # noqa: E731
    real, fake = torch.full((4, 1, 2, 2), 0.5), torch.zeros(4, 1, 2, 2)
    loss = progan_objective(lam=0.0, eps_drift=0.1).d_loss(D, real, fake)
    assert loss.item() == pytest.approx(0 - 2.0 + 0.1 * 4.0)
    with pytest.raises(ValueError):
        progan_objective(eps_drift=-1)


def test_growing_trains_every_stage_and_the_average_follows(quiet_run):
    """A few steps through 4 -> 8 -> 16: finite losses, the new layers moved, the weight average lies between."""
    g = torch.Generator().manual_seed(0)
    G, D = ProGANGenerator(8, (8, 4, 4), generator=g), ProGANDiscriminator((8, 4, 4), generator=g)
    before = G.to_rgb[2].weight.detach().clone()
    x = torch.rand(64, 1, 16, 16) * 2 - 1
    G_avg, losses = train_progan(quiet_run, G, D, x, GrowthSchedule((4, 8, 16), (3, 4, 4)), batch_size=8,
                                 generator=g, ema_decay=0.5)
    assert len(losses) == 11 and all(math.isfinite(v) for v in losses)
    assert not torch.equal(G.to_rgb[2].weight, before)
    assert not torch.equal(G_avg.to_rgb[2].weight, G.to_rgb[2].weight)
    assert not any(p.requires_grad for p in G_avg.parameters())
    samples = to_judge(G_avg.sample(6, g))
    assert samples.shape == (6, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1


def test_to_judge_keeps_a_constant_image_and_clamps():
    x = torch.full((2, 1, 16, 16), 0.25)
    torch.testing.assert_close(to_judge(x), torch.full((2, 1, 28, 28), 0.25))
    x[0, 0, :8] = 3.0  # out of range: read as 1
    y = to_judge(x)
    assert y.shape == (2, 1, 28, 28) and y.max() == 1 and y.min().item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="images"):
        to_judge(torch.rand(2, 16, 16))
