"""The highway layer against its equation in float64; its gates carry or transform."""

import pytest
import torch
import torch.nn.functional as F

from deepatlas.zoo.vision.cnn_zoo import n_params
from deepatlas.zoo.vision.highway_network import HighwayLayer, HighwayMLP


def test_layer_matches_its_equation_in_float64():
    g = torch.Generator().manual_seed(0)
    layer = HighwayLayer(6).double()
    x = torch.randn(5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    h = F.relu(x @ layer.H.weight.T + layer.H.bias)
    t = 1 / (1 + torch.exp(-(x @ layer.T.weight.T + layer.T.bias)))
    ref = h * t + x * (1 - t)  # y = H(x) T(x) + x (1 - T(x))
    out = layer(x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    upstream = torch.randn(out.shape, generator=g, dtype=torch.float64)
    params = [x, *layer.parameters()]
    grads, grads_ref = torch.autograd.grad(out, params, upstream), torch.autograd.grad(ref, params, upstream)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_closed_gate_carries_and_open_gate_transforms():
    layer = HighwayLayer(4).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        layer.T.weight.zero_()
        layer.T.bias.fill_(-50.0)
        torch.testing.assert_close(layer(x), x)  # T = 0: y = x
        layer.T.bias.fill_(50.0)
        torch.testing.assert_close(layer(x), F.relu(layer.H(x)))  # T = 1: y = H(x)


def test_gate_bias_starts_negative_so_layers_mostly_carry():
    net = HighwayMLP(gate_bias=-2.0)
    assert all((layer.T.bias == -2.0).all() for layer in net.layers)


def test_shapes_and_parameter_count():
    net = HighwayMLP(784, 20, 3, 10)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert net(torch.randn(2, 784)).shape == (2, 10)
    # input layer, 3 highway layers of two 20x20 affine maps, classifier
    assert n_params(net) == 784 * 20 + 20 + 3 * 2 * (20 * 20 + 20) + 20 * 10 + 10


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth >= 0"):
        HighwayMLP(depth=-1)
    with pytest.raises(ValueError, match="sizes must be positive"):
        HighwayMLP(width=0)
