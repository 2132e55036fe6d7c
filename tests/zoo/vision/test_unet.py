"""U-Net: shapes, parameter count, the skip wiring, and the segmentation metrics of its lab."""

import pytest
import torch

from deepatlas.zoo.vision.unet import UNet, UpConv, boundary_band, iou, unet, unet_noskip


def _double_conv(a: int, b: int) -> int:
    return 9 * a * b + 9 * b * b + 4 * b  # two bias-free 3x3 convolutions, two BatchNorms (weight and bias)


@pytest.mark.parametrize("skip", [True, False])
def test_shapes_and_parameter_count(skip):
    width, depth, c_in, c_out = 4, 3, 2, 3
    net = UNet(c_in, c_out, width=width, depth=depth, skip=skip)
    assert net(torch.randn(2, c_in, 16, 24)).shape == (2, c_out, 16, 24)
    widths = [width * 2 ** level for level in range(depth + 1)]
    expected = _double_conv(c_in, widths[0]) + sum(_double_conv(a, b) for a, b in zip(widths, widths[1:]))
    for c in widths[1:]:
        expected += 4 * c * (c // 2) + c // 2  # the 2x2 up-convolution
        expected += _double_conv(c if skip else c // 2, c // 2)  # the decoder level, after concatenation or not
    expected += widths[0] * c_out + c_out  # the 1x1 head
    assert sum(p.numel() for p in net.parameters()) == expected


def test_registered_twins():
    skip, noskip = unet(width=4), unet_noskip(width=4)
    assert skip.skip and not noskip.skip
    assert skip(torch.randn(1, 1, 32, 32)).shape == noskip(torch.randn(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_decoder_receives_the_encoder_features_only_with_skips():
    """The last decoder level's input is [Up(d_1), e_0] with skips and Up(d_1) alone without."""
    for skip in (True, False):
        net = UNet(width=4, depth=2, skip=skip).eval()
        seen = {}
        net.down[0].register_forward_hook(lambda m, i, o: seen.__setitem__("e0", o))
        net.up[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("up", o))
        net.dec[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("dec_in", i[0]))
        net(torch.randn(2, 1, 8, 8))
        expected = torch.cat([seen["up"], seen["e0"]], 1) if skip else seen["up"]
        assert torch.equal(seen["dec_in"], expected)


def test_up_convolution_is_nearest_upsampling_then_a_2x2_convolution():
    up = UpConv(2).double()
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    big = x.repeat_interleave(2, 2).repeat_interleave(2, 3)  # (1, 2, 6, 6)
    big = torch.nn.functional.pad(big, (0, 1, 0, 1))
    w, b = up.conv.weight, up.conv.bias  # (1, 2, 2, 2), (1,)
    # y_{ij} = b + \sum_{c, u, v} w_{c,u,v} \, \mathrm{up}_{c, i+u, j+v}
    expected = b + sum((w[0, :, u, v, None, None] * big[0, :, u:u + 6, v:v + 6]).sum(0)
                       for u in range(2) for v in range(2))
    assert torch.allclose(up(x), expected[None, None])


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        UNet(depth=3)(torch.randn(1, 1, 20, 20))
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)


def test_boundary_band_of_a_square():
    mask = torch.zeros(1, 1, 20, 20)
    mask[..., 5:15, 5:15] = 1  # a 10x10 square
    band = boundary_band(mask, 1)
    # within one pixel of the edge: the 12x12 dilated square minus the 8x8 eroded one
    assert band.sum() == 12 * 12 - 8 * 8
    assert band[0, 0, 4, 4] and band[0, 0, 5, 5] and band[0, 0, 14, 10]
    assert not band[0, 0, 6, 6] and not band[0, 0, 3, 3] and not band[0, 0, 16, 10]


def test_iou_hand_example():
    truth = torch.tensor([[1, 1, 0, 0]])
    pred = torch.tensor([[1, 0, 1, 0]])
    assert iou(pred, truth) == pytest.approx(1 / 3)
    assert iou(pred, truth, where=torch.tensor([[True, False, False, True]])) == 1.0
    assert iou(torch.zeros(3), torch.zeros(3)) == 0.0
