"""Dense blocks concatenate (never overwrite) features; counts follow C_l = k_0 + k (l - 1)."""

import pytest
import torch
import torch.nn.functional as F

from deepatlas.zoo.vision.cnn_zoo import n_params
from deepatlas.zoo.vision.densenet import DenseBlock, DenseLayer, DenseNet, Transition


def test_dense_layer_matches_its_equation_in_float64():
    g = torch.Generator().manual_seed(0)
    layer = DenseLayer(6, 3).double()
    x = torch.randn(4, 6, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    out = layer(x)

    def bn(h, m):
        return F.batch_norm(h, None, None, m.weight, m.bias, training=True, eps=m.eps)

    ref = F.conv2d(F.relu(bn(F.conv2d(F.relu(bn(x, layer.bn1)), layer.conv1.weight), layer.bn2)),
                   layer.conv2.weight, padding=1)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    upstream = torch.randn(out.shape, generator=g, dtype=torch.float64)
    params = [x, *layer.parameters()]
    grads, grads_ref = torch.autograd.grad(out, params, upstream), torch.autograd.grad(ref, params, upstream)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_block_keeps_its_input_and_appends_k_channels_per_layer():
    k0, k, n = 5, 3, 4
    block = DenseBlock(n, k0, k)
    assert [layer.conv1.in_channels for layer in block.layers] == [k0 + k * i for i in range(n)]
    x = torch.randn(2, k0, 6, 6)
    y = block(x)
    assert y.shape == (2, k0 + n * k, 6, 6) == (2, block.c_out, 6, 6)
    torch.testing.assert_close(y[:, :k0], x)  # concatenation, not addition: x_0 reaches the end unchanged
    # the output of layer 1 is reused by every later layer: its channels are those of layer 1 alone
    torch.testing.assert_close(y[:, k0:k0 + k], block.layers[0](x))


def test_layer_l_sees_every_earlier_output():
    block = DenseBlock(3, 2, 2).eval()
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    y = block(x)
    # the last layer's new channels depend on the block input directly (a short path of one layer)
    (grad,) = torch.autograd.grad(y[:, -2:].sum(), x)
    assert grad.abs().sum() > 0


def test_parameter_counts():
    c, k = 10, 4
    # BN(c) + 1x1 (c -> 4k) + BN(4k) + 3x3 (4k -> k)
    assert n_params(DenseLayer(c, k)) == 2 * c + c * 4 * k + 2 * 4 * k + 9 * 4 * k * k
    assert n_params(Transition(c, c // 2)) == 2 * c + c * (c // 2)


def test_small_net_channels_and_shapes():
    net = DenseNet(blocks=(4, 4, 4), growth=12, compression=0.5)
    # stem 24 -> block 72 -> transition 36 -> block 84 -> transition 42 -> block 90
    assert [m.c_out for m in net.features if isinstance(m, DenseBlock)] == [72, 84, 90]
    assert net.fc.in_features == 90
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_bad_arguments():
    with pytest.raises(ValueError, match="compression"):
        DenseNet(compression=0)
    with pytest.raises(ValueError, match="at least one block"):
        DenseNet(blocks=())
