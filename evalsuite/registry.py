"""The run registry: every `evalsuite run` recorded in an SQLite file, with its metrics and lineage.

By default the registry is `registry.sqlite` beside the run folders (`runs/registry.sqlite` for runs in
`runs/<name>`), so a project's runs and their history travel together; `--registry` picks another file.
Lineage is free-form `key=value` pairs given at run time (`train_data=out/web-v2`,
`clean_config=pipelines/clean-web.yaml`), so a metric can be traced to the data and settings behind it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created REAL NOT NULL, output TEXT NOT NULL, model TEXT NOT NULL,
    model_fingerprint TEXT NOT NULL, suite TEXT NOT NULL, seconds REAL, lineage TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id), task TEXT NOT NULL, metric TEXT NOT NULL,
    value REAL NOT NULL, stderr REAL, PRIMARY KEY (run_id, task, metric)
);
CREATE TABLE IF NOT EXISTS agreement (
    run_id TEXT NOT NULL REFERENCES runs(run_id), task TEXT NOT NULL, dimension TEXT NOT NULL,
    level TEXT NOT NULL, alpha REAL, percent REAL, raters INTEGER NOT NULL, units INTEGER NOT NULL,
    PRIMARY KEY (run_id, task, dimension)
);
"""


@dataclass
class RunRecord:
    """One registered run."""

    run_id: str
    created: float
    output: str
    model: str
    model_fingerprint: str
    suite: str
    seconds: float
    lineage: dict[str, str]


def default_registry(output: str | Path) -> Path:
    return Path(output).resolve().parent / "registry.sqlite"


def _connect(path: str | Path) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path))
    db.executescript(SCHEMA)
    return db


def _insert_run(db: sqlite3.Connection, record: RunRecord) -> None:
    db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (record.run_id, record.created, record.output, record.model, record.model_fingerprint,
                record.suite, record.seconds, json.dumps(record.lineage, sort_keys=True)))


def _insert_metrics(db: sqlite3.Connection, run_id: str, task: str, values: dict) -> None:
    """One task's numeric `"metric,filter"` entries, each with its `_stderr` entry when there is one."""
    for key, value in values.items():
        if "_stderr" in key or key in ("sample_len", "tasks") or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        metric, _, filt = key.partition(",")
        stderr = values.get(f"{metric}_stderr,{filt}")
        db.execute("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
                   (run_id, task, key, float(value), stderr if isinstance(stderr, (int, float)) else None))


def register(path: str | Path, record: RunRecord, results: dict[str, dict]) -> None:
    """Add (or replace, for a re-run into the same folder) a run and its metrics, in one transaction."""
    with _connect(path) as db:
        db.execute("DELETE FROM metrics WHERE run_id = ?", (record.run_id,))
        db.execute("DELETE FROM agreement WHERE run_id = ?", (record.run_id,))
        _insert_run(db, record)
        for task, values in results.items():
            _insert_metrics(db, record.run_id, task, values)
    db.close()


@dataclass(frozen=True)
class Agreement:
    """How well the raters of one dimension of a task agreed (Krippendorff's alpha, None when undefined)."""

    dimension: str
    level: str  # nominal, ordinal or interval
    alpha: float | None
    percent: float | None  # share of agreeing rater pairs
    raters: int
    units: int  # items rated by two raters or more


def register_task(path: str | Path, record: RunRecord, task: str, values: dict,
                  agreement: list[Agreement] = ()) -> None:
    """Replace one task's metrics (and its raters' agreement) of a run, adding the run when the registry lacks
    it; the run's other tasks stay as they are. One transaction."""
    with _connect(path) as db:
        if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (record.run_id,)).fetchone() is None:
            _insert_run(db, record)
        db.execute("DELETE FROM metrics WHERE run_id = ? AND task = ?", (record.run_id, task))
        db.execute("DELETE FROM agreement WHERE run_id = ? AND task = ?", (record.run_id, task))
        _insert_metrics(db, record.run_id, task, values)
        db.executemany("INSERT INTO agreement VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       [(record.run_id, task, a.dimension, a.level, a.alpha, a.percent, a.raters, a.units)
                        for a in agreement])
    db.close()


def list_runs(path: str | Path) -> list[RunRecord]:
    """Every run, oldest first."""
    if not Path(path).is_file():
        return []
    db = _connect(path)
    rows = db.execute("SELECT * FROM runs ORDER BY created, run_id").fetchall()
    db.close()
    return [RunRecord(*row[:7], lineage=json.loads(row[7])) for row in rows]


def run_metrics(path: str | Path, run_id: str) -> dict[tuple[str, str], tuple[float, float | None]]:
    """{(task, "metric,filter"): (value, stderr)} of one run."""
    db = _connect(path)
    rows = db.execute("SELECT task, metric, value, stderr FROM metrics WHERE run_id = ?", (run_id,)).fetchall()
    db.close()
    return {(t, m): (v, s) for t, m, v, s in rows}


def run_agreement(path: str | Path, run_id: str) -> dict[str, list[Agreement]]:
    """{task: [Agreement per dimension]} of one run, dimensions in name order."""
    db = _connect(path)
    rows = db.execute("SELECT task, dimension, level, alpha, percent, raters, units FROM agreement "
                      "WHERE run_id = ? ORDER BY task, dimension", (run_id,)).fetchall()
    db.close()
    found: dict[str, list[Agreement]] = {}
    for task, *rest in rows:
        found.setdefault(task, []).append(Agreement(*rest))
    return found
