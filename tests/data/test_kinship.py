"""The kinship KB: facts follow the rules, the split holds out derived facts only, runs are deterministic."""

import pytest
import torch

from deepatlas.data.kinship import BASE, RELATIONS, closure, corrupt, kinship


def test_facts_follow_the_rules_and_split_is_clean():
    kb = kinship(n_families=3, seed=1)
    name = {i: r for i, r in enumerate(RELATIONS)}
    train = {(name[r], h, t) for r, h, t in kb.train.tolist()}
    test = {(name[r], h, t) for r, h, t in kb.test.tolist()}
    base = {f for f in train if f[0] in BASE}
    assert not train & test and all(f[0] not in BASE for f in test)
    assert train | test == closure(base)  # every derived fact, nothing else
    # spot checks of the definitions
    for r, x, y in train | test:
        if r == "grandfather":
            assert any(("father", x, z) in base and (("father", z, y) in base or ("mother", z, y) in base)
                       for z in range(len(kb.entities)))
        if r == "sibling":
            assert x != y
    assert kb.meta["n_test"] == len(test) == round(0.2 * kb.meta["n_derived"])


def test_deterministic_and_negatives_are_false():
    a, b = kinship(seed=3), kinship(seed=3)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(kinship(seed=4).train[:50], a.train[:50])
    neg = corrupt(a.test, len(a.entities), a.all_facts(), torch.Generator().manual_seed(0))
    assert len(neg) == len(a.test)
    assert not {tuple(f) for f in neg.tolist()} & a.all_facts() and (neg[:, 1] != neg[:, 2]).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="generations >= 2"):
        kinship(generations=1)
    with pytest.raises(ValueError, match="heldout"):
        kinship(heldout=1.0)
