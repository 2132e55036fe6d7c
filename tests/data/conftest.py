"""Keep every data test away from the user's real data dir."""

import pytest


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """A fresh DEEPATLAS_HOME per test, so caches start empty and nothing leaks out."""
    home = tmp_path / "deepatlas-home"
    monkeypatch.setenv("DEEPATLAS_HOME", str(home))
    return home
