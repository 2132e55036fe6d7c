"""CausalVAE: the causal layer solves the linear SCM, do() reaches only descendants, the ELBO pieces."""

import pytest
import torch

from deepatlas.data.causal import PENDULUM_GRAPH, linear_sem, pendulum_scene
from deepatlas.zoo.causal.causalvae import CausalVAE, causal_layer, fit_structure, loss_terms, propagate
from deepatlas.zoo.causal.graphs import is_dag


def _chain_model(seed: int = 0) -> CausalVAE:
    """A CausalVAE on the pendulum graph with nonzero weights on its four edges."""
    torch.manual_seed(seed)
    model = CausalVAE(4, size=12, hidden=16)
    with torch.no_grad():
        model.support.copy_(PENDULUM_GRAPH)
        model.A_raw.copy_(torch.randn(4, 4))
    return model.eval()


def test_causal_layer_solves_the_linear_scm():
    W = torch.tensor([[0, 1.5, 0, -0.7], [0, 0, 2.0, 0], [0, 0, 0, 0.9], [0, 0, 0, 0]], dtype=torch.float64)
    eps = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z = causal_layer(W, eps)
    # z = A^T z + eps, row by row z = z A + eps
    assert torch.allclose(z, z @ W + eps, atol=1e-12)
    # the same noise pushed through the data generator's SEM gives the same values
    x = linear_sem(W, 7, seed=3)
    g = torch.Generator().manual_seed(3)
    assert torch.allclose(causal_layer(W, torch.randn(7, 4, generator=g, dtype=torch.float64)), x, atol=1e-12)


def test_intervention_changes_only_descendants_exactly():
    model = _chain_model()
    x, _ = pendulum_scene(5, seed=1, size=12)
    for factor, descendants in [(0, {2, 3}), (1, {2, 3}), (2, set()), (3, set())]:
        A = model.graph(1e-6) * model.adjacency()
        z = causal_layer(A, model.encode(x)[0])
        z_do = model.intervene_latent(x, factor, 2.5, threshold=1e-6)
        assert torch.equal(z_do[:, factor], torch.full((5,), 2.5))
        for j in set(range(4)) - descendants - {factor}:
            assert torch.equal(z_do[:, j], z[:, j]), (factor, j)  # bit for bit
        for j in descendants:
            assert (z_do[:, j] - z[:, j]).abs().min() > 0, (factor, j)


def test_propagate_is_the_counterfactual_of_a_linear_scm():
    """With linear maps g(z) = z W, do() keeps the residuals: z' = (u + v e_i-part) solved again."""
    W = torch.tensor([[0, 1.0, 0.5], [0, 0, -2.0], [0, 0, 0]], dtype=torch.float64)
    z = causal_layer(W, torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    z_do = propagate(lambda zz: zz @ W, z, 0, 1.0)
    u = z - z @ W
    u[:, 0] = 1.0
    assert torch.allclose(z_do, causal_layer(W, u), atol=1e-12)


def test_loss_pieces_are_finite_and_shapes_right():
    model = _chain_model()
    x, f = pendulum_scene(6, seed=0, size=12)
    logits, mu, logvar, z, z_hat = model(x)
    assert logits.shape == (6, 1, 12, 12) and mu.shape == logvar.shape == z.shape == z_hat.shape == (6, 4)
    terms = loss_terms(model, x, (f - f.mean(0)) / f.std(0))
    for name, value in terms.items():
        assert value.shape == () and torch.isfinite(value), name
    assert terms["h"].item() == pytest.approx(0.0, abs=1e-6)  # A lives on a DAG
    assert terms["kl_eps"] >= 0 and terms["kl_z"] >= 0 and terms["rec"] > 0


def test_kl_z_matches_torch_distributions():
    model = _chain_model().double()
    x, f = pendulum_scene(3, seed=2, size=12)
    x, u = x.double(), torch.randn(3, 4, dtype=torch.float64)
    mu, logvar = model.encode(x)
    M = torch.linalg.inv(torch.eye(4, dtype=torch.float64) - model.adjacency().T)
    q = torch.distributions.MultivariateNormal(mu @ M.T, M @ torch.diag_embed(logvar.exp()) @ M.T)
    for s in (1.0, 0.3):
        p = torch.distributions.MultivariateNormal(u, s ** 2 * torch.eye(4, dtype=torch.float64))
        want = torch.distributions.kl_divergence(q, p).mean().item()
        assert loss_terms(model, x, u, prior_std=s)["kl_z"].item() == pytest.approx(want)


def test_gradient_reaches_every_parameter():
    model = _chain_model().train()
    x, f = pendulum_scene(6, seed=0, size=12)
    terms = loss_terms(model, x, (f - f.mean(0)) / f.std(0))
    sum(terms[k] for k in ("rec", "kl_eps", "kl_z", "mask", "label")).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad[model.support.bool()].abs().sum() > 0 if name == "A_raw" else p.grad.abs().sum() > 0, name


def test_fit_structure_returns_a_dag():
    _, f = pendulum_scene(300, seed=0, noise=0.01)
    model = CausalVAE(4, size=12, hidden=8)
    fit_structure(model, (f - f.mean(0)) / f.std(0), l1=0.0, threshold=0.3, rho_max=1e4, inner_iters=20)
    assert is_dag(model.support) and model.support.diagonal().eq(0).all()


def test_bad_factor_raises():
    with pytest.raises(ValueError, match="factor"):
        _chain_model().intervene(pendulum_scene(2, size=12)[0], 4, 0.0)
