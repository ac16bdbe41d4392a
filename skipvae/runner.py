"""The runner the notebooks call: run a list of configs (reusing finished runs) and keep their records under results/.

Layout: a run trains in `runs/<experiment>/<run_name>/` (checkpoints; ignored by git) and its record is copied to
`results/<experiment>/runs/<run_name>.json` (committed). The smoke profile writes to `runs/smoke-results/`
instead, so tests never touch the committed results.

The notebooks also use the small helpers below: `record_path`, `update_record_metrics` (add a metric computed after
training, e.g. the t-SNE silhouette, to a stored record), `load_trained` (the best checkpoint of a run, for samples
and t-SNE), `experiment_runs` (the runs table of one notebook execution), `profile_reductions` (what a profile
changes relative to the paper), `reference_record` (results that are not runs: the unigram floor, the PCA reference)
and `show_paper_table`. Reading, tables, verdicts and figures live in `skipvae.report`.
"""

from __future__ import annotations

import os
from pathlib import Path

from skipvae.config import WHOLE, RunConfig, make_config
from skipvae.errors import DataError
from skipvae.records import REPO_ROOT, atomic_write_json, finished_record, read_json
from skipvae.results import record_path, results_dir, reusable_record


def default_profile() -> str:
    """`smoke` under CI (or when SKIPVAE_PROFILE says so), else `cpu`."""
    return os.environ.get("SKIPVAE_PROFILE") or ("smoke" if os.environ.get("CI") else "cpu")


def runs_dir(experiment: str) -> Path:
    return Path(os.environ.get("SKIPVAE_RUNS", REPO_ROOT / "runs")) / experiment


def reuse_only() -> bool:
    """Whether notebooks only show the runs that have finished (SKIPVAE_REUSE_ONLY=1), training none: for pages
    rebuilt while a sweep is still running."""
    return os.environ.get("SKIPVAE_REUSE_ONLY", "") not in ("", "0")


def run_all(configs: list[RunConfig], experiment: str, force: bool = False, progress: bool = True,
            data_dir=None) -> list[dict]:
    """Train every config that has no finished record (or all of them with `force`); return their records.

    A finished record of the identical config in another experiment's folder is copied, not retrained. Under
    SKIPVAE_REUSE_ONLY=1 (`reuse_only`) a config without a finished record is listed as missing and left out."""
    records, missing = [], []
    for i, cfg in enumerate(configs):
        out = record_path(cfg, experiment)
        record, source = (None, "") if force else reusable_record(cfg, experiment)
        if record is None and reuse_only():
            missing.append(cfg.run_name())
            continue
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
            if source != experiment:
                atomic_write_json(out, record)  # each experiment's folder holds all of its records
            print(f"[{i + 1}/{len(configs)}] reusing the identical finished run of {source}: {out.name}")
        records.append(record)
    if missing:
        print(f"SKIPVAE_REUSE_ONLY: {len(missing)} of {len(configs)} runs have not finished and are left out: "
              + ", ".join(missing))
    return records



def checkpoint_path(cfg: RunConfig, experiment: str) -> Path | None:
    """The best checkpoint of a finished run (for figures that need the model: samples, t-SNE): the experiment's
    own run folder, else the run's folder in any sweep under runs/ (a sweep trains it there before `collect`); a
    folder counts only where its run has finished (a finished record.json of `cfg` beside best.pt). None if none."""
    from skipvae.train import BEST, RECORD

    folders = [runs_dir(experiment) / cfg.run_name(), *sorted(runs_dir(experiment).parent.glob(f"*/{cfg.run_name()}"))]
    return next((d / BEST for d in folders if (d / BEST).exists() and finished_record(cfg, d / RECORD) is not None),
                None)



