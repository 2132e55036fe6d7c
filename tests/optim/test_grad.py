"""Clipping against torch.nn.utils, and gradient accumulation against one big batch, in float64."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.optim.grad import GradAccumulator, clip_grad_norm_, clip_grad_value_, grad_norm
from deepatlas.optim.optimizers import SGD, Adam
from tests.optim.test_optimizers import make_model


def params_with_grads(seed: int, scale: float) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in [(3, 4), (4,), (2, 2, 2)]]
    for p in params:
        p.grad = scale * torch.randn(p.shape, generator=g, dtype=torch.float64)
    params.append(torch.zeros(3, dtype=torch.float64, requires_grad=True))  # one without a gradient
    return params


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1000), scale=st.floats(1e-3, 1e3), max_norm=st.floats(0.0, 10.0),
       norm_type=st.sampled_from([1.0, 2.0, 3.0, float("inf")]))
def test_clip_grad_norm_matches_torch(seed, scale, max_norm, norm_type):
    ours, theirs = params_with_grads(seed, scale), params_with_grads(seed, scale)
    total_ours = clip_grad_norm_(ours, max_norm, norm_type)
    total_theirs = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    torch.testing.assert_close(total_ours, total_theirs, rtol=1e-12, atol=0)
    for a, b in zip(ours, theirs):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-300)
    assert grad_norm(ours, norm_type) <= max_norm * (1 + 1e-12)  # never above the cap afterwards


def test_clip_keeps_direction_and_caps_the_norm():
    params = params_with_grads(0, 100.0)
    before = torch.cat([p.grad.ravel() for p in params if p.grad is not None])
    clip_grad_norm_(params, 1.0)
    after = torch.cat([p.grad.ravel() for p in params if p.grad is not None])
    assert after.norm().item() == pytest.approx(1.0, rel=1e-6)
    torch.testing.assert_close(after / after.norm(), before / before.norm())


def test_clip_leaves_small_gradients_alone():
    params = params_with_grads(0, 1e-3)
    before = [p.grad.clone() for p in params if p.grad is not None]
    clip_grad_norm_(params, 10.0)
    for p, b in zip([p for p in params if p.grad is not None], before):
        torch.testing.assert_close(p.grad, b, rtol=1e-15, atol=0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), clip=st.floats(0.0, 3.0))
def test_clip_grad_value_matches_torch(seed, clip):
    ours, theirs = params_with_grads(seed, 2.0), params_with_grads(seed, 2.0)
    clip_grad_value_(ours, clip)
    torch.nn.utils.clip_grad_value_(theirs, clip)
    for a, b in zip(ours, theirs):
        if a.grad is not None:
            assert torch.equal(a.grad, b.grad) and a.grad.abs().max() <= clip


def test_clip_errors():
    params = params_with_grads(0, 1.0)
    params[0].grad[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(params, -1.0)
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_(params, -1.0)


def data(step: int, n: int = 32):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    return x, torch.cos(x[:, :2]) + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def train(opt_cls, kwargs, k: int, steps: int = 8, max_norm: float | None = None):
    """`steps` updates on batches of 32, each made of k micro-batches of 32 / k (k = 1: the big batch)."""
    model = make_model()
    opt = opt_cls(model.parameters(), **kwargs)
    acc = GradAccumulator(opt, k, max_norm=max_norm)
    stepped = []
    for step in range(steps):
        x, y = data(step)
        for xb, yb in zip(x.chunk(k), y.chunk(k)):
            stepped.append(acc.backward(((model(xb) - yb) ** 2).mean()))
    return torch.cat([p.detach().ravel() for p in model.parameters()]), stepped


@pytest.mark.parametrize("opt_cls, kwargs", [(SGD, {"lr": 0.1, "momentum": 0.9}), (Adam, {"lr": 0.01})])
@pytest.mark.parametrize("max_norm", [None, 0.05])
def test_accumulation_equals_one_big_batch(opt_cls, kwargs, max_norm):
    big, _ = train(opt_cls, kwargs, k=1, max_norm=max_norm)
    start = torch.cat([p.detach().ravel() for p in make_model().parameters()])
    assert (big - start).abs().max() > 1e-2
    if max_norm is not None:  # the cap must bite for the clipped case to test anything
        assert (big - train(opt_cls, kwargs, k=1)[0]).abs().max() > 1e-3
    for k in (2, 4, 8):
        accumulated, stepped = train(opt_cls, kwargs, k=k, max_norm=max_norm)
        assert stepped == ([False] * (k - 1) + [True]) * 8  # one update every k micro-batches
        torch.testing.assert_close(accumulated, big, rtol=1e-10, atol=1e-12)


def test_accumulation_without_scaling_would_differ():
    """The 1/k matters: summing k mean losses unscaled is a k times larger step for SGD."""
    big, _ = train(SGD, {"lr": 0.1}, k=1, steps=1)
    model = make_model()
    opt = SGD(model.parameters(), lr=0.1)
    x, y = data(0)
    for xb, yb in zip(x.chunk(4), y.chunk(4)):
        ((model(xb) - yb) ** 2).mean().backward()
    opt.step()
    unscaled = torch.cat([p.detach().ravel() for p in model.parameters()])
    assert (unscaled - big).abs().max() > 1e-3


def test_accumulator_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        GradAccumulator(SGD(make_model().parameters(), lr=0.1), 0)
