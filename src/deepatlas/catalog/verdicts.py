"""Claim verdicts as a card shows them, without running anything.

The repository keeps `verdicts.json`, written by `deepatlas verify --snapshot` (never by
hand) with the date, machine and commit it was measured on. A learner's own finished
runs on this machine take precedence over it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from deepatlas.catalog import Catalog
from deepatlas.catalog.schema import Claim

SNAPSHOT = Path(__file__).parent / "verdicts.json"


@dataclass
class Verdict:
    claim: str
    verdict: str  # supported | refuted | pending | not checkable
    evidence: str
    origin: str  # "your run <id>" | "snapshot <date>" | ""


def load_snapshot(path: Path = SNAPSHOT) -> dict:
    if not path.exists():
        return {"labs": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def verdicts(cat: Catalog, claims: list[Claim] | None = None, *, use_store: bool = True) -> dict[str, Verdict]:
    snap = load_snapshot()
    measured = {}
    for lab_id, entry in snap.get("labs", {}).items():
        for cl in entry.get("claims", []):
            measured[cl["id"]] = (cl, f"snapshot {entry.get('measured_at', snap.get('measured_at', ''))[:10]}")
    if use_store:
        from deepatlas.store import Store

        for cid, cl in Store().latest_claims().items():
            measured[cid] = (cl, f"your run {cl['run']}")
    out = {}
    for claim in claims if claims is not None else cat.claims.values():
        if claim.not_checkable:
            out[claim.id] = Verdict(claim.id, "not checkable", claim.not_checkable, "")
        elif claim.id in measured:
            cl, origin = measured[claim.id]
            out[claim.id] = Verdict(claim.id, cl["verdict"], cl["evidence"], origin)
        else:
            out[claim.id] = Verdict(claim.id, "pending", f"lab {claim.lab} has not measured it yet", "")
    return out
