"""The map: cards, their validation, the lineage graph and the roadmap.

Nothing here imports torch, so the catalogue commands answer at once.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml

from deepatlas.catalog.schema import LINEAGE, Card, CardError, Claim, parse_card

CARDS_DIR = Path(__file__).parent / "cards"
STAGES_FILE = Path(__file__).parent / "stages.yaml"


class CatalogError(Exception):
    """Raised when cards fail validation; carries every error found."""

    def __init__(self, errors: list[CardError]):
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        super().__init__(f"{len(errors)} card error(s):\n{lines}{more}")


class UnknownId(KeyError):
    def __init__(self, what: str, name: str, suggestions: list[str]):
        self.name, self.suggestions = name, suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown {what} {name!r}{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


@dataclass(frozen=True)
class Stage:
    n: int
    name: str
    name_zh: str
    weeks: tuple[int, int]
    seed: str


def load_stages() -> list[Stage]:
    raw = yaml.safe_load(STAGES_FILE.read_text(encoding="utf-8"))
    return [Stage(s["n"], s["name"], s["name_zh"], tuple(s["weeks"]), s["seed"]) for s in raw]


class Catalog:
    """All cards, indexed by id and alias, with the lineage graph."""

    def __init__(self, cards: list[Card], stages: list[Stage]):
        self.cards = sorted(cards, key=lambda c: (c.stage, c.year, c.id))
        self.stages = stages
        self.by_id = {c.id: c for c in self.cards}

    def __len__(self) -> int:
        return len(self.cards)

    def __iter__(self):
        return iter(self.cards)

    @cached_property
    def _names(self) -> dict[str, str]:
        """Lower-cased id, name, Chinese name and aliases -> card id."""
        index = {}
        for c in self.cards:
            for key in (c.name, c.name_zh, *c.aliases, c.id):
                index[key.lower()] = c.id
        return index

    def get(self, name: str) -> Card:
        """A card by id, name, Chinese name or alias; an unknown name suggests the nearest."""
        card_id = self._names.get(name.lower())
        if card_id is None:
            raise UnknownId("card", name, self.suggest(name))
        return self.by_id[card_id]

    def suggest(self, name: str, n: int = 3) -> list[str]:
        hits = difflib.get_close_matches(name.lower(), list(self._names), n=n * 2, cutoff=0.6)
        ids = list(dict.fromkeys(self._names[h] for h in hits))
        return ids[:n]

    @cached_property
    def claims(self) -> dict[str, Claim]:
        return {cl.id: cl for c in self.cards for cl in c.claims}

    @cached_property
    def children(self) -> dict[str, list[tuple[str, str]]]:
        """Card id -> [(child id, relation)] for every typed lineage edge."""
        out: dict[str, list[tuple[str, str]]] = {c.id: [] for c in self.cards}
        for c in self.cards:
            for rel in LINEAGE:
                for parent in getattr(c, rel):
                    if parent in out:
                        out[parent].append((c.id, rel))
        return out

    def stage(self, n: int) -> Stage:
        return next(s for s in self.stages if s.n == n)


def card_files(root: Path = CARDS_DIR) -> list[Path]:
    return sorted(root.glob("*/*.md"))


def load_catalog(root: Path = CARDS_DIR) -> Catalog:
    """Read and validate every card; any error raises `CatalogError` listing them all."""
    cat, errors = check_catalog(root)
    if errors:
        raise CatalogError(errors)
    return cat


def check_catalog(root: Path = CARDS_DIR) -> tuple[Catalog, list[CardError]]:
    """The catalogue as far as it could be read, and every error found on the way."""
    from deepatlas.catalog.validate import validate

    stages = load_stages()
    cards, errors = read_cards(root, stages)
    errors += validate(cards)
    return Catalog(cards, stages), errors


def read_cards(root: Path, stages: list[Stage]) -> tuple[list[Card], list[CardError]]:
    numbers = {s.n for s in stages}
    cards, errors = [], []
    for path in card_files(root):
        card, errs = parse_card(path, stages=numbers, root=root)
        errors += errs
        if card is not None:
            cards.append(card)
    return cards, errors
