"""DAG-GNN: the graph maps of the encoder and decoder, the constraint, and a short fit."""

import torch

from deepatlas.data.causal import er_dag
from deepatlas.zoo.causal.dag_gnn import DagGnn, fit_dag_gnn, negative_elbo
from deepatlas.zoo.causal.graphs import is_dag


def test_encoder_applies_i_minus_a_transpose_and_decoder_inverts_it():
    torch.manual_seed(0)
    model = DagGnn(4, hidden=8).double().eval()
    with torch.no_grad():
        model.A.copy_(er_dag(4, 1.0, seed=1) * 0.7)
        model.shift.fill_(0.3)
    x = torch.randn(5, 4, dtype=torch.float64)
    _, mu_z = model(x)
    h = model.f3(x[..., None])
    eye = torch.eye(4, dtype=torch.float64)
    want = torch.einsum("ij,njk->nik", eye - model.A.T, h + 0.3) - 0.3
    assert torch.allclose(mu_z, want)
    # decoding the code of f3(x) with the same graph gives f2(f3(x)) back
    m = torch.einsum("ij,njk->nik", torch.linalg.inv(eye - model.A.T), mu_z + 0.3) - 0.3
    assert torch.allclose(m, h, atol=1e-12)
    assert model.h().item() < 1e-12


def test_self_loops_are_masked():
    model = DagGnn(3)
    with torch.no_grad():
        model.A.fill_(1.0)
    assert torch.equal(model.adjacency().diagonal(), torch.zeros(3))


def test_short_fit_lowers_the_loss_and_returns_a_dag():
    B = torch.zeros(3, 3, dtype=torch.float64)
    B[0, 1] = B[1, 2] = 1
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(300, generator=g, dtype=torch.float64)
    x1 = 1.5 * x0 + 0.5 * torch.randn(300, generator=g, dtype=torch.float64)
    x2 = -1.2 * x1 + 0.5 * torch.randn(300, generator=g, dtype=torch.float64)
    x = torch.stack([x0, x1, x2], 1)
    torch.manual_seed(0)
    before = negative_elbo(DagGnn(3, hidden=16), (x - x.mean(0)).float()).item()
    A, model = fit_dag_gnn(x, hidden=16, steps=30, max_iter=2)
    after = negative_elbo(model.eval(), (x - x.mean(0)).float()).item()
    assert after < before and is_dag(A)
