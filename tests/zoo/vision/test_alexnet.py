"""AlexNet: local response normalisation against torch, the ImageNet count, the small variant."""

import pytest
import torch
from torch import nn

from deepatlas.nn.conv import count_params
from deepatlas.zoo.vision.alexnet import (
    IMAGENET, IMAGENET_PARAMS, AlexNet, AlexNetConfig, LocalResponseNorm, alexnet_imagenet_params_formula,
    alexnet_small, first_below,
)


@pytest.mark.parametrize("n", [3, 4, 5])
def test_local_response_norm_matches_torch_values_and_gradients(n):
    g = torch.Generator().manual_seed(n)
    x = 3 * torch.randn(2, 7, 5, 4, generator=g, dtype=torch.float64)
    upstream = torch.randn(2, 7, 5, 4, generator=g, dtype=torch.float64)
    mine, ref = LocalResponseNorm(n, alpha=0.05, beta=0.75, k=2.0), nn.LocalResponseNorm(n, 0.05 * n, 0.75, 2.0)
    outs = []
    for layer in (mine, ref):
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        outs.append((y.detach(), torch.autograd.grad(y, xi, upstream)[0]))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-12, atol=1e-12)


def test_imagenet_network_has_60965224_parameters_layer_by_layer():
    with torch.device("meta"):
        net = AlexNet(IMAGENET)
        out = net(torch.empty(1, 3, 227, 227))
        features = net.features(torch.empty(1, 3, 227, 227))
    assert out.shape == (1, 1000) and features.shape == (1, 256, 6, 6)
    layers = [count_params(m) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers == [34_944, 307_456, 885_120, 663_936, 442_624, 37_752_832, 16_781_312, 4_097_000]
    assert count_params(net) == IMAGENET_PARAMS == alexnet_imagenet_params_formula() == 60_965_224


def test_small_variant_takes_digits_and_stays_small():
    net = alexnet_small()
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert count_params(net) < 1_000_000
    assert alexnet_small(activation="tanh", lrn=False)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_init_is_variance_preserving_for_the_unit():
    torch.manual_seed(0)
    for activation, gain in (("relu", 2.0), ("tanh", (5 / 3) ** 2)):
        net = AlexNet(activation=activation)
        conv = net.features[[i for i, m in enumerate(net.features) if isinstance(m, nn.Conv2d)][1]]
        assert conv.weight.var().item() == pytest.approx(gain / conv.weight[0].numel(), rel=0.05)
        assert conv.bias.abs().sum() == 0


def test_first_below_respects_the_window():
    assert first_below([0.9, 0.1, 0.05, 0.01], 0.1, window=1) == 2
    assert first_below([0.9, 0.1, 0.05, 0.01], 0.1, window=3) == 3
    assert first_below([0.9, 0.5], 0.1, window=1) is None


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown activation"):
        alexnet_small(activation="sigmoid")
    with pytest.raises(ValueError, match="shrinks to nothing"):
        AlexNet(AlexNetConfig(image_size=12))
