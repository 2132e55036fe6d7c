"""`deepatlas site build DIR`: the web atlas as static files, to host anywhere.

The same page code runs there: it reads the very files the server answers under api/, written
here from `Atlas(live=False)` (the snapshot's verdicts and results, nobody's progress), and
`api/session.json` says `live: false`, so the page hides marking and lab runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from deepatlas.web.api import Atlas, finite
from deepatlas.web.assets import SETUP_HINT, STATIC_DIR, VENDOR, missing_assets, vendor_dir

OURS = ("index.html", "static", "vendor", "api")


class SiteError(Exception):
    pass


def build_site(out_dir: Path, *, require_assets: bool = True) -> dict[str, int]:
    """Write the site; returns counts of what was written. Without the npm libraries it refuses,
    unless `require_assets=False` (the page then lacks them: for tests of the JSON only)."""
    missing = missing_assets() + ([] if (STATIC_DIR / "index.html").is_file() else ["static/index.html"])
    if missing and require_assets:
        raise SiteError(f"the atlas' front-end files are missing ({', '.join(missing)}); {SETUP_HINT}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "api" / "session.json").is_file():
        raise SiteError(f"{out_dir} is not empty and holds no earlier build; choose a new or empty folder")
    for name in OURS:
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)

    if STATIC_DIR.is_dir():
        shutil.copytree(STATIC_DIR, out_dir / "static")
        if (STATIC_DIR / "index.html").is_file():
            shutil.copy2(STATIC_DIR / "index.html", out_dir / "index.html")
    for prefix in VENDOR:
        source = vendor_dir(prefix)
        if source.is_dir():
            shutil.copytree(source, out_dir / "vendor" / prefix)

    atlas = Atlas(live=False)
    api = out_dir / "api"
    documents = {
        "session.json": atlas.session(), "catalog.json": atlas.catalog(), "graph.json": atlas.graph(),
        "mindmap.json": atlas.mindmap(), "roadmap.json": atlas.roadmap(), "labs.json": atlas.labs(),
    }
    documents.update({f"cards/{c.id}.json": atlas.card(c.id) for c in atlas.cat})
    (api / "cards").mkdir(parents=True)
    for name, doc in documents.items():
        (api / name).write_text(json.dumps(finite(doc), ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    (api / "roadmap.md").write_text(atlas.roadmap_markdown(), encoding="utf-8")

    files = [p for p in out_dir.rglob("*") if p.is_file()]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files), "cards": len(atlas.cat),
            "labs": len(documents["labs.json"])}
