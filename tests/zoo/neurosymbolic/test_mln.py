"""Markov logic: exact inference against a brute force, the exact gradient, weight learning, the hard limit."""

import itertools
import math

import pytest
import torch

from deepatlas.zoo.neurosymbolic.mln import MLN, fit, parse_formula, smokers

PEOPLE = ["Anna", "Bob"]


def brute_force_marginals(weights, evidence=None):
    """The smokers MLN by hand: loop over every assignment of the 8 atoms, count true groundings directly."""
    atoms = [f"Cancer({a})" for a in PEOPLE] + [f"Friends({a}, {b})" for a in PEOPLE for b in PEOPLE] \
        + [f"Smokes({a})" for a in PEOPLE]
    totals, Z = {a: 0.0 for a in atoms}, 0.0
    for bits in itertools.product([False, True], repeat=len(atoms)):
        x = dict(zip(atoms, bits))
        if any(x[a] != v for a, v in (evidence or {}).items()):
            continue
        S = {p: x[f"Smokes({p})"] for p in PEOPLE}
        C = {p: x[f"Cancer({p})"] for p in PEOPLE}
        Fr = {(p, q): x[f"Friends({p}, {q})"] for p in PEOPLE for q in PEOPLE}
        n = [sum(S[p] for p in PEOPLE),
             sum((not S[p]) or C[p] for p in PEOPLE),
             sum((not (Fr[p, q] and S[p])) or S[q] for p in PEOPLE for q in PEOPLE)]
        weight = math.exp(sum(w * k for w, k in zip(weights, n)))
        Z += weight
        for a in atoms:
            totals[a] += weight * x[a]
    return {a: t / Z for a, t in totals.items()}


def test_parse_formula_to_clause():
    assert parse_formula("Friends(x, y) ^ Smokes(x) => Smokes(y)") == [
        (False, "Friends", ("x", "y")), (False, "Smokes", ("x",)), (True, "Smokes", ("y",))]
    assert parse_formula("!A(x) v B(x, Bob)") == [(False, "A", ("x",)), (True, "B", ("x", "Bob"))]
    with pytest.raises(ValueError, match="cannot parse"):
        parse_formula("smokes(x)")


@pytest.mark.parametrize("evidence", [None, {"Smokes(Anna)": True}, {"Friends(Anna, Bob)": True, "Cancer(Bob)": False}])
def test_marginals_equal_brute_force(evidence):
    weights = [-0.3, 1.5, 1.1]
    mln = smokers(tuple(PEOPLE), weights)
    want = brute_force_marginals(weights, evidence)
    got = mln.marginals(evidence)
    assert mln.names == list(want)
    for a, name in enumerate(mln.names):
        assert got[a].item() == pytest.approx(want[name], abs=1e-12)


def test_exact_gradient_equals_autograd_and_finite_differences():
    g = torch.Generator().manual_seed(0)
    mln = smokers(tuple(PEOPLE), [0.2, -0.4, 0.7])
    data = torch.randint(0, 2, (30, mln.n_atoms), generator=g).double()
    grad = mln.log_likelihood_grad(data)
    mln.log_prob(data).mean().backward()
    assert torch.allclose(grad, mln.w.grad, atol=1e-12)
    with torch.no_grad():
        for i in range(len(mln.w)):
            h = torch.zeros_like(mln.w)
            h[i] = 1e-6
            mln.w += h
            up = mln.log_prob(data).mean()
            mln.w -= 2 * h
            down = mln.log_prob(data).mean()
            mln.w += h
            assert ((up - down) / 2e-6).item() == pytest.approx(grad[i].item(), abs=1e-7)


def test_pseudo_likelihood_by_definition():
    g = torch.Generator().manual_seed(1)
    mln = smokers(tuple(PEOPLE), [0.3, 1.2, -0.8])
    data = torch.randint(0, 2, (5, mln.n_atoms), generator=g).double()
    want = 0.0
    for x in data:
        for l in range(mln.n_atoms):
            y = x.clone()
            y[l] = 1 - x[l]
            s, s_flip = mln.counts(x) @ mln.w, mln.counts(y) @ mln.w
            want += (s - torch.logaddexp(s, s_flip)).item()
    assert mln.pseudo_log_likelihood(data).sum().item() == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("objective", ["likelihood", "pseudo"])
def test_learning_recovers_the_generating_weights(objective):
    truth = [-0.5, 1.5, 1.1]
    data = smokers(tuple(PEOPLE), truth).sample(20000, torch.Generator().manual_seed(0))
    mln = smokers(tuple(PEOPLE), [0.0, 0.0, 0.0])
    history = fit(mln, data, objective)
    assert history[-1] > history[0]
    assert torch.allclose(mln.w.detach(), torch.tensor(truth, dtype=torch.float64), atol=0.12), mln.w
    if objective == "likelihood":  # at the maximum the data's counts equal the expected counts
        assert mln.log_likelihood_grad(data).abs().max().item() < 1e-6


def test_large_weight_is_the_hard_constraint():
    # only the rule, with a huge weight: worlds that violate it vanish, the rest are equally likely
    mln = MLN(["Smokes(x) => Cancer(x)"], PEOPLE, [40.0])
    # per person, the models of !S v C are (S, C) in {(0, 0), (0, 1), (1, 1)}: C holds in 2 of 3, S in 1 of 3
    assert mln.query("Cancer(Anna)") == pytest.approx(2 / 3, abs=1e-12)
    assert mln.query("Smokes(Bob)") == pytest.approx(1 / 3, abs=1e-12)
    # modus ponens and modus tollens as conditional queries
    assert mln.query("Cancer(Anna)", {"Smokes(Anna)": True}) == pytest.approx(1.0, abs=1e-12)
    assert mln.query("Smokes(Anna)", {"Cancer(Anna)": False}) == pytest.approx(0.0, abs=1e-12)
    # a finite weight only makes the rule likely
    soft = MLN(["Smokes(x) => Cancer(x)"], PEOPLE, [1.5])
    assert soft.query("Cancer(Anna)", {"Smokes(Anna)": True}) == pytest.approx(1 / (1 + math.exp(-1.5)), abs=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="arguments"):
        MLN(["P(x) => P(x, y)"], PEOPLE)
    with pytest.raises(ValueError, match="not in the domain"):
        MLN(["P(Carl)"], PEOPLE)
    with pytest.raises(ValueError, match="2\\^atoms"):
        MLN(["F(x, y)"], ["A", "B", "C", "D", "E"])
    with pytest.raises(ValueError, match="unknown ground atom"):
        smokers().marginals({"Smokes(Carl)": True})
