"""Normalisation layers against torch.nn in float64: outputs, gradients, running statistics, identities."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deepatlas.nn.norms import BatchNorm, GroupNorm, InstanceNorm, LayerNorm

def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def copy_affine(mine: nn.Module, ref: nn.Module) -> None:
    """Random gain and bias, the same in both, so that the affine gradients are not trivial."""
    with torch.no_grad():
        for name in ("weight", "bias"):
            if getattr(ref, name, None) is not None:
                value = randn(*getattr(ref, name).shape, seed=7 if name == "weight" else 8)
                getattr(ref, name).copy_(value)
                getattr(mine, name).copy_(value)


def step(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor):
    """Output, input gradient and parameter gradients for loss = sum(upstream * module(x))."""
    x = x.clone().requires_grad_(True)
    y = module(x)
    params = [p for p in (getattr(module, "weight", None), getattr(module, "bias", None)) if p is not None]
    grads = torch.autograd.grad(y, [x, *params], upstream)
    return y.detach(), grads


def assert_same_step(mine, ref, x, seed):
    upstream = randn(*x.shape, seed=seed)
    y, g = step(mine, x, upstream)
    y_ref, g_ref = step(ref, x, upstream)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    assert len(g) == len(g_ref)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("shape, ref_cls", [
    ((16, 5), nn.BatchNorm1d), ((8, 5, 7), nn.BatchNorm1d),
    ((4, 5, 6, 3), nn.BatchNorm2d), ((2, 5, 3, 3), nn.BatchNorm2d),
])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_matches_torch_over_training_then_eval(shape, ref_cls, affine):
    mine, ref = BatchNorm(5, momentum=0.3, affine=affine).double(), ref_cls(5, momentum=0.3, affine=affine).double()
    copy_affine(mine, ref)
    for t in range(4):  # batches with different statistics move the running averages
        x = 2.0 * randn(*shape, seed=t) + t
        assert_same_step(mine, ref, x, seed=100 + t)
        torch.testing.assert_close(mine.running_mean, ref.running_mean, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(mine.running_var, ref.running_var, rtol=1e-12, atol=1e-14)
    mine.eval(), ref.eval()
    for t in range(2):
        assert_same_step(mine, ref, randn(*shape, seed=50 + t), seed=200 + t)
    torch.testing.assert_close(mine.running_var, ref.running_var, rtol=1e-12, atol=1e-14)


def test_batchnorm_running_var_is_unbiased():
    bn = BatchNorm(1, momentum=1.0).double()  # the running values become the last batch's
    x = torch.tensor([[1.0], [2.0], [4.0]], dtype=torch.float64)
    bn(x)
    assert bn.running_mean.item() == pytest.approx(7 / 3)
    assert bn.running_var.item() == pytest.approx(x.var(unbiased=True).item())


def test_batchnorm_eval_does_not_touch_running_stats():
    bn = BatchNorm(3).double().eval()
    bn(randn(4, 3))
    assert bn.running_mean.eq(0).all() and bn.running_var.eq(1).all()


@pytest.mark.parametrize("normalized_shape, shape", [(6, (5, 6)), ((3, 4), (2, 5, 3, 4)), ((2, 3, 3), (4, 2, 3, 3))])
@pytest.mark.parametrize("affine", [True, False])
def test_layernorm_matches_torch(normalized_shape, shape, affine):
    mine = LayerNorm(normalized_shape, elementwise_affine=affine).double()
    ref = nn.LayerNorm(normalized_shape, elementwise_affine=affine).double()
    copy_affine(mine, ref)
    for t in range(2):
        assert_same_step(mine, ref, 3.0 * randn(*shape, seed=t) - 1, seed=10 + t)
    mine.eval(), ref.eval()
    assert_same_step(mine, ref, randn(*shape, seed=3), seed=13)


@pytest.mark.parametrize("affine", [True, False])
def test_instancenorm_matches_torch(affine):
    mine, ref = InstanceNorm(4, affine=affine).double(), nn.InstanceNorm2d(4, affine=affine).double()
    copy_affine(mine, ref)
    assert_same_step(mine, ref, 2.0 * randn(3, 4, 5, 6) + 1, seed=1)
    mine.eval(), ref.eval()
    assert_same_step(mine, ref, randn(2, 4, 5, 6, seed=2), seed=3)


@pytest.mark.parametrize("groups, shape", [
    (1, (3, 6, 4, 4)), (2, (3, 6, 4, 4)), (3, (2, 6, 5)), (6, (3, 6, 2, 3)), (2, (5, 6)),
])
def test_groupnorm_matches_torch(groups, shape):
    mine, ref = GroupNorm(groups, 6).double(), nn.GroupNorm(groups, 6).double()
    copy_affine(mine, ref)
    assert_same_step(mine, ref, 2.0 * randn(*shape) + 3, seed=1)


def test_groupnorm_with_one_group_is_layernorm_over_chw():
    x = randn(4, 6, 3, 5)
    layer_norm = LayerNorm((6, 3, 5), elementwise_affine=False)
    torch.testing.assert_close(GroupNorm(1, 6, affine=False)(x), layer_norm(x), rtol=1e-12, atol=1e-12)


def test_groupnorm_with_one_channel_per_group_is_instancenorm():
    x = randn(4, 6, 3, 5)
    torch.testing.assert_close(GroupNorm(6, 6, affine=False)(x), nn.InstanceNorm2d(6)(x), rtol=1e-12, atol=1e-12)


def test_gradcheck_through_batchnorm_and_groupnorm():
    x = randn(3, 4, 2, 2).requires_grad_(True)
    assert torch.autograd.gradcheck(BatchNorm(4).double(), (x,))
    assert torch.autograd.gradcheck(GroupNorm(2, 4).double(), (x,))


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 5), features=st.integers(2, 40), scale=st.floats(0.1, 1e3), shift=st.floats(-1e3, 1e3),
       seed=st.integers(0, 2**16))
def test_layernorm_output_has_zero_mean_unit_variance_per_sample(batch, features, scale, shift, seed):
    x = scale * randn(batch, features, seed=seed) + shift
    y = LayerNorm(features, eps=0.0).double()(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(batch, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(batch, dtype=torch.float64), atol=1e-9, rtol=0)


@pytest.mark.parametrize("make, x, match", [
    (lambda: BatchNorm(3), randn(4, 2), "C = 3"),
    (lambda: BatchNorm(3), randn(1, 3), "more than one value per channel"),
    (lambda: BatchNorm(0), None, "num_features"),
    (lambda: BatchNorm(3, momentum=1.5), None, "momentum"),
    (lambda: LayerNorm(5), randn(2, 4), "ending in"),
    (lambda: LayerNorm(()), None, "non-empty"),
    (lambda: GroupNorm(4, 6), None, "dividing"),
    (lambda: GroupNorm(2, 6), randn(2, 4, 3), r"\(N, 6"),
    (lambda: InstanceNorm(3), randn(2, 3, 5), r"\(N, C, H, W\)"),
])
def test_bad_arguments_fail_clearly(make, x, match):
    with pytest.raises(ValueError, match=match):
        make()(x)
