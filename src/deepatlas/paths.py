"""Where deepatlas keeps a user's runs, progress and caches.

Everything lives under one folder: `$DEEPATLAS_HOME` when set, else
`$XDG_DATA_HOME/deepatlas` (default `~/.local/share/deepatlas`).
"""

import os
from pathlib import Path


def home() -> Path:
    if env := os.environ.get("DEEPATLAS_HOME"):
        root = Path(env).expanduser()
    else:
        data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        root = Path(data) / "deepatlas"
    root.mkdir(parents=True, exist_ok=True)
    return root


def runs_dir() -> Path:
    return home() / "runs"


def store_path() -> Path:
    return home() / "deepatlas.sqlite"


def cache_dir() -> Path:
    path = home() / "cache"
    path.mkdir(exist_ok=True)
    return path
