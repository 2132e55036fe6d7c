"""The run engine: determinism, the NaN stop, interruption, failures and the records they leave."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from deepatlas.labs import BadOverride, Check, Goal, Lab, get_lab
from deepatlas.labs.runner import run_lab
from deepatlas.store import Store


@dataclass
class ToyConfig:
    steps: int = 20
    lr: float = 0.1
    blow_up_at: int = -1
    interrupt_at: int = -1
    crash: bool = False


def toy(run, cfg):
    """Fit y = 3x by gradient descent; optionally diverge, stop or crash on request."""
    w = torch.zeros((), requires_grad=True)
    x = torch.randn(64)
    for step in run.progress(range(cfg.steps)):
        loss = ((w * x - 3 * x) ** 2).mean()
        if step == cfg.blow_up_at:
            loss = loss * float("nan")
        if step == cfg.interrupt_at:
            raise KeyboardInterrupt
        if cfg.crash:
            raise ValueError("boom")
        loss.backward()
        with torch.no_grad():
            w -= cfg.lr * w.grad
            w.grad = None
        run.log(step, loss=loss)
    return {"w": w.item(), "loss": loss.item()}


TOY = Lab(
    id="toy/fit", card="perceptron", title="toy", fn=toy, config=ToyConfig,
    scales={"quick": {"steps": 5}, "default": {}, "full": {}},
    goals=(Goal("loss", "<=", 1e-3),), claims=(Check("toy-claim", lambda m: m["w"] > 2.9, "w = {w:.3f}"),),
    budget_s=5, threads=1,
)


def test_ok_run_records_everything():
    r = run_lab(TOY, quiet=True)
    assert r.status == "ok" and r.passed
    assert r.goals == [{"metric": "loss", "op": "<=", "target": 1e-3, "value": r.metrics["loss"], "passed": True}]
    assert r.claims == [{"id": "toy-claim", "verdict": "supported", "evidence": f"w = {r.metrics['w']:.3f}"}]
    folder = Path(r.dir)
    assert json.loads((folder / "config.json").read_text())["config"]["steps"] == 20
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 20
    assert json.loads((folder / "summary.json").read_text())["status"] == "ok"
    stored = Store().get_run(r.run_id)
    assert stored.status == "ok" and stored.metrics == r.metrics and stored.claims == r.claims


def test_same_seed_same_numbers_other_seed_differs():
    a, b, c = (run_lab(TOY, seed=s, quiet=True) for s in (7, 7, 8))
    assert a.metrics == b.metrics
    assert a.metrics != c.metrics


def test_quick_scale_checks_no_goal():
    r = run_lab(TOY, scale="quick", quiet=True)
    assert r.config["steps"] == 5 and r.goals == []


def test_nan_stops_and_names_the_step():
    r = run_lab(TOY, overrides={"blow_up_at": "3"}, quiet=True)
    assert r.status == "nan" and not r.passed
    assert r.message == "loss became nan at step 3; the run stopped there"
    assert Store().get_run(r.run_id).status == "nan"
    lines = Path(r.dir, "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1]) == {"step": 3, "loss": "nan"}


def test_interrupt_is_recorded_then_reraised():
    with pytest.raises(KeyboardInterrupt):
        run_lab(TOY, overrides={"interrupt_at": "4"}, quiet=True)
    (rec,) = Store().runs("toy/fit")
    assert rec.status == "interrupted" and rec.seconds is not None


def test_crash_keeps_the_traceback():
    r = run_lab(TOY, overrides={"crash": "true"}, quiet=True)
    assert r.status == "failed" and r.message == "ValueError: boom"
    assert "ValueError: boom" in Path(r.dir, "error.txt").read_text()


@pytest.mark.parametrize("sets, message", [
    ({"stepz": "3"}, "unknown setting 'stepz'; allowed settings are steps:int, lr:float, blow_up_at:int"),
    ({"steps": "many"}, "setting 'steps' expects int, got 'many'"),
    ({"crash": "maybe"}, "setting 'crash' expects bool, got 'maybe'"),
])
def test_bad_override(sets, message):
    with pytest.raises(BadOverride, match=message):
        run_lab(TOY, overrides=sets, quiet=True)
    assert Store().runs() == []  # nothing recorded for a command line that was wrong


def test_unknown_lab_suggests():
    with pytest.raises(KeyError, match="did you mean perceptron/xor"):
        get_lab("perceptron/xro")


def test_unknown_scale():
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        run_lab(TOY, scale="huge", quiet=True)


def test_two_stores_write_at_once(tmp_path):
    """Two processes record runs into one store concurrently without losing any."""
    import subprocess
    import sys

    code = (
        "import sys; from deepatlas.store import Store; s = Store(sys.argv[1])\n"
        "for i in range(40): s.start_run(f'{sys.argv[2]}-{i}', 'x/y', 'c', 'quick', 0, 'cpu', {}, '.');"
        " s.finish_run(f'{sys.argv[2]}-{i}', 'ok', 0.1, {'i': i})"
    )
    db = tmp_path / "s.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), tag]) for tag in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert len(Store(db).runs(limit=1000)) == 80


def test_logged_rows_reach_the_file_while_the_run_goes_on(quiet_run):
    quiet_run.log(0, loss=1.5)
    quiet_run.log(10, loss=torch.tensor(0.5))
    rows = [json.loads(line) for line in (quiet_run.dir / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 0, "loss": 1.5}, {"step": 10, "loss": 0.5}]
