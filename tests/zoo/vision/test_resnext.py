"""ResNeXt's grouped bottleneck equals the explicit sum of C low-width paths (the paper's forms (a) and (c))."""

import pytest
import torch
import torch.nn.functional as F

from deepatlas.zoo.vision.cnn_zoo import conv_weights, n_params
from deepatlas.zoo.vision.resnet import Bottleneck
from deepatlas.zoo.vision.resnext import ResNeXt


def path_bn(h, m, sl):
    """BatchNorm in eval mode (running statistics) on the channels `sl` of one path."""
    return F.batch_norm(h, m.running_mean[sl], m.running_var[sl], m.weight[sl], m.bias[sl], eps=m.eps)


@pytest.mark.parametrize("cardinality,d", [(4, 2), (8, 1), (2, 5)])
def test_grouped_block_is_the_sum_of_its_paths(cardinality, d):
    g = torch.Generator().manual_seed(cardinality)
    block = Bottleneck(12, cardinality * d, 12, groups=cardinality).double().eval()
    with torch.no_grad():
        for m in (block.bn1, block.bn2, block.bn3):
            m.running_mean.normal_(0, 0.2, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0, 0.1, generator=g)
    x = torch.randn(3, 12, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    out = block(x)

    def aggregated(x):
        # y = x + \sum_i T_i(x): path i owns d reduce filters, d 3x3 filters and d columns of the expansion
        total = 0
        for i in range(cardinality):
            sl = slice(i * d, (i + 1) * d)
            h = F.relu(path_bn(F.conv2d(x, block.conv1.weight[sl]), block.bn1, sl))
            h = F.relu(path_bn(F.conv2d(h, block.conv2.weight[sl], padding=1), block.bn2, sl))
            total = total + F.conv2d(h, block.conv3.weight[:, sl])
        bn3 = block.bn3
        return F.relu(F.batch_norm(total, bn3.running_mean, bn3.running_var, bn3.weight, bn3.bias, eps=bn3.eps) + x)

    ref = aggregated(x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    upstream = torch.randn(out.shape, generator=g, dtype=torch.float64)
    params = [x, *block.parameters()]
    grads, grads_ref = torch.autograd.grad(out, params, upstream), torch.autograd.grad(ref, params, upstream)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_grouped_convolution_has_one_over_g_of_the_weights():
    c_in, c, c_out = 64, 32, 64
    for groups in (1, 2, 8, 32):
        # C (c_in d + 9 d^2 + d c_out) with d = c / C: the 3x3 shrinks by the cardinality
        assert conv_weights(Bottleneck(c_in, c, c_out, groups=groups)) == c_in * c + 9 * c * c // groups + c * c_out


def test_small_net_shapes_and_stage_widths():
    net = ResNeXt()
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    blocks = list(net.blocks)
    assert [b.conv2.groups for b in blocks] == [8] * 3
    assert [b.conv2.out_channels for b in blocks] == [16, 32, 64]  # C d 2^s
    assert n_params(ResNeXt(cardinality=4)) < n_params(net)


def test_bad_arguments():
    with pytest.raises(ValueError, match="one positive block count"):
        ResNeXt(blocks=(1, 1), widths=(8, 16, 32))
    with pytest.raises(ValueError, match="cardinality"):
        ResNeXt(cardinality=0)
