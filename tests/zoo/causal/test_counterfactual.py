"""Counterfactuals: the three steps against the closed forms (full and partial evidence)."""

import torch

from deepatlas.data.causal import edge_weights, er_dag
from deepatlas.zoo.causal.counterfactual import (counterfactual, linear_counterfactual,
                                                 linear_gaussian_counterfactual)
from deepatlas.zoo.causal.scm import linear_scm


def test_three_steps_equal_closed_form_on_random_linear_scms():
    for seed in range(5):
        B = er_dag(7, 1.5, seed=seed)
        W = edge_weights(B, seed=seed)
        names = [f"x{i}" for i in range(7)]
        scm = linear_scm(W, names, [1.0] * 7)
        units = scm.sample(50, torch.Generator().manual_seed(seed))
        X = torch.stack([units[v] for v in names], 1)
        for j in range(7):
            cf = counterfactual(scm, units, {names[j]: 1.5})
            closed = linear_counterfactual(W, X, j, 1.5)
            assert torch.allclose(torch.stack([cf[v] for v in names], 1), closed, atol=1e-10)
            # non-descendants of x_j keep their observed values
            T = torch.linalg.inv(torch.eye(7, dtype=torch.float64) - W)
            untouched = (T[j].abs() < 1e-12)
            assert torch.allclose(closed[:, untouched], X[:, untouched], atol=1e-12)


def test_full_evidence_gaussian_counterfactual_is_deterministic():
    W = torch.zeros(3, 3, dtype=torch.float64)
    W[0, 1], W[1, 2] = 1.5, -2.0
    x = torch.tensor([[0.3, 1.0, -1.2]], dtype=torch.float64)
    mean, cov = linear_gaussian_counterfactual(W, torch.ones(3), {0: 0.3, 1: 1.0, 2: -1.2}, 1, 4.0)
    assert torch.allclose(mean, linear_counterfactual(W, x, 1, 4.0)[0], atol=1e-10)
    assert cov.abs().max() < 1e-10


def test_partial_evidence_counterfactual_against_the_twin_network_by_regression():
    """Simulate the twin network (same noise, factual and counterfactual worlds), then condition the
    jointly Gaussian samples on the evidence by least squares: the moments must agree."""
    W = torch.zeros(4, 4, dtype=torch.float64)
    W[0, 1], W[0, 2], W[1, 3], W[2, 3] = 1.0, -0.8, 1.2, 0.7
    noise_var = torch.tensor([1.0, 0.5, 1.5, 0.3], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    n = 400_000
    u = torch.randn(n, 4, generator=g, dtype=torch.float64) * noise_var.sqrt()
    factual = u @ torch.linalg.inv(torch.eye(4, dtype=torch.float64) - W)
    W_cut = W.clone()
    W_cut[:, 1] = 0
    u_cf = u.clone()
    u_cf[:, 1] = 2.0
    twin = u_cf @ torch.linalg.inv(torch.eye(4, dtype=torch.float64) - W_cut)  # do(x1 = 2)
    evidence = {3: 1.5}  # only x3 was seen
    mean, cov = linear_gaussian_counterfactual(W, noise_var, evidence, 1, 2.0)
    e = factual[:, 3:4]
    A = torch.cat([torch.ones(n, 1, dtype=torch.float64), e], 1)
    coef = torch.linalg.lstsq(A, twin).solution  # E[twin | x3] = c0 + c1 x3
    resid = twin - A @ coef
    assert torch.allclose(coef[0] + 1.5 * coef[1], mean, atol=0.02)
    assert torch.allclose(resid.T @ resid / n, cov, atol=0.03)
