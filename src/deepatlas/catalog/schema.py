"""The card schema: one Markdown file per entry, YAML front matter plus three sections.

`parse_card(path)` turns a file into a `Card` and a list of `CardError`s; it never
raises on bad content, so validation can report every problem of every file at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

try:  # libyaml's parser is ~10x faster; the catalogue is read on every CLI call
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

FAMILIES = (
    "fundamentals", "vision", "sequence", "memory", "generative", "graph", "rl", "llm",
    "contrastive", "bayesian", "causal", "dynamics", "meta", "neurosymbolic", "brain",
    "trustworthy",
)
KINDS = ("architecture", "technique", "concept", "system")
SEEDS = ("000", "001", "002", "003", "004")
LINEAGE = ("descends_from", "variant_of", "inspired_by", "component_of")
SECTIONS = ("中文", "English", "Equations")

ID_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
FAMILY_RE = re.compile(r"^[a-z]+(-[a-z]+)*(\.[a-z0-9]+(-[a-z0-9]+)*)*$")
LAB_RE = re.compile(r"^[a-z0-9-]+/[a-z0-9-]+$")
ARXIV_NEW = re.compile(r"^(\d{2})(\d{2})\.\d{4,5}(v\d+)?$")
ARXIV_OLD = re.compile(r"^[a-z-]+(\.[A-Z]{2})?/(\d{2})(\d{2})\d{3}(v\d+)?$")

REQUIRED = (
    "id", "name", "name_zh", "aliases", "family", "kind", "year", "paper", *LINEAGE,
    "stage", "difficulty", "impl", "labs", "claims",
)
OPTIONAL = ("resources",)


@dataclass(frozen=True)
class CardError:
    path: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.message}"


@dataclass
class Paper:
    title: str
    authors: list[str]
    venue: str | None = None
    arxiv: str | None = None
    url: str | None = None

    @property
    def link(self) -> str | None:
        if self.arxiv:
            return f"https://arxiv.org/abs/{self.arxiv}"
        return self.url


@dataclass
class Claim:
    id: str
    card: str
    en: str
    zh: str
    source: str
    lab: str | None = None  # the lab that measures it ...
    not_checkable: str | None = None  # ... or why nothing here can

    @property
    def checkable(self) -> bool:
        return self.lab is not None


@dataclass
class Equation:
    caption: str
    tex: str


@dataclass
class Card:
    id: str
    name: str
    name_zh: str
    aliases: list[str]
    family: str
    kind: str
    year: int
    paper: Paper | None
    descends_from: list[str]
    variant_of: list[str]
    inspired_by: list[str]
    component_of: list[str]
    stage: int
    difficulty: int
    impl: str | None
    labs: list[str]
    claims: list[Claim]
    resources: list[dict] = field(default_factory=list)
    summary_zh: str = ""
    summary_en: str = ""
    equations: list[Equation] = field(default_factory=list)
    path: str = ""

    @property
    def top_family(self) -> str:
        return self.family.split(".")[0]

    def parents(self) -> list[str]:
        """Ids this card grew out of (the edges that define its ancestry)."""
        return [*self.descends_from, *self.variant_of, *self.inspired_by]

    def summary(self, lang: str) -> str:
        return self.summary_zh if lang == "zh" else self.summary_en

    def display_name(self, lang: str) -> str:
        return self.name_zh if lang == "zh" else self.name


def arxiv_year(arxiv: str) -> int | None:
    """The year encoded in an arXiv id (`1512.03385` -> 2015, `cs/9905014` -> 1999)."""
    if m := ARXIV_NEW.match(arxiv):
        return 2000 + int(m.group(1))
    if m := ARXIV_OLD.match(arxiv):
        yy = int(m.group(2))
        return (1900 if yy >= 91 else 2000) + yy
    return None


def split_front_matter(text: str) -> tuple[str, str] | None:
    if not text.startswith("---\n"):
        return None
    end = text.find("\n---\n", 4)
    if end < 0:
        return None
    return text[4:end], text[end + 5:]


def parse_sections(body: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    current = None
    lines: list[str] = []
    for line in body.splitlines():
        if line.startswith("## "):
            if current is not None:
                sections[current] = "\n".join(lines).strip()
            current, lines = line[3:].strip(), []
        elif current is not None:
            lines.append(line)
    if current is not None:
        sections[current] = "\n".join(lines).strip()
    return sections


def parse_equations(text: str) -> list[Equation]:
    """`$$ ... $$` blocks (one line or several); the text line right before a block is its caption."""
    equations, caption, block = [], "", None
    for line in text.splitlines():
        stripped = line.strip()
        if block is None and stripped.startswith("$$"):
            block, stripped = [], stripped[2:]
        if block is None:
            caption = stripped.rstrip(":：").strip()
            continue
        if stripped.endswith("$$"):
            block.append(stripped[:-2])
            equations.append(Equation(caption=caption, tex="\n".join(b for b in block if b.strip()).strip()))
            block, caption = None, ""
        else:
            block.append(stripped)
    return equations


class _Fields:
    """Typed access to a front-matter mapping that records, rather than raises, errors."""

    def __init__(self, data: dict, path: str, errors: list[CardError]):
        self.data, self.path, self.errors = data, path, errors

    def error(self, name: str, message: str) -> None:
        self.errors.append(CardError(self.path, name, message))

    def str(self, name: str, *, optional: bool = False, data: dict | None = None) -> str | None:
        value = (self.data if data is None else data).get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(name, f"expected a non-empty string, got {value!r}")
            return None
        return value.strip()

    def int(self, name: str, lo: int, hi: int) -> int | None:
        value = self.data.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            self.error(name, f"expected a whole number from {lo} to {hi}, got {value!r}")
            return None
        return value

    def str_list(self, name: str, data: dict | None = None) -> list[str]:
        value = (self.data if data is None else data).get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.error(name, f"expected a list of strings, got {value!r}")
            return []
        return [v.strip() for v in value]


def parse_card(path: Path, *, stages: set[int], root: Path | None = None) -> tuple[Card | None, list[CardError]]:
    where = str(path.relative_to(root)) if root else str(path)
    errors: list[CardError] = []
    parts = split_front_matter(path.read_text(encoding="utf-8"))
    if parts is None:
        return None, [CardError(where, "front matter", "the file must start with '---' and a closing '---' line")]
    try:
        data = yaml.load(parts[0], Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (front-matter line {mark.line + 1})" if mark else ""
        return None, [CardError(where, "front matter", f"invalid YAML{line}: {getattr(exc, 'problem', exc)}")]
    if not isinstance(data, dict):
        return None, [CardError(where, "front matter", "expected a mapping of fields")]

    f = _Fields(data, where, errors)
    for key in data:
        if key not in REQUIRED and key not in OPTIONAL:
            f.error(key, f"unknown field; allowed fields are {', '.join(REQUIRED + OPTIONAL)}")
    for key in REQUIRED:
        if key not in data:
            f.error(key, "missing required field")

    card_id = f.str("id") or path.stem
    if not ID_RE.match(card_id):
        f.error("id", f"{card_id!r} must be lowercase letters, digits and single hyphens")
    if card_id != path.stem:
        f.error("id", f"{card_id!r} must equal the file name {path.stem!r}")
    family = f.str("family") or ""
    if family and not FAMILY_RE.match(family):
        f.error("family", f"{family!r} must be dotted lowercase ids, e.g. 'vision.cnn'")
    elif family and family.split(".")[0] not in FAMILIES:
        f.error("family", f"{family!r} must start with one of: {', '.join(FAMILIES)}")
    elif family and path.parent.name != family.split(".")[0]:
        f.error("family", f"card is in folder {path.parent.name!r} but its family starts with {family.split('.')[0]!r}")
    kind = f.str("kind") or ""
    if kind and kind not in KINDS:
        f.error("kind", f"{kind!r} must be one of: {', '.join(KINDS)}")
    year = f.int("year", 1700, 2030)
    stage = data.get("stage")
    if stage not in stages:
        f.error("stage", f"{stage!r} is not a roadmap stage; stages are {min(stages)}..{max(stages)}")
    difficulty = f.int("difficulty", 1, 5)

    paper = _parse_paper(f, data.get("paper"), year)
    lineage = {}
    for key in LINEAGE:
        ids = f.str_list(key) if key in data else []
        for ref in ids:
            if ref == card_id:
                f.error(key, "a card cannot be its own relative")
        lineage[key] = ids

    impl = data.get("impl")
    if impl is not None and not (isinstance(impl, str) and re.match(r"^deepatlas(\.[a-z_][a-z0-9_]*)+$", impl)):
        f.error("impl", f"expected null or a module path like 'deepatlas.zoo.vision.resnet', got {impl!r}")
    labs = f.str_list("labs") if "labs" in data else []
    for lab in labs:
        if not LAB_RE.match(lab):
            f.error("labs", f"{lab!r} is not a lab id like 'resnet/degradation'")
    claims = _parse_claims(f, data.get("claims"), card_id)
    resources = data.get("resources") or []
    if not isinstance(resources, list) or not all(isinstance(r, dict) and r.get("title") for r in resources):
        f.error("resources", "expected a list of {title, url} mappings")
        resources = []

    sections = parse_sections(parts[1])
    for name in SECTIONS:
        if not sections.get(name):
            f.error(f"## {name}", "missing or empty section (the body needs '## 中文', '## English' and '## Equations')")
    equations = parse_equations(sections.get("Equations", ""))
    if sections.get("Equations") and not equations:
        f.error("## Equations", "no $$ ... $$ block found")

    card = Card(
        id=card_id,
        name=f.str("name") or card_id,
        name_zh=f.str("name_zh") or "",
        aliases=f.str_list("aliases") if "aliases" in data else [],
        family=family,
        kind=kind,
        year=year or 0,
        paper=paper,
        **lineage,
        stage=stage if isinstance(stage, int) else 0,
        difficulty=difficulty or 0,
        impl=impl if isinstance(impl, str) else None,
        labs=labs,
        claims=claims,
        resources=resources,
        summary_zh=sections.get("中文", ""),
        summary_en=sections.get("English", ""),
        equations=equations,
        path=where,
    )
    return card, errors


def _parse_paper(f: _Fields, raw, year: int | None) -> Paper | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        f.error("paper", "expected a mapping with title, authors, venue, arxiv")
        return None
    for key in raw:
        if key not in ("title", "authors", "venue", "arxiv", "url"):
            f.error(f"paper.{key}", "unknown field; allowed: title, authors, venue, arxiv, url")
    title = f.str("title", data=raw)
    authors = f.str_list("authors", data=raw)
    if not authors:
        f.error("paper.authors", "needs at least one author")
    arxiv = raw.get("arxiv")
    if arxiv is not None:
        if not isinstance(arxiv, str):
            f.error("paper.arxiv", f"write the id as a quoted string, got {arxiv!r}")
            arxiv = None
        elif (ay := arxiv_year(arxiv)) is None:
            f.error("paper.arxiv", f"{arxiv!r} is not an arXiv id like '1512.03385' or 'cs/9905014'")
        elif year is not None and ay != year:
            f.error("paper.arxiv", f"{arxiv!r} dates from {ay} but the card's year is {year}")
    return Paper(
        title=title or "",
        authors=authors,
        venue=f.str("venue", optional=True, data=raw),
        arxiv=arxiv,
        url=f.str("url", optional=True, data=raw),
    )


def _parse_claims(f: _Fields, raw, card_id: str) -> list[Claim]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        f.error("claims", "expected a list")
        return []
    claims = []
    for i, item in enumerate(raw):
        where = f"claims[{i}]"
        if not isinstance(item, dict):
            f.error(where, "expected a mapping with id, en, zh, source, check")
            continue
        for key in item:
            if key not in ("id", "en", "zh", "source", "check"):
                f.error(f"{where}.{key}", "unknown field; allowed: id, en, zh, source, check")
        cid, en, zh = (item.get(k) for k in ("id", "en", "zh"))
        for key, value in (("id", cid), ("en", en), ("zh", zh)):
            if not isinstance(value, str) or not value.strip():
                f.error(f"{where}.{key}", f"expected a non-empty string, got {value!r}")
        if isinstance(cid, str) and not (ID_RE.match(cid) and cid.startswith(card_id)):
            f.error(f"{where}.id", f"{cid!r} must be a lowercase id starting with the card id {card_id!r}")
        source = item.get("source")
        if source not in SEEDS:
            f.error(f"{where}.source", f"{source!r} must be a quoted seed number: {', '.join(SEEDS)}")
        check = item.get("check")
        lab = reason = None
        if not isinstance(check, dict) or len(check) != 1 or not ({"lab", "not_checkable"} & set(check)):
            f.error(f"{where}.check", "expected exactly one of {lab: <lab-id>} or {not_checkable: <reason>}")
        elif "lab" in check:
            lab = check["lab"]
            if not isinstance(lab, str) or not LAB_RE.match(lab):
                f.error(f"{where}.check.lab", f"{lab!r} is not a lab id like 'resnet/degradation'")
                lab = None
        else:
            reason = check["not_checkable"]
            if not isinstance(reason, str) or len(reason.strip()) < 10:
                f.error(f"{where}.check.not_checkable", "give the reason in a sentence")
                reason = None
        claims.append(Claim(
            id=cid if isinstance(cid, str) else f"{card_id}-{i}",
            card=card_id,
            en=en if isinstance(en, str) else "",
            zh=zh if isinstance(zh, str) else "",
            source=source if isinstance(source, str) else "",
            lab=lab,
            not_checkable=reason,
        ))
    return claims
