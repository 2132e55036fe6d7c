"""Every registered lab and model against the catalogue and the snapshot."""

import pytest
import torch

from deepatlas.catalog import load_catalog
from deepatlas.catalog.verdicts import load_snapshot
from deepatlas.labs import list_labs
from deepatlas.labs.runner import run_lab
from deepatlas.labs.snapshot import spec_hash
from deepatlas.registry import create_model, model_entries

LABS = list_labs()
CAT = load_catalog()


def test_there_are_labs_and_models():
    assert LABS and model_entries()


@pytest.mark.parametrize("lab", LABS, ids=lambda lb: lb.id)
def test_lab_matches_its_card(lab):
    card = CAT.by_id[lab.card]
    assert lab.id in card.labs, f"card {card.id} must list lab {lab.id} under labs:"
    assert 0 < lab.budget_s <= 180, "a lab's default scale must fit a few minutes of a 2-core CPU"
    for check in lab.claims:
        claim = CAT.claims.get(check.claim)
        assert claim is not None, f"lab {lab.id} judges claim {check.claim!r}, which no card makes"
        assert claim.lab == lab.id, f"claim {claim.id} names {claim.lab!r} as its check, not {lab.id!r}"


def test_cards_only_list_registered_labs():
    registered = {lb.id for lb in LABS}
    listed = {lab for c in CAT for lab in c.labs}
    assert listed <= registered, f"cards list labs that do not exist: {sorted(listed - registered)}"


def test_claims_naming_a_registered_lab_are_judged_by_it():
    judged = {(lb.id, c.claim) for lb in LABS for c in lb.claims}
    registered = {lb.id for lb in LABS}
    missing = [cl.id for cl in CAT.claims.values() if cl.lab in registered and (cl.lab, cl.id) not in judged]
    assert missing == [], f"these claims name a lab that does not judge them: {missing}"


@pytest.mark.parametrize("lab", LABS, ids=lambda lb: lb.id)
def test_lab_runs_at_quick_scale(lab):
    r = run_lab(lab, scale="quick", quiet=True)
    assert r.status == "ok", r.message
    for check in lab.claims:  # every claim's evidence can be formatted from the metrics
        assert check.claim in {c["id"] for c in r.claims}


@pytest.mark.parametrize("lab", LABS, ids=lambda lb: lb.id)
def test_snapshot_is_current(lab):
    entry = load_snapshot()["labs"].get(lab.id)
    assert entry is not None, f"no snapshot for {lab.id}: run `deepatlas verify --snapshot`"
    assert entry["spec"] == spec_hash(lab), f"{lab.id} changed since the snapshot: run `deepatlas verify --snapshot`"


@pytest.mark.parametrize("entry", model_entries(), ids=lambda m: m.name)
def test_registered_model_card_exists(entry):
    assert entry.card in CAT.by_id
    model = create_model(entry.name)
    assert isinstance(model, torch.nn.Module)


def _float_outputs(out) -> list[torch.Tensor]:
    """Every floating-point tensor in a model's output (a tensor, a tuple/list or a dict of them)."""
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _float_outputs(o)]
    return []


@pytest.mark.parametrize("entry", model_entries(), ids=lambda m: m.name)
def test_registered_model_forward_backward(entry):
    """The same check for every model: its example input goes forward to finite outputs, and
    backward from them gives every trainable parameter a finite gradient."""
    assert entry.example is not None, f"register_model({entry.name!r}) needs example= (a small forward input)"
    torch.manual_seed(0)
    model = create_model(entry.name)
    outputs = _float_outputs(model(*entry.example()))
    assert outputs, f"{entry.name} returned no floating-point output"
    assert all(torch.isfinite(o).all() for o in outputs)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:  # trained by a rule, not by gradients (the perceptron)
        return
    sum(o.float().square().mean() for o in outputs if o.requires_grad).backward()
    for name, p in trainable:
        assert p.grad is not None, f"{entry.name}: no gradient reaches {name}"
        assert torch.isfinite(p.grad).all(), f"{entry.name}: non-finite gradient in {name}"


def test_unknown_model_suggests():
    with pytest.raises(KeyError, match="did you mean mlp"):
        create_model("mpl")


@pytest.mark.parametrize("card", [c for c in CAT if c.impl], ids=lambda c: c.id)
def test_card_impl_module_exists(card):
    import importlib

    module = importlib.import_module(card.impl)
    assert module.__doc__, f"{card.impl} needs a docstring with the idea, the equation and the paper"
