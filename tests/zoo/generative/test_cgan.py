"""Conditional GAN: the label reaches both players, and the conditional loop trains on labelled pairs."""

import pytest
import torch

from deepatlas.zoo.generative.cgan import ConditionalDiscriminator, ConditionalGenerator
from deepatlas.zoo.generative.dcgan import train_gan


def test_condition_reaches_both_players():
    G, D = ConditionalGenerator(nz=8, width=8), ConditionalDiscriminator(width=8)
    z = torch.randn(4, 8)
    G.eval()
    y0, y1 = torch.zeros(4, dtype=torch.long), torch.full((4,), 7)
    assert not torch.allclose(G(z, y0), G(z, y1))
    x = torch.rand(4, 1, 28, 28)
    assert not torch.allclose(D(x, y0), D(x, y1))
    assert G.sample(torch.arange(10), torch.Generator().manual_seed(0)).shape == (10, 1, 28, 28)
    with pytest.raises(ValueError, match="at least 2 classes"):
        ConditionalGenerator(n_classes=1)


def test_discriminator_sees_one_hot_planes():
    """Plane k of D's input is all ones exactly for label k: D's first layer gets [x, onehot(y)]."""
    D = ConditionalDiscriminator(width=4, n_classes=3)
    seen = {}
    D.conv1.register_forward_hook(lambda m, inp, out: seen.setdefault("x", inp[0]))
    x = torch.rand(2, 1, 28, 28)
    D(x, torch.tensor([2, 0]))
    h = seen["x"]  # (2, 4, 28, 28)
    assert torch.equal(h[:, 0], x[:, 0])
    assert h[0, 3].eq(1).all() and h[0, 1:3].eq(0).all() and h[1, 1].eq(1).all()


def test_conditional_training_runs_on_labelled_data(quiet_run):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 1, 28, 28) * 2 - 1
    y = torch.arange(32) % 10
    G, D = ConditionalGenerator(nz=4, width=4), ConditionalDiscriminator(width=4)
    curves = train_gan(quiet_run, G, D, x, y=y, steps=3, batch_size=8, generator=g, decay=True)
    assert len(curves["g_loss"]) == 3 and all(torch.isfinite(torch.tensor(curves["d_loss"])))
