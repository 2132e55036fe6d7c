"""The atlas as JSON: what the page reads, from the catalogue, the verdict snapshot and the local store.

`Atlas(live=True)` is the server's view: the learner's own runs and progress count, and a newer
run of theirs takes precedence over the snapshot, as in `deepatlas show`. `Atlas(live=False)` is
the static site's: the snapshot only, nobody's progress. Nothing here imports torch.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime
from functools import cached_property
from pathlib import Path

import deepatlas
from deepatlas.catalog import Catalog, UnknownId, load_catalog
from deepatlas.catalog.graph import study_plan
from deepatlas.catalog.schema import KINDS, LINEAGE, Card
from deepatlas.catalog.verdicts import load_snapshot, verdicts
from deepatlas.store import STATES, RunRecord, Store
from deepatlas.web.labspec import lab_specs
from deepatlas.web.layout import genealogy
from deepatlas.web.taxonomy import load_taxonomy

PACKAGE_DIR = Path(deepatlas.__file__).parent
RUN_ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
RUN_FILE_RE = re.compile(r"^[A-Za-z0-9_.-]+\.(png|json|jsonl|txt)$")
SNAPSHOT_TIME = "%Y-%m-%dT%H:%M:%S%z"


class NotFound(LookupError):
    """An id that names nothing; the message says what and, for cards, suggests the nearest."""


def finite(value):
    """The JSON value with NaN and infinities (a diverged metric) as null, which browsers can parse."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def iso(t: float) -> str:
    return time.strftime(SNAPSHOT_TIME, time.localtime(t))


def _epoch(stamp: str | None) -> float:
    try:
        return datetime.strptime(stamp or "", SNAPSHOT_TIME).timestamp()
    except ValueError:
        return 0.0


