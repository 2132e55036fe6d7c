"""Checks that need every card at once: duplicates, dangling lineage, cycles, ages."""

from __future__ import annotations

from deepatlas.catalog.schema import LINEAGE, Card, CardError

# Edges along which a child cannot predate its parent. `component_of` points from a
# part to the whole, and a part is often older (softmax is older than the Transformer).
AGED = ("descends_from", "variant_of")


def validate(cards: list[Card]) -> list[CardError]:
    errors: list[CardError] = []
    by_id: dict[str, Card] = {}
    for c in cards:
        if c.id in by_id:
            errors.append(CardError(c.path, "id", f"duplicate id {c.id!r}, also used by {by_id[c.id].path}"))
        else:
            by_id[c.id] = c

    errors += _duplicate_names(cards)
    for c in cards:
        for rel in LINEAGE:
            for ref in getattr(c, rel):
                parent = by_id.get(ref)
                if parent is None:
                    errors.append(CardError(c.path, rel, f"unknown id {ref!r}"))
                elif rel in AGED and c.year and parent.year and c.year < parent.year:
                    errors.append(CardError(
                        c.path, rel, f"{c.id} ({c.year}) is older than its parent {ref} ({parent.year})"))

    claim_owner: dict[str, str] = {}
    for c in cards:
        for cl in c.claims:
            if cl.id in claim_owner:
                errors.append(CardError(c.path, "claims", f"duplicate claim id {cl.id!r}, also in {claim_owner[cl.id]}"))
            claim_owner[cl.id] = c.path

    ancestry = {c.id: [p for p in c.parents() if p in by_id] for c in by_id.values()}
    for cycle in _cycles(ancestry):
        errors.append(CardError(by_id[cycle[0]].path, "descends_from/variant_of/inspired_by",
                                "lineage cycle: " + " -> ".join(cycle)))
    # What a card needs first: its parents and the parts it is built of. A card cannot be
    # both a part of X and descend from X: the study plan would have no order.
    needs = {c.id: [p for p in (*c.descends_from, *c.variant_of) if p in by_id] for c in by_id.values()}
    for c in by_id.values():
        for whole in c.component_of:
            if whole in needs:
                needs[whole].append(c.id)
    for cycle in _cycles(needs):
        errors.append(CardError(by_id[cycle[0]].path, "component_of",
                                "prerequisite cycle (parents and parts): " + " -> ".join(cycle)))
    return errors


def _duplicate_names(cards: list[Card]) -> list[CardError]:
    """An id, name or alias must lead to one card only (case-insensitive)."""
    errors, owner = [], {}
    for c in cards:
        keys = {c.id.lower(), c.name.lower(), c.name_zh.lower()} | {a.lower() for a in c.aliases}
        for key in sorted(keys - {""}):
            if key in owner and owner[key] != c.id:
                errors.append(CardError(c.path, "aliases", f"{key!r} already names card {owner[key]!r}"))
            owner.setdefault(key, c.id)
    return errors


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """Each cycle once, found by depth-first search from every node."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(edges, WHITE)
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        colour[node] = GREY
        trail.append(node)
        for nxt in edges[node]:
            if colour[nxt] == GREY:
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif colour[nxt] == WHITE:
                visit(nxt, trail)
        trail.pop()
        colour[node] = BLACK

    for node in edges:
        if colour[node] == WHITE:
            visit(node, [])
    return cycles
