"""Lineage trees and study plans on a small hand-made map."""

from deepatlas.catalog import load_catalog
from deepatlas.catalog.graph import ancestors_tree, descendants_tree, prerequisite_closure, study_plan
from tests.catalog.test_schema import GOOD


def card(root, id, year, stage=1, descends="[]", component="[]", difficulty=2):
    text = GOOD.format(id=id, name=id.title(), family="vision.cnn", year=year, arxiv="null", parents=descends)
    text = text.replace("stage: 1", f"stage: {stage}").replace("component_of: []", f"component_of: {component}")
    text = text.replace("difficulty: 2", f"difficulty: {difficulty}")
    (root / "vision").mkdir(exist_ok=True)
    (root / "vision" / f"{id}.md").write_text(text, encoding="utf-8")


def small_map(root):
    card(root, "neuron", 1943)
    card(root, "attention", 2014, component="[transformer]")
    card(root, "cnn", 1989, descends="[neuron]")
    card(root, "resnet", 2015, descends="[cnn]")
    card(root, "transformer", 2017, stage=2, descends="[neuron]")
    card(root, "vit", 2020, stage=1, descends="[transformer, cnn]", difficulty=4)
    return load_catalog(root)


def test_trees(tmp_path):
    cat = small_map(tmp_path)
    up = ancestors_tree(cat, "vit")
    assert [(n.card.id, n.relation) for n in up] == [("transformer", "descends_from"), ("cnn", "descends_from")]
    assert up[0].children[0].card.id == "neuron"
    assert up[1].children[0].repeated  # neuron appears once expanded, once marked as repeated
    down = descendants_tree(cat, "neuron")
    assert [n.card.id for n in down] == ["cnn", "transformer"]


def test_prerequisites_include_components(tmp_path):
    cat = small_map(tmp_path)
    assert prerequisite_closure(cat, "vit") == {"vit", "transformer", "attention", "cnn", "neuron"}


def test_plan_puts_prerequisites_first_and_moves_late_cards(tmp_path):
    cat = small_map(tmp_path)
    plan = study_plan(cat)
    order = [i.card.id for _, items in plan.stages for i in items]
    for cid in order:
        for need in next(i.needs for _, items in plan.stages for i in items if i.card.id == cid):
            assert order.index(need) < order.index(cid)
    placed = {i.card.id: n for n, items in plan.stages for i in items}
    assert placed["vit"] == 2  # its own stage is 1, but the Transformer is taught in stage 2
    # weeks: stage 1 gets the mean of 2-3 weeks, stage 2 the mean of 2-3 weeks
    assert abs(plan.total_weeks - 5.0) < 1e-9


def test_plan_to_target_and_weeks(tmp_path):
    cat = small_map(tmp_path)
    plan = study_plan(cat, "resnet", weeks=3)
    assert [i.card.id for _, items in plan.stages for i in items] == ["neuron", "cnn", "resnet"]
    assert abs(plan.total_weeks - 3) < 1e-9
    assert abs(sum(i.weeks for _, items in plan.stages for i in items) - 3) < 1e-9
