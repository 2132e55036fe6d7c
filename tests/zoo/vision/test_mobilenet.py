"""Depthwise-separable convolution: a factorised standard convolution, at 1/N + 1/k^2 of its cost."""

import pytest
import torch
import torch.nn.functional as F

from deepatlas.zoo.vision.cnn_zoo import conv_weights, multiply_adds, n_params
from deepatlas.zoo.vision.mobilenet import DepthwiseSeparableConv, MobileNet, standard_conv


def test_depthwise_convolution_filters_each_channel_alone():
    g = torch.Generator().manual_seed(0)
    layer = DepthwiseSeparableConv(5, 7).double()
    x = torch.randn(2, 5, 6, 6, generator=g, dtype=torch.float64)
    w = layer.depthwise.weight  # (M, 1, k, k)
    per_channel = torch.cat([F.conv2d(x[:, m:m + 1], w[m:m + 1], padding=1) for m in range(5)], 1)
    torch.testing.assert_close(layer.depthwise(x), per_channel, rtol=1e-12, atol=1e-12)


def test_depthwise_then_pointwise_is_a_standard_conv_with_a_factorised_kernel():
    """Without BN and ReLU between them, the two steps are one convolution with K[n, m] = P[n, m] D[m]."""
    g = torch.Generator().manual_seed(1)
    layer = DepthwiseSeparableConv(4, 6, stride=2).double()
    x = torch.randn(3, 4, 9, 9, generator=g, dtype=torch.float64, requires_grad=True)
    d, p = layer.depthwise.weight, layer.pointwise.weight  # (M, 1, k, k), (N, M, 1, 1)
    two_steps = layer.pointwise(layer.depthwise(x))
    kernel = p[:, :, 0, 0, None, None] * d[None, :, 0]  # (N, M, k, k)
    one_conv = F.conv2d(x, kernel, stride=2, padding=1)
    torch.testing.assert_close(two_steps, one_conv, rtol=1e-12, atol=1e-12)
    upstream = torch.randn(one_conv.shape, generator=g, dtype=torch.float64)
    params = [x, d, p]
    grads = torch.autograd.grad(two_steps, params, upstream)
    grads_ref = torch.autograd.grad(one_conv, params, upstream)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_layer_runs_bn_and_relu_after_each_step():
    layer = DepthwiseSeparableConv(3, 4)
    x = torch.randn(2, 3, 5, 5)
    ref = F.relu(layer.bn2(layer.pointwise(F.relu(layer.bn1(layer.depthwise(x))))))
    torch.testing.assert_close(layer(x), ref)


@pytest.mark.parametrize("m,n,k", [(32, 64, 3), (512, 512, 3), (16, 8, 5)])
def test_cost_ratio_is_one_over_n_plus_one_over_k_squared(m, n, k):
    x = torch.randn(1, m, 6, 6)
    sep, std = DepthwiseSeparableConv(m, n, k=k), standard_conv(m, n, k)
    # (k^2 M + M N) / (k^2 M N) = 1/N + 1/k^2
    assert conv_weights(sep) == k * k * m + m * n and conv_weights(std) == k * k * m * n
    assert multiply_adds(sep, x) / multiply_adds(std, x) == pytest.approx(1 / n + 1 / k**2, rel=1e-12)


def test_width_multiplier_shrinks_the_pointwise_weights_quadratically():
    full, half = MobileNet(), MobileNet(width_mult=0.5)
    pw = [conv_weights(b.pointwise) for b in full.body]
    pw_half = [conv_weights(b.pointwise) for b in half.body]
    assert pw_half == [w // 4 for w in pw]  # alpha^2 M N
    assert n_params(half) < n_params(full) / 3
    assert half(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_bad_arguments():
    with pytest.raises(ValueError, match="width_mult"):
        MobileNet(width_mult=0)
