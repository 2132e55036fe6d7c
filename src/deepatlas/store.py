"""The local store: lab runs and roadmap progress in one SQLite file.

SQLite in WAL mode with a busy timeout lets two runs (or a run and the web page)
write at once. The module uses only the standard library: `deepatlas mark` and
`deepatlas progress` must not pay for torch.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deepatlas import paths

STATES = ("done", "learning", "skipped", "pending")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id        TEXT PRIMARY KEY,
    lab       TEXT NOT NULL,
    card      TEXT NOT NULL,
    scale     TEXT NOT NULL,
    seed      INTEGER NOT NULL,
    device    TEXT NOT NULL,
    status    TEXT NOT NULL,          -- running | ok | failed | nan | interrupted
    started   REAL NOT NULL,
    seconds   REAL,
    config    TEXT NOT NULL,          -- JSON
    metrics   TEXT,                   -- JSON
    goals     TEXT,                   -- JSON
    claims    TEXT,                   -- JSON
    message   TEXT,
    dir       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_lab ON runs (lab, started);
CREATE TABLE IF NOT EXISTS progress (
    card      TEXT PRIMARY KEY,
    state     TEXT NOT NULL,
    updated   REAL NOT NULL
);
"""


@dataclass
class RunRecord:
    id: str
    lab: str
    card: str
    scale: str
    seed: int
    device: str
    status: str
    started: float
    seconds: float | None
    config: dict
    metrics: dict | None
    goals: list | None
    claims: list | None
    message: str | None
    dir: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Store:
    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else paths.store_path()

    @contextmanager
    def connect(self):
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            with conn:
                yield conn
        finally:
            conn.close()

    # runs -------------------------------------------------------------------------
    def start_run(self, run_id: str, lab: str, card: str, scale: str, seed: int, device: str,
                  config: dict, run_dir: Path) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO runs (id, lab, card, scale, seed, device, status, started, config, dir)"
                " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (run_id, lab, card, scale, seed, device, time.time(), json.dumps(config), str(run_dir)),
            )

    def finish_run(self, run_id: str, status: str, seconds: float, metrics: dict | None = None,
                   goals: list | None = None, claims: list | None = None, message: str | None = None) -> None:
        with self.connect() as conn:
            conn.execute(
                "UPDATE runs SET status=?, seconds=?, metrics=?, goals=?, claims=?, message=? WHERE id=?",
                (status, seconds, _dumps(metrics), _dumps(goals), _dumps(claims), message, run_id),
            )

    def runs(self, lab: str | None = None, limit: int = 50) -> list[RunRecord]:
        query, args = "SELECT * FROM runs", []
        if lab:
            query += " WHERE lab = ? OR lab LIKE ?"
            args = [lab, lab.rstrip("/") + "/%"]
        query += " ORDER BY started DESC LIMIT ?"
        with self.connect() as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(query, [*args, limit]).fetchall()
        return [_record(r) for r in rows]

    def get_run(self, run_id: str) -> RunRecord | None:
        with self.connect() as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM runs WHERE id = ? OR id LIKE ?", (run_id, run_id + "%")).fetchone()
        return _record(row) if row else None

    def latest_claims(self) -> dict[str, dict]:
        """Claim id -> the newest verdict from this machine's finished default- or full-scale runs."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT claims, id, lab, started FROM runs WHERE status = 'ok' AND scale != 'quick'"
                " AND claims IS NOT NULL ORDER BY started",
            ).fetchall()
        latest = {}
        for claims, run_id, lab, started in rows:
            for cl in json.loads(claims):
                latest[cl["id"]] = {**cl, "run": run_id, "lab": lab, "when": started}
        return latest

    # progress -----------------------------------------------------------------------
    def mark(self, card: str, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; use one of {', '.join(STATES)}")
        with self.connect() as conn:
            if state == "pending":
                conn.execute("DELETE FROM progress WHERE card = ?", (card,))
            else:
                conn.execute(
                    "INSERT INTO progress (card, state, updated) VALUES (?, ?, ?)"
                    " ON CONFLICT(card) DO UPDATE SET state = excluded.state, updated = excluded.updated",
                    (card, state, time.time()),
                )

    def progress(self) -> dict[str, str]:
        with self.connect() as conn:
            return dict(conn.execute("SELECT card, state FROM progress").fetchall())


def _dumps(value) -> str | None:
    return None if value is None else json.dumps(value)


def _record(row: sqlite3.Row) -> RunRecord:
    d = dict(row)
    for key in ("config", "metrics", "goals", "claims"):
        d[key] = json.loads(d[key]) if d[key] else None
    return RunRecord(**d)
