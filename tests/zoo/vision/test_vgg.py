"""VGG: receptive fields of stacked 3x3 layers, their parameter counts, VGG-16's 138 million."""

import pytest
import torch
from torch import nn

from deepatlas.nn.conv import count_params
from deepatlas.zoo.vision.vgg import VGG, VGG16_PARAMS, VGG16_STAGES, conv_stack, receptive_field, vgg_small


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_n_stacked_3x3_layers_see_2n_plus_1_pixels(n):
    assert receptive_field(conv_stack(2, n), 2) == 2 * n + 1


def test_one_7x7_layer_sees_7_pixels():
    assert receptive_field(conv_stack(2, 1, k=7), 2) == 7


@pytest.mark.parametrize("c", [1, 8, 64])
def test_three_3x3_layers_have_27c2_weights_against_49c2(c):
    assert count_params(conv_stack(c, 3)) == 27 * c * c
    assert count_params(conv_stack(c, 1, k=7)) == 49 * c * c


def test_vgg16_has_13_conv_and_3_fc_layers_and_138m_parameters():
    with torch.device("meta"):
        net = VGG(3, 1000, VGG16_STAGES, image_size=224, fc=(4096, 4096))
        assert net(torch.empty(1, 3, 224, 224)).shape == (1, 1000)
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 13
    assert sum(isinstance(m, nn.Linear) for m in net.modules()) == 3
    assert count_params(net) == VGG16_PARAMS == 138_357_544


def test_small_variant_shapes_and_size():
    net = vgg_small()
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert count_params(net) < 1_000_000
    assert vgg_small(batch_norm=True)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_too_many_poolings_is_a_clear_error():
    with pytest.raises(ValueError, match="to nothing"):
        VGG(stages=((4,), (4,), (4,), (4,), (4,)), image_size=28)
