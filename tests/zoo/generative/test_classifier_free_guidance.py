import pytest
import torch

from deepatlas.nn.denoisers import UNet
from deepatlas.zoo.generative.classifier_free_guidance import GuidedDDPM, drop_labels, guided_eps


def test_drop_labels_rate_and_bounds():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (20000,), generator=g)
    dropped = drop_labels(y, 0.2, 10, g)
    share = (dropped == 10).float().mean().item()
    assert abs(share - 0.2) < 0.01
    kept = dropped != 10
    assert torch.equal(dropped[kept], y[kept])  # the others are untouched
    assert torch.equal(drop_labels(y, 0.0, 10, g), y)
    assert (drop_labels(y, 1.0, 10, g) == 10).all()
    with pytest.raises(ValueError, match="p_uncond"):
        drop_labels(y, 1.5, 10, g)


def test_guided_eps_is_the_extrapolation_of_two_separate_calls():
    torch.manual_seed(0)
    net = UNet(1, 8, (1, 2), num_classes=10).double()
    x = torch.randn(4, 1, 14, 14, dtype=torch.float64)
    t, y = torch.tensor([1, 50, 500, 999]), torch.tensor([0, 3, 9, 5])
    e_c, e_u = net(x, t, y), net(x, t, torch.full_like(y, 10))
    for w in (0.0, 1.0, 3.0):
        torch.testing.assert_close(guided_eps(net, y, w, 10)(x, t), (1 + w) * e_c - w * e_u)
    torch.testing.assert_close(guided_eps(net, y, -1.0, 10)(x, t), e_u)  # w = -1 is the unconditional model


def test_guided_ddpm_trains_and_samples_the_requested_shape():
    g = torch.Generator().manual_seed(0)
    model = GuidedDDPM(UNet(1, 8, (1, 2), num_classes=10), p_uncond=1.0, T=20)
    model.loss(torch.rand(6, 1, 28, 28), torch.arange(6), g).backward()
    grad = model.denoiser.cond.classes.weight.grad  # (11, dim): every label was dropped, only the null row learns
    assert grad[10].abs().sum() > 0 and grad[:10].abs().sum() == 0
    x = model.sample(torch.tensor([1, 7, 7]), g, w=3.0, steps=4)
    assert x.shape == (3, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
