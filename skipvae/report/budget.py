"""The compute budget of the cpu profile: the planned runs (sweeps/cpu_plan.yaml) against the finished records.

Each row of the plan is a sweep. Its runs are counted once (a run shared with an earlier row belongs to that row);
a run is done when a finished record of exactly its config is in results/ (any experiment's folder). A row's
planned core-hours are the wall times of its finished runs plus, for each run still to go, an estimate: the median
wall time of the finished runs of its shape (the same config on another seed or dataset, e.g. Omniglot's runs by
MNIST's), else of the row's finished runs. The spent core-hours are the sum of its records' wall times (one run
per single-thread lane).
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median

import pandas as pd
import yaml

from skipvae.records import REPO_ROOT, read_json
from skipvae.report.store import results_root

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


def cost_shape(config: dict) -> str:
    """What a run's cost depends on: its config apart from the seed and the dataset."""
    return json.dumps({k: v for k, v in config.items() if k not in ("seed", "dataset")}, sort_keys=True)


def minutes_by_shape(root: str | Path | None = None) -> dict[str, float]:
    """{cost_shape: median wall minutes} over every finished record in results/."""
    walls: dict[str, list[float]] = {}
    for path in sorted(results_root(root).glob("*/runs/*.json")):
        record = read_json(path)
        minutes = run_minutes(record) if record.get("status") == "finished" else None
        if minutes is not None:
            walls.setdefault(cost_shape(record["config"]), []).append(minutes)
    return {shape: median(m) for shape, m in walls.items()}


def budget_table(plan: dict | None = None) -> pd.DataFrame:
    """One row per plan row: runs planned and done, minutes per run and planned core-hours (measured where done,
    estimated where not: see the module), spent core-hours. Planned is None while a run has no estimate."""
    from skipvae.experiments import reusable_record

    plan = plan or load_plan()
    by_shape, rows = minutes_by_shape(), []
    for row, configs in row_runs(plan):
        if configs is None:
            rows.append({"what": row["what"], "runs": None, "done": 0, "min/run": None, "planned core-h": None,
                         "spent core-h": 0.0})
            continue
        records = [reusable_record(c, row["experiment"])[0] for c in configs]
        walls = [m for m in (run_minutes(r) for r in records if r) if m is not None]
        fallback = median(walls) if walls else None
        minutes = [run_minutes(r) if r else by_shape.get(cost_shape(c.to_dict()), fallback)
                   for c, r in zip(configs, records)]
        planned = None if None in minutes else sum(minutes) / 60
        rows.append({"what": row["what"], "runs": len(configs), "done": sum(r is not None for r in records),
                     "min/run": None if planned is None else 60 * planned / len(configs),
                     "planned core-h": planned, "spent core-h": sum(walls) / 60})
    return pd.DataFrame(rows, columns=["what", "runs", "done", "min/run", "planned core-h", "spent core-h"])
