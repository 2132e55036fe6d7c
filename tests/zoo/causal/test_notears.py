"""NOTEARS: the acyclicity functions, the scores, the solver against a known DAG and against gcastle."""

import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from deepatlas.data.causal import edge_weights, er_dag, linear_sem, nonlinear_sem
from deepatlas.zoo.causal.graphs import (is_dag, notears_h, notears_h_and_grad, polynomial_h,
                                         polynomial_h_and_grad, structure_metrics, threshold_to_dag)
from deepatlas.zoo.causal.notears import LinearSEM, least_squares, notears_linear, notears_mlp


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 7), st.integers(0, 10_000), st.booleans())
def test_h_is_zero_exactly_on_dags(d, seed, add_cycle):
    B = er_dag(d, 0.5, seed=seed)
    W = edge_weights(B, seed=seed)
    if add_cycle:
        W[0, 0] = 0.3  # a self-loop is the shortest cycle
    for h in (notears_h, polynomial_h):
        value = h(W).item()
        if add_cycle:
            assert value > 1e-3
        else:
            assert abs(value) < 1e-9
    assert is_dag(W) != add_cycle


def test_h_of_a_two_cycle_in_closed_form():
    a, b = 0.7, -1.3
    W = torch.tensor([[0.0, a], [b, 0.0]], dtype=torch.float64)
    # e^{M} for M = [[0, a^2], [b^2, 0]] has trace 2 cosh(|ab|)
    assert notears_h(W).item() == pytest.approx(2 * math.cosh(abs(a * b)) - 2, rel=1e-12)
    # (I + M/2)^2 has trace 2 + 2 (ab)^2 / 4
    assert polynomial_h(W).item() == pytest.approx((a * b) ** 2 / 2, rel=1e-12)


@pytest.mark.parametrize("closed_form, h", [(notears_h_and_grad, notears_h), (polynomial_h_and_grad, polynomial_h)])
def test_closed_form_gradients_match_autograd_and_finite_differences(closed_form, h):
    W = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.5
    value, grad = closed_form(W)
    Wr = W.clone().requires_grad_(True)
    h(Wr).backward()
    assert value.item() == pytest.approx(h(W).item(), rel=1e-12)
    assert torch.allclose(grad, Wr.grad, atol=1e-10)
    assert torch.autograd.gradcheck(h, (W.clone().requires_grad_(True),))


def test_least_squares_score_through_the_covariance():
    X = torch.randn(50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    W = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    value, grad = least_squares(W, X.T @ X / len(X))
    Wr = W.clone().requires_grad_(True)
    direct = 0.5 / len(X) * (X - X @ Wr).pow(2).sum()
    direct.backward()
    assert value.item() == pytest.approx(direct.item(), rel=1e-12)
    assert torch.allclose(grad, Wr.grad, atol=1e-12)


def test_structure_metrics_counts():
    true = torch.zeros(4, 4)
    true[0, 1] = true[1, 2] = true[2, 3] = 1
    est = torch.zeros(4, 4)
    est[0, 1] = 1  # correct
    est[2, 1] = 1  # reversed
    est[0, 3] = 1  # extra; 2 -> 3 is missing
    m = structure_metrics(est, true)
    assert (m["shd"], m["extra"], m["missing"], m["reversed"]) == (3, 1, 1, 1)
    assert m["tpr"] == pytest.approx(1 / 3) and m["fdr"] == pytest.approx(2 / 3)
    assert structure_metrics(true, true)["shd"] == 0


def import_castle(module: str):
    """gcastle (a test extra), whose import sets torch's default dtype to float64 for the whole process: put it back."""
    dtype = torch.get_default_dtype()
    try:
        return importlib.import_module(module)
    finally:
        torch.set_default_dtype(dtype)


def test_structure_metrics_agree_with_gcastle():
    castle = import_castle("castle.metrics")
    for seed in range(5):
        true, est = er_dag(8, seed=seed), er_dag(8, seed=seed + 100)
        ours = structure_metrics(est, true)
        theirs = castle.MetricsDAG(est.numpy(), true.numpy()).metrics
        assert ours["shd"] == theirs["shd"]
        assert ours["tpr"] == pytest.approx(theirs["tpr"], abs=1e-4)
        assert ours["fdr"] == pytest.approx(theirs["fdr"], abs=1e-4)


def test_threshold_to_dag_breaks_remaining_cycles():
    W = torch.tensor([[0.0, 0.9, 0.0], [0.0, 0.0, 0.8], [0.35, 0.0, 0.0]])
    B = threshold_to_dag(W, 0.3)
    assert is_dag(B) and B.sum() == 2 and B[2, 0] == 0


def test_notears_recovers_a_small_dag():
    W = torch.zeros(5, 5, dtype=torch.float64)
    W[0, 1], W[0, 2], W[1, 3], W[2, 3], W[3, 4] = 1.5, -1.0, 1.2, 0.8, -1.5  # a diamond and a tail
    B = (W != 0).double()
    X = linear_sem(W, 2000, seed=5)
    W_est, record = notears_linear(X, lambda1=0.0)
    assert structure_metrics(W_est, B)["shd"] == 0
    assert torch.allclose(W_est, W, atol=0.1)
    assert record["history"][-1][2] <= 1e-8


@pytest.mark.parametrize("lambda1", [0.0, 0.1])
def test_notears_matches_gcastle_with_its_constraint(lambda1):
    """gcastle's Notears uses DAG-GNN's polynomial constraint; with the same one we agree with it."""
    castle = import_castle("castle.algorithms")
    B = er_dag(6, 1.5, seed=3)
    X = linear_sem(edge_weights(B, seed=4), 500, seed=5)
    W_est, record = notears_linear(X, lambda1=lambda1, constraint="polynomial")
    reference = castle.Notears(lambda1=lambda1)
    with threadpool_limits(1):  # scipy's L-BFGS-B is ~10x slower with BLAS threads on a busy machine
        reference.learn(X.numpy())
    assert np.array_equal(np.asarray(reference.causal_matrix), (W_est.numpy() != 0).astype(int))
    assert np.abs(np.asarray(reference.weight_causal_matrix) - record["W_raw"].numpy()).max() < 1e-2


def test_notears_rejects_unknown_constraint():
    with pytest.raises(ValueError, match="unknown constraint"):
        notears_linear(torch.randn(10, 3), constraint="spectral")


def test_linear_sem_module_has_no_self_loops():
    model = LinearSEM(3)
    with torch.no_grad():
        model.W.fill_(1.0)
    x = torch.tensor([[1.0, 2.0, 4.0]])
    assert torch.allclose(model(x), torch.tensor([[6.0, 5.0, 3.0]]))


def test_notears_mlp_finds_a_nonlinear_chain():
    B = torch.zeros(3, 3, dtype=torch.float64)
    B[0, 1] = B[1, 2] = 1
    X = nonlinear_sem(B, 400, seed=0, kind="mlp")
    strength, model = notears_mlp(X, hidden=5, max_iter=20)
    assert is_dag(strength) and model.h().item() < 1e-6
    m = structure_metrics(strength, B)
    assert m["tpr"] >= 0.5 and m["shd"] <= 1
