import torch

from deepatlas.nn.denoisers import TimeMLP
from deepatlas.zoo.generative.latent_diffusion import LatentDiffusion, flops
from deepatlas.zoo.generative.vae import VAE


def test_codes_are_standardised_and_decode_inverts_the_scaling():
    torch.manual_seed(0)
    ldm = LatentDiffusion(VAE(8), hidden=16, depth=1, T=10)
    x = torch.rand(64, 1, 28, 28)
    z = ldm.fit_scale(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(8), atol=1e-5, rtol=0)
    mu = ldm.vae.encode(x)[0]
    torch.testing.assert_close(ldm.decode(z), torch.sigmoid(ldm.vae.decode(mu)), atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in ldm.vae.parameters())  # the autoencoder is frozen
    s = ldm.sample(5, torch.Generator().manual_seed(0), steps=3)
    assert s.shape == (5, 1, 28, 28) and 0 <= s.min() and s.max() <= 1


def test_flop_counter_counts_a_linear_layer_exactly():
    net = TimeMLP(4, 8, 1)
    # Linear(4->8) + cond MLP Linear(8->8) x2 + block Linear(8->8) + out Linear(8->4), 2 FLOPs per multiply-add
    expected = 2 * (4 * 8 + 8 * 8 + 8 * 8 + 8 * 8 + 8 * 4)
    assert flops(net, torch.zeros(1, 4), torch.zeros(1, dtype=torch.long)) == expected
    assert flops(torch.nn.Conv2d(1, 2, 3, padding=1), torch.zeros(1, 1, 5, 5)) == 2 * 9 * 2 * 25
