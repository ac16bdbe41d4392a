"""What the notebooks call: run a list of configs (reusing finished runs) and keep their records under results/.

Layout: a run trains in `runs/<experiment>/<run_name>/` (checkpoints; ignored by git) and its record is copied to
`results/<experiment>/runs/<run_name>.json` (committed). The smoke profile writes to `runs/smoke-results/`
instead, so tests never touch the committed results.
"""

from __future__ import annotations

import os
from pathlib import Path

from skipvae.config import RunConfig
from skipvae.records import REPO_ROOT, atomic_write_json, read_json


def default_profile() -> str:
    """`smoke` under CI (or when SKIPVAE_PROFILE says so), else `cpu`."""
    return os.environ.get("SKIPVAE_PROFILE") or ("smoke" if os.environ.get("CI") else "cpu")


def results_dir(experiment: str, profile: str) -> Path:
    if profile == "smoke":
        return REPO_ROOT / "runs" / "smoke-results" / experiment
    return REPO_ROOT / "results" / experiment


def runs_dir(experiment: str) -> Path:
    return Path(os.environ.get("SKIPVAE_RUNS", REPO_ROOT / "runs")) / experiment


def finished_record(cfg: RunConfig, path: Path) -> dict | None:
    """The stored record at `path` if it is finished and its config is identical to `cfg`."""
    if not path.exists():
        return None
    record = read_json(path)
    if record.get("status") == "finished" and record.get("config") == cfg.to_dict():
        return record
    return None


def run_all(configs: list[RunConfig], experiment: str, force: bool = False, progress: bool = True,
            data_dir=None) -> list[dict]:
    """Train every config that has no finished record (or all of them with `force`); return their records."""
    records = []
    for i, cfg in enumerate(configs):
        out = results_dir(experiment, cfg.profile) / "runs" / f"{cfg.run_name()}.json"
        record = None if force else finished_record(cfg, out)
        if record is None:
            from skipvae.train import train

            run_dir = runs_dir(experiment) / cfg.run_name()
            if force and run_dir.exists():
                for name in ("last.pt", "best.pt", "record.json"):
                    (run_dir / name).unlink(missing_ok=True)
            print(f"[{i + 1}/{len(configs)}] training {cfg.run_name()}")
            record = train(cfg, run_dir, data_dir=data_dir, progress=progress)
            atomic_write_json(out, record)
        else:
            print(f"[{i + 1}/{len(configs)}] reusing {out.relative_to(REPO_ROOT)}")
        records.append(record)
    return records


def checkpoint_path(cfg: RunConfig, experiment: str) -> Path:
    """The best checkpoint of a run (for figures that need the model: samples, t-SNE)."""
    return runs_dir(experiment) / cfg.run_name() / "best.pt"
