"""Activations against torch.nn.functional in float64: values, gradients, extremes, x = 0, invariants."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.nn import activations as A

# random values, both signs of zero-adjacent tiny values, and extremes where a naive exp overflows
EXTREMES = [0.0, -0.0, 1e-12, -1e-12, 1e-6, -1e-6, 20.0, -20.0, 50.0, -50.0, 700.0, -700.0, 1e3, -1e3]

POINTWISE = [
    ("sigmoid", A.sigmoid, torch.sigmoid),
    ("tanh", A.tanh, torch.tanh),
    ("relu", A.relu, F.relu),
    ("leaky_relu_default", A.leaky_relu, F.leaky_relu),
    ("leaky_relu_0.2", lambda x: A.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2)),
    ("elu_1", A.elu, F.elu),
    ("elu_0.5", lambda x: A.elu(x, 0.5), lambda x: F.elu(x, 0.5)),
    ("elu_2", lambda x: A.elu(x, 2.0), lambda x: F.elu(x, 2.0)),
    ("gelu_erf", A.gelu, F.gelu),
    ("gelu_tanh", lambda x: A.gelu(x, "tanh"), lambda x: F.gelu(x, approximate="tanh")),
]
IDS = [name for name, _, _ in POINTWISE]


def inputs(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    random = 4 * torch.randn(200, generator=g, dtype=torch.float64)
    return torch.cat([random, torch.tensor(EXTREMES, dtype=torch.float64)])


def value_and_grad(f, x: torch.Tensor, upstream: torch.Tensor):
    x = x.clone().requires_grad_(True)
    y = f(x)
    (grad,) = torch.autograd.grad(y, x, upstream)
    return y.detach(), grad


@pytest.mark.parametrize("name, mine, ref", POINTWISE, ids=IDS)
def test_values_and_gradients_match_torch(name, mine, ref):
    x = inputs()
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y, g = value_and_grad(mine, x, upstream)
    y_ref, g_ref = value_and_grad(ref, x, upstream)
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name, mine, ref", POINTWISE, ids=IDS)
def test_gradient_at_zero_follows_torch_convention(name, mine, ref):
    zero = torch.zeros(1, dtype=torch.float64)
    _, g = value_and_grad(mine, zero, torch.ones(1, dtype=torch.float64))
    _, g_ref = value_and_grad(ref, zero, torch.ones(1, dtype=torch.float64))
    assert g.item() == pytest.approx(g_ref.item(), abs=1e-15)


def test_named_gradients_at_zero():
    zero = torch.zeros(1, dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    assert value_and_grad(A.sigmoid, zero, one)[1].item() == 0.25
    assert value_and_grad(A.tanh, zero, one)[1].item() == 1.0
    assert value_and_grad(A.relu, zero, one)[1].item() == 0.0
    assert value_and_grad(lambda x: A.leaky_relu(x, 0.1), zero, one)[1].item() == pytest.approx(0.1)
    assert value_and_grad(lambda x: A.elu(x, 0.5), zero, one)[1].item() == 0.5


@pytest.mark.parametrize("name, mine, ref", POINTWISE, ids=IDS)
def test_float32_extremes_stay_finite(name, mine, ref):
    x = torch.tensor([-1e4, -100.0, -30.0, 30.0, 100.0, 1e4], requires_grad=True)
    y = mine(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    torch.testing.assert_close(y, ref(x.detach()))


def test_nan_propagates_like_torch():
    x = torch.tensor([float("nan"), 1.0])
    for name, mine, ref in POINTWISE:
        assert torch.isnan(mine(x)[0]), name


@pytest.mark.parametrize("f", [A.sigmoid, A.tanh, lambda x: A.gelu(x, "tanh"), A.gelu, A.elu,
                               lambda x: A.leaky_relu(x, 0.3), A.relu,
                               lambda x: A.softmax(x, 1), lambda x: A.log_softmax(x, 0)])
def test_gradcheck(f):
    g = torch.Generator().manual_seed(3)
    x = (3 * torch.randn(4, 5, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("scale", [1.0, 1e3, 1e5])
def test_softmax_and_log_softmax_match_torch(dim, scale):
    g = torch.Generator().manual_seed(4)
    z = scale * torch.randn(3, 5, 7, generator=g, dtype=torch.float64)
    upstream = torch.randn(z.shape, generator=g, dtype=torch.float64)
    for mine, ref in [(A.softmax, F.softmax), (A.log_softmax, F.log_softmax)]:
        y, grad = value_and_grad(lambda t: mine(t, dim), z, upstream)
        y_ref, grad_ref = value_and_grad(lambda t: ref(t, dim), z, upstream)
        assert torch.isfinite(y).all() and torch.isfinite(grad).all()
        torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-300)
        torch.testing.assert_close(grad, grad_ref, rtol=1e-10, atol=1e-12)


def test_softmax_jacobian_is_p_times_delta_minus_p():
    z = torch.randn(6, dtype=torch.float64)
    p = A.softmax(z)
    jac = torch.autograd.functional.jacobian(A.softmax, z)
    torch.testing.assert_close(jac, torch.diag(p) - torch.outer(p, p))


@pytest.mark.parametrize("shape, channels", [((8,), 1), ((4, 3), 1), ((4, 3), 3), ((2, 3, 5, 5), 3), ((2, 4, 6), 4)])
def test_prelu_matches_torch_module(shape, channels):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    x[..., 0] = 0.0  # the kink itself
    upstream = torch.randn(shape, generator=g, dtype=torch.float64)
    mine, ref = A.PReLU(channels, init=0.1).double(), torch.nn.PReLU(channels, init=0.1).double()
    with torch.no_grad():  # distinct slopes per channel, the same in both
        slopes = torch.linspace(-0.2, 0.5, channels, dtype=torch.float64)
        mine.weight.copy_(slopes)
        ref.weight.copy_(slopes)
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    ys = [mine(xs[0]), ref(xs[1])]
    for y in ys:
        y.backward(upstream)
    torch.testing.assert_close(ys[0], ys[1], rtol=1e-12, atol=0)
    torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-12, atol=0)
    torch.testing.assert_close(mine.weight.grad, ref.weight.grad, rtol=1e-10, atol=1e-12)


def test_prelu_slope_learns_and_defaults():
    m = A.PReLU()
    assert m.weight.shape == (1,) and m.weight.item() == 0.25
    assert torch.autograd.gradcheck(A.prelu, (torch.randn(3, 4, dtype=torch.float64),
                                              torch.rand(4, dtype=torch.float64, requires_grad=True)))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="one per channel"):
        A.PReLU(3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="one per channel"):
        A.PReLU(3)(torch.randn(3))
    with pytest.raises(ValueError, match="num_parameters"):
        A.PReLU(0)
    with pytest.raises(ValueError, match="'none' or 'tanh'"):
        A.gelu(torch.randn(3), "erf")
    with pytest.raises(ValueError, match="'none' or 'tanh'"):
        A.GELU("fast")


def test_modules_wrap_the_functions():
    x = torch.randn(4, 6, dtype=torch.float64)
    pairs = [
        (A.Sigmoid(), torch.nn.Sigmoid()), (A.Tanh(), torch.nn.Tanh()), (A.ReLU(), torch.nn.ReLU()),
        (A.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (A.ELU(0.7), torch.nn.ELU(0.7)),
        (A.GELU(), torch.nn.GELU()), (A.GELU("tanh"), torch.nn.GELU("tanh")),
        (A.Softmax(0), torch.nn.Softmax(0)), (A.LogSoftmax(1), torch.nn.LogSoftmax(1)),
    ]
    for mine, ref in pairs:
        torch.testing.assert_close(mine(x), ref(x), rtol=1e-12, atol=1e-14)


floats = st.floats(-800, 800, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(floats, min_size=1, max_size=20))
def test_sigmoid_symmetry_and_tanh_relation(values):
    x = torch.tensor(values, dtype=torch.float64)
    # \sigma(-x) = 1 - \sigma(x);  \tanh(x) = 2\sigma(2x) - 1
    torch.testing.assert_close(A.sigmoid(-x), 1 - A.sigmoid(x), rtol=0, atol=1e-15)
    torch.testing.assert_close(A.tanh(x), 2 * A.sigmoid(2 * x) - 1, rtol=0, atol=1e-15)
    torch.testing.assert_close(A.tanh(-x), -A.tanh(x), rtol=0, atol=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(floats, min_size=1, max_size=20))
def test_sigmoid_slope_never_exceeds_a_quarter(values):
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(A.sigmoid(x).sum(), x)
    # e / (1 + e)^2 can round one ulp above 1/4 next to x = 0
    assert (g <= 0.25 + 1e-16).all() and (g >= 0).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-30, 30), min_size=1, max_size=20))
def test_gelu_odd_part_is_identity_and_elu_is_bounded(values):
    x = torch.tensor(values, dtype=torch.float64)
    # x\Phi(x) - (-x)\Phi(-x) = x (\Phi(x) + \Phi(-x)) = x
    torch.testing.assert_close(A.gelu(x) - A.gelu(-x), x, rtol=1e-12, atol=1e-14)
    assert (A.elu(x, 1.5) >= -1.5).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4), min_size=2, max_size=12), st.floats(-1e3, 1e3))
def test_softmax_is_a_distribution_and_shift_invariant(values, shift):
    z = torch.tensor(values, dtype=torch.float64)
    p = A.softmax(z)
    assert (p >= 0).all() and abs(p.sum().item() - 1) < 1e-12
    torch.testing.assert_close(A.softmax(z + shift), p, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(A.log_softmax(z).exp(), p, rtol=1e-9, atol=1e-12)