def update_record_metrics(cfg: RunConfig, experiment: str, values: dict) -> dict:
    """Merge `values` into the 'metrics' of the stored finished record of `cfg` (atomic rewrite); returns the record.

    For numbers computed after training from the checkpoint (e.g. 'tsne_silhouette'); other metrics are kept.
    """
    path = record_path(cfg, experiment)
    record = finished_record(cfg, path)
    if record is None:
        raise DataError(f"no finished record of {cfg.run_name()} with this exact config at {path}; run "
                        f"run_all([cfg], {experiment!r}) first, then add metrics to its record.")
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise DataError(f"values must be a dict of metric names to numbers, got {values!r}")
    record["metrics"] = {**record["metrics"], **values}
    atomic_write_json(path, record)
    return record


def load_trained(cfg: RunConfig, experiment: str, data_dir=None, device="cpu"):
    """(data, model) with the run's best weights, in eval mode; None when the finished run's checkpoint is not on
    this machine (e.g. a fresh clone that reuses the committed records, or a run still training)."""
    path = checkpoint_path(cfg, experiment)
    if path is None:
        return None
    from skipvae.train import build, load_checkpoint

    checkpoint = load_checkpoint(path, map_location=device)
    if not cfg.same_run(checkpoint["config"]):
        raise DataError(f"{path} was written by a different config than {cfg.run_name()}; retrain with force=True.")
    data, model = build(cfg, data_dir=data_dir, device=device)
    model.load_state_dict(checkpoint["model"])
    return data, model.eval()


def experiment_runs(experiment: str, records: list[dict]):
    """The runs table (`skipvae.report.load_runs`, one row per run, nested metrics joined by '.') of exactly the
    runs in `records` (what `run_all` returned), read back from their results folder."""
    import pandas as pd

    from skipvae import report

    if not records:
        raise DataError(f"no records given for {experiment!r}: run_all returned nothing; check the config lists.")
    roots = sorted({results_dir(experiment, r["config"]["profile"]).parent for r in records})
    df = pd.concat([report.load_runs(experiment, root=root) for root in roots], ignore_index=True)
    names = {r["name"] for r in records}
    df = df[df["name"].isin(names)].reset_index(drop=True)
    missing = names - set(df["name"])
    if missing:
        raise DataError(f"records {sorted(missing)} are not in the results folder of {experiment!r}; rerun run_all.")
    return df


# settings shown by `profile_reductions`: what can make our numbers differ from the paper's
REDUCIBLE = ("n_train", "n_valid", "n_test", "epochs", "latent_dim", "enc_channels", "dec_layers", "dec_channels",
             "mlp_hidden", "emb_dim", "enc_hidden", "dec_hidden", "max_len", "batch_size", "warmup_epochs",
             "lr_decay_after", "svi_steps", "iw_samples", "n_eval_nll")


def profile_reductions(dataset: str, profile: str, arch: str | None = None, model: str = "vae"):
    """(notes, table): the profile's own notes and every setting where it differs from the paper's
    hyperparameters ('all' = the whole split) for `model` (the semi-amortized ones may have their own cut); an
    empty table at the paper profile."""
    import pandas as pd

    paper, ours = make_config(dataset, model, "paper", arch=arch), make_config(dataset, model, profile, arch=arch)
    rows = [{"dataset": dataset, "decoder": ours.arch, "setting": k, "paper": _shown(getattr(paper, k)),
             profile: _shown(getattr(ours, k))} for k in REDUCIBLE if getattr(paper, k) != getattr(ours, k)]
    notes = ours.notes or f"{profile} profile: the official hyperparameters of the paper."
    return notes, pd.DataFrame(rows, columns=["dataset", "decoder", "setting", "paper", profile]).astype(str)


def _shown(value):
    return WHOLE if value is None else value  # None: the whole split


def show_paper_table(runs, name: str, **kwargs):
    """Display the paper's table `name` (book/paper_numbers.yaml) beside ours, same rows and columns
    (`report.side_by_side`, which takes `where` and `extra_rows`), with its caption; returns the table."""
    from IPython.display import Markdown, display

    from skipvae import report

    table = report.side_by_side(runs, name, **kwargs)
    display(Markdown(report.beside_caption(table)))
    display(table)
    return table


