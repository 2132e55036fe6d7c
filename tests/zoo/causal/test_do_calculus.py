"""Truncated factorisation and back-door adjustment against the network's own interventional truth."""

import pytest
import torch

from deepatlas.zoo.causal.bayesian_network import variable_elimination
from deepatlas.zoo.causal.do_calculus import (backdoor_adjustment, fit_tables, marginal, smoking_network,
                                              truncated_factorisation)


def test_truncated_factorisation_is_a_distribution_and_cuts_the_arrows():
    bn = smoking_network()
    joint = truncated_factorisation(bn, {"S": 1})
    assert "S" not in joint.variables and joint.table.sum().item() == pytest.approx(1.0)
    # the causes of S keep their prior distribution under do(S)
    assert torch.allclose(marginal(joint, ["G"]).table, variable_elimination(bn, ["G"]).table)


def test_backdoor_adjustment_on_the_true_tables_is_exact():
    bn = smoking_network()
    for s in (0, 1):
        truth = marginal(truncated_factorisation(bn, {"S": s}), ["C"]).normalise().table
        assert torch.allclose(backdoor_adjustment(bn, "S", s, "C", ["G", "A"]), truth, atol=1e-12)
        assert torch.allclose(backdoor_adjustment(bn, "S", s, "C", ["G"]), truth, atol=1e-12)  # {G} also blocks
        assert (variable_elimination(bn, ["C"], {"S": s}).table - truth).abs().max() > 0.05  # confounded


def test_fit_tables_converges_to_the_generating_tables():
    bn = smoking_network()
    data = bn.sample(100_000, torch.Generator().manual_seed(0))
    fitted = fit_tables(data, bn.cards, bn.parents)
    for v in bn.cards:
        assert torch.allclose(fitted.cpds[v], bn.cpds[v], atol=0.03)
