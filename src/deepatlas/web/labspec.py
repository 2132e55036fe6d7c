"""The lab registry as plain data, for a server that never imports torch.

Registering the labs means importing the zoo (and torch), so the server asks a child process once:
`python -m deepatlas.web.labspec` prints every lab's id, card, budget, scales and goals as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading


def describe() -> list[dict]:
    from deepatlas.labs import list_labs

    return [{
        "id": lb.id, "card": lb.card, "title": lb.title, "budget_s": lb.budget_s, "scales": list(lb.scales),
        "goals": [{"metric": g.metric, "op": g.op, "target": g.target, "scales": list(g.scales)} for g in lb.goals],
        "claims": [c.claim for c in lb.claims],
    } for lb in list_labs()]


_lock = threading.Lock()
_specs: dict[str, dict] | None = None


def lab_specs() -> dict[str, dict]:
    """Lab id -> its description, asked of a child process on first use and kept for this process."""
    global _specs
    with _lock:
        if _specs is None:
            out = subprocess.run([sys.executable, "-m", "deepatlas.web.labspec"], capture_output=True,
                                 text=True, timeout=300)
            if out.returncode != 0:
                raise RuntimeError(f"could not list the labs (exit {out.returncode}):\n{out.stderr[-2000:]}")
            _specs = {spec["id"]: spec for spec in json.loads(out.stdout)}
        return _specs


if __name__ == "__main__":
    json.dump(describe(), sys.stdout)
