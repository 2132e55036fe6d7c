"""VAE: the KL and ELBO terms against torch.distributions in float64, the reparameterisation's gradients,
the importance-weighted bound, and fit_vae's contract."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Normal, kl_divergence

from deepatlas.zoo.generative.vae import (
    VAE, bernoulli_nll, fit_vae, gaussian_kl, gaussian_log_prob, importance_weighted_nll, independent_pixel_nll,
    interpolation_smoothness, nats_to_bpd, negative_elbo, reparameterize, strip,
)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 10_000))
def test_gaussian_kl_matches_torch_distributions(b, d, seed):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(b, d, generator=g, dtype=torch.float64, requires_grad=True)
    ours = gaussian_kl(mu, logvar)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)
    torch.testing.assert_close(ours, ref)
    w = torch.randn(b, generator=g, dtype=torch.float64)
    ga = torch.autograd.grad((ours * w).sum(), (mu, logvar))
    gb = torch.autograd.grad((ref * w).sum(), (mu, logvar))
    for a, c in zip(ga, gb):
        torch.testing.assert_close(a, c)


def test_kl_is_zero_exactly_at_the_prior():
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0


def test_log_prob_and_bernoulli_nll_match_torch():
    g = torch.Generator().manual_seed(0)
    z, mu, logvar = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(gaussian_log_prob(z, mu, logvar),
                               Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1))
    logits = torch.randn(4, 1, 28, 28, generator=g, dtype=torch.float64)
    x = (torch.rand(4, 1, 28, 28, generator=g) > 0.5).double()
    torch.testing.assert_close(bernoulli_nll(logits, x), -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1))


def test_reparameterisation_gradients_are_the_pathwise_ones():
    """dz/dmu = 1 and dz/dlogvar = eps * sigma / 2 for the same noise eps."""
    mu = torch.tensor([[0.3, -1.0]], dtype=torch.float64, requires_grad=True)
    logvar = torch.tensor([[0.2, -0.4]], dtype=torch.float64, requires_grad=True)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(7))
    eps = torch.randn(1, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(z, mu + (0.5 * logvar).exp() * eps)
    d_mu, d_logvar = torch.autograd.grad(z.sum(), (mu, logvar))
    torch.testing.assert_close(d_mu, torch.ones_like(mu))
    torch.testing.assert_close(d_logvar, 0.5 * eps * (0.5 * logvar).exp())
    assert torch.autograd.gradcheck(lambda m, lv: reparameterize(m, lv, torch.Generator().manual_seed(1)),
                                    (mu, logvar))


def test_shapes_and_samples():
    model = VAE(latent_dim=5, generator=torch.Generator().manual_seed(0))
    x = torch.rand(3, 1, 28, 28)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, 5) and model.latent_dim == 5
    assert model.decode(mu).shape == (3, 1, 28, 28)
    s = model.sample(4, torch.Generator().manual_seed(1))
    assert s.shape == (4, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    torch.testing.assert_close(s, model.sample(4, torch.Generator().manual_seed(1)))


def test_the_generator_decides_the_initial_weights():
    a, b = (VAE(4, generator=torch.Generator().manual_seed(3)) for _ in range(2))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    c = VAE(4, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_importance_weighting_tightens_the_bound():
    """-log p(x) <= IW-NLL(k) <= E[negative ELBO]; with k = 1 the IW estimate is a one-sample negative ELBO."""
    torch.manual_seed(0)
    model = VAE(latent_dim=3, hidden=(32,), generator=torch.Generator().manual_seed(0)).double()
    x = (torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1)) > 0.5).double()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        elbo = torch.stack([sum(negative_elbo(model, x, g)) for _ in range(200)]).mean(0)  # (B,) expected bound
    iw = torch.stack([importance_weighted_nll(model, x, 100, g) for _ in range(4)]).mean(0)
    assert (iw < elbo - 0.1).all()
    one = importance_weighted_nll(model, x, 1, torch.Generator().manual_seed(5))
    mu, logvar = model.encode(x)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    expected = bernoulli_nll(model.decode(z), x) - gaussian_log_prob(z, 0 * z, 0 * z) + gaussian_log_prob(z, mu, logvar)
    torch.testing.assert_close(one, expected.detach())
    with pytest.raises(ValueError, match="importance samples"):
        importance_weighted_nll(model, x, 0)


def test_fit_vae_learns_and_checks_its_inputs(quiet_run):
    run = quiet_run
    x = torch.zeros(64, 1, 28, 28)
    x[:32, :, 5:20, 10:14] = 1  # two kinds of image: a bar, and blank
    g = torch.Generator().manual_seed(0)
    model = fit_vae(run, x, steps=150, batch_size=32, generator=g, latent_dim=2, hidden=(64,), lr=1e-2)
    with torch.no_grad():
        rec, kl = negative_elbo(model, x, g)
    assert (rec + kl).mean() < 0.1 * 784 * math.log(2)  # far below a coin flip per pixel
    assert model.latent_dim == 2 and not model.training
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        fit_vae(run, x.flatten(1), steps=1, batch_size=8, generator=g)
    with pytest.raises(ValueError, match="beta"):
        fit_vae(run, x, steps=1, batch_size=8, generator=g, beta=-1)
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(0)


def test_interpolation_smoothness_tells_an_even_path_from_a_jump():
    a, b = torch.zeros(1, 1, 1, 28, 28), torch.ones(1, 1, 1, 28, 28)
    t = torch.linspace(0, 1, 9)[None, :, None, None, None]
    even = interpolation_smoothness((1 - t) * a + t * b)
    assert abs(even["interp_max_step"] - 1 / 8) < 1e-6 and abs(even["interp_path_over_ends"] - 1) < 1e-6
    jump = interpolation_smoothness(torch.cat([a.expand(1, 5, 1, 28, 28), b.expand(1, 4, 1, 28, 28)], 1))
    assert abs(jump["interp_max_step"] - 1) < 1e-6


def test_independent_pixel_nll_is_exact():
    g = torch.Generator().manual_seed(0)
    x_train = (torch.rand(50, 1, 28, 28, generator=g) > 0.7).float()
    x = (torch.rand(3, 1, 28, 28, generator=g) > 0.7).float()
    p = (x_train.sum(0) + 0.5) / 51
    ref = -Bernoulli(probs=p.double()).log_prob(x.double()).flatten(1).sum(1)
    torch.testing.assert_close(independent_pixel_nll(x_train, x).double(), ref, rtol=1e-5, atol=1e-3)
    assert nats_to_bpd(784 * math.log(2)) == 1.0


def test_strip_tiles_images_row_by_row():
    images = torch.arange(6.0)[:, None, None, None].expand(6, 1, 2, 3)  # image i is filled with i
    picture = strip(images, 3)
    assert picture.shape == (4, 9)
    assert picture[::2, ::3].tolist() == [[0, 1, 2], [3, 4, 5]]
