"""MBConv against its written-out form, stochastic depth, and compound scaling of parameters and FLOPs."""

import pytest
import torch
import torch.nn.functional as F

from deepatlas.registry import create_model
from deepatlas.zoo.vision.cnn_zoo import multiply_adds, n_params
from deepatlas.zoo.vision.efficientnet import (
    ALPHA, BETA, GAMMA, MBConv, EfficientNet, compound_scaling, drop_path, round_filters, round_repeats,
)

# a plan with four blocks per stage, so that rounding the repeats up stays close to alpha^phi
PLAN = [(1, 3, 1, 16, 4), (6, 3, 2, 24, 4), (6, 5, 2, 40, 4)]


def test_mbconv_matches_its_written_out_form_in_float64():
    g = torch.Generator().manual_seed(0)
    block = MBConv(8, 8, expand=4, k=5).double().eval()
    x = torch.randn(2, 8, 7, 7, generator=g, dtype=torch.float64, requires_grad=True)

    def bn(h, m):
        return F.batch_norm(h, m.running_mean, m.running_var, m.weight, m.bias, eps=m.eps)

    expand, dw, project, se = block.expand, block.depthwise, block.project, block.se
    h = F.silu(bn(F.conv2d(x, expand[0].weight), expand[1]))  # 1x1 expansion to 32 channels
    h = F.silu(bn(F.conv2d(h, dw[0].weight, padding=2, groups=32), dw[1]))  # depthwise 5x5
    s = torch.sigmoid(se.fc2(F.silu(se.fc1(h.mean((2, 3))))))  # SE, 2 = 8 x 0.25 hidden units
    ref = x + bn(F.conv2d(h * s[:, :, None, None], project[0].weight), project[1])  # linear projection, residual
    out = block(x)
    assert se.fc1.out_features == 2 and block.residual
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(out.sum(), x)
    (grad_ref,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-12, atol=1e-12)


def test_residual_only_when_shapes_agree():
    assert MBConv(8, 8).residual and not MBConv(8, 16).residual and not MBConv(8, 8, stride=2).residual
    assert MBConv(8, 8, expand=1).expand is None
    assert MBConv(8, 16, stride=2)(torch.randn(1, 8, 7, 7)).shape == (1, 16, 4, 4)


def test_stochastic_depth_drops_whole_examples_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(20000, 2, 1, 1)
    y = drop_path(x, 0.3, training=True)
    per_example = y[:, :, 0, 0]
    assert ((per_example == 0).all(1) | (per_example == 1 / 0.7).all(1)).all()
    assert (per_example[:, 0] == 0).float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert y.mean().item() == pytest.approx(1.0, abs=0.03)
    assert drop_path(x, 0.3, training=False) is x


def test_stochastic_depth_rate_grows_with_depth_and_only_drops_residual_branches():
    net = EfficientNet(drop_path_rate=0.2)
    rates = [b.drop_path_rate for b in net.blocks]
    assert rates[0] == 0 and rates == sorted(rates) and max(rates) < 0.2
    block = MBConv(8, 8, drop_path_rate=0.5).train()
    x = torch.randn(64, 8, 5, 5)
    torch.manual_seed(0)
    y = block(x)
    kept_input = [(y[i] - x[i]).abs().max() < 1e-6 for i in range(64)]  # dropped branch: y = x exactly
    assert 10 < sum(kept_input) < 54

def test_compound_coefficients():
    d, w, r = compound_scaling(2)
    assert (d, w, r) == pytest.approx((ALPHA**2, BETA**2, GAMMA**2))
    # the paper's constraint: alpha beta^2 gamma^2 ~ 2, so FLOPs about double per unit of phi
    assert ALPHA * BETA**2 * GAMMA**2 == pytest.approx(2, rel=0.05)
    assert round_filters(32, 1.1) == 32 and round_filters(32, 1.3) == 40 and round_filters(10, 1.0, 1) == 10
    assert round_repeats(2, 1.2) == 3 and round_repeats(4, 1.0) == 4


@pytest.mark.parametrize("phi", [1, 3])
def test_scaling_phi_scales_parameters_and_flops_as_designed(phi):
    x = torch.randn(1, 1, 28, 28)
    base = EfficientNet(stages=PLAN, divisor=1)
    d, w, r = compound_scaling(phi)
    scaled = EfficientNet(d, w, r, stages=PLAN, divisor=1)
    assert scaled.resolution == round(28 * r)
    # parameters do not depend on the resolution: about d w^2; multiply-adds about d w^2 r^2 = 1.92^phi
    assert n_params(scaled) / n_params(base) == pytest.approx(d * w**2, rel=0.1)
    assert multiply_adds(scaled, x) / multiply_adds(base, x) == pytest.approx((ALPHA * BETA**2 * GAMMA**2) ** phi,
                                                                              rel=0.1)


def test_each_dimension_alone():
    x = torch.randn(1, 1, 28, 28)
    base = EfficientNet(stages=PLAN, divisor=1, base_resolution=32)  # 32 -> 16 -> 8: every map halves exactly
    wider = EfficientNet(width_mult=2.0, stages=PLAN, divisor=1, base_resolution=32)
    sharper = EfficientNet(resolution_mult=2.0, stages=PLAN, divisor=1, base_resolution=32)
    assert n_params(sharper) == n_params(base)  # resolution adds compute, not parameters
    assert multiply_adds(sharper, x) / multiply_adds(base, x) == pytest.approx(4, rel=0.1)
    # width: the 1x1 convolutions (C_in C_out weights) grow by w^2; depthwise kernels and BN only by w
    def pointwise(net):
        convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
        return sum(m.weight.numel() for m in convs)

    assert pointwise(wider) / pointwise(base) == pytest.approx(4, rel=0.02)
    assert 2 < n_params(wider) / n_params(base) < 4


def test_registered_variants_take_digits():
    for phi in (0, 1):
        net = create_model("efficientnet_small", phi=phi)
        assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_bad_arguments():
    with pytest.raises(ValueError, match="multipliers"):
        EfficientNet(width_mult=0)
    with pytest.raises(ValueError, match="drop_path_rate"):
        EfficientNet(drop_path_rate=1.0)
    with pytest.raises(ValueError, match="odd kernel"):
        MBConv(4, 4, k=4)
