"""The genealogy layout: deterministic, no overlapping nodes, x monotone in the year, lanes by family;
and the taxonomy that names the lanes and the mind map."""

import json
import os
import re
import subprocess
import sys
import time
from itertools import combinations
from types import SimpleNamespace

from deepatlas.catalog import load_catalog
from deepatlas.catalog.schema import FAMILIES
from deepatlas.web.layout import NODE_H, NODE_W, genealogy, place
from deepatlas.web.taxonomy import load_taxonomy

CAT = load_catalog()
TAX = load_taxonomy()
GRAPH = genealogy(CAT, TAX)


def overlapping(nodes) -> list[tuple[str, str]]:
    return [(a["id"], b["id"]) for a, b in combinations(nodes, 2)
            if abs(a["x"] - b["x"]) < NODE_W and abs(a["y"] - b["y"]) < NODE_H]


def test_deterministic_across_processes():
    assert genealogy(CAT, TAX) == GRAPH
    code = ("import json; from deepatlas.catalog import load_catalog; from deepatlas.web.layout import genealogy;"
            "from deepatlas.web.taxonomy import load_taxonomy;"
            "print(json.dumps(genealogy(load_catalog(), load_taxonomy())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert json.loads(out.stdout) == json.loads(json.dumps(GRAPH))


def test_no_two_nodes_overlap():
    assert not overlapping(GRAPH["nodes"])


def test_x_grows_with_the_year():
    by_year: dict[int, list[float]] = {}
    for n in GRAPH["nodes"]:
        by_year.setdefault(n["year"], []).append(n["x"])
    years = sorted(by_year)
    for early, late in zip(years, years[1:]):
        assert max(by_year[early]) < min(by_year[late]), (early, late)
    ticks = [t["x"] for t in GRAPH["ticks"]]
    assert ticks == sorted(ticks) and GRAPH["ticks"][0]["year"] == years[0]
    assert all(0 < n["x"] < GRAPH["width"] for n in GRAPH["nodes"])


def test_early_years_are_compressed():
    x = {n["year"]: n["x"] for n in GRAPH["nodes"]}
    assert x[1986] - x[1943] < x[2020] - x[2012]  # 43 sparse years take less room than 8 crowded ones


def test_one_lane_per_family_in_order():
    lanes = GRAPH["lanes"]
    assert [lane["family"] for lane in lanes] == list(FAMILIES)
    assert all(a["y1"] == b["y0"] for a, b in zip(lanes, lanes[1:]))
    lane = {lane["family"]: lane for lane in lanes}
    for n in GRAPH["nodes"]:
        box = lane[n["top_family"]]
        assert box["y0"] <= n["y"] - NODE_H / 2 and n["y"] + NODE_H / 2 <= box["y1"], n["id"]
    assert all(lane["name_zh"] and lane["color"] for lane in lanes)


def test_crowded_synthetic_lane():
    cards = [SimpleNamespace(id=f"c{i}", year=2020 + i % 2, stage=1, top_family="llm") for i in range(40)]
    cards += [SimpleNamespace(id="old", year=1950, stage=1, top_family="llm")]
    spots, _ = place(cards)
    nodes = [{"id": cid, "x": x, "y": row * NODE_H} for cid, (x, row) in spots.items()]
    assert len(nodes) == 41 and not overlapping(nodes)
    assert max(x for cid, (x, _) in spots.items() if cid != "old") > spots["old"][0]


def test_fast():
    start = time.perf_counter()
    genealogy(CAT, TAX)
    assert time.perf_counter() - start < 0.5


def test_taxonomy_names_every_family_the_cards_use():
    assert [f.id for f in TAX.top] == list(FAMILIES)
    colors = [f.color for f in TAX.top]
    assert len(set(colors)) == len(colors) and all(re.match(r"^#[0-9a-f]{6}$", c) for c in colors)
    for family in sorted({c.family for c in CAT}):
        for prefix in (family.split(".")[0], family):
            assert prefix in TAX.by_id, f"catalog/taxonomy.yaml does not name {prefix!r}"
            fam = TAX.by_id[prefix]
            assert fam.name and re.search(r"[\u4e00-\u9fff]", fam.name_zh), prefix
    used = {c.family for c in CAT}
    unused = [sub.id for subs in TAX.subs.values() for sub in subs if sub.id not in used]
    assert not unused, f"taxonomy.yaml names sub-families no card uses: {unused}"
