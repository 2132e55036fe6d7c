"""A generated kinship knowledge base: family trees, their base facts, derived relations and a held-out split.

Families grow from a founding couple: every couple has 1-3 children, each child marries an outsider
(with probability `marry`) and the new couple has children of its own, for `generations` generations.
The base facts are father(X, Y), mother(X, Y), husband(X, Y) and wife(X, Y); the derived relations
follow from them by these rules (X != Y throughout):

    parent(X,Y)      :- father(X,Y).            parent(X,Y) :- mother(X,Y).
    child(X,Y)       :- parent(Y,X).            spouse(X,Y) :- husband(X,Y).   spouse(X,Y) :- wife(X,Y).
    grandparent(X,Z) :- parent(X,Y), parent(Y,Z).   grandfather(X,Z) :- father(X,Y), parent(Y,Z).
    grandmother(X,Z) :- mother(X,Y), parent(Y,Z).   grandchild(X,Z) :- child(X,Y), child(Y,Z).
    sibling(X,Y)     :- child(X,Z), parent(Z,Y), X \\= Y.

Every base fact is known; a fraction `heldout` of the derived facts is removed from the training
knowledge base and kept as the test set. Facts are (relation, head, tail) index triples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

BASE = ("father", "mother", "husband", "wife")
DERIVED = ("parent", "child", "spouse", "grandparent", "grandfather", "grandmother", "grandchild", "sibling")
RELATIONS = BASE + DERIVED
RULES = {  # head: list of bodies; a body atom is (relation, first variable, second variable)
    "parent": [[("father", "X", "Y")], [("mother", "X", "Y")]],
    "child": [[("parent", "Y", "X")]],
    "spouse": [[("husband", "X", "Y")], [("wife", "X", "Y")]],
    "grandparent": [[("parent", "X", "Z"), ("parent", "Z", "Y")]],
    "grandfather": [[("father", "X", "Z"), ("parent", "Z", "Y")]],
    "grandmother": [[("mother", "X", "Z"), ("parent", "Z", "Y")]],
    "grandchild": [[("child", "X", "Z"), ("child", "Z", "Y")]],
    "sibling": [[("child", "X", "Z"), ("parent", "Z", "Y")]],
}


@dataclass
class KinshipKB:
    entities: list[str]  # "m3" / "f7": gender letter and index
    relations: tuple[str, ...]
    train: torch.Tensor  # (N_train, 3) (relation, head, tail): every base fact and the known derived ones
    test: torch.Tensor  # (N_test, 3) held-out derived facts
    meta: dict = field(default_factory=dict)

    def all_facts(self) -> set[tuple[int, int, int]]:
        return {tuple(f) for f in self.train.tolist()} | {tuple(f) for f in self.test.tolist()}


def closure(base: set[tuple[str, int, int]]) -> set[tuple[str, int, int]]:
    """Every fact the RULES derive from the base facts (relations by name)."""
    facts = set(base)
    for head in DERIVED:  # RULES are listed so that every body uses relations already derived
        for body in RULES[head]:
            if len(body) == 1:
                (r, a, _), = body
                facts |= {(head, x, y) if a == "X" else (head, y, x) for (q, x, y) in list(facts) if q == r}
            else:
                (r1, _, _), (r2, _, _) = body
                first = [(x, z) for (q, x, z) in facts if q == r1]
                second: dict[int, list[int]] = {}
                for (q, z, y) in facts:
                    if q == r2:
                        second.setdefault(z, []).append(y)
                facts |= {(head, x, y) for x, z in first for y in second.get(z, []) if x != y}
    return facts


def kinship(n_families: int = 4, generations: int = 3, marry: float = 0.8, heldout: float = 0.2,
            seed: int = 0) -> KinshipKB:
    """The knowledge base of `n_families` generated family trees (see the module docstring)."""
    if n_families < 1 or generations < 2:
        raise ValueError(f"kinship needs n_families >= 1 and generations >= 2 (grandparents), "
                         f"got {n_families} and {generations}")
    if not 0.0 < heldout < 1.0 or not 0.0 <= marry <= 1.0:
        raise ValueError(f"heldout must lie in (0, 1) and marry in [0, 1], got {heldout} and {marry}")
    g = torch.Generator().manual_seed(seed)
    genders: list[str] = []
    base: set[tuple[str, int, int]] = set()

    def person(gender: str) -> int:
        genders.append(gender)
        return len(genders) - 1

    def wed(a: int) -> tuple[int, int]:
        b = person("f" if genders[a] == "m" else "m")
        husband, wife = (a, b) if genders[a] == "m" else (b, a)
        base.update({("husband", husband, wife), ("wife", wife, husband)})
        return husband, wife

    for _ in range(n_families):
        couples = [wed(person("m"))]
        for gen in range(1, generations):
            next_couples = []
            for husband, wife in couples:
                for _ in range(int(torch.randint(1, 4, (), generator=g))):
                    kid = person("m" if torch.rand((), generator=g) < 0.5 else "f")
                    base.update({("father", husband, kid), ("mother", wife, kid)})
                    if gen < generations - 1 and torch.rand((), generator=g) < marry:
                        next_couples.append(wed(kid))
            couples = next_couples

    index = {r: i for i, r in enumerate(RELATIONS)}
    derived = sorted((index[r], x, y) for (r, x, y) in closure(base) - base)
    order = torch.randperm(len(derived), generator=g).tolist()
    n_test = round(heldout * len(derived))
    test = sorted(derived[i] for i in order[:n_test])
    train = sorted([(index[r], x, y) for (r, x, y) in base] + [derived[i] for i in order[n_test:]])
    entities = [f"{gender}{i}" for i, gender in enumerate(genders)]
    meta = {"source": "kinship", "seed": seed, "n_families": n_families, "generations": generations,
            "n_entities": len(entities), "n_base": len(base), "n_derived": len(derived), "n_test": n_test,
            "heldout": heldout}
    return KinshipKB(entities, RELATIONS, torch.tensor(train), torch.tensor(test), meta)


def corrupt(facts: torch.Tensor, n_entities: int, known: set[tuple[int, int, int]],
            generator: torch.Generator) -> torch.Tensor:
    """One negative per fact: its head or its tail (a coin flip) replaced by a random entity so that the
    triple is not in `known` (the facts the caller may use, e.g. the training KB) and not reflexive."""
    out = []
    for r, h, t in facts.tolist():
        while True:
            e = int(torch.randint(n_entities, (), generator=generator))
            head_side = bool(torch.rand((), generator=generator) < 0.5)
            cand = (r, e, t) if head_side else (r, h, e)
            if cand[1] != cand[2] and cand not in known:
                out.append(cand)
                break
    return torch.tensor(out, dtype=torch.long).reshape(-1, 3)


__all__ = ["kinship", "corrupt", "closure", "KinshipKB", "RELATIONS", "BASE", "DERIVED", "RULES"]
