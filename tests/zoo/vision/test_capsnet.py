"""CapsNet: the squash, routing by agreement (properties and a worked example), the margin loss, the net."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.vision.capsnet import CapsNet, dynamic_routing, margin_loss, shift, squash


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3))
def test_squash_shrinks_the_length_below_one_and_keeps_the_direction(seed, scale):
    s = scale * torch.randn(5, 7, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    v = squash(s)
    n = s.norm(dim=-1)
    assert (v.norm(dim=-1) < 1).all()
    assert torch.allclose(v.norm(dim=-1), n ** 2 / (1 + n ** 2))
    assert torch.allclose(torch.nn.functional.cosine_similarity(v, s, dim=-1), torch.ones(5, dtype=torch.float64))


def test_squash_at_zero_and_its_gradient():
    zero = torch.zeros(3, 4, requires_grad=True)
    v = squash(zero)
    assert torch.equal(v, torch.zeros(3, 4))
    v.sum().backward()
    assert torch.isfinite(zero.grad).all()
    s = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(squash, (s,))


def test_coupling_coefficients_sum_to_one_over_parents_and_start_uniform():
    u_hat = torch.randn(2, 5, 7, 3)  # (B, N_out, N_in, D)
    for r in (1, 2, 3, 5):
        v, c = dynamic_routing(u_hat, r)
        assert v.shape == (2, 5, 3) and c.shape == (2, 7, 5)
        assert torch.allclose(c.sum(2), torch.ones(2, 7))
    _, c1 = dynamic_routing(u_hat, 1)
    assert torch.allclose(c1, torch.full_like(c1, 1 / 5))


def test_routing_by_agreement_worked_example():
    """Two children, two parents. Both children predict (2, 0) for parent 0 (they agree);
    for parent 1 they predict (0, 2) and (0, -2) (they cancel).

    r = 1: c = 1/2 everywhere; s_0 = (2, 0), v_0 = 4/5 (1, 0) = (0.8, 0); s_1 = 0, v_1 = 0.
    r = 2: b_{i0} = \\hat u_{0|i} . v_0 = 1.6, b_{i1} = 0, so c_{i0} = sigmoid(1.6) = 0.8320;
           s_0 = 2 * 0.8320 * (2, 0) = (3.328, 0), v_0 = 3.328^2 / (1 + 3.328^2) = 0.9172.
    r = 3: b_{i0} = 1.6 + 2 * 0.9172 = 3.4344, c_{i0} = sigmoid(3.4344) = 0.9688."""
    u_hat = torch.tensor([[[[2.0, 0.0], [2.0, 0.0]],  # parent 0: predictions of child 0 and child 1
                           [[0.0, 2.0], [0.0, -2.0]]]], dtype=torch.float64)  # parent 1
    v, c = dynamic_routing(u_hat, 1)
    assert torch.allclose(c, torch.full((1, 2, 2), 0.5, dtype=torch.float64))
    assert torch.allclose(v, torch.tensor([[[0.8, 0.0], [0.0, 0.0]]], dtype=torch.float64))

    v, c = dynamic_routing(u_hat, 2)
    c0 = 1 / (1 + math.exp(-1.6))
    s0 = 2 * c0 * 2
    assert c0 == pytest.approx(0.8320, abs=1e-4)
    assert torch.allclose(c, torch.tensor([[[c0, 1 - c0], [c0, 1 - c0]]], dtype=torch.float64))
    assert torch.allclose(v, torch.tensor([[[s0 ** 2 / (1 + s0 ** 2), 0.0], [0.0, 0.0]]], dtype=torch.float64))
    assert v[0, 0, 0].item() == pytest.approx(0.9172, abs=1e-4)

    _, c = dynamic_routing(u_hat, 3)
    b0 = 1.6 + 2 * s0 ** 2 / (1 + s0 ** 2)
    assert c[0, 0, 0].item() == pytest.approx(1 / (1 + math.exp(-b0)))
    assert c[0, 0, 0].item() == pytest.approx(0.9688, abs=1e-4)


def test_routing_gradients():
    u_hat = torch.randn(2, 3, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u: dynamic_routing(u, 3)[0], (u_hat,))
    with pytest.raises(ValueError, match="at least one"):
        dynamic_routing(u_hat, 0)


def test_margin_loss_hand_example():
    lengths = torch.tensor([[0.95, 0.2, 0.05], [0.5, 0.0, 0.3]])
    target = torch.tensor([0, 2])
    # sample 1: 0 (0.95 >= m+) + 0.5 (0.2 - 0.1)^2 + 0 = 0.005
    # sample 2: 0.5 (0.5 - 0.1)^2 + 0 + (0.9 - 0.3)^2 = 0.08 + 0.36 = 0.44
    assert margin_loss(lengths, target).item() == pytest.approx((0.005 + 0.44) / 2)


def test_capsnet_shapes_parameters_and_lengths():
    net = CapsNet(conv_channels=8, primary_types=2, reconstruction=True)
    assert net.n_primary == 2 * 6 * 6
    x = torch.rand(3, 1, 28, 28)
    lengths = net(x)
    assert lengths.shape == (3, 10) and (lengths >= 0).all() and (lengths < 1).all()
    v, c = net.capsules(x)
    assert v.shape == (3, 10, 16) and c.shape == (3, 72, 10)
    assert net.reconstruct(v, torch.tensor([0, 3, 9])).shape == (3, 1, 28, 28)
    expected = (
        (81 * 1 * 8 + 8)  # conv1, 9x9
        + (81 * 8 * 16 + 16)  # primary capsules: 2 types x 8 dims, 9x9
        + 72 * 10 * 16 * 8  # W_ij
        + (160 * 512 + 512) + (512 * 1024 + 1024) + (1024 * 784 + 784)  # decoder
    )
    assert sum(p.numel() for p in net.parameters()) == expected


def test_reconstruction_uses_only_the_target_capsule():
    net = CapsNet(conv_channels=4, primary_types=1, reconstruction=True)
    v = torch.randn(2, 10, 16)
    changed = v.clone()
    changed[:, 5] += 1.0  # not the target's capsule
    target = torch.tensor([1, 2])
    assert torch.equal(net.reconstruct(v, target), net.reconstruct(changed, target))


def test_bad_arguments():
    with pytest.raises(ValueError, match="too small"):
        CapsNet(image_size=16)
    with pytest.raises(ValueError, match="routing_iterations"):
        CapsNet(routing_iterations=0)
    with pytest.raises(ValueError, match="reconstruction=True"):
        CapsNet().reconstruct(torch.randn(1, 10, 16), torch.tensor([0]))


def test_shift_translates_each_image():
    x = torch.zeros(6, 1, 10, 10)
    x[:, 0, 4:6, 4:6] = torch.arange(1.0, 5.0).reshape(2, 2)  # a 2x2 patch away from the border
    out = shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(shift(x, 0, torch.Generator()), x)
    for image in out[:, 0]:
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(image, torch.roll(x[0, 0], (dy, dx), (0, 1)))]
        assert len(matches) == 1
