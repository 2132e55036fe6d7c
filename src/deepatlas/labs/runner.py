"""Running a lab: seed, threads, run folder, store record, goals and claim verdicts.

Every run leaves a folder (config.json, metrics.jsonl, summary.json, plots) and a row in
the runs store, also when it fails, hits a non-finite loss or is interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch

from deepatlas import paths
from deepatlas.engine.context import NonFiniteLoss, Run
from deepatlas.engine.device import choose_threads, resolve_device, seed_everything
from deepatlas.labs import Lab
from deepatlas.store import Store


@dataclass
class RunResult:
    run_id: str
    lab: str
    card: str
    scale: str
    seed: int
    device: str
    status: str  # ok | failed | nan | interrupted
    seconds: float
    config: dict
    metrics: dict = field(default_factory=dict)
    goals: list[dict] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)
    message: str | None = None
    dir: str = ""
    figures: list[str] = field(default_factory=list)
    budget_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "ok" and all(g["passed"] for g in self.goals)

    def summary(self) -> dict:
        return {
            "run": self.run_id, "lab": self.lab, "card": self.card, "scale": self.scale, "seed": self.seed,
            "device": self.device, "status": self.status, "seconds": round(self.seconds, 3),
            "budget_s": self.budget_s, "config": self.config, "metrics": self.metrics, "goals": self.goals,
            "claims": self.claims, "message": self.message, "dir": self.dir, "figures": self.figures,
        }


def run_lab(lab: Lab, *, scale: str = "default", seed: int = 0, device: str = "cpu",
            overrides: dict[str, str] | None = None, quiet: bool = False, store: Store | None = None,
            on_log=None, on_start=None) -> RunResult:
    cfg = lab.make_config(scale, overrides)  # bad settings fail here, before anything is recorded
    dev = resolve_device(device)
    store = store or Store()
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    run_dir = paths.runs_dir() / lab.id.replace("/", "__") / run_id
    run_dir.mkdir(parents=True)
    config = dataclasses.asdict(cfg)
    (run_dir / "config.json").write_text(json.dumps(
        {"lab": lab.id, "scale": scale, "seed": seed, "device": device, "config": config}, indent=2))
    store.start_run(run_id, lab.id, lab.card, scale, seed, device, config, run_dir)
    run = Run(run_dir, dev, seed, scale, quiet=quiet, on_log=on_log)
    result = RunResult(run_id, lab.id, lab.card, scale, seed, device, "running", 0.0, config,
                       dir=str(run_dir), budget_s=lab.budget_s)
    start = time.perf_counter()
    try:  # from here on an interruption (Ctrl-C, the web queue's SIGINT) is recorded
        if on_start:
            on_start(run_id, run_dir)
        torch.set_num_threads(choose_threads(lab.threads))
        seed_everything(seed)
        metrics = lab.fn(run, cfg)
        result.metrics = {k: _plain(v) for k, v in metrics.items()}
        result.goals = [g.evaluate(result.metrics) for g in lab.goals_for(scale)]
        result.claims = [c.evaluate(result.metrics) for c in lab.claims]
        result.status = "ok"
    except NonFiniteLoss as exc:
        result.status, result.message = "nan", str(exc)
    except KeyboardInterrupt:
        result.status, result.message = "interrupted", "interrupted by the user (Ctrl-C)"
        _finish(store, run, result, start)
        raise
    except Exception as exc:  # the run is kept with its traceback; the caller decides what to do
        result.status, result.message = "failed", f"{type(exc).__name__}: {exc}"
        (run_dir / "error.txt").write_text(traceback.format_exc())
    _finish(store, run, result, start)
    return result


def _finish(store: Store, run: Run, result: RunResult, start: float) -> None:
    run.close()
    result.seconds = time.perf_counter() - start
    result.figures = [str(p) for p in run.figures]
    Path(result.dir, "summary.json").write_text(json.dumps(result.summary(), indent=2, ensure_ascii=False))
    store.finish_run(result.run_id, result.status, result.seconds, result.metrics or None,
                     result.goals or None, result.claims or None, result.message)


def _plain(value):
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float | int | str | bool | list | dict) or value is None:
        return value
    return float(value)
