"""Every test gets its own DEEPATLAS_HOME so runs and progress never touch the user's."""

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "deepatlas-home"
    monkeypatch.setenv("DEEPATLAS_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    return home
