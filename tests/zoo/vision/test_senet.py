"""The SE block against its equations in float64, and SE-ResNet's parameter count."""

import pytest
import torch
import torch.nn.functional as F

from deepatlas.zoo.vision.cnn_zoo import n_params
from deepatlas.zoo.vision.resnet import ResNet
from deepatlas.zoo.vision.senet import SEBasicBlock, SqueezeExcitation, se_resnet


def test_squeeze_excitation_matches_its_equations_in_float64():
    g = torch.Generator().manual_seed(0)
    se = SqueezeExcitation(8, 2).double()
    u = torch.randn(3, 8, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    out = se(u)
    z = u.sum((2, 3)) / (5 * 4)  # z_c = \frac{1}{HW} \sum_{i,j} u_c(i, j)
    s = torch.sigmoid(F.linear(torch.relu(F.linear(z, se.fc1.weight, se.fc1.bias)), se.fc2.weight, se.fc2.bias))
    ref = u * s.reshape(3, 8, 1, 1)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    upstream = torch.randn(out.shape, generator=g, dtype=torch.float64)
    params = [u, *se.parameters()]
    grads, grads_ref = torch.autograd.grad(out, params, upstream), torch.autograd.grad(ref, params, upstream)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_one_gate_per_channel_in_zero_one():
    se = SqueezeExcitation(6, 3)
    u = torch.randn(2, 6, 7, 7) + 0.1
    ratio = se(u) / u  # the gate s_c, the same at every position of channel c
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-5)
    assert ((ratio > 0) & (ratio < 1)).all()


def test_gates_depend_on_the_whole_image():
    se = SqueezeExcitation(4, 2)
    with torch.no_grad():
        se.fc1.bias.fill_(1.0)  # hidden units active, so that the ReLU passes the change on
    u = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(0)).abs()
    v = u.clone()
    v[..., 5, 5] += 10.0  # change one far-away pixel
    assert not torch.allclose(se(u)[..., 0, 0], se(v)[..., 0, 0])


def test_se_resnet_adds_exactly_the_excitation_weights():
    widths = (8, 16, 32)
    n = 2  # depth 14
    se_net, plain = se_resnet(14, widths, reduction=4), ResNet(14, widths)
    # each block: W_1 (C/r x C) + b_1 + W_2 (C x C/r) + b_2
    extra = sum(n * (2 * c * (c // 4) + c // 4 + c) for c in widths)
    assert n_params(se_net) == n_params(plain) + extra
    assert se_net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert all(isinstance(b, SEBasicBlock) for b in se_net.blocks)


def test_bad_arguments():
    with pytest.raises(ValueError, match="hidden unit"):
        SqueezeExcitation(8, 0)
