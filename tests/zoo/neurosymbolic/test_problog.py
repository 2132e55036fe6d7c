"""The ProbLog engine: WMC on the compiled lineage against possible-world enumeration and the problog package."""

import importlib
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.zoo.neurosymbolic.problog import (
    Program, brute_force_probability, parse_atom, parse_literal, random_graph_program,
)

ALARM = """
0.1::burglary. 0.2::earthquake.
0.7::hears(john). 0.4::hears(mary).
person(john). person(mary).
alarm :- burglary.
alarm :- earthquake.
calls(X) :- alarm, hears(X), person(X).
someone_calls :- calls(X).
"""
GRAPH = """
0.6::edge(a, b). 0.3::edge(b, a). 0.5::edge(b, c). 0.8::edge(c, a). 0.4::edge(a, c). 0.9::edge(c, d).
path(X, Y) :- edge(X, Y).
path(X, Y) :- edge(X, Z), path(Z, Y).
"""
DICE = """
0.2::die(1, 1); 0.3::die(1, 2); 0.5::die(1, 3).
0.1::die(2, 1); 0.6::die(2, 2); 0.25::die(2, 3).
total(S) :- die(1, A), die(2, B), S is A + B.
differ :- die(1, A), die(2, B), A \\= B.
"""
CASES = [(ALARM, ["alarm", "calls(john)", "someone_calls"]),
         (GRAPH, ["path(a, d)", "path(b, b)", "path(d, a)"]),
         (DICE, ["total(2)", "total(4)", "total(6)", "differ"])]


@pytest.mark.parametrize("text, queries", CASES, ids=["alarm", "cyclic-graph", "annotated-disjunction"])
def test_wmc_equals_world_enumeration(text, queries):
    prog = Program.parse(text)
    for q in queries:
        assert prog.probability(q).item() == pytest.approx(brute_force_probability(prog, q), abs=1e-14)


def test_closed_forms():
    prog = Program.parse(ALARM)
    p_alarm = 1 - 0.9 * 0.8
    assert prog.probability("alarm").item() == pytest.approx(p_alarm, abs=1e-15)
    assert prog.probability("someone_calls").item() == pytest.approx(p_alarm * (1 - 0.3 * 0.6), abs=1e-15)
    dice = Program.parse(DICE)
    assert dice.probability("total(4)").item() == pytest.approx(0.2 * 0.25 + 0.3 * 0.6 + 0.5 * 0.1, abs=1e-15)
    assert dice.probability("total(7)").item() == 0.0


@pytest.mark.parametrize("text, queries", CASES, ids=["alarm", "cyclic-graph", "annotated-disjunction"])
def test_matches_problog_package(text, queries):
    problog = importlib.import_module("problog")
    from problog.program import PrologString

    result = problog.get_evaluatable().create_from(
        PrologString(text + "".join(f"query({q}).\n" for q in queries))).evaluate()
    ours = Program.parse(text)
    for term, p in result.items():
        assert ours.probability(str(term)).item() == pytest.approx(p, abs=1e-10), str(term)


def test_gradient_is_the_conditional_difference():
    # \partial P(q) / \partial p_i = P(q | f_i) - P(q | \lnot f_i) for an independent fact f_i
    prog = Program.parse(GRAPH)
    circuit = prog.compile("path(a, d)")
    p = torch.tensor([c.probs[0] for c in prog.choices], dtype=torch.float64, requires_grad=True)

    def wmc(p):
        return circuit.evaluate({v: torch.stack([p[v], 1 - p[v]]) for v in range(len(p))})

    assert torch.autograd.gradcheck(wmc, (p,))
    (grad,) = torch.autograd.grad(wmc(p), p)
    for v in range(len(p)):
        hi, lo = p.detach().clone(), p.detach().clone()
        hi[v], lo[v] = 1.0, 0.0
        assert grad[v].item() == pytest.approx((wmc(hi) - wmc(lo)).item(), abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.integers(3, 5), st.integers(2, 7), st.integers(0, 10_000))
def test_random_graphs_match_enumeration(n_nodes, n_edges, seed):
    prog = random_graph_program(n_nodes, n_edges, torch.Generator().manual_seed(seed))
    q = ("path", "n0", f"n{n_nodes - 1}")
    assert prog.probability(q).item() == pytest.approx(brute_force_probability(prog, q), abs=1e-13)


def test_circuit_is_reduced_and_shared():
    # a chain a1 \lor ... \lor a_n compiles to n decision nodes, not 2^n paths
    prog = Program.parse("".join(f"0.5::a({i}).\n" for i in range(12)) + "q :- a(X).")
    circuit = prog.compile("q")
    assert circuit.size == 12
    assert prog.probability("q").item() == pytest.approx(1 - 0.5**12, abs=1e-15)


def test_parser_and_errors():
    assert parse_atom("edge(a, B)") == ("edge", "a", "B")
    assert parse_atom("alarm") == ("alarm",)
    assert parse_literal("S is A + B") == ("is", "S", "+", "A", "B")
    assert parse_literal("X \\= Y") == ("\\=", "X", "Y")
    with pytest.raises(ValueError, match="do not occur in the body"):
        Program.parse("p(X, Y) :- q(X).")
    with pytest.raises(ValueError, match="must be ground"):
        Program.parse("0.5::q(X).")
    with pytest.raises(ValueError, match="sum to at most 1"):
        Program.parse("0.6::a; 0.6::b.")
    with pytest.raises(ValueError, match="unbound"):
        Program.parse("0.5::n(1). p(S) :- S is A + 1, n(A).").probability("p(2)")
    with pytest.raises(ValueError, match="cannot parse atom"):
        parse_atom("Edge(a)")
