"""Deep ensembles: the Gaussian NLL against torch, the mixture moments, members trained independently."""

import pytest
import torch

from deepatlas.zoo.bayesian.deep_ensembles import DeepEnsemble, GaussianMLP, gaussian_nll, train_ensemble


def test_gaussian_nll_matches_torch():
    g = torch.Generator().manual_seed(0)
    mean, y = torch.randn(7, generator=g, dtype=torch.float64), torch.randn(7, generator=g, dtype=torch.float64)
    var = torch.rand(7, generator=g, dtype=torch.float64) + 0.1
    ref = torch.nn.functional.gaussian_nll_loss(mean, y, var, full=True)
    torch.testing.assert_close(gaussian_nll(mean, var, y), ref)


def test_mixture_moments():
    ens = DeepEnsemble([1, 8], n_members=4, generator=torch.Generator().manual_seed(1)).double()
    x = torch.randn(6, 1, dtype=torch.float64)
    mean, var = ens(x)
    mus, vs = zip(*(m(x) for m in ens.members))
    mus, vs = torch.stack(mus), torch.stack(vs)
    torch.testing.assert_close(mean, mus.mean(0))
    # law of total variance: E[var] + Var[mean]
    torch.testing.assert_close(var, vs.mean(0) + mus.var(0, correction=0))


def test_members_learn_the_noise_level():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(100, 1, generator=g) * 4 - 2
    y = torch.sin(2 * x[:, 0]) + 0.3 * torch.randn(100, generator=g)
    ens = DeepEnsemble([1, 32], n_members=2, generator=g)
    finals = train_ensemble(ens, x, y, steps=400, lr=2e-2, weight_decay=1e-3)
    assert finals[0] != finals[1]  # different starts, different solutions
    with torch.no_grad():
        for member in ens.members:
            assert 0.15 < member(x)[1].mean().sqrt() < 0.5


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="one shape"):
        gaussian_nll(torch.zeros(3), torch.ones(2), torch.zeros(3))
    with pytest.raises(ValueError, match="n_members"):
        DeepEnsemble([1, 4], n_members=0)
    with pytest.raises(ValueError, match="sizes"):
        GaussianMLP([1])
