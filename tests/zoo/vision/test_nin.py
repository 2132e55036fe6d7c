"""Network in Network: 1x1 convolutions are per-pixel fully connected layers; the head is a global average."""

import pytest
import torch
from torch import nn

from deepatlas.nn.conv import count_params
from deepatlas.zoo.vision.nin import MLPConv, NiN, nin


def test_1x1_convolution_is_a_linear_layer_at_every_pixel():
    g = torch.Generator().manual_seed(0)
    conv, linear = nn.Conv2d(5, 3, 1).double(), nn.Linear(5, 3).double()
    with torch.no_grad():
        linear.weight.copy_(conv.weight[:, :, 0, 0])
        linear.bias.copy_(conv.bias)
    x = torch.randn(2, 5, 4, 6, generator=g, dtype=torch.float64)
    upstream = torch.randn(2, 3, 4, 6, generator=g, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = conv(xa), linear(xb.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, H, W, C) -> back to (B, C, H, W)
    torch.testing.assert_close(ya, yb, rtol=1e-14, atol=1e-14)
    (ga,), (gb,) = torch.autograd.grad(ya, xa, upstream), torch.autograd.grad(yb, xb, upstream)
    torch.testing.assert_close(ga, gb, rtol=1e-14, atol=1e-14)


def test_mlpconv_layout_and_parameter_count():
    block = MLPConv(3, 8, 5, hidden=6, depth=3)
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5), (1, 1), (1, 1)]
    assert count_params(block) == 6 * (3 * 25 + 1) + 6 * (6 + 1) + 8 * (6 + 1)
    assert isinstance(block[-1], nn.ReLU) and not isinstance(MLPConv(3, 8, 5, last_relu=False)[-1], nn.ReLU)


def test_scores_are_the_means_of_the_class_maps_and_there_is_no_fully_connected_layer():
    net = nin().eval()
    x = torch.randn(3, 1, 28, 28)
    maps = net.features(x)
    assert maps.shape == (3, 10, 6, 6)
    torch.testing.assert_close(net(x), maps.mean((2, 3)))
    assert not any(isinstance(m, nn.Linear) for m in net.modules())
    assert count_params(net) < 1_000_000


def test_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        MLPConv(3, 8, 3, depth=0)


def test_other_class_counts():
    assert NiN(in_channels=3, num_classes=7)(torch.randn(2, 3, 28, 28)).shape == (2, 7)
