"""Where the web atlas' front-end files are: our own code in static/, the npm libraries in node_modules/.

Only the folders named in VENDOR are ever served or copied out of node_modules.
"""

from __future__ import annotations

import os
from pathlib import Path

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
NODE_MODULES = Path(os.environ.get("DEEPATLAS_NODE_MODULES", WEB_DIR / "node_modules"))
# URL prefix under /vendor/ -> folder inside node_modules that may be served (nothing else in node_modules is)
VENDOR = {"cytoscape": "cytoscape/dist", "katex": "katex/dist", "uplot": "uplot/dist",
          "highlight": "@highlightjs/cdn-assets"}

SETUP_HINT = "run `make setup` (or `npm ci` in src/deepatlas/web) to install them"


def missing_assets() -> list[str]:
    """VENDOR folders that are not installed (server start and site build fail with a clear message)."""
    return [folder for folder in VENDOR.values() if not (NODE_MODULES / folder).is_dir()]


def vendor_dir(prefix: str) -> Path | None:
    folder = VENDOR.get(prefix)
    return NODE_MODULES / folder if folder else None
