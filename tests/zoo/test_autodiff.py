"""The scalar autodiff engine against torch.autograd in float64: every op, random expressions, an MLP's loss."""

import gc
import math
import random

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deepatlas.labs import get_lab
from deepatlas.labs.runner import run_lab
from deepatlas.zoo.fundamentals.autodiff import (
    ScalarMLP, Value, cyclic_gc_paused, finite_difference_grads, mean_loss, topological_order,
    torch_loss_and_grads,
)

# each op written once; it runs on Values and on float64 torch scalars alike. Ops with a restricted
# domain get an argument that is always inside it (b^2 + 0.5 > 0), built from engine ops too.
OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 0.5),
    "div_neg": lambda a, b: a / (-0.5 - b * b),
    "radd": lambda a, b: 1.5 + a,
    "rsub": lambda a, b: 1.0 - a,
    "rmul": lambda a, b: -2.0 * a,
    "rdiv": lambda a, b: 2.0 / (a * a + 1.0),
    "neg": lambda a, b: -a,
    "square": lambda a, b: a**2,
    "cube": lambda a, b: a**3,
    "pow_neg": lambda a, b: (a * a + 0.25) ** -1,
    "pow_frac": lambda a, b: (a * a + 0.1) ** 0.5,
    "pow_frac_neg": lambda a, b: (a * a + 0.5) ** -1.5,
    "exp": lambda a, b: (a.tanh() * 3).exp(),
    "log": lambda a, b: (a * a + 0.1).log(),
    "tanh": lambda a, b: a.tanh(),
    "relu": lambda a, b: a.relu(),
    "sigmoid": lambda a, b: (3 * a).sigmoid(),
}


def run_program(leaves, program, make):
    """Leaves, then one node per (op, i, j) made from earlier nodes; the output sums every node."""
    nodes = [make(v) for v in leaves]
    for op, i, j in program:
        nodes.append(OPS[op](nodes[i % len(nodes)], nodes[j % len(nodes)]))
    out = nodes[0]
    for node in nodes[1:]:
        out = out + node
    return nodes, out


def scalar(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64, requires_grad=True)


def assert_matches_torch(leaves, program):
    values, out = run_program(leaves, program, Value)
    tensors, out_ref = run_program(leaves, program, scalar)
    out.backward()
    grads_ref = torch.autograd.grad(out_ref, tensors[:len(leaves)])
    for v, t in zip(values, tensors):
        assert v.data == pytest.approx(t.item(), rel=1e-12, abs=1e-12)
    scale = max(1.0, *(abs(g.item()) for g in grads_ref))
    for v, g in zip(values[:len(leaves)], grads_ref):
        assert v.grad == pytest.approx(g.item(), rel=1e-10, abs=1e-12 * scale)


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("a, b", [(0.7, -1.3), (-2.5, 0.4), (3.0, 3.0), (-0.01, 2.0)])
def test_each_op_matches_torch(op, a, b):
    assert_matches_torch([a, b], [(op, 0, 1)])


@pytest.mark.parametrize("x", [-800.0, -40.0, -1.0, 0.0, 1e-9, 2.0, 40.0, 800.0])
def test_sigmoid_and_tanh_at_extremes(x):
    for name in ("sigmoid", "tanh"):
        v = Value(x)
        out = getattr(v, name)()
        out.backward()
        t = scalar(x)
        ref = getattr(t, name)()
        (g,) = torch.autograd.grad(ref, t)
        assert out.data == pytest.approx(ref.item(), rel=1e-14, abs=1e-300)
        assert v.grad == pytest.approx(g.item(), rel=1e-12, abs=1e-300)


def test_relu_gradient_at_zero_is_zero_like_torch():
    v = Value(0.0)
    v.relu().backward()
    t = scalar(0.0)
    (g,) = torch.autograd.grad(t.relu(), t)
    assert v.grad == g.item() == 0.0


def test_integer_power_of_a_negative_base():
    assert_matches_torch([-1.7], [("cube", 0, 0), ("square", 0, 0)])


@settings(max_examples=150, deadline=None)
@given(
    leaves=st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=4),
    program=st.lists(st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 50), st.integers(0, 50)),
                     min_size=1, max_size=12),
)
def test_random_expressions_match_torch(leaves, program):
    assert_matches_torch(leaves, program)


@settings(max_examples=50, deadline=None)
@given(
    leaves=st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=4),
    program=st.lists(st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 50), st.integers(0, 50)),
                     min_size=1, max_size=12),
)
def test_topological_order_puts_inputs_first(leaves, program):
    _, out = run_program(leaves, program, Value)
    order = topological_order(out)
    position = {id(v): k for k, v in enumerate(order)}
    assert len(position) == len(order) and order[-1] is out
    assert all(position[id(u)] < position[id(v)] for v in order for u in v.inputs)


def test_reused_node_accumulates_its_gradient():
    a = Value(3.0)
    out = a * a + a  # d/da = 2a + 1
    out.backward()
    assert a.grad == 7.0


