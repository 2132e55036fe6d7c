"""Convolution and pooling written out against F.conv2d, F.max_pool2d and F.avg_pool2d in float64."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deepatlas.nn.conv import (
    AvgPool2d, Conv2d, MaxPool2d, avg_pool2d, conv2d, conv_bn_act, count_params, global_avg_pool, max_pool2d,
    output_size, translate,
)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def value_and_grads(fn, *inputs, seed=99):
    """fn(*inputs), and the gradients of sum(upstream * fn(*inputs)) with respect to every input."""
    inputs = [t.clone().requires_grad_(True) for t in inputs]
    y = fn(*inputs)
    return y.detach(), torch.autograd.grad(y, inputs, randn(*y.shape, seed=seed))


def assert_same(mine, ref, *inputs):
    y, grads = value_and_grads(mine, *inputs)
    y_ref, grads_ref = value_and_grads(ref, *inputs)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 3]), c_in_per=st.integers(1, 3), c_out_per=st.integers(1, 3),
    kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
    ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 2), dw=st.integers(1, 2),
    h=st.integers(7, 12), w=st.integers(7, 12), bias=st.booleans(), seed=st.integers(0, 1000),
)
def test_conv2d_matches_torch_values_and_gradients(groups, c_in_per, c_out_per, kh, kw, sh, sw, ph, pw, dh, dw,
                                                   h, w, bias, seed):
    x = randn(2, groups * c_in_per, h, w, seed=seed)
    weight = randn(groups * c_out_per, c_in_per, kh, kw, seed=seed + 1)
    inputs = [x, weight] + ([randn(groups * c_out_per, seed=seed + 2)] if bias else [])
    kw_args = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
    assert_same(lambda x, wt, *b: conv2d(x, wt, *b, **kw_args), lambda x, wt, *b: F.conv2d(x, wt, *b, **kw_args),
                *inputs)


def test_depthwise_and_pointwise_convolutions_match_torch():
    x = randn(3, 8, 10, 10)
    assert_same(lambda x, w: conv2d(x, w, padding=1, groups=8), lambda x, w: F.conv2d(x, w, padding=1, groups=8),
                x, randn(8, 1, 3, 3, seed=1))  # depthwise: one filter per channel
    assert_same(conv2d, F.conv2d, x, randn(5, 8, 1, 1, seed=2))  # 1x1: a linear map at every pixel


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), h=st.integers(5, 11), w=st.integers(5, 11),
       seed=st.integers(0, 1000))
def test_pooling_matches_torch_values_and_gradients(k, s, p, h, w, seed):
    p = min(p, k // 2)
    x = randn(2, 3, h, w, seed=seed)
    assert_same(lambda x: max_pool2d(x, k, s, p), lambda x: F.max_pool2d(x, k, s, p), x)
    for include in (True, False):
        assert_same(lambda x: avg_pool2d(x, k, s, p, count_include_pad=include),
                    lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=include), x)


def test_default_stride_is_the_kernel_size_and_modules_match_functions():
    x = randn(2, 3, 9, 9)
    assert_same(MaxPool2d(3), nn.MaxPool2d(3), x)
    assert_same(AvgPool2d(2, padding=1), nn.AvgPool2d(2, padding=1), x)
    torch.testing.assert_close(global_avg_pool(x), F.adaptive_avg_pool2d(x, 1).flatten(1), rtol=1e-14, atol=1e-14)


def test_dilated_max_pool_matches_torch():
    x = randn(2, 3, 11, 11)
    assert_same(lambda x: max_pool2d(x, 3, 1, 1, dilation=2), lambda x: F.max_pool2d(x, 3, 1, 1, dilation=2), x)


def test_conv2d_module_matches_nn_conv2d_and_draws_the_same_init():
    torch.manual_seed(5)
    mine = Conv2d(4, 6, (3, 5), stride=2, padding=(1, 2), dilation=1, groups=2).double()
    torch.manual_seed(5)
    ref = nn.Conv2d(4, 6, (3, 5), stride=2, padding=(1, 2), dilation=1, groups=2).double()
    torch.testing.assert_close(mine.weight, ref.weight, rtol=0, atol=0)
    torch.testing.assert_close(mine.bias, ref.bias, rtol=0, atol=0)
    x = randn(2, 4, 9, 10)
    y, (gx,) = value_and_grads(mine, x)
    y_ref, (gx_ref,) = value_and_grads(ref, x)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-12, atol=1e-12)
    upstream = randn(*y.shape, seed=99)
    mine(x).mul(upstream).sum().backward()
    ref(x).mul(upstream).sum().backward()
    for a, b in ((mine.weight, ref.weight), (mine.bias, ref.bias)):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


def test_conv2d_gradcheck():
    x, w, b = randn(1, 2, 5, 5).requires_grad_(), randn(3, 2, 3, 3, seed=1).requires_grad_(), randn(3, seed=2)
    assert torch.autograd.gradcheck(lambda x, w: conv2d(x, w, b, stride=2, padding=1), (x, w), fast_mode=True)


@pytest.mark.parametrize("n, k, s, p, d", [(28, 5, 1, 2, 1), (227, 11, 4, 0, 1), (13, 3, 2, 0, 1), (10, 3, 1, 2, 2)])
def test_output_size_formula(n, k, s, p, d):
    assert output_size(n, k, s, p, d) == F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s,
                                                  padding=p, dilation=d).shape[-1]


def test_parameter_count_formula():
    layer = Conv2d(6, 16, 5)
    assert count_params(layer) == 16 * (6 * 5 * 5 + 1)
    assert count_params(Conv2d(8, 12, 3, groups=4, bias=False)) == 12 * (8 // 4) * 9


def test_translate_moves_pixels_and_fills_zeros():
    x = torch.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    y = translate(x, 1, -2)
    assert torch.equal(y[0, 0, 1:, :2], x[0, 0, :3, 2:])
    assert y[0, 0, 0].abs().sum() == 0 and y[0, 0, :, 2:].abs().sum() == 0
    assert torch.equal(translate(translate(x, 0, 3), 0, -3)[..., :1], x[..., :1])
    assert translate(x, 4, 0).abs().sum() == 0


def test_conv_bn_act_keeps_size_with_stride_one_and_halves_it_with_stride_two():
    x = torch.randn(2, 3, 16, 16)
    assert conv_bn_act(3, 8, 3)(x).shape == (2, 8, 16, 16)
    assert conv_bn_act(3, 8, 5, stride=2, act="silu")(x).shape == (2, 8, 8, 8)
    assert count_params(conv_bn_act(3, 8, 3)) == 8 * 3 * 9 + 2 * 8  # no conv bias; BatchNorm's gain and shift


def test_clear_errors():
    x = torch.randn(1, 4, 6, 6)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        conv2d(x, torch.randn(6, 1, 3, 3), groups=3)
    with pytest.raises(ValueError, match="expects 2 input channels"):
        conv2d(x, torch.randn(6, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match="does not fit"):
        conv2d(x, torch.randn(2, 4, 7, 7))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        max_pool2d(torch.randn(4, 6, 6), 2)
    with pytest.raises(ValueError, match="at most half"):
        avg_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="stride must be"):
        Conv2d(4, 4, 3, stride=0)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        Conv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="unknown activation"):
        conv_bn_act(3, 8, act="swish")
