"""Labs: the smallest honest experiment that shows an idea working, with a goal it must reach.

A lab is a plain function `fn(run, cfg) -> metrics` declared with `@lab(...)`: its card,
a config dataclass and three scales of it, the goals its metrics must meet, the claims
whose verdict follows from those metrics, and a time budget for the default scale.

    @lab("perceptron/xor", card="perceptron", config=XorConfig,
         scales={"quick": {"epochs": 100}, "default": {}, "full": {"epochs": 20_000}},
         goals=[Goal("mlp_acc", ">=", 1.0)], claims=[Check("perceptron-xor", ...)], budget_s=10)
    def xor(run, cfg): ...
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import operator
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

SCALES = ("quick", "default", "full")
OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}


@dataclass(frozen=True)
class Goal:
    """A number the lab must reach: `metric op target`, e.g. Goal("test_acc", ">=", 0.97)."""

    metric: str
    op: str
    target: float
    scales: tuple[str, ...] = ("default", "full")  # quick runs prove the code path, not the goal

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"goal op {self.op!r} must be one of {', '.join(OPS)}")

    def evaluate(self, metrics: dict) -> dict:
        value = metrics.get(self.metric)
        passed = value is not None and OPS[self.op](value, self.target)
        return {"metric": self.metric, "op": self.op, "target": self.target, "value": value, "passed": passed}


@dataclass(frozen=True)
class Check:
    """How a card's claim is judged from a lab's metrics.

    `supported(metrics)` decides the verdict; `evidence` is a format string over the metrics
    that states the measured numbers, whichever way the verdict goes.
    """

    claim: str
    supported: Callable[[dict], bool]
    evidence: str

    def evaluate(self, metrics: dict) -> dict:
        verdict = "supported" if self.supported(metrics) else "refuted"
        return {"id": self.claim, "verdict": verdict, "evidence": self.evidence.format(**metrics)}


@dataclass(frozen=True)
class Lab:
    id: str
    card: str
    title: str
    fn: Callable
    config: type
    scales: dict[str, dict]
    goals: tuple[Goal, ...]
    claims: tuple[Check, ...]
    budget_s: float
    threads: int | None  # None: every core (convolution- and matmul-heavy labs)
    module: str = ""

    def make_config(self, scale: str, overrides: dict[str, str] | None = None):
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
        cfg = self.config(**self.scales.get(scale, {}))
        return dataclasses.replace(cfg, **parse_overrides(self.config, overrides or {}))

    def goals_for(self, scale: str) -> list[Goal]:
        return [g for g in self.goals if scale in g.scales]


class BadOverride(ValueError):
    pass


def parse_overrides(config: type, overrides: dict[str, str]) -> dict:
    """`--set key=value` strings turned into the config's field types, or a clear error."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    allowed = ", ".join(f"{n}:{_type_name(f.type)}" for n, f in fields.items())
    parsed = {}
    for key, raw in overrides.items():
        if key not in fields:
            raise BadOverride(f"unknown setting {key!r}; allowed settings are {allowed}")
        kind = _type_name(fields[key].type)
        try:
            if kind == "bool":
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                parsed[key] = raw.lower() in ("true", "1", "yes")
            elif kind == "int":
                parsed[key] = int(raw)
            elif kind == "float":
                parsed[key] = float(raw)
            else:
                parsed[key] = raw
        except ValueError:
            raise BadOverride(f"setting {key!r} expects {kind}, got {raw!r}; allowed settings are {allowed}") from None
    return parsed


def _type_name(t) -> str:
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


_LABS: dict[str, Lab] = {}
_DISCOVERED = False


def lab(id: str, *, card: str, config: type, scales: dict[str, dict], goals=(), claims=(),
        budget_s: float, threads: int | None = None, title: str = ""):
    """Register a lab function (see the module docstring)."""
    if set(scales) - set(SCALES):
        raise ValueError(f"lab {id}: scales must be among {SCALES}")

    def register(fn):
        if id in _LABS and _LABS[id].module != fn.__module__:
            raise ValueError(f"lab id {id!r} registered twice ({_LABS[id].module}, {fn.__module__})")
        _LABS[id] = Lab(
            id=id, card=card, title=title or (fn.__doc__ or "").strip().splitlines()[0], fn=fn,
            config=config, scales={s: dict(scales.get(s, {})) for s in SCALES}, goals=tuple(goals),
            claims=tuple(claims), budget_s=budget_s, threads=threads, module=fn.__module__,
        )
        return fn

    return register


def discover() -> None:
    """Import every module of the zoo so that its labs and models register themselves."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    import deepatlas.zoo as zoo

    for info in pkgutil.walk_packages(zoo.__path__, prefix="deepatlas.zoo."):
        importlib.import_module(info.name)
    _DISCOVERED = True


class UnknownLab(KeyError):
    def __str__(self) -> str:
        return self.args[0]


def get_lab(lab_id: str) -> Lab:
    discover()
    if lab_id in _LABS:
        return _LABS[lab_id]
    near = difflib.get_close_matches(lab_id, list(_LABS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else "; `deepatlas labs` lists them"
    raise UnknownLab(f"unknown lab {lab_id!r}{hint}")


def list_labs(pattern: str = "*") -> list[Lab]:
    discover()
    return [lb for key, lb in sorted(_LABS.items()) if fnmatch.fnmatch(key, pattern)]


__all__ = ["Goal", "Check", "Lab", "lab", "get_lab", "list_labs", "discover", "BadOverride", "SCALES"]
