"""Writing the verdict snapshot (`catalog/verdicts.json`) from default-scale verify runs.

Each lab's entry records when, where and at which commit it was measured, and keeps a hash of what it promises (goals, claims, default config), so a
test can tell when a lab changed but the snapshot was not measured again.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from deepatlas.catalog.verdicts import SNAPSHOT
from deepatlas.labs import Lab, get_lab


def spec_hash(lab: Lab) -> str:
    spec = {
        "goals": [[g.metric, g.op, g.target, list(g.scales)] for g in lab.goals],
        "claims": [[c.claim, c.evidence] for c in lab.claims],
        "default": lab.scales.get("default", {}),
        "config": repr(lab.config()),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def machine() -> str:
    return f"{platform.machine()} · {os.cpu_count()} cores · {platform.system()} · torch {torch.__version__}"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).parent, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_snapshot(results, path: Path = SNAPSHOT) -> Path:
    """Record `results` (default-scale runs) in the snapshot. Labs not among them keep their earlier
    entry, so one family can be measured again on its own; entries of labs that no longer exist go."""
    from deepatlas.catalog.verdicts import load_snapshot
    from deepatlas.labs import list_labs

    now, where, at = time.strftime("%Y-%m-%dT%H:%M:%S%z"), machine(), commit()
    existing = {lab.id for lab in list_labs()}
    labs = {k: v for k, v in load_snapshot(path).get("labs", {}).items() if k in existing}
    for r in results:
        labs[r.lab] = {
            "spec": spec_hash(get_lab(r.lab)), "status": r.status, "seconds": round(r.seconds, 2),
            "budget_s": r.budget_s, "seed": r.seed, "measured_at": now, "machine": where, "commit": at,
            "metrics": r.metrics, "goals": r.goals, "claims": r.claims,
        }
    snap = {
        "generated_by": "deepatlas verify --snapshot",
        "measured_at": now,
        "machine": where,
        "commit": at,
        "scale": "default",
        "labs": dict(sorted(labs.items())),
    }
    path.write_text(json.dumps(snap, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
