"""LeNet-5: the paper's 60,000 parameters, the C3 connection table, scaled tanh, RBF output, distortions."""

import pytest
import torch
from torch import nn

from deepatlas.nn.conv import count_params
from deepatlas.zoo.vision.lenet5 import C3_TABLE, LeNet5, PartialConv, Subsampling, distort, scaled_tanh


def test_shapes_and_the_papers_parameter_count():
    rbf, linear = LeNet5(head="rbf"), LeNet5()
    assert rbf(torch.rand(3, 1, 28, 28)).shape == linear(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    layers = {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48_120, "f6": 10_164}
    assert {name: count_params(getattr(rbf, name)) for name in layers} == layers
    assert count_params(rbf) == 60_000  # "only 60,000 trainable parameters"; the RBF centres are fixed
    assert count_params(linear) == 60_000 + 84 * 10 + 10


def test_c3_connects_each_map_only_to_its_table_entries():
    c3 = PartialConv()
    with torch.no_grad():
        c3.weight.normal_()
    w = c3.full_weight()
    for o, inputs in enumerate(C3_TABLE):
        for c in range(6):
            assert (w[o, c].abs().sum() > 0) == (c in inputs)
    x = torch.randn(1, 6, 14, 14, requires_grad=True)
    c3(x)[0, 12].sum().backward()  # map 12 sees maps 0, 1, 3, 4
    assert [bool(x.grad[0, c].abs().sum() > 0) for c in range(6)] == [True, True, False, True, True, False]


def test_scaled_tanh_maps_plus_minus_one_to_about_plus_minus_one():
    assert scaled_tanh(torch.tensor([1.0, -1.0])).tolist() == pytest.approx([1.0, -1.0], abs=1e-4)
    assert scaled_tanh(torch.tensor(100.0)).item() == pytest.approx(1.7159)


def test_subsampling_is_a_scaled_block_sum_plus_bias():
    s = Subsampling(2)
    with torch.no_grad():
        s.weight.copy_(torch.tensor([0.5, -2.0]))
        s.bias.copy_(torch.tensor([0.1, 0.3]))
    x = torch.randn(1, 2, 4, 4)
    block_sum = x.unfold(2, 2, 2).unfold(3, 2, 2).sum((-2, -1))  # (1, 2, 2, 2)
    w, b = torch.tensor([0.5, -2.0])[:, None, None], torch.tensor([0.1, 0.3])[:, None, None]
    expected = scaled_tanh(w * block_sum + b)
    torch.testing.assert_close(s(x), expected)


def test_rbf_logits_are_minus_squared_distances_to_fixed_codes():
    net = LeNet5(head="rbf")
    assert set(net.centres.unique().tolist()) == {-1.0, 1.0} and not net.centres.requires_grad
    features = {}
    net.f6.register_forward_hook(lambda m, i, out: features.update(h=out))
    logits = net(torch.rand(4, 1, 28, 28))
    h = scaled_tanh(features["h"])  # (4, 84)
    torch.testing.assert_close(logits, -torch.cdist(h, net.centres).square(), rtol=1e-4, atol=1e-3)


def test_initial_weights_have_variance_one_over_fan_in():
    net = LeNet5()
    net.reset_parameters(torch.Generator().manual_seed(0))
    assert net.c5.weight.var().item() == pytest.approx(1 / 400, rel=0.05)
    assert net.f6.weight.abs().max().item() <= (3 / 120) ** 0.5


def test_distortions_are_the_identity_at_zero_strength_and_deterministic():
    x = torch.rand(5, 1, 28, 28)
    same = distort(x, torch.Generator().manual_seed(0), shift=0, scale=0, squeeze=0, shear=0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    a = distort(x, torch.Generator().manual_seed(1))
    b = distort(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, x)
    assert a.shape == x.shape


def test_bad_head():
    with pytest.raises(ValueError, match="head"):
        LeNet5(head="softmax")


def test_linear_head_trains_every_parameter():
    net = LeNet5()
    net(torch.rand(2, 1, 28, 28)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters() if isinstance(p, nn.Parameter))