class Atlas:
    def __init__(self, live: bool = True, catalog: Catalog | None = None):
        self.live = live
        self.cat = catalog or load_catalog()
        self.tax = load_taxonomy()
        self.snapshot = load_snapshot()

    def store(self) -> Store:
        return Store()  # per call: DEEPATLAS_HOME decides where, as for the CLI

    # lookups ----------------------------------------------------------------------------
    def card_or_404(self, card_id: str) -> Card:
        card = self.cat.by_id.get(card_id)
        if card is None:
            near = self.cat.suggest(card_id) if len(card_id) <= 100 else []
            raise NotFound(str(UnknownId("card", card_id[:100], near)))
        return card

    def lab_or_404(self, lab_id: str) -> str:
        """A lab id some card lists (the registry's own test keeps the two equal), without asking the registry."""
        if lab_id not in self.lab_ids:
            raise NotFound(f"unknown lab {lab_id[:100]!r}; api/labs.json lists them")
        return lab_id

    @cached_property
    def lab_ids(self) -> set[str]:
        return {lab for c in self.cat for lab in c.labs}

    def run_or_404(self, run_id: str) -> RunRecord:
        record = self.store().get_run(run_id) if RUN_ID_RE.match(run_id) else None
        if record is None or record.id != run_id:
            raise NotFound(f"unknown run {run_id[:100]!r}")
        return record

    @cached_property
    def labs_by_id(self) -> dict[str, dict]:
        return lab_specs()

    @cached_property
    def _claim_origin(self) -> dict[str, dict]:
        """Claim id -> the snapshot entry that judged it (the last one, as `verdicts` reads them)."""
        out = {}
        for entry in self.snapshot.get("labs", {}).values():
            for cl in entry.get("claims", []):
                out[cl["id"]] = entry
        return out

    # read-only documents ------------------------------------------------------------------
    def session(self, token: str | None = None) -> dict:
        if not self.live:
            return {"live": False}
        return {"live": True, "token": token, "version": deepatlas.__version__}

    def _verdicts(self, claims=None) -> dict:
        """`verdicts` as `deepatlas show` reads them; the static site's never change, so they are read once."""
        if self.live:
            return verdicts(self.cat, claims, use_store=True)
        return self._snapshot_verdicts

    @cached_property
    def _snapshot_verdicts(self) -> dict:
        return verdicts(self.cat, use_store=False)

    def catalog(self) -> dict:
        judged = self._verdicts()
        cards = []
        for c in self.cat:
            counts = dict.fromkeys(("supported", "refuted", "pending", "not_checkable"), 0)
            for cl in c.claims:
                counts[judged[cl.id].verdict.replace(" ", "_")] += 1
            cards.append({
                "id": c.id, "name": c.name, "name_zh": c.name_zh, "family": c.family, "top_family": c.top_family,
                "kind": c.kind, "year": c.year, "stage": c.stage, "difficulty": c.difficulty, "labs": c.labs,
                "claims": counts, "impl": c.impl,
            })
        families = [{"id": f.id, "name": f.name, "name_zh": f.name_zh, "color": f.color,
                     "sub": [{"id": s.id, "name": s.name, "name_zh": s.name_zh} for s in self.tax.subs[f.id]]}
                    for f in self.tax.top]
        stages = [{"n": s.n, "name": s.name, "name_zh": s.name_zh, "weeks": list(s.weeks)} for s in self.cat.stages]
        return {"cards": cards, "families": families, "stages": stages, "kinds": list(KINDS)}

    @cached_property
    def _graph(self) -> dict:
        return genealogy(self.cat, self.tax)

    def graph(self) -> dict:
        return self._graph

    @cached_property
    def _mindmap(self) -> dict:
        root = {"id": "deepatlas", "name": "Deep learning", "name_zh": "深度学习", "children": []}
        for top in self.tax.top:
            node = {"id": top.id, "name": top.name, "name_zh": top.name_zh, "color": top.color, "children": []}
            subs = {}
            for sub in self.tax.subs[top.id]:
                subs[sub.id] = {"id": sub.id, "name": sub.name, "name_zh": sub.name_zh, "children": []}
            for c in sorted((c for c in self.cat if c.top_family == top.id), key=lambda c: (c.year, c.id)):
                leaf = {"id": c.id, "name": c.name, "name_zh": c.name_zh, "card": c.id}
                if c.family == top.id:
                    node["children"].append(leaf)
                    continue
                if c.family not in subs:  # a sub-family taxonomy.yaml does not name yet
                    fam = self.tax.get(c.family)
                    subs[c.family] = {"id": fam.id, "name": fam.name, "name_zh": fam.name_zh, "children": []}
                subs[c.family]["children"].append(leaf)
            node["children"] = [s for s in subs.values() if s["children"]] + node["children"]
            root["children"].append(node)
        return root

    def mindmap(self) -> dict:
        return self._mindmap

    def card(self, card_id: str) -> dict:
        c = self.card_or_404(card_id)
        return {
            "id": c.id, "name": c.name, "name_zh": c.name_zh, "aliases": c.aliases, "family": c.family,
            "top_family": c.top_family, "kind": c.kind, "year": c.year, "stage": c.stage,
            "difficulty": c.difficulty, "impl": c.impl, "resources": c.resources, "path": c.path,
            **{rel: getattr(c, rel) for rel in LINEAGE},
            "summary_en": c.summary_en, "summary_zh": c.summary_zh,
            "equations": [{"caption": e.caption, "tex": e.tex} for e in c.equations],
            "paper": {"title": c.paper.title, "authors": c.paper.authors, "venue": c.paper.venue,
                      "arxiv": c.paper.arxiv, "link": c.paper.link} if c.paper else None,
            "parents": [self._relative(pid, rel) for rel in LINEAGE for pid in getattr(c, rel)
                        if pid in self.cat.by_id],
            "children": [self._relative(kid, rel) for kid, rel in self.cat.children[c.id]],
            "claims": self._claims(c),
            "labs": [self._lab(lab_id) for lab_id in c.labs],
            "source": self._source(c),
        }

    def _relative(self, card_id: str, rel: str) -> dict:
        c = self.cat.by_id[card_id]
        return {"id": c.id, "name": c.name, "name_zh": c.name_zh, "type": rel}

    def _claims(self, c: Card) -> list[dict]:
        judged = self._verdicts(c.claims)
        mine = self.store().latest_claims() if self.live else {}
        out = []
        for cl in c.claims:
            v = judged[cl.id]
            verdict = {"status": v.verdict.replace(" ", "_"), "evidence": v.evidence or None, "origin": None,
                       "run": None, "measured_at": None, "machine": None, "commit": None}
            if v.origin.startswith("your run") and cl.id in mine:
                verdict.update(origin="run", run=mine[cl.id]["run"], measured_at=iso(mine[cl.id]["when"]),
                               machine="this machine")
            elif v.origin.startswith("snapshot") and cl.id in self._claim_origin:
                entry = self._claim_origin[cl.id]
                verdict.update(origin="snapshot", measured_at=entry.get("measured_at"), machine=entry.get("machine"),
                               commit=entry.get("commit"))
            out.append({"id": cl.id, "en": cl.en, "zh": cl.zh, "source": cl.source, "lab": cl.lab,
                        "not_checkable": cl.not_checkable, "verdict": verdict})
        return out

    def _lab(self, lab_id: str) -> dict:
        spec = self.labs_by_id.get(lab_id, {"budget_s": None, "goals": []})
        return {"id": lab_id, "title": spec.get("title"), "budget_s": spec["budget_s"], "goals": spec["goals"],
                "last": self.last_result(lab_id)}

    def last_result(self, lab_id: str) -> dict | None:
        """The newest of: the learner's latest finished run of the lab (live only), the snapshot's entry."""
        snap = self.snapshot.get("labs", {}).get(lab_id)
        if self.live:
            run = next((r for r in self.store().runs(lab_id, limit=20) if r.status != "running" and r.lab == lab_id),
                       None)
            if run is not None and (snap is None or run.started > _epoch(snap.get("measured_at"))):
                return {"status": run.status, "scale": run.scale, "seconds": run.seconds, "metrics": run.metrics or {},
                        "goals": run.goals or [], "origin": "run", "run": run.id, "measured_at": iso(run.started),
                        "machine": "this machine", "commit": None, "figures": self._figures(run)}
        if snap is None:
            return None
        return {"status": snap.get("status"), "scale": "default", "seconds": snap.get("seconds"),
                "metrics": snap.get("metrics", {}), "goals": snap.get("goals", []), "origin": "snapshot", "run": None,
                "measured_at": snap.get("measured_at"), "machine": snap.get("machine"), "commit": snap.get("commit"),
                "figures": []}

    def _source(self, c: Card) -> dict | None:
        if not c.impl:
            return None
        base = PACKAGE_DIR.joinpath(*c.impl.split(".")[1:])
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return {"module": c.impl, "path": path.relative_to(PACKAGE_DIR).as_posix(),
                        "code": path.read_text(encoding="utf-8")}
        return None

    @cached_property
    def _plan_order(self) -> dict[str, int]:
        """Card id -> its place in the prerequisite-first study plan, to order each stage by."""
        items = (item for _, stage in study_plan(self.cat).stages for item in stage)
        return {item.card.id: i for i, item in enumerate(items)}

    def roadmap(self) -> dict:
        states = self.store().progress() if self.live else {}
        stages, counts = [], dict.fromkeys(STATES, 0)
        for s in self.cat.stages:
            cards = sorted((c for c in self.cat if c.stage == s.n), key=lambda c: self._plan_order.get(c.id, 0))
            rows = [{"id": c.id, "name": c.name, "name_zh": c.name_zh, "state": states.get(c.id, "pending")}
                    for c in cards]
            for r in rows:
                counts[r["state"]] += 1
            finished = sum(r["state"] in ("done", "skipped") for r in rows)
            stages.append({"n": s.n, "name": s.name, "name_zh": s.name_zh, "weeks": list(s.weeks),
                           "percent": round(100 * finished / len(rows), 1) if rows else 0.0, "cards": rows})
        total = len(self.cat)
        percent = round(100 * (counts["done"] + counts["skipped"]) / total, 1) if total else 0.0
        return {"stages": stages, "percent": percent, "counts": counts}

    def roadmap_markdown(self) -> str:
        road = self.roadmap()
        c = road["counts"]
        lines = ["# deepatlas roadmap", "",
                 f"Overall {road['percent']:g}% · done {c['done']} · learning {c['learning']} · "
                 f"skipped {c['skipped']} · pending {c['pending']}", ""]
        marks = {"done": "[x]", "skipped": "[x]", "learning": "[ ]", "pending": "[ ]"}
        for s in road["stages"]:
            lo, hi = s["weeks"]
            lines += [f"## Stage {s['n']} · {s['name']} · {s['name_zh']} ({lo}-{hi} weeks) · {s['percent']:g}%", ""]
            for card in s["cards"]:
                note = "" if card["state"] in ("done", "pending") else f" _({card['state']})_"
                lines.append(f"- {marks[card['state']]} {card['name']} · {card['name_zh']} (`{card['id']}`){note}")
            lines.append("")
        return "\n".join(lines)

    def labs(self) -> list[dict]:
        return [{"id": s["id"], "card": s["card"], "title": s["title"], "budget_s": s["budget_s"],
                 "scales": s["scales"], "goals": s["goals"]} for s in self.labs_by_id.values()]

    # the learner's runs (live only) --------------------------------------------------------------
    def runs(self, lab: str | None = None, card: str | None = None, limit: int = 50) -> list[dict]:
        if lab is not None:
            self.lab_or_404(lab)
        if card is not None:
            self.card_or_404(card)
        records = self.store().runs(lab, limit=limit if card is None else 1_000_000)
        records = [r for r in records if (lab is None or r.lab == lab) and (card is None or r.card == card)]
        return [r.as_dict() for r in records[:limit]]

    def run(self, run_id: str) -> dict:
        record = self.run_or_404(run_id)
        return record.as_dict() | {"figures": self._figures(record)}

    def _figures(self, record: RunRecord) -> list[str]:
        folder = Path(record.dir)
        if not folder.is_dir():
            return []
        return [f"api/runs/{record.id}/files/{p.name}" for p in sorted(folder.glob("*.png"))
                if RUN_FILE_RE.match(p.name)]

    def run_file(self, run_id: str, name: str) -> Path:
        """A file of one run's folder; anything else (other folders, links out, odd names) is NotFound."""
        record = self.run_or_404(run_id)
        if not RUN_FILE_RE.match(name):
            raise NotFound(f"no file {name[:100]!r} in run {run_id}")
        folder = Path(record.dir).resolve()
        path = (folder / name).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            raise NotFound(f"no file {name[:100]!r} in run {run_id}")
        return path

    def mark(self, card_id: str, state: str) -> dict:
        c = self.card_or_404(card_id)
        self.store().mark(c.id, state)
        return {"card": c.id, "state": state}
