"""The plain CNN: shapes, parameter count, downsampling variants, the learning-rate schedule."""

import math

import pytest
import torch

from deepatlas.nn.conv import count_params
from deepatlas.zoo.vision.cnn import CNN, cnn_small, lr_at


def test_default_shapes_and_parameter_count():
    net = cnn_small()
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    # conv 5x5 1->16, conv 5x5 16->32, linear 32*7*7 -> 10
    assert count_params(net) == 16 * (25 + 1) + 32 * (16 * 25 + 1) + 10 * (32 * 7 * 7 + 1) == 28_938


@pytest.mark.parametrize("pool, side", [("max", 7), ("avg", 7), ("subsample", 7), ("none", 28)])
def test_every_downsampler_gives_a_classifier_of_the_right_size(pool, side):
    net = CNN(channels=(4, 8), pool=pool)
    assert net.classifier.in_features == 8 * side * side
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_subsampling_keeps_every_other_pixel_of_the_full_resolution_maps():
    torch.manual_seed(0)
    sub = CNN(channels=(4,), pool="subsample")
    full = CNN(channels=(4,), pool="none")
    full.features.load_state_dict(sub.features.state_dict())
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(sub.features(x), full.features(x)[..., ::2, ::2])


def test_max_pooled_maps_are_the_maxima_of_2x2_blocks():
    torch.manual_seed(0)
    pooled = CNN(channels=(4,), pool="max")
    full = CNN(channels=(4,), pool="none")
    full.features.load_state_dict(pooled.features.state_dict())
    x = torch.randn(2, 1, 28, 28)
    blocks = full.features(x).unfold(2, 2, 2).unfold(3, 2, 2)  # (B, C, 14, 14, 2, 2)
    torch.testing.assert_close(pooled.features(x), blocks.amax((-2, -1)))


def test_learning_rate_warms_up_then_anneals_to_zero():
    assert lr_at(0, 100, 1.0, warmup=10) == pytest.approx(0.1 * 0.5 * (1 + math.cos(0)))
    assert lr_at(9, 100, 1.0, warmup=10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 100)))
    assert lr_at(50, 100, 1.0) == pytest.approx(0.5)
    assert lr_at(99, 100, 1.0) < 1e-3


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown pool"):
        CNN(pool="median")
    with pytest.raises(ValueError, match="unknown activation"):
        CNN(activation="swish")
    with pytest.raises(ValueError, match="odd"):
        CNN(kernel_size=4)
