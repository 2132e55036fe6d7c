"""CycleGAN: the LSGAN and cycle losses in closed form, shapes, and one training step doing what it says."""

import pytest
import torch
import torch.nn.functional as F

from deepatlas.zoo.generative.cyclegan import (CycleGAN, CycleGenerator, PatchDiscriminator, cycle_loss,
                                               lsgan_d_loss, lsgan_g_loss, train_step)


def test_lsgan_losses_closed_form():
    real, fake = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0])
    # 1/2 (mean((real - 1)^2) + mean(fake^2)) = 1/2 (0.125 + 0.5)
    assert lsgan_d_loss(real, fake).item() == pytest.approx(0.3125)
    assert lsgan_g_loss(fake).item() == pytest.approx(0.5)
    assert lsgan_d_loss(torch.ones(3), torch.zeros(3)).item() == 0 and lsgan_g_loss(torch.ones(3)).item() == 0


def test_cycle_loss_is_l1():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 1, 28, 28, generator=g, dtype=torch.float64), torch.randn(4, 1, 28, 28, generator=g,
                                                                                     dtype=torch.float64)
    a.requires_grad_(True)
    ours, ref = cycle_loss(a, b), F.l1_loss(b, a)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    (ga,) = torch.autograd.grad(ours, a)
    (gr,) = torch.autograd.grad(F.l1_loss(b, a), a)
    assert torch.allclose(ga, gr)


def test_shapes():
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    y = CycleGenerator(width=4, n_blocks=1)(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert PatchDiscriminator(width=4)(x).shape == (3, 7, 7)
    out = CycleGAN(width=4, n_blocks=1, d_width=4)(x, x)
    assert set(out) == {"fake_b", "fake_a", "cycled_a", "cycled_b", "score_fake_b", "score_fake_a"}
    with pytest.raises(ValueError, match="width"):
        CycleGenerator(width=0)


def test_train_step_reports_the_losses_it_optimises_and_leaves_d_to_its_optimiser():
    torch.manual_seed(0)
    model = CycleGAN(width=4, n_blocks=1, d_width=4)
    g_params = [*model.G.parameters(), *model.F.parameters()]
    d_params = [*model.D_A.parameters(), *model.D_B.parameters()]
    opt_g, opt_d = torch.optim.Adam(g_params, 1e-3), torch.optim.Adam(d_params, 1e-3)
    a, b = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        out = model(a, b)
        expected_cycle = cycle_loss(a, out["cycled_a"]) + cycle_loss(b, out["cycled_b"])
        expected_adv = lsgan_g_loss(out["score_fake_b"]) + lsgan_g_loss(out["score_fake_a"])
    d_before = [p.clone() for p in d_params]
    losses = train_step(model, opt_g, opt_d, a, b, lambda_cyc=10.0, lambda_id=5.0)
    assert losses["cycle"].item() == pytest.approx(expected_cycle.item(), rel=1e-5)
    assert losses["g_adv"].item() == pytest.approx(expected_adv.item(), rel=1e-5)
    moved = [not torch.equal(p, q) for p, q in zip(d_params, d_before)]
    assert all(moved)  # D took exactly its own step (Adam moves every weight with a gradient)


def test_cycle_loss_falls_when_training():
    """Thirty steps on two batches: the round trip gets closer to the identity."""
    torch.manual_seed(0)
    model = CycleGAN(width=4, n_blocks=1, d_width=4)
    opt_g = torch.optim.Adam([*model.G.parameters(), *model.F.parameters()], 2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*model.D_A.parameters(), *model.D_B.parameters()], 2e-3, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(1)
    a = (torch.rand(8, 1, 28, 28, generator=g) > 0.8).float() * 2 - 1
    b = (torch.rand(8, 1, 28, 28, generator=g) > 0.6).float() * 2 - 1
    first = train_step(model, opt_g, opt_d, a, b)["cycle"].item()
    for _ in range(30):
        last = train_step(model, opt_g, opt_d, a, b)["cycle"].item()
    assert last < 0.7 * first