def test_backward_twice_accumulates_in_leaves_like_torch():
    a, b = Value(2.0), Value(-0.5)
    mid = a.exp() * b
    out = mid.tanh() + mid
    out.backward()
    once = a.grad, b.grad, mid.grad
    out.backward()
    ta, tb = scalar(2.0), scalar(-0.5)
    t_mid = ta.exp() * tb
    t_out = t_mid.tanh() + t_mid
    t_out.backward(retain_graph=True)
    t_out.backward()
    assert (a.grad, b.grad) == pytest.approx((ta.grad.item(), tb.grad.item()), rel=1e-14)
    assert (a.grad, b.grad) == pytest.approx((2 * once[0], 2 * once[1]), rel=1e-14)
    assert mid.grad == once[2]  # an intermediate's grad is its adjoint, not a running sum


def test_a_long_chain_needs_no_recursion():
    x = Value(1.0)
    y = x
    for _ in range(20_000):
        y = y + x
    y.backward()
    assert x.grad == 20_001.0


def small_mlp_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(10, 3, generator=g, dtype=torch.float64).tolist()
    y = torch.randint(0, 2, (10,), generator=g).tolist()
    return ScalarMLP([3, 5, 4, 1], random.Random(seed)), x, y


def reference_loss_and_grads(model: ScalarMLP, x, y):
    """The same network rebuilt from torch.nn.Linear, tanh and torch's BCE-with-logits."""
    layers = []
    for w, b in model.layers:
        layer = nn.Linear(len(w[0]), len(w)).double()
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([[v.data for v in row] for row in w], dtype=torch.float64))
            layer.bias.copy_(torch.tensor([v.data for v in b], dtype=torch.float64))
        layers.append(layer)
    h = torch.tensor(x, dtype=torch.float64)
    for layer in layers[:-1]:
        h = torch.tanh(layer(h))
    loss = F.binary_cross_entropy_with_logits(layers[-1](h)[:, 0], torch.tensor(y, dtype=torch.float64))
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    grads = torch.autograd.grad(loss, params)
    return loss.item(), torch.cat([gr.reshape(-1) for gr in grads]).tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_loss_and_gradients_match_torch(seed):
    model, x, y = small_mlp_problem(seed)
    loss = mean_loss(model, x, y)
    model.zero_grad()
    loss.backward()
    ref_loss, ref_grads = reference_loss_and_grads(model, x, y)
    assert loss.data == pytest.approx(ref_loss, rel=1e-13)
    grads = [p.grad for p in model.parameters()]
    assert len(grads) == 3 * 5 + 5 + 5 * 4 + 4 + 4 * 1 + 1
    assert grads == pytest.approx(ref_grads, rel=1e-10, abs=1e-15)
    # the lab's own torch reference gives the same numbers
    lab_loss, lab_grads = torch_loss_and_grads(model, x, y)
    assert lab_loss == pytest.approx(ref_loss, rel=1e-14)
    assert lab_grads == pytest.approx(ref_grads, rel=1e-12, abs=1e-16)


def test_finite_differences_agree_and_leave_the_weights_alone():
    model, x, y = small_mlp_problem()
    before = [p.data for p in model.parameters()]
    loss = mean_loss(model, x, y)
    model.zero_grad()
    loss.backward()
    fd = finite_difference_grads(model, x, y, h=1e-5)
    assert [p.grad for p in model.parameters()] == pytest.approx(fd, abs=1e-8)
    assert [p.data for p in model.parameters()] == before


def test_zero_grad_and_init_bounds():
    model, x, y = small_mlp_problem()
    mean_loss(model, x, y).backward()
    assert any(p.grad != 0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())
    assert all(abs(p.data) <= 1 / math.sqrt(3) for row in model.layers[0][0] for p in row)


def test_clear_errors():
    with pytest.raises(TypeError, match="constant int or float exponent"):
        Value(2.0) ** Value(3.0)
    with pytest.raises(ValueError, match="negative base needs an integer exponent"):
        Value(-2.0) ** 0.5
    with pytest.raises(ZeroDivisionError, match="undefined at x = 0"):
        Value(0.0) ** -1
    with pytest.raises(ValueError, match="log needs a positive input, got -1.0"):
        Value(-1.0).log()
    with pytest.raises(ZeroDivisionError, match="by a Value equal to zero"):
        Value(1.0) / Value(0.0)
    with pytest.raises(OverflowError, match="overflows"):
        Value(1000.0).exp()
    with pytest.raises(TypeError, match="not str"):
        Value(1.0) + "2"
    with pytest.raises(ValueError, match="sizes must be"):
        ScalarMLP([3], random.Random(0))


@pytest.mark.parametrize("enabled", [True, False])
def test_cyclic_gc_paused_restores_the_collector(enabled):
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with cyclic_gc_paused():
            assert not gc.isenabled()
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_gradient_check_lab_at_quick_scale():
    r = run_lab(get_lab("autodiff/gradient-check"), scale="quick", quiet=True)
    assert r.status == "ok", r.message
    assert r.metrics["max_grad_diff_torch"] <= 1e-12
    assert r.metrics["max_grad_diff_fd"] <= 1e-7
    assert {c["id"]: c["verdict"] for c in r.claims} == {
        "autodiff-automatic-gradients": "supported", "backpropagation-exact-gradients": "supported"}
