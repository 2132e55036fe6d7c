"""Glow: actnorm's data-dependent init, the 1x1 convolution (plain and LU) on vectors and images,
each layer's inverse and log-det against autograd Jacobians in float64, and the conv against conv2d."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.generative.glow import ActNorm, InvertibleConv1x1, InvertibleConv1x1LU, glow_flow
from tests.nn.test_flows import _randomise, check_layer

SHAPES = st.sampled_from([(3,), (2,), (5,), (2, 3, 3), (3, 2, 4)])  # vectors (D,) and images (C, H, W)


@settings(max_examples=12, deadline=None)
@given(shape=SHAPES, seed=st.integers(0, 10_000), kind=st.sampled_from([InvertibleConv1x1, InvertibleConv1x1LU]))
def test_conv1x1_inverse_and_log_det(shape, seed, kind):
    g = torch.Generator().manual_seed(seed)
    layer = kind(shape[0], generator=g).double()
    _randomise(layer, g, 0.3)
    check_layer(layer, torch.randn(2, *shape, generator=g, dtype=torch.float64))


@settings(max_examples=8, deadline=None)
@given(shape=SHAPES, seed=st.integers(0, 10_000))
def test_actnorm_inverse_log_det_and_init(shape, seed):
    g = torch.Generator().manual_seed(seed)
    layer = ActNorm(shape[0]).double()
    batch = 3 + 2 * torch.randn(64, *shape, generator=g, dtype=torch.float64)
    y, _ = layer(batch)  # the first batch sets s and b
    per_channel = y.movedim(1, -1).reshape(-1, shape[0]) if len(shape) > 1 else y
    torch.testing.assert_close(per_channel.mean(0), torch.zeros(shape[0], dtype=torch.float64))
    torch.testing.assert_close(per_channel.std(0, unbiased=False), torch.ones(shape[0], dtype=torch.float64))
    check_layer(layer, torch.randn(2, *shape, generator=g, dtype=torch.float64))


def test_conv1x1_equals_conv2d_and_lu_equals_plain_matrix():
    g = torch.Generator().manual_seed(0)
    layer = InvertibleConv1x1LU(4, generator=g).double()
    _randomise(layer, g, 0.3)
    x = torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64)
    w = layer.w()
    torch.testing.assert_close(layer(x)[0], F.conv2d(x, w[:, :, None, None]))
    torch.testing.assert_close(layer.log_abs_det(), torch.linalg.slogdet(w).logabsdet)


@pytest.mark.parametrize("mixing", ["reverse", "shuffle", "conv1x1", "conv1x1_lu"])
def test_glow_flow_is_invertible_with_exact_log_det(mixing):
    g = torch.Generator().manual_seed(1)
    flow = glow_flow(4, 2, hidden=8, mixing=mixing, generator=g).double()
    flow(torch.randn(32, 4, generator=g, dtype=torch.float64))  # actnorm's init
    _randomise(flow, g, 0.2)
    check_layer(flow, torch.randn(3, 4, generator=g, dtype=torch.float64))


def test_glow_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mixing"):
        glow_flow(2, mixing="transpose")
    with pytest.raises(ValueError, match="2 dimensions"):
        glow_flow(1)
