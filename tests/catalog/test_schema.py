"""Broken cards get errors that name the file, the field and what is wrong."""


import pytest

from deepatlas.catalog import CatalogError, check_catalog, load_catalog
from deepatlas.catalog.schema import arxiv_year

GOOD = """\
---
id: {id}
name: {name}
name_zh: 测试{id}
aliases: []
family: {family}
kind: architecture
year: {year}
paper:
  title: A paper
  authors: [Ada Lovelace]
  venue: Test 2015
  arxiv: {arxiv}
descends_from: {parents}
variant_of: []
inspired_by: []
component_of: []
stage: 1
difficulty: 2
impl: null
labs: []
claims:
  - id: {id}-works
    en: It works.
    zh: 它有效。
    source: "001"
    check:
      lab: {id}/works
resources: []
---

## 中文
一段中文摘要。

## English
A summary.

## Equations
The rule:
$$ y = x $$
"""


def write(root, id, family="vision.cnn", year=2015, arxiv='"1512.03385"', parents="[]", text=None, **kw):
    folder = root / family.split(".")[0]
    folder.mkdir(parents=True, exist_ok=True)
    body = text if text is not None else GOOD.format(
        id=id, name=kw.get("name", id.upper()), family=family, year=year, arxiv=arxiv, parents=parents)
    (folder / f"{id}.md").write_text(body, encoding="utf-8")


def errors(root):
    return [str(e) for e in check_catalog(root)[1]]


def test_good_cards_load(tmp_path):
    write(tmp_path, "alpha")
    write(tmp_path, "beta", year=2016, arxiv='"1601.00001"', parents="[alpha]")
    cat = load_catalog(tmp_path)
    assert [c.id for c in cat] == ["alpha", "beta"]
    beta = cat.get("BETA")  # names are case-insensitive
    assert beta.descends_from == ["alpha"]
    assert beta.equations[0].caption == "The rule" and beta.equations[0].tex == "y = x"
    assert beta.claims[0].lab == "beta/works"
    assert cat.get("测试beta") is beta


@pytest.mark.parametrize("mutate, expected", [
    (lambda t: t.replace("kind: architecture", "kind: gadget"),
     "vision/alpha.md: kind: 'gadget' must be one of: architecture, technique, concept, system"),
    (lambda t: t.replace("year: 2015", "year: 2016"),
     "vision/alpha.md: paper.arxiv: '1512.03385' dates from 2015 but the card's year is 2016"),
    (lambda t: t.replace('arxiv: "1512.03385"', "arxiv: 1512.03385"),
     "vision/alpha.md: paper.arxiv: write the id as a quoted string, got 1512.03385"),
    (lambda t: t.replace("family: vision.cnn", "family: optics.cnn"),
     "vision/alpha.md: family: 'optics.cnn' must start with one of:"),
    (lambda t: t.replace("stage: 1", "stage: 42"),
     "vision/alpha.md: stage: 42 is not a roadmap stage"),
    (lambda t: t.replace("difficulty: 2", "difficulty: 9"),
     "vision/alpha.md: difficulty: expected a whole number from 1 to 5, got 9"),
    (lambda t: t.replace("id: alpha\n", "id: beta\n"),
     "vision/alpha.md: id: 'beta' must equal the file name 'alpha'"),
    (lambda t: t.replace('source: "001"', "source: 1"),
     "vision/alpha.md: claims[0].source: 1 must be a quoted seed number"),
    (lambda t: t.replace("lab: alpha/works", "lab: works"),
     "vision/alpha.md: claims[0].check.lab: 'works' is not a lab id"),
    (lambda t: t.replace("      lab: alpha/works", "      lab: alpha/works\n      not_checkable: both at once"),
     "vision/alpha.md: claims[0].check: expected exactly one of"),
    (lambda t: t.replace("  - id: alpha-works", "  - id: other-works"),
     "vision/alpha.md: claims[0].id: 'other-works' must be a lowercase id starting with the card id 'alpha'"),
    (lambda t: t.replace("impl: null", "impl: null\ncolour: blue"),
     "vision/alpha.md: colour: unknown field"),
    (lambda t: t.replace("name_zh: 测试alpha\n", ""),
     "vision/alpha.md: name_zh: missing required field"),
    (lambda t: t.replace("## English\nA summary.\n", ""),
     "vision/alpha.md: ## English: missing or empty section"),
    (lambda t: t.replace("$$ y = x $$", "y = x"),
     "vision/alpha.md: ## Equations: no $$ ... $$ block found"),
    (lambda t: t.replace("aliases: []", "aliases: [unclosed"),
     "vision/alpha.md: front matter: invalid YAML"),
    (lambda t: t[4:],
     "vision/alpha.md: front matter: the file must start with '---'"),
])
def test_broken_card_errors(tmp_path, mutate, expected):
    write(tmp_path, "alpha", text=mutate(GOOD.format(
        id="alpha", name="Alpha", family="vision.cnn", year=2015, arxiv='"1512.03385"', parents="[]")))
    found = errors(tmp_path)
    assert any(e.startswith(expected) for e in found), found


