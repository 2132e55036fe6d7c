"""The genealogy's layout: x from the year, one horizontal lane per top family, rows inside a lane.

Years are swept in order. Each year gets a band of sub-columns, enough that no lane stacks more
than ROWS cards of one year; the band starts a small step (growing with the log of the years
between) after the previous one, then moves right only as far as needed for every lane to fit
the year's cards into at most ROWS free rows. Sparse decades thus shrink while crowded years
widen, no two node boxes overlap, and x never decreases with the year. Pure Python and
deterministic: the same catalogue always gives the same picture.
"""

from __future__ import annotations

import math

from deepatlas.catalog.schema import FAMILIES, LINEAGE

NODE_W, NODE_H = 110, 34  # a node's box; no two boxes of the graph overlap
ROWS = 4  # rows a lane may use (more only if one year alone needs them)
STEP, STEP_PER_LOG_YEAR = 0.2, 0.1  # the least gap between years, in node widths
LANE_PAD, TOP, LEFT = 10, 40, 20  # TOP leaves room for the year axis


def _fit(rows: list[float], xs: list[float], limit: int) -> list[tuple[float, int]] | None:
    """First-fit the x's into rows (each row remembers its last x); None when more than `limit` rows are needed."""
    placed = []
    for x in xs:
        r = next((i for i, last in enumerate(rows) if x - last >= NODE_W), len(rows))
        if r == len(rows):
            if r >= limit:
                return None
            rows.append(x)
        rows[r] = x
        placed.append((x, r))
    return placed


def place(cards) -> tuple[dict[str, tuple[float, int]], dict[int, tuple[float, int]]]:
    """Card id -> (x centre, row in its lane); year -> (x where its band starts, sub-columns)."""
    by_year: dict[tuple[str, int], list] = {}
    for c in sorted(cards, key=lambda c: (c.stage, c.id)):
        by_year.setdefault((c.top_family, c.year), []).append(c)
    rows: dict[str, list[float]] = {f: [] for f in FAMILIES}
    spots, bands = {}, {}
    x0, prev = float(LEFT), None
    for year in sorted({c.year for c in cards}):
        groups = {f: by_year.get((f, year), []) for f in FAMILIES}
        cols = max(math.ceil(len(g) / ROWS) for g in groups.values())
        if prev is not None:
            start, prev_cols = bands[prev]
            x0 = start + (prev_cols - 1) * NODE_W + NODE_W * (STEP + STEP_PER_LOG_YEAR * math.log2(1 + year - prev))
        while True:  # slide right until every lane fits this year's cards
            trial = {}
            for f, group in groups.items():
                xs = [x0 + (j % cols) * NODE_W + NODE_W / 2 for j in range(len(group))]
                lane_rows = list(rows[f])
                fitted = _fit(lane_rows, xs, max(ROWS, math.ceil(len(group) / cols)))
                if fitted is None:
                    break
                trial[f] = (lane_rows, fitted)
            else:
                break
            x0 += 2.0
        for f, group in groups.items():
            rows[f], fitted = trial[f]
            spots.update((c.id, spot) for c, spot in zip(group, fitted))
        bands[year], prev = (x0, cols), year
    return spots, bands


def genealogy(cat, taxonomy) -> dict:
    """The contract's `api/graph.json`: positioned nodes, typed edges (parent -> child), lanes and ticks."""
    spots, bands = place(cat.cards)
    lanes, y0, lane_top = [], float(TOP), {}
    for family in FAMILIES:
        used = [r for c in cat.cards if c.top_family == family for r in [spots[c.id][1]]]
        height = (max(used, default=0) + 1) * NODE_H + 2 * LANE_PAD
        fam = taxonomy.get(family)
        lanes.append({"family": family, "name": fam.name, "name_zh": fam.name_zh, "color": fam.color,
                      "y0": y0, "y1": y0 + height})
        lane_top[family] = y0
        y0 += height
    nodes = [{
        "id": c.id, "label": c.name, "label_zh": c.name_zh, "family": c.family, "top_family": c.top_family,
        "kind": c.kind, "year": c.year, "stage": c.stage, "x": round(spots[c.id][0], 1),
        "y": lane_top[c.top_family] + LANE_PAD + spots[c.id][1] * NODE_H + NODE_H / 2,
    } for c in cat.cards]
    edges = [{"source": parent, "target": c.id, "type": rel}
             for c in cat.cards for rel in LINEAGE for parent in getattr(c, rel) if parent in cat.by_id]
    ticks, last = [], -math.inf
    for year, (start, cols) in sorted(bands.items()):
        x = start + cols * NODE_W / 2
        if x - last >= NODE_W * 0.6:
            ticks.append({"year": year, "x": round(x, 1)})
            last = x
    width = max((s + cols * NODE_W for s, cols in bands.values()), default=0.0) + LEFT
    return {"nodes": nodes, "edges": edges, "lanes": lanes, "ticks": ticks, "width": round(width, 1),
            "height": y0, "node": {"width": NODE_W, "height": NODE_H}}
