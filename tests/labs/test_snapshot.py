"""The verdict snapshot: measuring some labs again keeps the others' entries."""

import json
from types import SimpleNamespace

from deepatlas.labs.snapshot import spec_hash, write_snapshot
from deepatlas.labs import get_lab


def result(lab: str, value: float):
    return SimpleNamespace(lab=lab, status="ok", seconds=1.0, budget_s=60, seed=0, metrics={"acc": value},
                           goals=[], claims=[])


def test_write_snapshot_merges_and_drops_unknown_labs(tmp_path):
    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps({"labs": {"perceptron/xor": {"spec": "old", "metrics": {"acc": 0.5}},
                                         "gone/lab": {"spec": "x"}}}))
    write_snapshot([result("mlp/mnist", 0.95)], path)
    labs = json.loads(path.read_text())["labs"]
    assert set(labs) == {"perceptron/xor", "mlp/mnist"}
    assert labs["perceptron/xor"]["metrics"] == {"acc": 0.5}  # untouched
    assert labs["mlp/mnist"]["spec"] == spec_hash(get_lab("mlp/mnist"))
    assert labs["mlp/mnist"]["measured_at"] and labs["mlp/mnist"]["commit"]