def test_wrong_folder(tmp_path):
    write(tmp_path, "alpha")
    (tmp_path / "vision" / "alpha.md").rename(tmp_path / "alpha.md")
    (tmp_path / "graph").mkdir()
    (tmp_path / "alpha.md").rename(tmp_path / "graph" / "alpha.md")
    assert "graph/alpha.md: family: card is in folder 'graph' but its family starts with 'vision'" in errors(tmp_path)


def test_unknown_lineage_id(tmp_path):
    write(tmp_path, "alpha", parents="[gamma]")
    assert "vision/alpha.md: descends_from: unknown id 'gamma'" in errors(tmp_path)


def test_child_older_than_parent(tmp_path):
    write(tmp_path, "alpha", year=2016, arxiv='"1601.00001"')
    write(tmp_path, "beta", parents="[alpha]")
    assert "vision/beta.md: descends_from: beta (2015) is older than its parent alpha (2016)" in errors(tmp_path)


def test_cycle(tmp_path):
    write(tmp_path, "alpha", parents="[beta]")
    write(tmp_path, "beta", parents="[alpha]")
    assert any("lineage cycle: alpha -> beta -> alpha" in e for e in errors(tmp_path))


def test_duplicate_alias_and_name(tmp_path):
    write(tmp_path, "alpha", name="Shared")
    write(tmp_path, "beta", name="Shared")
    assert "vision/beta.md: aliases: 'shared' already names card 'alpha'" in errors(tmp_path)


def test_duplicate_id_across_folders(tmp_path):
    write(tmp_path, "alpha")
    write(tmp_path, "alpha", family="graph")
    assert any("duplicate id 'alpha'" in e for e in errors(tmp_path))


def test_load_catalog_raises_with_every_error(tmp_path):
    write(tmp_path, "alpha", parents="[nope]")
    write(tmp_path, "beta", parents="[nada]")
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)
    assert len(info.value.errors) == 2 and "2 card error(s)" in str(info.value)


def test_unknown_id_suggests_nearest(tmp_path):
    write(tmp_path, "resnet")
    with pytest.raises(KeyError, match="did you mean resnet"):
        load_catalog(tmp_path).get("resnte")


@pytest.mark.parametrize("arxiv, year", [("1512.03385", 2015), ("2412.19437", 2024), ("cs/9905014", 1999),
                                         ("math.ST/0501001", 2005), ("1706.03762v5", 2017), ("nonsense", None)])
def test_arxiv_year(arxiv, year):
    assert arxiv_year(arxiv) == year


def test_part_that_descends_from_its_whole(tmp_path):
    write(tmp_path, "whole")
    text = GOOD.format(id="part", name="Part", family="vision.cnn", year=2015, arxiv='"1512.03385"', parents="[whole]")
    write(tmp_path, "part", text=text.replace("component_of: []", "component_of: [whole]"))
    assert any("prerequisite cycle (parents and parts): " in e for e in errors(tmp_path))
