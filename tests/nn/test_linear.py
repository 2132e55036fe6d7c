"""Linear and Neuron against torch.nn.Linear in float64: values, gradients, initialisation, errors."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deepatlas.nn.linear import Linear, Neuron


def twins(n_in: int, n_out: int, bias: bool = True, seed: int = 0) -> tuple[Linear, nn.Linear]:
    mine = Linear(n_in, n_out, bias=bias, generator=torch.Generator().manual_seed(seed)).double()
    ref = nn.Linear(n_in, n_out, bias=bias).double()
    with torch.no_grad():
        ref.weight.copy_(mine.weight)
        if bias:
            ref.bias.copy_(mine.bias)
    return mine, ref


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [(), (7,), (3, 5)], ids=["vector", "batch", "batch2d"])
def test_values_and_gradients_match_nn_linear(bias, batch):
    mine, ref = twins(6, 4, bias)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*batch, 6, generator=g, dtype=torch.float64)
    upstream = torch.randn(*batch, 4, generator=g, dtype=torch.float64)
    outs, grads = [], []
    for layer in (mine, ref):
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        params = [layer.weight] + ([layer.bias] if bias else [])
        outs.append(y.detach())
        grads.append(torch.autograd.grad(y, [xi, *params], upstream))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-14, atol=1e-14)
    for g_mine, g_ref in zip(*grads):
        torch.testing.assert_close(g_mine, g_ref, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("n_in, n_out", [(1, 1), (3, 5), (784, 256)])
def test_default_init_draws_what_nn_linear_draws(n_in, n_out):
    torch.manual_seed(123)
    mine = Linear(n_in, n_out)
    torch.manual_seed(123)
    ref = nn.Linear(n_in, n_out)
    torch.testing.assert_close(mine.weight, ref.weight)
    torch.testing.assert_close(mine.bias, ref.bias)


@settings(max_examples=30, deadline=None)
@given(n_in=st.integers(1, 300), n_out=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_init_is_uniform_within_one_over_sqrt_fan_in(n_in, n_out, seed):
    layer = Linear(n_in, n_out, generator=torch.Generator().manual_seed(seed))
    bound = 1 / math.sqrt(n_in)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    again = Linear(n_in, n_out, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(layer.weight, again.weight) and torch.equal(layer.bias, again.bias)


def test_init_spreads_over_the_whole_interval():
    w = Linear(400, 500, generator=torch.Generator().manual_seed(0)).weight
    bound = 1 / math.sqrt(400)
    # U(-c, c) has variance c^2 / 3
    assert w.var().item() == pytest.approx(bound**2 / 3, rel=0.02)
    assert w.max() > 0.99 * bound and w.min() < -0.99 * bound


@settings(max_examples=30, deadline=None)
@given(n_in=st.integers(1, 12), n_out=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_bias_is_a_weight_on_a_constant_input_one(n_in, n_out, seed):
    g = torch.Generator().manual_seed(seed)
    layer = Linear(n_in, n_out, generator=g).double()
    augmented = Linear(n_in + 1, n_out, bias=False).double()
    with torch.no_grad():
        augmented.weight.copy_(torch.cat([layer.weight, layer.bias[:, None]], 1))  # [W | b]
    x = torch.randn(9, n_in, generator=g, dtype=torch.float64)
    ones = torch.ones(9, 1, dtype=torch.float64)
    torch.testing.assert_close(augmented(torch.cat([x, ones], 1)), layer(x), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("activation, phi", [("sigmoid", torch.sigmoid), ("tanh", torch.tanh),
                                             ("relu", torch.relu), ("identity", lambda z: z)])
def test_neuron_is_nn_linear_to_one_unit_then_activation(activation, phi):
    neuron = Neuron(5, activation, generator=torch.Generator().manual_seed(3)).double()
    ref = nn.Linear(5, 1).double()
    with torch.no_grad():
        ref.weight.copy_(neuron.unit.weight)
        ref.bias.copy_(neuron.unit.bias)
    x = torch.randn(11, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a = neuron(x)
    a_ref = phi(ref(x)).squeeze(1)
    assert a.shape == (11,)
    torch.testing.assert_close(a, a_ref, rtol=1e-13, atol=1e-15)
    g = torch.autograd.grad(a.sum(), [neuron.unit.weight, neuron.unit.bias])
    g_ref = torch.autograd.grad(a_ref.sum(), [ref.weight, ref.bias])
    for mine, theirs in zip(g, g_ref):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("gate, w, b, table", [
    ("and", [1.0, 1.0], -1.5, [0, 0, 0, 1]),
    ("or", [1.0, 1.0], -0.5, [0, 1, 1, 1]),
    ("nand", [-1.0, -1.0], 1.5, [1, 1, 1, 0]),
])
def test_threshold_neuron_computes_logic_gates(gate, w, b, table):
    # McCulloch & Pitts: a threshold unit with the right weights is a logic gate
    neuron = Neuron(2, "step")
    with torch.no_grad():
        neuron.unit.weight.copy_(torch.tensor([w]))
        neuron.unit.bias.fill_(b)
    corners = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    assert neuron(corners).tolist() == table


def test_clear_errors():
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        Linear(0, 3)
    with pytest.raises(ValueError, match="out_features must be a positive integer"):
        Linear(3, 2.5)
    with pytest.raises(ValueError, match=r"expects inputs with last dimension 3, got shape \(4, 5\)"):
        Linear(3, 2)(torch.randn(4, 5))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        Neuron(2, "swish")


def test_no_bias_means_no_bias_parameter():
    layer = Linear(4, 2, bias=False)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    assert "bias=False" in repr(layer)
