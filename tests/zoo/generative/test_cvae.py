"""Conditional VAE: the label reaches both encoder and decoder, and the conditional ELBO's terms."""

import pytest
import torch

from deepatlas.zoo.generative.cvae import CVAE
from deepatlas.zoo.generative.vae import bernoulli_nll, gaussian_kl, importance_weighted_nll, negative_elbo


def _model():
    return CVAE(latent_dim=4, hidden=(32,), generator=torch.Generator().manual_seed(0))


def test_the_label_changes_the_posterior_and_the_decoder():
    model, x = _model(), torch.rand(2, 1, 28, 28)
    y0, y1 = torch.tensor([0, 0]), torch.tensor([3, 3])
    assert not torch.allclose(model.encode(x, y0)[0], model.encode(x, y1)[0])
    z = torch.randn(2, 4)
    assert not torch.allclose(model.decode(z, y0), model.decode(z, y1))


def test_decoder_gradient_reaches_the_label_input_weights():
    """Only the columns of the decoder's first layer that read the one-hot of y get a gradient from it."""
    model = _model()
    first = model.decoder.net[0]  # Linear(D + K, h)
    logits = model.decode(torch.zeros(1, 4), torch.tensor([7]))
    logits.sum().backward()
    grad = first.weight.grad  # (h, D + K)
    label_cols = grad[:, 4:]
    assert label_cols[:, 7].abs().sum() > 0
    assert label_cols[:, [c for c in range(10) if c != 7]].abs().sum() == 0


def test_conditional_elbo_terms_and_samples():
    model, g = _model(), torch.Generator().manual_seed(1)
    x, y = (torch.rand(3, 1, 28, 28) > 0.5).float(), torch.tensor([1, 5, 9])
    rec, kl = negative_elbo(model, x, torch.Generator().manual_seed(2), y)
    mu, logvar = model.encode(x, y)
    torch.testing.assert_close(kl, gaussian_kl(mu, logvar))
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(rec, bernoulli_nll(model.decode(z, y), x))
    assert importance_weighted_nll(model, x, 5, g, y).shape == (3,)
    s = model.sample(torch.tensor([2, 2, 4]), g)
    assert s.shape == (3, 1, 28, 28) and 0 <= s.min() and s.max() <= 1


def test_bad_labels_are_refused():
    model = _model()
    with pytest.raises(ValueError, match="integer labels"):
        model.decode(torch.zeros(1, 4), torch.tensor([10]))
    with pytest.raises(ValueError, match="integer labels"):
        model.encode(torch.rand(1, 1, 28, 28), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="num_classes"):
        CVAE(4, num_classes=1)
