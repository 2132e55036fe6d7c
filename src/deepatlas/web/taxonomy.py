"""The families of the map with English and Chinese names and a colour each (catalog/taxonomy.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

TAXONOMY_FILE = Path(__file__).parent.parent / "catalog" / "taxonomy.yaml"


@dataclass(frozen=True)
class Family:
    id: str  # "vision" or "vision.cnn"
    name: str
    name_zh: str
    color: str


class Taxonomy:
    def __init__(self, raw: list[dict]):
        self.top: list[Family] = []
        self.by_id: dict[str, Family] = {}
        self.subs: dict[str, list[Family]] = {}  # top family id -> its sub-families, in file order
        for entry in raw:
            top = Family(entry["id"], entry["name"], entry["name_zh"], entry["color"])
            self.top.append(top)
            self.by_id[top.id] = top
            self.subs[top.id] = []
            for key, names in (entry.get("sub") or {}).items():
                sub = Family(f"{top.id}.{key}", names["name"], names["name_zh"], top.color)
                self.subs[top.id].append(sub)
                self.by_id[sub.id] = sub

    def get(self, family: str) -> Family:
        """A family by dotted id; one the file does not name falls back to its id (and its top's colour)."""
        if family in self.by_id:
            return self.by_id[family]
        top = self.by_id.get(family.split(".")[0])
        label = family.rsplit(".", 1)[-1]
        return Family(family, label, label, top.color if top else "#888888")

    def color(self, family: str) -> str:
        return self.get(family.split(".")[0]).color


def load_taxonomy(path: Path = TAXONOMY_FILE) -> Taxonomy:
    return Taxonomy(yaml.safe_load(path.read_text(encoding="utf-8")))
