"""Variable elimination against enumeration, the textbook sprinkler numbers, and pgmpy."""

import importlib
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.causal.bayesian_network import (BayesianNetwork, DiscreteBayesNet, Factor, brute_force,
                                                   elimination_order, random_network, sprinkler,
                                                   variable_elimination)


def test_factor_product_and_marginal_by_hand():
    f = Factor(("a", "b"), torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64))
    g = Factor(("b", "c"), torch.tensor([[5.0, 6.0], [7.0, 8.0]], dtype=torch.float64))
    h = f * g
    assert h.variables == ("a", "b", "c")
    for a in range(2):
        for b in range(2):
            for c in range(2):
                assert h.table[a, b, c] == f.table[a, b] * g.table[b, c]
    assert torch.equal(h.sum_out("b").table, f.table @ g.table)
    assert torch.equal(f.reduce({"b": 1}).table, torch.tensor([2.0, 4.0], dtype=torch.float64))


def test_sprinkler_textbook_posteriors():
    bn = sprinkler()
    assert variable_elimination(bn, ["sprinkler"], {"wet": 1}).table[1].item() == pytest.approx(0.2781 / 0.6471,
                                                                                                 abs=1e-4)
    assert variable_elimination(bn, ["rain"], {"wet": 1}).table[1].item() == pytest.approx(0.7079, abs=1e-4)
    # explaining away: seeing the sprinkler on lowers the belief in rain
    assert variable_elimination(bn, ["rain"], {"wet": 1, "sprinkler": 1}).table[1] < 0.7079


@settings(max_examples=25, deadline=None)
@given(st.integers(3, 9), st.integers(2, 3), st.integers(0, 1000), st.integers(0, 3),
       st.sampled_from(["min-fill", "min-degree"]))
def test_variable_elimination_equals_enumeration(d, states, seed, n_evidence, heuristic):
    bn = random_network(d, states, min(1.0, (d - 1) / 2), seed=seed)
    names = list(bn.cards)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(d, generator=g).tolist()
    query = [names[pick[0]], names[pick[1]]] if d > n_evidence + 1 else [names[pick[0]]]
    evidence = {names[i]: int(torch.randint(states, (1,), generator=g)) for i in pick[len(query):len(query) + n_evidence]}
    ve = variable_elimination(bn, query, evidence, heuristic)
    assert torch.allclose(ve.table, brute_force(bn, query, evidence).table, atol=1e-12)
    assert ve.table.sum().item() == pytest.approx(1.0)


def test_min_fill_avoids_fill_in_on_a_chain_and_a_star():
    chain = [Factor(("a",), torch.ones(2)), Factor(("a", "b"), torch.ones(2, 2)), Factor(("b", "c"), torch.ones(2, 2))]
    assert elimination_order(chain, ["a", "b"]) == ["a", "b"]
    # star around the hub h: eliminating the hub first would connect all leaves
    star = [Factor(("h", leaf), torch.ones(2, 2)) for leaf in "wxyz"]
    assert elimination_order(star, ["h", "w", "x", "y"])[-1] == "h"


def test_bad_networks_and_queries():
    with pytest.raises(ValueError, match="shape"):
        BayesianNetwork({"a": 2}, {}, {"a": torch.ones(3) / 3})
    with pytest.raises(ValueError, match="sum to 1"):
        BayesianNetwork({"a": 2}, {}, {"a": torch.tensor([0.5, 0.6])})
    with pytest.raises(ValueError, match="cycle"):
        BayesianNetwork({"a": 2, "b": 2}, {"a": ("b",), "b": ("a",)},
                        {"a": torch.full((2, 2), 0.5), "b": torch.full((2, 2), 0.5)})
    with pytest.raises(ValueError, match="unknown variables"):
        variable_elimination(sprinkler(), ["snow"])
    with pytest.raises(ValueError, match="both queried and observed"):
        variable_elimination(sprinkler(), ["rain"], {"rain": 1})


def test_against_pgmpy_variable_elimination():
    pgmpy = importlib.import_module("pgmpy")
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.inference import VariableElimination
    from pgmpy.models import DiscreteBayesianNetwork

    bn = random_network(9, 3, 1.0, seed=7)
    model = DiscreteBayesianNetwork([(p, v) for v in bn.cards for p in bn.parents[v]])
    model.add_nodes_from(bn.cards)
    for v in bn.cards:
        ps = list(bn.parents[v])
        # pgmpy: rows are the states of v, columns the parent configurations (first parent slowest)
        values = bn.cpds[v].reshape(-1, bn.cards[v]).T.numpy()
        model.add_cpds(TabularCPD(v, bn.cards[v], values, evidence=ps or None,
                                  evidence_card=[bn.cards[p] for p in ps] or None))
    assert model.check_model()
    reference = VariableElimination(model)
    for query, evidence in [(["X0"], {"X3": 1, "X5": 2}), (["X4", "X8"], {"X1": 0}), (["X2"], {})]:
        theirs = reference.query(query, evidence=evidence, show_progress=False)
        theirs_table = torch.as_tensor(theirs.values).permute([theirs.variables.index(v) for v in query])
        assert torch.allclose(variable_elimination(bn, query, evidence).table, theirs_table, atol=1e-10)
    del pgmpy


def test_learnable_network_log_likelihood_and_fit():
    bn = sprinkler()
    x = bn.sample(4000, torch.Generator().manual_seed(0))
    data = torch.stack([x[v] for v in ["cloudy", "sprinkler", "rain", "wet"]], 1)  # (n, 4)
    model = DiscreteBayesNet([2, 2, 2, 2], [(), (0,), (0,), (1, 2)]).double()
    fitted = model.to_network()
    joint = fitted.joint()
    assert torch.allclose(model(data[:5]).exp(), joint.table[tuple(data[:5].T)])
    # the maximum-likelihood tables are the normalised counts: there the gradient vanishes
    with torch.no_grad():
        for j, ps in enumerate(model.parents):
            counts = torch.zeros(*[2] * (len(ps) + 1), dtype=torch.float64)
            counts.index_put_(tuple(data[:, p] for p in ps) + (data[:, j],),
                              torch.ones(len(data), dtype=torch.float64), accumulate=True)
            model.logits[j].copy_((counts / counts.sum(-1, keepdim=True)).log())
    best = model(data).mean()
    best.backward()
    assert all(lg.grad.abs().max() < 1e-12 for lg in model.logits)
    with torch.no_grad():
        model.logits[2][0, 0] += 0.1  # anywhere else the likelihood is lower
        assert model(data).mean() < best
