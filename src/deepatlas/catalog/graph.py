"""Lineage trees and prerequisite-first study plans over the catalogue."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from deepatlas.catalog import Catalog
from deepatlas.catalog.schema import Card

ANCESTRY = ("descends_from", "variant_of", "inspired_by")


@dataclass
class TreeNode:
    card: Card
    relation: str  # how this node relates to its parent in the printed tree
    children: list[TreeNode] = field(default_factory=list)
    repeated: bool = False  # already shown elsewhere in the tree; not expanded again


def ancestors_tree(cat: Catalog, card_id: str, depth: int = 6) -> list[TreeNode]:
    """The card's parents, their parents, ... (each card expanded once)."""
    seen: set[str] = {card_id}

    def grow(cid: str, level: int) -> list[TreeNode]:
        nodes = []
        for rel in ANCESTRY:
            for pid in getattr(cat.by_id[cid], rel):
                node = TreeNode(cat.by_id[pid], rel, repeated=pid in seen)
                seen.add(pid)
                if not node.repeated and level < depth:
                    node.children = grow(pid, level + 1)
                nodes.append(node)
        return nodes

    return grow(card_id, 1)


def descendants_tree(cat: Catalog, card_id: str, depth: int = 6) -> list[TreeNode]:
    seen: set[str] = {card_id}

    def grow(cid: str, level: int) -> list[TreeNode]:
        nodes = []
        kids = [(k, rel) for k, rel in cat.children[cid] if rel in ANCESTRY]
        for kid, rel in sorted(kids, key=lambda kr: (cat.by_id[kr[0]].year, kr[0])):
            node = TreeNode(cat.by_id[kid], rel, repeated=kid in seen)
            seen.add(kid)
            if not node.repeated and level < depth:
                node.children = grow(kid, level + 1)
            nodes.append(node)
        return nodes

    return grow(card_id, 1)


def components(cat: Catalog, card_id: str) -> list[Card]:
    """Cards that declare themselves a building block of this one."""
    return [cat.by_id[k] for k, rel in cat.children[card_id] if rel == "component_of"]


def prerequisites(cat: Catalog, card: Card) -> list[str]:
    """What to learn before a card: what it grew from and the blocks it is built of."""
    direct = [*card.descends_from, *card.variant_of, *(c.id for c in components(cat, card.id))]
    return list(dict.fromkeys(direct))


def prerequisite_closure(cat: Catalog, target: str) -> set[str]:
    todo, seen = [target], {target}
    while todo:
        for pid in prerequisites(cat, cat.by_id[todo.pop()]):
            if pid not in seen:
                seen.add(pid)
                todo.append(pid)
    return seen


@dataclass
class PlanItem:
    card: Card
    stage: int  # the stage the plan puts it in (later than its own if a prerequisite is later)
    weeks: float
    needs: list[str]


@dataclass
class Plan:
    stages: list[tuple[int, list[PlanItem]]]
    total_weeks: float


def study_plan(cat: Catalog, target: str | None = None, weeks: float | None = None) -> Plan:
    """Every card (or the prerequisites of `target`) in an order where prerequisites come first.

    Cards are ordered by Kahn's algorithm with (stage, year, id) as priority; a card whose
    prerequisite sits in a later stage moves to that stage. Each stage's weeks, the mean of
    the seeds' range, are shared among its cards by difficulty; `weeks` rescales the total.
    """
    ids = prerequisite_closure(cat, target) if target else set(cat.by_id)
    needs = {cid: [p for p in prerequisites(cat, cat.by_id[cid]) if p in ids] for cid in ids}
    waiting = {cid: len(ps) for cid, ps in needs.items()}
    users: dict[str, list[str]] = {cid: [] for cid in ids}
    for cid, ps in needs.items():
        for p in ps:
            users[p].append(cid)

    def key(cid: str) -> tuple:
        c = cat.by_id[cid]
        return (c.stage, c.year, cid)

    ready = [key(cid) for cid, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order, placed = [], {}
    while ready:
        cid = heapq.heappop(ready)[2]
        placed[cid] = max([cat.by_id[cid].stage, *(placed[p] for p in needs[cid])])
        order.append(cid)
        for u in users[cid]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, key(u))
    # Cycles are rejected by validation; whatever is left could only come from one.
    order += sorted(set(ids) - set(order), key=key)
    for cid in order:
        placed.setdefault(cid, cat.by_id[cid].stage)

    by_stage: dict[int, list[str]] = {}
    for cid in order:
        by_stage.setdefault(placed[cid], []).append(cid)
    stage_weeks = {s.n: sum(s.weeks) / 2 for s in cat.stages}
    if target:  # a path to one target needs only its share of each stage
        full = {s.n: len([c for c in cat.cards if c.stage == s.n]) or 1 for s in cat.stages}
        stage_weeks = {n: w * len(by_stage.get(n, [])) / full[n] for n, w in stage_weeks.items()}
    total = sum(stage_weeks[n] for n in by_stage)
    scale = weeks / total if weeks and total else 1.0

    stages = []
    for n in sorted(by_stage):
        cids = by_stage[n]
        load = sum(cat.by_id[c].difficulty for c in cids) or 1
        items = [
            PlanItem(cat.by_id[c], n, stage_weeks[n] * scale * cat.by_id[c].difficulty / load, needs[c])
            for c in cids
        ]
        stages.append((n, items))
    return Plan(stages, total * scale)
