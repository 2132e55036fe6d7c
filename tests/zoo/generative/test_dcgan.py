"""DCGAN: the paper's architecture rules, transposed-convolution sizes, init, sampling, training."""

import pytest
import torch
from torch import nn

from deepatlas.zoo.generative.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init_, fit_dcgan, train_gan


def test_transposed_convolutions_double_the_map():
    """H_out = (H_in - 1) s - 2p + k: 1 -> 7 -> 14 -> 28 with the generator's layers."""
    G = DCGANGenerator(nz=8, width=4)
    h = torch.randn(3, 8, 1, 1)
    sizes = [1]
    for m in G.net:
        h = m(h)
        if isinstance(m, nn.ConvTranspose2d):
            k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
            assert h.shape[-1] == (sizes[-1] - 1) * s - 2 * p + k
            sizes.append(h.shape[-1])
    assert sizes == [1, 7, 14, 28]


def test_the_architecture_rules():
    """No pooling or hidden linear layer; BN except at G's output and D's input; ReLU in G, LeakyReLU in D."""
    G, D = DCGANGenerator(), DCGANDiscriminator()
    for net in (G, D):
        assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Linear)) for m in net.modules())
    assert isinstance(G.net[-2], nn.ConvTranspose2d) and isinstance(G.net[-1], nn.Tanh)
    assert isinstance(D.net[0], nn.Conv2d) and isinstance(D.net[1], nn.LeakyReLU)  # no BN on the input
    assert D.net[1].negative_slope == 0.2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) == 2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == 1
    assert any(isinstance(m, nn.ReLU) for m in G.modules())
    assert not any(isinstance(m, nn.LeakyReLU) for m in G.modules())


def test_init_is_normal_with_std_002():
    G = dcgan_init_(DCGANGenerator(nz=64, width=64), torch.Generator().manual_seed(0))
    w = G.net[0].weight  # 64 * 128 * 49 weights
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    bn = G.net[1].weight
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01)
    a = dcgan_init_(DCGANDiscriminator(), torch.Generator().manual_seed(3))
    b = dcgan_init_(DCGANDiscriminator(), torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_shapes_and_sample_range():
    G, D = DCGANGenerator(nz=16, width=8), DCGANDiscriminator(width=8)
    x = G(torch.randn(5, 16))
    assert x.shape == (5, 1, 28, 28) and x.abs().max() <= 1
    assert D(x).shape == (5,)
    s = G.sample(6, torch.Generator().manual_seed(1))
    assert s.shape == (6, 1, 28, 28) and 0 <= s.min() and s.max() <= 1 and G.training
    assert torch.equal(s, G.sample(6, torch.Generator().manual_seed(1)))


def test_training_moves_the_discriminator_towards_the_data(quiet_run):
    """A few D/G rounds on a fixed image: D's loss on the pair falls below its starting value log 4."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 28, 28) - 1
    x[:, :, 10:18, 10:18] = 1  # a white square on black
    G, D = dcgan_init_(DCGANGenerator(8, 8), g), dcgan_init_(DCGANDiscriminator(8), g)
    curves = train_gan(quiet_run, G, D, x, steps=30, batch_size=16, generator=g)
    assert len(curves["d_loss"]) == 30
    assert curves["d_loss"][0] == pytest.approx(2 * torch.log(torch.tensor(2.0)).item(), abs=0.15)
    assert min(curves["d_loss"][-10:]) < curves["d_loss"][0] - 0.2


def test_fit_dcgan_checks_its_input(quiet_run):
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        fit_dcgan(quiet_run, torch.rand(8, 784), steps=1, batch_size=4, generator=torch.Generator())
    G = fit_dcgan(quiet_run, torch.rand(8, 1, 28, 28), steps=2, batch_size=4, generator=torch.Generator().manual_seed(0),
                  width=4)
    assert G.sample(3).shape == (3, 1, 28, 28)
