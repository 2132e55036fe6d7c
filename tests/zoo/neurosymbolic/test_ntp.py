"""The neural theorem prover's tensorised proofs against an explicit enumeration of every proof."""

import math

import torch

from deepatlas.zoo.neurosymbolic.ntp import NTP, rbf_unify


def _kappa(a, b, mu=1 / math.sqrt(2)):
    return math.exp(-torch.linalg.vector_norm(a - b).item() / (2 * mu**2))


def _prove_by_enumeration(m: NTP, r, a, b):
    """max over proofs of min over unifications, written as loops over facts, rules and z."""
    R, E = m.kb.shape[0], m.kb.shape[1]
    facts = [(f, x, y) for f in range(R) for x in range(E) for y in range(E) if m.kb[f, x, y] and (f, x, y) != (r, a, b)]
    q = m.rel[r]
    best = max([_kappa(q, m.rel[f]) for f, x, y in facts if (x, y) == (a, b)], default=0.0)
    for name, theta in m.rules.items():
        for inst in theta:
            head = _kappa(q, inst[0])
            if name == "same":
                cands = [_kappa(inst[1], m.rel[f]) for f, x, y in facts if (x, y) == (a, b)]
            elif name == "inverse":
                cands = [_kappa(inst[1], m.rel[f]) for f, x, y in facts if (x, y) == (b, a)]
            else:
                cands = [min(_kappa(inst[1], m.rel[f1]), _kappa(inst[2], m.rel[f2]))
                         for f1, x1, z1 in facts if x1 == a for f2, z2, y2 in facts if z2 == z1 and y2 == b]
            best = max(best, min(head, max(cands, default=0.0)))
    return best


def test_proof_scores_match_enumeration():
    facts = torch.tensor([[0, 0, 1], [0, 1, 2], [1, 2, 3], [1, 0, 3], [2, 3, 0], [0, 2, 3]])
    m = NTP(facts, 4, 3, dim=3, rules_per_template=2, generator=torch.Generator().manual_seed(0)).double()
    queries = torch.tensor([[r, a, b] for r in range(3) for a in range(4) for b in range(4) if a != b])
    with torch.no_grad():
        scores = m(queries)
        for (r, a, b), s in zip(queries.tolist(), scores.tolist()):
            assert abs(s - _prove_by_enumeration(m, r, a, b)) < 1e-12


def test_rbf_kernel_and_exact_rules():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert torch.allclose(rbf_unify(x, x), torch.tensor([[1.0, math.exp(-5.0)], [math.exp(-5.0), 1.0]]))
    # with templates set to the true symbols the chain rule proves grandparent(0, 2) from parent facts
    facts = torch.tensor([[0, 0, 1], [0, 1, 2]])  # parent(0, 1), parent(1, 2); relation 1 = grandparent
    m = NTP(facts, 3, 2, dim=4, rules_per_template=1)
    with torch.no_grad():
        m.rel.copy_(torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0]]))
        m.rules["chain"].copy_(torch.stack([m.rel[1], m.rel[0], m.rel[0]])[None])
        m.rules["same"].fill_(-50.0)
        m.rules["inverse"].fill_(-50.0)
    score = m(torch.tensor([[1, 0, 2], [1, 2, 0]]))
    assert abs(score[0].item() - 1.0) < 1e-5 and score[1].item() < 1e-6
    assert m.decode_rules(("parent", "grandparent"))[0][1] == "grandparent(X,Y) :- parent(X,Z), parent(Z,Y)"


def test_query_fact_is_masked_and_gradients_flow():
    facts = torch.tensor([[0, 0, 1]])
    m = NTP(facts, 2, 1, dim=2, rules_per_template=1)
    s = m(torch.tensor([[0, 0, 1]]))
    assert s.item() < 1.0  # the fact may not prove itself
    m(torch.tensor([[0, 1, 0]])).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
