"""The Inception module against its written-out branches, GoogLeNet's counts, AlexNet's analytic count."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.zoo.vision.cnn_zoo import multiply_adds, n_params
from deepatlas.zoo.vision.inception import IMAGENET, GoogLeNet, Inception, module_cost

SPEC_3A = (192, 64, 96, 128, 16, 32, 32)


def conv(x, layer, k):
    c = layer[0]
    return F.relu(F.conv2d(x, c.weight, c.bias, padding=k // 2))


def test_module_is_the_concatenation_of_its_branches_in_float64():
    g = torch.Generator().manual_seed(0)
    m = Inception(6, 2, 3, 4, 2, 3, 2).double()
    x = torch.randn(2, 6, 7, 7, generator=g, dtype=torch.float64, requires_grad=True)
    out = m(x)

    def reference(x):
        b1 = conv(x, m.branch1, 1)
        b3 = conv(conv(x, m.branch3[0], 1), m.branch3[1], 3)
        b5 = conv(conv(x, m.branch5[0], 1), m.branch5[1], 5)
        bp = conv(F.max_pool2d(x, 3, 1, 1), m.branch_pool, 1)
        return torch.cat([b1, b3, b5, bp], 1)

    ref = reference(x)
    assert out.shape == (2, 2 + 4 + 3 + 2, 7, 7) and m.c_out == 11
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    upstream = torch.randn(out.shape, generator=g, dtype=torch.float64)
    params = [x, *m.parameters()]
    grads, grads_ref = torch.autograd.grad(out, params, upstream), torch.autograd.grad(ref, params, upstream)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduce", [True, False])
def test_module_3a_parameters_and_multiply_adds_follow_the_closed_form(reduce):
    m = Inception(*SPEC_3A, reduce=reduce)
    assert m(torch.randn(1, 192, 28, 28)).shape == (1, 256, 28, 28)
    biases = sum(c.bias.numel() for c in m.modules() if isinstance(c, nn.Conv2d))
    assert n_params(m) == module_cost(*SPEC_3A, reduce) + biases
    assert multiply_adds(m, torch.randn(1, 192, 28, 28)) == module_cost(*SPEC_3A, reduce) * 28 * 28


def test_reductions_cut_module_3a_by_more_than_half():
    assert module_cost(*SPEC_3A, True) < 0.5 * module_cost(*SPEC_3A, False)


def test_full_googlenet_matches_the_paper_table():
    with torch.device("meta"):  # shapes only: 13M parameters, no memory
        net = GoogLeNet(3, 1000, config="imagenet", aux=True)
        image = torch.empty(1, 3, 224, 224)
    names = [spec[1] for spec in IMAGENET if spec[0] == "inception"]
    assert names == ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    assert [net.layers[n].c_out for n in names] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]
    # the paper's Table 1 sums to about 6.8M parameters and Sec. 5 states 1.5G multiply-adds
    main = n_params(net) - n_params(net.aux)
    assert 6.8e6 <= main <= 7.0e6
    assert 1.5e9 <= multiply_adds(net, image) <= 1.6e9
    # each auxiliary head: 1x1 conv to 128, FC 2048 -> 1024, FC 1024 -> 1000
    assert n_params(net.aux["4a"]) == 512 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    with torch.no_grad():  # the auxiliary heads answer only in training mode
        logits, aux_4a, aux_4d = net.train()(image)
    assert logits.shape == aux_4a.shape == aux_4d.shape == (1, 1000)


def test_small_net_takes_digits():
    net = GoogLeNet()
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown GoogLeNet config"):
        GoogLeNet(config="huge")
    with pytest.raises(ValueError, match="auxiliary"):
        GoogLeNet(aux=True)
