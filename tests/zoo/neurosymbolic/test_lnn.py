"""Weighted real-valued logic: classical and Łukasiewicz limits, sound monotone bound propagation, a textbook proof."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.neurosymbolic.lnn import LNN, contradiction, fit_connective, lnn_rain


def two_inputs() -> tuple[LNN, dict]:
    net = LNN()
    net.proposition("a")
    net.proposition("b")
    ks = {"and": net.conj("a", "b"), "or": net.disj("a", "b"), "implies": net.implies("a", "b")}
    return net, {kind: net.names.index(name) for kind, name in ks.items()}


def test_unit_weights_are_classical_on_booleans():
    net, k = two_inputs()
    for a, b in itertools.product([0.0, 1.0], repeat=2):
        x = torch.tensor([a, b], dtype=torch.float64)
        assert net.truth(k["and"], x).item() == float(a and b)
        assert net.truth(k["or"], x).item() == float(a or b)
        assert net.truth(k["implies"], x).item() == float((not a) or b)


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 1), st.floats(0, 1))
def test_unit_weights_are_lukasiewicz(a, b):
    net, k = two_inputs()
    x = torch.tensor([a, b], dtype=torch.float64)
    assert net.truth(k["and"], x).item() == pytest.approx(max(0.0, a + b - 1), abs=1e-12)
    assert net.truth(k["or"], x).item() == pytest.approx(min(1.0, a + b), abs=1e-12)
    assert net.truth(k["implies"], x).item() == pytest.approx(min(1.0, 1 - a + b), abs=1e-12)
    # point bounds go up as points
    bounds = net.upward(net.initial_bounds({"a": (a, a), "b": (b, b)}))
    assert bounds[k["and"], 0].item() == pytest.approx(bounds[k["and"], 1].item(), abs=1e-12)
    assert bounds[k["or"], 0].item() == pytest.approx(min(1.0, a + b), abs=1e-12)


def random_net(draw_ops, n_props: int) -> LNN:
    net = LNN()
    for p in range(n_props):
        net.proposition(f"p{p}")
    for kind, i, j, w1, w2, beta in draw_ops:
        x, y = net.names[i % len(net.names)], net.names[j % len(net.names)]
        if x == y:
            continue
        make = {"and": net.conj, "or": net.disj, "implies": net.implies}[kind]
        make(x, y, name=f"n{len(net.names)}", beta=beta, weights=[w1, w2])
    return net


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["and", "or", "implies"]), st.integers(0, 20), st.integers(0, 20),
                          st.floats(0.2, 2), st.floats(0.2, 2), st.floats(0.5, 1.5)), min_size=1, max_size=6),
       st.lists(st.floats(0, 1), min_size=4, max_size=4), st.lists(st.floats(0, 1), min_size=20, max_size=20),
       st.lists(st.booleans(), min_size=20, max_size=20))
def test_bounds_only_tighten_and_contain_the_truth(ops, world, slack, known):
    """A world and every node's true value under it; each node is given bounds around that value or left
    unknown. Every sweep may only tighten bounds, and they must keep containing the true values."""
    net = random_net(ops, 4)
    N = len(net.names)
    true = list(world)
    for k in range(4, N):
        _, operands, _, _ = net.nodes[k]
        true.append(net.truth(k, torch.tensor([true[i] for i in operands], dtype=torch.float64)).item())
    facts = {name: (max(0.0, true[k] - s), min(1.0, true[k] + s))
             for k, (name, s, kn) in enumerate(zip(net.names, slack, known)) if kn}
    history = [net.initial_bounds(facts)]
    with torch.no_grad():
        net.infer(facts, history=history)
    value = torch.tensor(true, dtype=torch.float64)
    for before, after in zip(history, history[1:]):
        assert (after[:, 0] >= before[:, 0] - 1e-12).all() and (after[:, 1] <= before[:, 1] + 1e-12).all()
    final = history[-1]
    assert (final[:, 0] <= value + 1e-9).all() and (value <= final[:, 1] + 1e-9).all()
    assert contradiction(final).item() <= 1e-9


def test_modus_ponens_and_tollens():
    net = LNN()
    net.proposition("man")
    net.proposition("mortal")
    rule = net.implies("man", "mortal")
    b = net.infer({rule: (1, 1), "man": (1, 1)})
    assert b[net.names.index("mortal")].tolist() == [1.0, 1.0]
    b = net.infer({rule: (1, 1), "mortal": (0, 0)})
    assert b[net.names.index("man")].tolist() == [0.0, 0.0]
    b = net.infer({rule: (1, 1)})  # open world: nothing else known, nothing derived
    assert b[net.names.index("man")].tolist() == [0.0, 1.0]


def test_downward_inference_derives_the_textbook_result():
    """Rain or the sprinkler; rain and cold give snow. No sprinkler, no snow: so rain (disjunctive syllogism),
    so not (rain and cold) (modus tollens), so not cold (an and with a true operand is false)."""
    net = lnn_rain()
    facts = {"rain and cold give snow": (1, 1), "rain or sprinkler": (1, 1), "Sprinkler": (0, 0), "Snow": (0, 0)}
    history = []
    b = net.infer(facts, history=history)
    bound = {name: b[k].tolist() for k, name in enumerate(net.names)}
    assert bound["Rain"] == [1.0, 1.0]
    assert bound["and(Rain, Cold)"] == [0.0, 0.0]
    assert bound["Cold"] == [0.0, 0.0]
    assert contradiction(b).item() == 0
    assert len(history) >= 2  # Cold needs Rain first: more than one sweep
    # a real-valued version: the rule believed to 0.9 only leaves Cold in [0, 0.1]
    b = net.infer({**facts, "rain and cold give snow": (0.9, 1)})
    assert b[net.names.index("Cold")].tolist() == pytest.approx([0.0, 0.1], abs=1e-12)


def test_contradiction_is_detected():
    net = lnn_rain()
    b = net.infer({"rain and cold give snow": (1, 1), "Rain": (1, 1), "Cold": (1, 1), "Snow": (0, 0)})
    assert contradiction(b).item() > 0.5
    assert b[net.names.index("and(Rain, Cold)"), 0] > b[net.names.index("and(Rain, Cold)"), 1]


def test_learning_drops_an_irrelevant_operand():
    """Fit an AND over a, b, c to the truth table of a and b: c's weight must fall below a's and b's."""
    net = LNN()
    for p in "abc":
        net.proposition(p)
    node = net.conj("a", "b", "c", weights=[0.5, 0.5, 0.5])
    x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)), dtype=torch.float64)
    y = x[:, 0] * x[:, 1]
    losses = fit_connective(net, node, x, y, steps=400)
    assert losses[-1] < 1e-6 < losses[0]
    k = net.names.index(node)
    assert torch.allclose(net.truth(k, x), y, atol=1e-3)
    w = net.weights[0].detach()
    assert w[2] < 0.5 * min(w[0], w[1])


def test_bad_arguments():
    net = LNN()
    net.proposition("a")
    with pytest.raises(ValueError, match="unknown operands"):
        net.conj("a", "b")
    with pytest.raises(ValueError, match="exists already"):
        net.proposition("a")
    with pytest.raises(ValueError, match="unknown node"):
        net.infer({"b": (1, 1)})
    with pytest.raises(ValueError, match="only connectives"):
        fit_connective(net, "a", torch.zeros(1, 1), torch.zeros(1))
