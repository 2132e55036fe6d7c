"""ResNet blocks against functional references in float64, the CIFAR nets' shapes and counts, plain twins."""

import pytest
import torch
import torch.nn.functional as F

from deepatlas.zoo.vision.cnn_zoo import conv_weights, multiply_adds, n_params
from deepatlas.zoo.vision.resnet import BasicBlock, Bottleneck, ResNet, pad_shortcut


def bn(x, m):
    """BatchNorm in training mode, from the batch statistics, with the module's affine parameters."""
    return F.batch_norm(x, None, None, m.weight, m.bias, training=True, eps=m.eps)


def randomise_bn(net, g):
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)


def check_values_and_grads(net, reference, x, g):
    out = net(x)
    ref = reference(x)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    upstream = torch.randn(out.shape, generator=g, dtype=torch.float64)
    params = [x, *net.parameters()]
    grads = torch.autograd.grad(out, params, upstream)
    grads_ref = torch.autograd.grad(ref, params, upstream)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("c_in,c_out,stride,shortcut", [(8, 8, 1, True), (8, 16, 2, True), (8, 16, 2, False)])
def test_basic_block_matches_the_written_out_equation(c_in, c_out, stride, shortcut):
    g = torch.Generator().manual_seed(0)
    block = BasicBlock(c_in, c_out, stride, shortcut).double()
    randomise_bn(block, g)
    x = torch.randn(4, c_in, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)

    def reference(x):
        h = F.relu(bn(F.conv2d(x, block.conv1.weight, stride=stride, padding=1), block.bn1))
        y = bn(F.conv2d(h, block.conv2.weight, padding=1), block.bn2)
        if shortcut:  # option A: subsample, pad the new channels with zeros
            s = x[:, :, ::stride, ::stride]
            y = y + torch.cat([s, torch.zeros(s.shape[0], c_out - c_in, *s.shape[2:], dtype=s.dtype)], 1)
        return F.relu(y)

    check_values_and_grads(block, reference, x, g)


@pytest.mark.parametrize("c_in,c_mid,c_out,stride,groups", [(16, 4, 16, 1, 1), (8, 4, 16, 2, 1), (16, 8, 32, 2, 4)])
def test_bottleneck_matches_the_written_out_equation(c_in, c_mid, c_out, stride, groups):
    g = torch.Generator().manual_seed(1)
    block = Bottleneck(c_in, c_mid, c_out, stride, groups).double()
    randomise_bn(block, g)
    x = torch.randn(4, c_in, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)

    def reference(x):
        h = F.relu(bn(F.conv2d(x, block.conv1.weight), block.bn1))
        h = F.relu(bn(F.conv2d(h, block.conv2.weight, stride=stride, padding=1, groups=groups), block.bn2))
        y = bn(F.conv2d(h, block.conv3.weight), block.bn3)
        if block.projection is None:
            return F.relu(y + x)
        conv, norm = block.projection
        return F.relu(y + bn(F.conv2d(x, conv.weight, stride=stride), norm))

    assert (block.projection is None) == (stride == 1 and c_in == c_out)
    check_values_and_grads(block, reference, x, g)


def test_pad_shortcut_subsamples_and_zero_pads():
    x = torch.randn(2, 3, 6, 6)
    y = pad_shortcut(x, 5, 2)
    assert y.shape == (2, 5, 3, 3)
    torch.testing.assert_close(y[:, :3], x[:, :, ::2, ::2])
    assert (y[:, 3:] == 0).all()


@pytest.mark.parametrize("depth", [20, 56])
def test_cifar_resnet_shapes_layers_and_parameter_count(depth):
    n = (depth - 2) // 6
    net = ResNet(depth, in_channels=3)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) + 1 == depth  # 6n + 1 convolutions and the classifier
    # closed form: stem 3x3 (3 -> 16); per stage n blocks of two 3x3 convs, the first widening; BN 2C; fc
    weights = 9 * 3 * 16 + sum(9 * (c_in * c + c * c) + (n - 1) * 2 * 9 * c * c
                               for c_in, c in ((16, 16), (16, 32), (32, 64)))
    bn_params = 2 * (16 + 2 * n * (16 + 32 + 64))
    assert n_params(net) == weights + bn_params + 64 * 10 + 10
    assert conv_weights(net) == weights


def test_plain_twin_has_the_same_parameters_and_initial_weights():
    torch.manual_seed(3)
    plain = ResNet(20, widths=(4, 8, 16), shortcut=False)
    torch.manual_seed(3)
    residual = ResNet(20, widths=(4, 8, 16))
    for (name, p), (name_r, p_r) in zip(plain.named_parameters(), residual.named_parameters(), strict=True):
        assert name == name_r
        torch.testing.assert_close(p, p_r)
    x = torch.randn(2, 1, 28, 28)
    assert not torch.allclose(plain(x), residual(x))  # the shortcut is the only difference


def test_bottleneck_arithmetic():
    assert conv_weights(Bottleneck(256, 64, 256)) == 256 * 64 + 9 * 64 * 64 + 64 * 256 == 69_632
    assert conv_weights(BasicBlock(256, 256)) == 2 * 9 * 256 * 256
    assert multiply_adds(Bottleneck(256, 64, 256), torch.randn(1, 256, 7, 7)) == 69_632 * 49


def test_bad_arguments():
    with pytest.raises(ValueError, match="6n \\+ 2"):
        ResNet(21)
    with pytest.raises(ValueError, match="only widen"):
        BasicBlock(16, 8)
    with pytest.raises(ValueError, match="divisible by groups"):
        Bottleneck(16, 10, 16, groups=4)
