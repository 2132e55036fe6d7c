"""PixelCNN: masks by gradients (no output sees its own or a later pixel), the plain net's blind spot,
the gated net's full receptive field, and the likelihood it reports."""

import math

import pytest
import torch
import torch.nn.functional as F

from deepatlas.zoo.generative.pixelcnn import (GatedPixelCNN, MaskedConv2d, PixelCNN, nll_bits_per_dim, sample,
                                               shift_down)


H = W = 9


def _dependence(net, i, j, seed=0):
    """|d out[i, j] / d x| > 0 as a (H, W) bool map, for a random binary input."""
    torch.manual_seed(seed)
    x = (torch.rand(1, 1, H, W) < 0.5).double().requires_grad_(True)
    net(x)[0, 0, i, j].backward()
    return x.grad[0, 0].abs() > 0


def _earlier(i, j):
    idx = torch.arange(H * W).view(H, W)
    return idx < i * W + j


@pytest.mark.parametrize("make", [lambda: PixelCNN(8, 3), lambda: GatedPixelCNN(8, 4)], ids=["plain", "gated"])
def test_no_output_depends_on_its_own_or_a_later_pixel(make):
    torch.manual_seed(1)
    net = make().double()
    for i, j in [(0, 0), (0, 5), (3, 0), (4, 4), (8, 8), (5, 8)]:
        dep = _dependence(net, i, j)
        assert not (dep & ~_earlier(i, j)).any(), f"output ({i}, {j}) sees a pixel at or after itself"
    assert not _dependence(net, 0, 0).any()  # the first pixel is predicted from nothing


def test_masks_a_and_b():
    a, b = MaskedConv2d(1, 1, 5, "A").mask[0, 0], MaskedConv2d(1, 1, 5, "B").mask[0, 0]
    assert a.sum() == 12 and b.sum() == 13 and a[2, 2] == 0 and b[2, 2] == 1
    assert (a[3:] == 0).all() and (a[2, 3:] == 0).all() and (a[:2] == 1).all()
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 1, 3, "C")
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 1, 4, "A")


def test_plain_pixelcnn_has_a_blind_spot_the_gated_one_has_not():
    """Every earlier pixel in the window of rows i-L..i and columns j-L..j+L: the gated net with L layers
    sees all of them; the plain net of equal reach misses some to the upper right."""
    torch.manual_seed(0)
    L, i, j = 4, 8, 4
    gated = GatedPixelCNN(8, L).double()
    plain = PixelCNN(8, 3).double()  # 7x7 stem + three 3x3: reach 3 + 3 = 6 >= L in every direction
    window = torch.zeros(H, W, dtype=torch.bool)
    window[i - L:i + 1, j - L:j + L + 1] = True
    window &= _earlier(i, j)
    assert window.sum() == L * (2 * L + 1) + L
    seen_gated = _dependence(gated, i, j)
    seen_plain = _dependence(plain, i, j)
    assert seen_gated[window].all(), "the gated PixelCNN must have no blind spot in its window"
    blind = window & ~seen_plain
    assert blind.any(), "the plain PixelCNN should miss some earlier pixels"
    assert blind[:, j + 1:].any() and not blind[i].any()  # upper right, never on the current row


def test_shift_down():
    x = torch.arange(6.).view(1, 1, 3, 2)
    assert torch.equal(shift_down(x)[0, 0], torch.tensor([[0., 0.], [0., 1.], [2., 3.]]))


def test_bits_per_dim_is_the_chain_rule_likelihood():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    x = (torch.rand(3, 1, 4, 4) < 0.5).double()
    p = torch.sigmoid(logits)
    log_lik = (x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)  # log prod_i p(x_i | x_<i)
    assert torch.allclose(nll_bits_per_dim(logits, x), -log_lik.mean() / (16 * math.log(2)))


def test_sampling_follows_the_conditionals():
    """A net whose logit for every pixel is the previous pixel's value (copy it): samples after the first pixel
    are constant rows, and the first pixel is Bernoulli(1/2)."""
    class Copy(torch.nn.Module):
        def forward(self, x):
            prev = F.pad(x.flatten(1), (1, 0))[:, :-1].view_as(x)  # x_{i-1} in raster order
            return torch.where(prev > 0.5, 50.0, -50.0) * (torch.arange(x[0].numel()).view_as(x[0]) > 0) + 0.0

    g = torch.Generator().manual_seed(0)
    s = sample(Copy(), 400, (1, 3, 3), g)
    flat = s.flatten(1)
    assert (flat == flat[:, :1]).all()
    assert 0.4 < flat[:, 0].mean() < 0.6
