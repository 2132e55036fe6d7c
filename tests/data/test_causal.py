"""Causal data: DAGs are acyclic with about k d edges, SEMs follow their equations, all by seed."""

import pytest
import torch

from deepatlas.data import causal


def test_er_dag_is_acyclic_with_about_k_d_edges():
    counts = []
    for seed in range(20):
        B = causal.er_dag(10, 2.0, seed=seed)
        order = causal.topological_order(B)
        position = {node: k for k, node in enumerate(order)}
        assert all(position[i] < position[j] for i, j in B.nonzero().tolist())
        assert B.diagonal().sum() == 0 and set(B.unique().tolist()) <= {0.0, 1.0}
        counts.append(B.sum().item())
    assert 17 <= sum(counts) / len(counts) <= 23  # 2 d = 20 edges in expectation


def test_deterministic_by_seed_and_leaves_global_rng_alone():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    B = causal.er_dag(8, seed=3)
    assert torch.equal(B, causal.er_dag(8, seed=3)) and not torch.equal(B, causal.er_dag(8, seed=4))
    W = causal.edge_weights(B, seed=1)
    assert torch.equal(causal.linear_sem(W, 50, seed=2), causal.linear_sem(W, 50, seed=2))
    assert torch.equal(causal.nonlinear_sem(B, 50, seed=2), causal.nonlinear_sem(B, 50, seed=2))
    images, factors = causal.pendulum_scene(10, seed=5)
    assert torch.equal(images, causal.pendulum_scene(10, seed=5)[0])
    assert torch.rand(1) == before, "the global torch RNG must not be used"


def test_edge_weights_ranges():
    B = causal.er_dag(12, seed=0)
    W = causal.edge_weights(B, seed=0)
    on = W[B != 0].abs()
    assert ((on >= 0.5) & (on <= 2.0)).all() and (W[B == 0] == 0).all()
    assert (W[B != 0] > 0).any() and (W[B != 0] < 0).any()


def test_linear_sem_solves_its_equations():
    B = causal.er_dag(6, 1.5, seed=1)
    W = causal.edge_weights(B, seed=1)
    X = causal.linear_sem(W, 20000, seed=2)
    Z = X - X @ W  # the noise the equations imply: independent, unit variance
    cov = torch.cov(Z.T)
    assert torch.allclose(cov, torch.eye(6, dtype=cov.dtype), atol=0.05)
    # and the covariance of X is (I - W)^{-T} (I - W)^{-1}
    inv = torch.linalg.inv(torch.eye(6, dtype=torch.float64) - W)
    assert torch.allclose(torch.cov(X.T), inv.T @ inv, rtol=0.05, atol=0.05)


def test_nonlinear_sem_cos_equations_hold():
    B = causal.er_dag(5, 1.0, seed=4)
    X = causal.nonlinear_sem(B, 3000, seed=3, kind="cos")
    roots = (B.sum(0) == 0).nonzero().flatten()
    assert torch.allclose(X[:, roots].std(0), torch.ones(len(roots), dtype=X.dtype), atol=0.06)
    assert X.shape == (3000, 5) and torch.isfinite(X).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="cycle"):
        causal.topological_order(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        causal.er_dag(1)
    with pytest.raises(ValueError, match="edges_per_node"):
        causal.er_dag(5, 3.0)
    with pytest.raises(ValueError, match="unknown nonlinear"):
        causal.nonlinear_sem(causal.er_dag(4, 1.0), 10, kind="tanh")
    with pytest.raises(ValueError, match="unknown noise"):
        causal.linear_sem(torch.zeros(3, 3), 10, noise="cauchy")


def test_pendulum_scene_factors_follow_the_scm():
    images, factors = causal.pendulum_scene(200, seed=0, size=20)
    assert images.shape == (200, 1, 20, 20) and factors.shape == (200, 4)
    assert images.min() >= 0 and images.max() <= 1
    light, angle, pos, length = factors.double().T
    want_pos, want_len = causal.pendulum_shadow(light, angle)
    assert torch.allclose(pos, want_pos, atol=1e-6) and torch.allclose(length, want_len, atol=1e-6)
    # the shadow falls on the opposite side of the light, so light and shadow position are correlated
    assert torch.corrcoef(torch.stack([light, pos]))[0, 1] > 0.5
    # the picture changes with every factor
    base = causal.render_pendulum(*[torch.tensor([0.1])] * 2, torch.tensor([0.5]), torch.tensor([0.2]))
    for k in range(4):
        args = [torch.tensor([0.1]), torch.tensor([0.1]), torch.tensor([0.5]), torch.tensor([0.2])]
        args[k] = args[k] + 0.2
        assert (causal.render_pendulum(*args) - base).abs().sum() > 1.0
