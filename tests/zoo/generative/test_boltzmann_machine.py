"""Boltzmann machine: the learning rule's correlations against the exact log-likelihood gradient, Gibbs
sampling against enumeration, and the parity that needs hidden units."""

import math

import pytest
import torch

from deepatlas.zoo.generative.boltzmann_machine import (BoltzmannMachine, apply_rule, exact_correlations,
                                                        gibbs_sweeps, kl_to_data, parity_data)
from deepatlas.zoo.generative.rbm import all_states


def _bm(n_v=3, n_h=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    bm = BoltzmannMachine(n_v, n_h, g).double()
    with torch.no_grad():
        bm.U.copy_(torch.randn(n_v + n_h, n_v + n_h, generator=g, dtype=torch.float64))
        bm.b.copy_(torch.randn(n_v + n_h, generator=g, dtype=torch.float64))
    return bm


def test_weights_are_symmetric_with_zero_diagonal_and_energy_counts_each_pair_once():
    bm = _bm()
    W = bm.W
    assert torch.equal(W, W.T) and (W.diagonal() == 0).all()
    s = all_states(5, torch.float64)
    by_pairs = -sum(W[i, j] * s[:, i] * s[:, j] for i in range(5) for j in range(i + 1, 5)) - s @ bm.b
    assert torch.allclose(bm.energy(s), by_pairs)


def test_likelihood_sums_to_one():
    bm = _bm()
    assert torch.allclose(bm.log_likelihood(all_states(3, torch.float64)).exp().sum(),
                          torch.tensor(1.0, dtype=torch.float64))


def test_clamped_minus_free_correlations_is_the_log_likelihood_gradient():
    """d mean log P(v) / d w_ij = <s_i s_j>_data - <s_i s_j>_model, and the same for b_i on the diagonal."""
    bm = _bm()
    data = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 1]], dtype=torch.float64)
    gU, gb = torch.autograd.grad(bm.log_likelihood(data).mean(), [bm.U, bm.b])
    delta = exact_correlations(bm, data) - exact_correlations(bm)
    assert torch.allclose(gU, delta.triu(1))
    assert torch.allclose(gb, delta.diagonal())


def test_gibbs_sweeps_sample_the_boltzmann_distribution():
    bm = _bm(2, 1, seed=1)
    g = torch.Generator().manual_seed(0)
    s = gibbs_sweeps(bm, torch.zeros(8000, 3, dtype=torch.float64), 15, g)
    states = all_states(3, torch.float64)
    p = (-bm.energy(states) - bm.log_partition()).exp().detach()
    freq = (s[:, None] == states[None]).all(-1).double().mean(0)
    assert (freq - p).abs().max() < 0.02
    clamped = gibbs_sweeps(bm, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64).repeat(50, 1), 3, g,
                           clamp_visible=True)
    assert (clamped[:, :2] == torch.tensor([1.0, 0.0], dtype=torch.float64)).all()


def test_parity_needs_hidden_units():
    """Pairwise weights alone cannot beat the uniform distribution on 3-bit parity (KL stays ln 2); the exact
    rule with hidden units drives KL towards zero."""
    data = parity_data(3)
    assert len(data) == 4 and (data.sum(1) % 2 == 0).all()
    for n_hidden, check in ((0, lambda kl: kl > math.log(2) - 1e-3), (4, lambda kl: kl < 0.1)):
        bm = BoltzmannMachine(3, n_hidden, torch.Generator().manual_seed(0))
        for _ in range(800):
            apply_rule(bm, exact_correlations(bm, data), exact_correlations(bm), 2.0)
        assert check(kl_to_data(bm, data)), (n_hidden, kl_to_data(bm, data))


def test_bad_sizes():
    with pytest.raises(ValueError, match="n_visible"):
        BoltzmannMachine(0)
