"""The shipped map: valid, complete enough, and consistent with the labs that exist."""

import json

import pytest

from deepatlas.catalog import check_catalog, load_catalog
from deepatlas.catalog.schema import FAMILIES


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def test_catalogue_has_no_errors():
    _, errors = check_catalog()
    assert errors == [], "\n".join(map(str, errors))


def test_size_and_coverage(cat):
    assert len(cat) >= 210
    assert {c.top_family for c in cat} == set(FAMILIES)
    checkable = [cl for cl in cat.claims.values() if cl.checkable]
    assert len(checkable) > 60
    assert all(cl.not_checkable for cl in cat.claims.values() if not cl.checkable)


@pytest.mark.parametrize("name", ["GPT-4", "Sora", "DeepSeek-V3", "PFN", "NOTEARS", "Neural ODE", "PINN", "FNO",
                                  "MAML", "DeepProbLog", "Mamba", "U-Net", "ResNet", "LSTM", "GRPO", "BNN"])
def test_seed_names_resolve(cat, name):
    assert cat.get(name)


def test_stages_are_used(cat):
    assert {c.stage for c in cat} == {s.n for s in cat.stages}


def test_every_card_but_roots_has_lineage(cat):
    orphans = [c.id for c in cat if not (c.parents() or c.component_of or cat.children[c.id])]
    assert orphans == []


def test_list_json_fields(cat, capsys):
    from deepatlas.cli import main

    assert main(["list", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(cat)
    for key in ("id", "name", "name_zh", "aliases", "family", "kind", "year", "stage", "impl", "labs"):
        assert key in rows[0]
