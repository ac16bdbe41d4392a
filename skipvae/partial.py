"""The curve so far of runs still training: `python -m skipvae.partial runs/<sweep> --experiment NAME` writes, for every
run folder with a last.pt and no finished record, results/<experiment>/partial/<run>.json holding its config, the
per-epoch history (validation ELBO, KL, MI, AU, updates, time) and the provenance of the export (the checkpoint
does not hold the training code's commit), marked unfinished; the partial record of a run that has finished since is
removed (its record is collected instead).
They keep a lost runs/ folder from costing more than the epochs since the last commit, and the book shows them as
unfinished curves. A partial record of an earlier attempt at the run (its history is not the start of the
checkpoint's: the run started over, its checkpoints lost with a machine) is moved to partial/lost/<run>.lost-at-
epoch-<n>.json, where the budget counts its training as lost, before the new attempt's is written."""

from __future__ import annotations

import argparse
from pathlib import Path

from skipvae.records import atomic_write_json, provenance
from skipvae.report.store import results_root


def export(sweep_dir: Path, experiment: str) -> list[Path]:
    from skipvae.train import LAST, RECORD, load_checkpoint

    written = []
    for run_dir in sorted(p for p in Path(sweep_dir).iterdir() if (p / RECORD).exists()):
        (results_root() / experiment / "partial" / f"{run_dir.name}.json").unlink(missing_ok=True)  # finished
    for run_dir in sorted(p for p in Path(sweep_dir).iterdir() if (p / LAST).exists() and not (p / RECORD).exists()):
        ckpt = load_checkpoint(run_dir / LAST, keys=("config", "state"))
        state, cfg = ckpt["state"], ckpt["config"]
        out = results_root() / experiment / "partial" / f"{run_dir.name}.json"
        keep_lost_attempt(out, state["history"])
        atomic_write_json(out, {"status": "unfinished", "name": run_dir.name, "config": cfg,
                                "epochs_completed": state["epoch"], "planned_epochs": cfg["epochs"],
                                "train_time_s": state["train_time_s"], "history": state["history"],
                                # the provenance of this export, not of the training
                                "export_provenance": provenance(cfg["seed"], cfg["profile"], "cpu")})
        written.append(out)
    return written


def keep_lost_attempt(partial: Path, history: list[dict]) -> Path | None:
    """Move `partial` to partial/lost/ when it is an earlier attempt's (its history is not the start of `history`);
    returns the new path, or None when there is nothing to move."""
    from skipvae.records import read_json

    if not partial.exists():
        return None
    old = read_json(partial)
    if old["history"] == history[:len(old["history"])]:
        return None  # the same attempt, further on
    lost = partial.parent / "lost" / f"{partial.stem}.lost-at-epoch-{old['epochs_completed']}.json"
    lost.parent.mkdir(parents=True, exist_ok=True)
    partial.replace(lost)
    return lost


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dir")
    parser.add_argument("--experiment", required=True)
    args = parser.parse_args()
    for path in export(Path(args.sweep_dir), args.experiment):
        print(path)
