"""deepatlas: an executable, bilingual atlas of deep learning.

Importing the package is cheap: the catalogue needs no torch. The model and lab
registries are imported on first use (`deepatlas.create_model`, `deepatlas.get_lab`).
"""

__version__ = "0.1.0"

_LAZY = {
    "create_model": "deepatlas.registry",
    "list_models": "deepatlas.registry",
    "register_model": "deepatlas.registry",
    "get_lab": "deepatlas.labs",
    "list_labs": "deepatlas.labs",
    "load_catalog": "deepatlas.catalog",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deepatlas' has no attribute {name!r}")
