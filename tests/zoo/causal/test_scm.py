"""SCMs: sampling follows the equations, do() against closed forms, abduction inverts the equations."""

import pytest
import torch

from deepatlas.zoo.causal.do_calculus import marginal, truncated_factorisation
from deepatlas.zoo.causal.scm import SCM, binary_scm, confounded_network, gaussian, linear_scm


def _chain():
    W = torch.zeros(3, 3, dtype=torch.float64)
    W[0, 1], W[1, 2], W[0, 2] = 2.0, -1.0, 0.5
    return W, linear_scm(W, ["a", "b", "c"], [1.0, 0.5, 2.0])


def test_linear_scm_covariance_and_intervention_in_closed_form():
    W, scm = _chain()
    g = torch.Generator().manual_seed(0)
    x = scm.sample(200_000, g)
    X = torch.stack([x[v] for v in "abc"], 1)
    T = torch.linalg.inv(torch.eye(3, dtype=torch.float64) - W)
    want = T.T @ torch.diag(torch.tensor([1.0, 0.25, 4.0], dtype=torch.float64)) @ T
    assert torch.allclose(torch.cov(X.T), want, rtol=0.03, atol=0.03)
    # do(b = 3): E[c] = -1 * 3 + 0.5 E[a] = -3, and a keeps its distribution
    y = scm.do(b=3.0).sample(200_000, g)
    assert (y["b"] == 3.0).all()
    assert y["c"].mean().item() == pytest.approx(-3.0, abs=0.03)
    assert y["a"].std().item() == pytest.approx(1.0, abs=0.01)


def test_do_on_binary_scm_matches_truncated_factorisation():
    bn = confounded_network()
    sample = binary_scm(bn).do(X=1).sample(200_000, torch.Generator().manual_seed(1))
    formula = marginal(truncated_factorisation(bn, {"X": 1}), ["Y"]).normalise().table[1].item()
    assert sample["Y"].mean().item() == pytest.approx(formula, abs=0.005)
    # and the observational SCM reproduces the network's tables
    obs = binary_scm(bn).sample(200_000, torch.Generator().manual_seed(2))
    p = obs["Y"][(obs["X"] == 1) & (obs["Z"] == 0)].mean().item()
    assert p == pytest.approx(bn.cpds["Y"][1, 0, 1].item(), abs=0.01)


def test_abduction_inverts_additive_equations():
    _, scm = _chain()
    g = torch.Generator().manual_seed(3)
    u = scm.sample_noise(100, g)
    u_back = scm.abduct(scm.solve(u))
    assert all(torch.allclose(u[v], u_back[v], atol=1e-12) for v in "abc")


def test_nonlinear_additive_scm():
    scm = SCM({"a": ((), lambda pa, u: u, gaussian()),
               "b": (("a",), lambda pa, u: torch.sin(pa["a"]) + u, gaussian(0.1))}, additive=True)
    x = scm.sample(10, torch.Generator().manual_seed(0))
    u = scm.abduct(x)
    assert torch.allclose(u["b"], x["b"] - torch.sin(x["a"]))


def test_bad_models():
    with pytest.raises(ValueError, match="no equation"):
        SCM({"a": (("z",), lambda pa, u: u, gaussian())})
    with pytest.raises(ValueError, match="cycle"):
        SCM({"a": (("b",), lambda pa, u: u, gaussian()), "b": (("a",), lambda pa, u: u, gaussian())})
    _, scm = _chain()
    with pytest.raises(ValueError, match="unknown variables"):
        scm.do(d=1.0)
    with pytest.raises(ValueError, match="additive"):
        binary_scm(confounded_network()).abduct({})
