"""The compute budget of the cpu profile: the planned runs (sweeps/cpu_plan.yaml) against the finished records.

Each row of the plan is a sweep. Its runs are counted once (a run shared with an earlier row belongs to that row);
a run is done when a finished record of exactly its config is in results/ (any experiment's folder). Minutes per
run are the median wall time of the row's finished records (one run per single-thread lane), so the planned
core-hours of a row are runs x that median, and the spent core-hours the sum of its records' wall times.
"""

from __future__ import annotations

from pathlib import Path
from statistics import median

import pandas as pd
import yaml

from skipvae.records import REPO_ROOT

PLAN = REPO_ROOT / "sweeps" / "cpu_plan.yaml"


def load_plan(path: str | Path = PLAN) -> dict:
    """The plan: {target_core_hours, lanes, rows: [{what, sweep, experiment}]}; sweeps relative to the plan."""
    plan = yaml.safe_load(Path(path).read_text())
    for row in plan["rows"]:
        row["sweep"] = Path(path).parent / row["sweep"]
    return plan


def row_runs(plan: dict) -> list[tuple[dict, list]]:
    """(row, its configs) per plan row, each run counted in the first row that plans it; [] when not sized."""
    from skipvae.sweep import load_sweep

    seen, out = set(), []
    for row in plan["rows"]:
        configs = load_sweep(row["sweep"]).configs if row["sweep"].is_file() else None
        if configs is not None:
            configs = [c for c in configs if c.key() not in seen]
            seen.update(c.key() for c in configs)
        out.append((row, configs))
    return out


def run_minutes(record: dict) -> float | None:
    """A run's wall time in minutes: its `wall_time_s`, else training plus evaluation time, else None."""
    if record.get("wall_time_s") is not None:
        return record["wall_time_s"] / 60
    parts = [record.get("train_time_s"), record.get("eval_time_s")]
    return None if None in parts else sum(parts) / 60


def budget_table(plan: dict | None = None) -> pd.DataFrame:
    """One row per plan row: runs planned and done, measured minutes per run, planned and spent core-hours."""
    from skipvae.experiments import reusable_record

    plan = plan or load_plan()
    rows = []
    for row, configs in row_runs(plan):
        if configs is None:
            rows.append({"what": row["what"], "runs": None, "done": 0, "min/run": None, "planned core-h": None,
                         "spent core-h": 0.0})
            continue
        done = [r for r in (reusable_record(c, row["experiment"])[0] for c in configs) if r]
        walls = [m for m in map(run_minutes, done) if m is not None]
        per_run = median(walls) if walls else None
        rows.append({"what": row["what"], "runs": len(configs), "done": len(done), "min/run": per_run,
                     "planned core-h": None if per_run is None else len(configs) * per_run / 60,
                     "spent core-h": sum(walls) / 60})
    return pd.DataFrame(rows, columns=["what", "runs", "done", "min/run", "planned core-h", "spent core-h"])
