"""The catalogue: listing is cheap, names resolve, mistakes get a helpful message."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import deepatlas
from deepatlas import data


def test_import_does_not_pull_in_torch_or_numpy():
    src = Path(deepatlas.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(src))
    code = "import deepatlas.data, sys; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_sources_are_complete_and_unique():
    names = [s.name for s in data.SOURCES]
    assert len(names) == len(set(names))
    for source in data.SOURCES:
        assert source.kind in {"real", "generated"}
        assert all([source.description, source.size, source.licence, source.origin])


@pytest.mark.parametrize("source", data.SOURCES, ids=lambda s: s.name)
def test_every_loader_path_resolves(source):
    module, function = source.loader.split(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_source_is_frozen():
    with pytest.raises(AttributeError):
        data.get_source("digits").name = "other"


def test_unknown_name_suggests_nearest():
    with pytest.raises(ValueError, match="Did you mean 'digits'"):
        data.get_source("digit")
    with pytest.raises(ValueError, match="Known sources"):
        data.load("no-such-thing")


def test_describe_lists_every_source():
    rows = data.describe()
    assert [r["name"] for r in rows] == [s.name for s in data.SOURCES]
    assert set(rows[0]) == {"name", "kind", "description", "size", "licence", "origin"}


def test_load_calls_the_loader_with_keywords():
    x, y = data.load("moons", n=10, seed=3)
    assert x.shape == (10, 2) and y.shape == (10,)


def test_split_seeds_never_reuse_a_train_seed_for_test():
    train = {data.split_seeds(s)[0] for s in range(100)}
    test = {data.split_seeds(s)[1] for s in range(100)}
    assert not train & test