def reference_record(experiment: str, profile: str, name: str, settings: dict, compute, force: bool = False) -> dict:
    """A result that is not a training run (a baseline, a reference classifier): `compute()` -> metrics, stored with
    its settings and provenance at <results>/<experiment>/reference/<name>.json and reused while the settings are
    identical (so a re-execution rewrites nothing). Returns {'settings', 'metrics', 'provenance', 'wall_time_s'}."""
    import time

    import torch

    from skipvae.records import provenance

    path = results_dir(experiment, profile) / "reference" / f"{name}.json"
    if path.exists() and not force:
        record = read_json(path)
        if record.get("settings") == settings:
            return record
    t0 = time.time()
    metrics = compute()
    record = {"settings": settings, "metrics": metrics,
              "provenance": provenance(settings.get("seed", 0), profile, torch.device("cpu")),
              "wall_time_s": time.time() - t0}
    atomic_write_json(path, record)
    return record


def pca_reference(cfg: RunConfig, experiment: str, n_components: int = 50, force: bool = False) -> dict:
    """The reference row of the classification study: the classifiers of `metrics.classification_accuracy` on the
    PCA-`n_components` projection of the binarized pixels, for the splits cfg.clf_n_train / clf_n_test and the
    classifier seed cfg.seed (a `reference_record`; metrics {clf: {acc, se}, n_train, n_test})."""
    import dataclasses

    import torch

    from skipvae.data import load_dataset
    from skipvae.metrics import by_classifier, pca_pixel_accuracy

    def compute() -> dict:
        data = load_dataset(dataclasses.replace(cfg, n_train=cfg.clf_n_train, n_test=cfg.clf_n_test))
        split = {s: [torch.cat(t) for t in zip(*data.batches(s, 1000, shuffle=False, seed=cfg.seed))]
                 for s in ("train", "test")}  # training images binarized as in epoch 0 of this seed
        return by_classifier(pca_pixel_accuracy(*split["train"], *split["test"], n_components=n_components,
                                                seed=cfg.seed, mlp_epochs=cfg.clf_epochs))

    settings = {"dataset": cfg.dataset, "profile": cfg.profile, "seed": cfg.seed, "n_components": n_components,
                "clf_n_train": cfg.clf_n_train, "clf_n_test": cfg.clf_n_test, "clf_epochs": cfg.clf_epochs}
    return reference_record(experiment, cfg.profile, f"pca{n_components}-s{cfg.seed}", settings, compute, force)


def unigram_reference(cfg: RunConfig, experiment: str, force: bool = False) -> dict:
    """The unigram floor of a text table (`models.unigram.unigram_floor`): fitted on cfg's training documents and
    scored on the test documents that get cfg's IW-NLL (`metrics.nll_examples_of`: the first cfg.n_eval_nll, or
    with nll_subset 'random' those drawn with cfg's seed, one reference per seed); a `reference_record`."""
    from skipvae.data import load_dataset
    from skipvae.metrics import nll_examples_of
    from skipvae.models.unigram import unigram_floor

    settings = {"dataset": cfg.dataset, "profile": cfg.profile, "n_train": cfg.n_train, "n_valid": cfg.n_valid,
                "n_test": cfg.n_test, "max_len": cfg.max_len, "n_eval_nll": cfg.n_eval_nll}
    name = "unigram"
    if cfg.nll_subset != "first":  # the 'first' settings stay as they were: the committed floor is reused
        settings |= {"nll_subset": cfg.nll_subset, "seed": cfg.seed}
        name = f"unigram-{cfg.nll_subset}-s{cfg.seed}"

    def compute() -> dict:
        data = load_dataset(cfg)
        chosen = nll_examples_of(data.num_examples("test"), cfg.n_eval_nll, cfg.nll_subset, cfg.seed)
        return unigram_floor(data, examples=chosen)

    return reference_record(experiment, cfg.profile, name, settings, compute, force)
