"""Initialisers against torch.nn.init: gains, fans, bounds, the same numbers for the same seed, empirical spread."""

import math

import pytest
import torch

from deepatlas.nn import init

SHAPES = [(30, 20), (64, 3, 5, 5), (16, 8, 3), (10, 4, 2, 3, 3)]  # Linear, Conv2d, Conv1d, Conv3d weights


@pytest.mark.parametrize("nonlinearity, param", [
    ("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("selu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0), ("leaky_relu", 1),
])
def test_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param))


def test_named_gains():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu", 1.0) == 1.0  # slope 1 is the identity


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_of_linear_and_conv_weights(shape):
    assert init.fans(torch.empty(shape)) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


def test_fans_of_real_layers():
    assert init.fans(torch.nn.Linear(7, 3).weight) == (7, 3)
    assert init.fans(torch.nn.Conv2d(4, 6, kernel_size=(3, 5)).weight) == (4 * 15, 6 * 15)
    assert init.fans(torch.nn.Conv2d(4, 6, kernel_size=3, groups=2).weight) == (2 * 9, 6 * 9)


PAIRS = [
    ("normal", lambda t, g: init.normal_(t, 0.1, 0.02, g), lambda t, g: torch.nn.init.normal_(t, 0.1, 0.02, g)),
    ("uniform", lambda t, g: init.uniform_(t, -0.05, 0.05, g), lambda t, g: torch.nn.init.uniform_(t, -0.05, 0.05, g)),
    ("xavier_uniform", lambda t, g: init.xavier_uniform_(t, 5 / 3, g),
     lambda t, g: torch.nn.init.xavier_uniform_(t, 5 / 3, g)),
    ("xavier_normal", lambda t, g: init.xavier_normal_(t, 1.0, g),
     lambda t, g: torch.nn.init.xavier_normal_(t, 1.0, g)),
    ("kaiming_uniform_relu", lambda t, g: init.kaiming_uniform_(t, nonlinearity="relu", generator=g),
     lambda t, g: torch.nn.init.kaiming_uniform_(t, nonlinearity="relu", generator=g)),
    ("kaiming_uniform_a5", lambda t, g: init.kaiming_uniform_(t, a=math.sqrt(5), generator=g),
     lambda t, g: torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=g)),
    ("kaiming_normal_fan_out", lambda t, g: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu", generator=g),
     lambda t, g: torch.nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu", generator=g)),
    ("kaiming_normal_leaky", lambda t, g: init.kaiming_normal_(t, a=0.2, generator=g),
     lambda t, g: torch.nn.init.kaiming_normal_(t, a=0.2, generator=g)),
    ("kaiming_normal_tanh", lambda t, g: init.kaiming_normal_(t, nonlinearity="tanh", generator=g),
     lambda t, g: torch.nn.init.kaiming_normal_(t, nonlinearity="tanh", generator=g)),
    ("kaiming_uniform_linear", lambda t, g: init.kaiming_uniform_(t, nonlinearity="linear", generator=g),
     lambda t, g: torch.nn.init.kaiming_uniform_(t, nonlinearity="linear", generator=g)),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name, mine, ref", PAIRS, ids=[p[0] for p in PAIRS])
def test_same_seed_gives_the_same_weights_as_torch(name, mine, ref, shape):
    a, b = torch.empty(shape, dtype=torch.float64), torch.empty(shape, dtype=torch.float64)
    out = mine(a, torch.Generator().manual_seed(7))
    ref(b, torch.Generator().manual_seed(7))
    assert out is a  # in place
    assert torch.equal(a, b)


def test_global_seed_is_used_without_a_generator():
    torch.manual_seed(11)
    a = init.kaiming_normal_(torch.empty(50, 40), nonlinearity="relu")
    torch.manual_seed(11)
    b = torch.nn.init.kaiming_normal_(torch.empty(50, 40), nonlinearity="relu")
    assert torch.equal(a, b)


def test_initialising_a_parameter_keeps_it_a_leaf():
    layer = torch.nn.Linear(20, 10)
    init.xavier_uniform_(layer.weight)
    init.zeros_(layer.bias)
    assert layer.weight.is_leaf and layer.weight.requires_grad and layer.weight.grad_fn is None
    assert torch.equal(layer.bias, torch.zeros(10))


# (sampler, expected std, expected bound or None) for a (fan_out=400, fan_in=600) weight
N_IN, N_OUT = 600, 400
SPREAD = [
    (lambda t: init.xavier_uniform_(t), math.sqrt(2 / (N_IN + N_OUT)), math.sqrt(6 / (N_IN + N_OUT))),
    (lambda t: init.xavier_normal_(t), math.sqrt(2 / (N_IN + N_OUT)), None),
    (lambda t: init.xavier_uniform_(t, gain=5 / 3), 5 / 3 * math.sqrt(2 / (N_IN + N_OUT)), None),
    (lambda t: init.kaiming_uniform_(t, nonlinearity="relu"), math.sqrt(2 / N_IN), math.sqrt(6 / N_IN)),
    (lambda t: init.kaiming_normal_(t, nonlinearity="relu"), math.sqrt(2 / N_IN), None),
    (lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), math.sqrt(2 / N_OUT), None),
    (lambda t: init.kaiming_normal_(t, a=0.5), math.sqrt(2 / ((1 + 0.25) * N_IN)), None),
    (lambda t: init.normal_(t, std=0.01), 0.01, None),
    (lambda t: init.uniform_(t, -0.1, 0.1), 0.1 / math.sqrt(3), 0.1),
]


@pytest.mark.parametrize("sample, std, bound", SPREAD)
def test_empirical_spread_follows_the_formula(sample, std, bound):
    torch.manual_seed(0)
    w = sample(torch.empty(N_OUT, N_IN, dtype=torch.float64))  # 240,000 draws: std within ~0.3% (1 sigma)
    assert abs(w.mean().item()) < 5 * std / math.sqrt(w.numel())
    assert w.std().item() == pytest.approx(std, rel=0.01)
    if bound is not None:
        assert w.abs().max().item() <= bound
        assert w.abs().max().item() > 0.999 * bound


def test_constant_and_zeros():
    w = torch.randn(5, 7)
    assert torch.equal(init.constant_(w, 0.3), torch.full((5, 7), 0.3))
    assert torch.equal(init.zeros_(w), torch.zeros(5, 7))


def test_errors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(torch.empty(10))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.kaiming_normal_(torch.empty(10))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.fans(torch.empty(()))
    with pytest.raises(ValueError, match="mode must be"):
        init.kaiming_uniform_(torch.empty(3, 4), mode="fan_avg")
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="must be a number"):
        init.calculate_gain("leaky_relu", True)
    with pytest.raises(ValueError, match="empty weight"):
        init.kaiming_normal_(torch.empty(0, 4), mode="fan_out")
    with pytest.raises(ValueError, match="empty weight"):
        init.xavier_normal_(torch.empty(0, 0))
