"""The convolution labs' helpers: a convolution is a sparse, weight-tied dense layer; counting formulas."""

import pytest
import torch
from torch import nn

from deepatlas.nn.conv import Conv2d, count_params, output_size
from deepatlas.zoo.vision.convolution import conv_params_formula, dense_params_formula, dense_twin
from deepatlas.zoo.vision.pooling import relative_change


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 0)])
def test_dense_twin_computes_the_convolution(stride, padding):
    g = torch.Generator().manual_seed(0)
    conv = Conv2d(2, 3, 3, stride=stride, padding=padding, generator=g).double()
    dense = dense_twin(conv, 2, 7)
    x = torch.randn(4, 2, 7, 7, generator=g, dtype=torch.float64)
    torch.testing.assert_close(dense(x.flatten(1)), conv(x).flatten(1), rtol=1e-13, atol=1e-13)
    w = dense.weight
    assert torch.unique(w[w != 0]).numel() == conv.weight.numel()  # every non-zero is a tied kernel weight


@pytest.mark.parametrize("c_in, c_out, side, k, stride, padding", [(1, 32, 28, 3, 1, 1), (3, 96, 227, 11, 4, 0)])
def test_counting_formulas_match_built_layers(c_in, c_out, side, k, stride, padding):
    side_out = output_size(side, k, stride, padding)
    with torch.device("meta"):
        conv, dense = Conv2d(c_in, c_out, k, stride, padding), nn.Linear(c_in * side**2, c_out * side_out**2)
    assert count_params(conv) == conv_params_formula(c_in, c_out, k)
    assert count_params(dense) == dense_params_formula(c_in, c_out, side, side_out)


def test_relative_change_is_zero_for_a_shift_invariant_map_and_positive_otherwise():
    x = torch.zeros(3, 1, 12, 12)
    x[:, :, 4:8, 4:8] = torch.rand(3, 1, 4, 4)
    assert relative_change(lambda t: t.sum((-2, -1)), x, 2) < 1e-6
    assert relative_change(lambda t: t, x, 1) > 0.1
