"""Where run records live, for the code that writes them (experiments, collect) and the code that reads them
(skipvae.report) alike: the results folder, an experiment's folder in it, a run's record path, and the finished
record of a config wherever an experiment stored it.

Layout: results/<experiment>/runs/<run_name>.json (committed); the smoke profile writes under
runs/smoke-results/<experiment> instead, so that tests never touch the committed results.
"""

from __future__ import annotations

import os
from pathlib import Path

from skipvae.config import RunConfig
from skipvae.records import REPO_ROOT, finished_record


def results_root(root: str | Path | None = None) -> Path:
    """The results folder: `root`, else $SKIPVAE_RESULTS, else results/ in the checkout."""
    return Path(root or os.environ.get("SKIPVAE_RESULTS") or REPO_ROOT / "results")


def results_dir(experiment: str, profile: str) -> Path:
    """Where an experiment's records and figures go: <results_root>/<experiment>, the folder the book reads; smoke
    runs go to runs/smoke-results/<experiment> so that they never reach the book."""
    if profile == "smoke":
        return REPO_ROOT / "runs" / "smoke-results" / experiment  # never under results/, which the book reads
    return results_root() / experiment


def record_path(cfg: RunConfig, experiment: str) -> Path:
    """Where an experiment keeps a run's record: results/<experiment>/runs/<run_name>.json (smoke: under runs/)."""
    return results_dir(experiment, cfg.profile) / "runs" / f"{cfg.run_name()}.json"


def reusable_record(cfg: RunConfig, experiment: str) -> tuple[dict | None, str]:
    """A finished record of exactly `cfg` and the experiment that stored it: this experiment's own first, else
    another's (e.g. the ablations share their default setting); (None, '') if there is none."""
    here = results_dir(experiment, cfg.profile)
    others = sorted(p for p in here.parent.glob(f"*/runs/{cfg.run_name()}.json") if p.parent.parent != here)
    for path in [record_path(cfg, experiment), *others]:
        record = finished_record(cfg, path)
        if record is not None:
            return record, path.parent.parent.name
    return None, ""


def committed_record(cfg: RunConfig) -> dict | None:
    """A finished record of exactly `cfg` in any experiment's folder of the results (None if none): a run that a
    sweep on a fresh machine (no runs/ folder) need not train again."""
    for path in sorted(results_root().glob(f"*/runs/{cfg.run_name()}.json")):
        record = finished_record(cfg, path)
        if record is not None:
            return record
    return None
