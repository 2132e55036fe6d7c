"""The model registry: one decorator per variant, one factory, wildcard listing.

    @register_model("resnet20", card="resnet", example=lambda: (torch.randn(2, 3, 32, 32),))
    def resnet20(**kw): return ResNet(depth=20, **kw)

`example` returns the positional inputs of one small forward pass of the default model; the
test suite runs every registered model through it, then backward, and expects a finite
gradient on every parameter.

    create_model("resnet20", num_classes=10); list_models("resnet*")
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelEntry:
    name: str
    card: str
    factory: Callable
    module: str
    example: Callable[[], tuple] | None = None


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, *, card: str, example: Callable[[], tuple] | None = None):
    def register(factory):
        if name in _MODELS and _MODELS[name].module != factory.__module__:
            raise ValueError(f"model {name!r} registered twice ({_MODELS[name].module}, {factory.__module__})")
        _MODELS[name] = ModelEntry(name, card, factory, factory.__module__, example)
        return factory

    return register


def create_model(name: str, **kwargs):
    from deepatlas.labs import discover

    discover()
    if name not in _MODELS:
        near = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise KeyError(f"unknown model {name!r}{hint}")
    return _MODELS[name].factory(**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    from deepatlas.labs import discover

    discover()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_entries(pattern: str = "*") -> list[ModelEntry]:
    return [_MODELS[n] for n in list_models(pattern)]
