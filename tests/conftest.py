"""Every test gets its own DEEPATLAS_HOME so runs and progress never touch the user's."""

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "deepatlas-home"
    monkeypatch.setenv("DEEPATLAS_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    return home


@pytest.fixture
def quiet_run(tmp_path):
    """A real lab context (CPU, seed 0, quick scale, no progress bars) for training helpers that take `run`."""
    import torch

    from deepatlas.engine.context import Run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = Run(run_dir, torch.device("cpu"), seed=0, scale="quick", quiet=True)
    yield run
    run.close()
