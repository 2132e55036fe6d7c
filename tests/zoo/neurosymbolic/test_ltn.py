"""Real Logic: the fuzzy connectives reduce to classical logic on {0, 1}; aggregators and rules by definition."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.neurosymbolic.ltn import (
    And, Exists, Forall, Implies, Not, Or, RelationalLTN, SatAgg, definition_truth, rule_truth,
)


def test_connectives_are_classical_on_booleans():
    for a, b in itertools.product([0.0, 1.0], repeat=2):
        ta, tb = torch.tensor(a), torch.tensor(b)
        assert And(ta, tb).item() == float(a and b)
        assert Or(ta, tb).item() == float(a or b)
        assert Implies(ta, tb).item() == float((not a) or b)
        assert Not(ta).item() == 1 - a


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_aggregators_lie_between_min_and_max(values):
    x = torch.tensor(values, dtype=torch.float64)
    for p in (1.0, 2.0, 6.0):
        assert x.min() - 1e-9 <= Forall(x, p) <= x.mean() + 1e-9  # p-mean error: at most the mean
        assert x.mean() - 1e-9 <= Exists(x, p) <= x.max() + 1e-9
    assert Forall(x, 1.0).item() == pytest.approx(x.mean().item())
    assert Forall(x, 200.0).item() == pytest.approx(x.min().item(), abs=0.03)


def test_rule_truth_by_definition():
    torch.manual_seed(0)
    T = torch.rand(3, 4, 4, dtype=torch.float64)
    err = [(1 - Implies(T[0, x, z] * T[1, z, y], T[2, x, y])) ** 2
           for x in range(4) for y in range(4) for z in range(4) if x != y]
    want = 1 - torch.stack(err).mean().sqrt()
    assert torch.allclose(rule_truth(T, 2, [(0, False), (1, False)]), want)
    err = [(1 - Implies(T[0, y, x], T[2, x, y])) ** 2 for x in range(4) for y in range(4) if x != y]
    assert torch.allclose(rule_truth(T, 2, [(0, True)]), 1 - torch.stack(err).mean().sqrt())
    # completion: head(x, y) -> \exists z\ b_1(x, z) \land b_2(z, y), max over z
    err = [(1 - Implies(T[2, x, y], max(T[0, x, z] * T[1, z, y] for z in range(4)))) ** 2
           for x in range(4) for y in range(4) if x != y]
    assert torch.allclose(definition_truth(T, 2, [[(0, False), (1, False)]]), 1 - torch.stack(err).mean().sqrt())


def test_satisfaction_is_differentiable():
    ltn = RelationalLTN(5, 2, dim=4, hidden=8).double()
    T = ltn.truth()
    assert T.shape == (2, 5, 5) and ((T > 0) & (T < 1)).all()
    sat = SatAgg([rule_truth(T, 1, [(0, False), (0, False)]), Forall(T[0, 0])])
    sat.backward()
    assert all(torch.isfinite(p.grad).all() for p in ltn.parameters())
    x = torch.rand(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: Forall(v, 3.0), (x,))
    with pytest.raises(ValueError, match="p >= 1"):
        Forall(x, 0.5)
