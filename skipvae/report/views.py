"""The tables of an experiment as its book page shows them, for the book and the terminal alike
(`python -m skipvae table EXPERIMENT [--json]`): one definition of each table and of its caption.

    our results      one row per config (every field that varies is a column), mean ± sd over seeds
    paper beside     each paper table the experiment rebuilds, 'paper | ours', at every profile that has runs
    classification   C5 (MNIST): classifiers of the posterior means, with each row's split
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from skipvae.config import MODELS
from skipvae.report.claims import unigram_floor_record
from skipvae.report.store import PROFILE_RANK, experiment, load_runs, paper_numbers, paper_tables
from skipvae.report.tables import (SETTING_LABELS, beside_caption, best_profile, classification_table, experiment_table,
                                   floor_row, nll_subset_text, paper_differences, pca_reference_runs, side_by_side)


@dataclass
class View:
    """One table as shown: a title, the cells (strings) and the caption."""

    title: str
    table: pd.DataFrame
    caption: str
    said: tuple[str, ...] = ()  # generated sentences shown below the table: a summary, then one per finding

    def to_dict(self) -> dict:
        cells = self.table.astype(str)
        return {"title": self.title, "caption": self.caption, "columns": list(cells.columns),
                "rows": cells.values.tolist(), "said": list(self.said)}

    def to_text(self) -> str:
        said = "".join(f"{line}\n" for line in self.said)
        return f"{self.title}\n{self.table.astype(str).to_string(index=False)}\n{self.caption}\n{said}"


def results_view(name: str, metrics=None) -> View:
    """Our runs of an experiment (report.experiment_table), with the settings every row shares in the caption."""
    runs = load_runs(name)  # read once, for the table and its caption
    table, constants = experiment_table(name, metrics=metrics, runs=runs)
    same = "; ".join(f"{SETTING_LABELS.get(k, k)} {v}" for k, v in constants.items())
    subset = nll_subset_text(runs)
    caption = (f"Our runs, {experiment(name).title}: mean ± standard deviation over seeds (test set; NLL, -ELBO, KL "
               f"and MI in nats per example, AU in dimensions)" + (f"; every row: {same}" if same else "")
               + (f"; the NLL on {subset}" if subset else "") + ".")
    return View(f"Our runs: {experiment(name).title}", table, caption)


def beside_view(table_name: str, where: dict | None = None, profile: str | None = None) -> View:
    """A paper table rebuilt beside ours (report.side_by_side) at `profile` (default: the largest with runs); text
    tables get the unigram floor of that profile as an extra row."""
    quoted = paper_numbers()["tables"][table_name]
    runs = load_runs(quoted.attrs["experiment"])
    extra = None
    if table_name == "table4":  # every text table shows the unigram floor of its profile, once computed
        extra = floor_row(unigram_floor_record(profile or best_profile(runs) or "cpu"))
    table = side_by_side(runs, table_name, where=where, extra_rows=extra, profile=profile)
    if profile and table.attrs["profile"] is None:
        table.attrs["profile"] = profile
    label = table_name.replace("table", "Table ")
    return View(f"{label} beside ours ({table.attrs['profile'] or 'no runs yet'})", table, beside_caption(table))


def ours_rows(quoted: pd.DataFrame) -> bool:
    """Whether every row of a quoted table is one of our models (Tables 1-4), not another paper's method."""
    return "model" in quoted.columns and set(quoted["model"].dropna()) <= set(MODELS)


def differences_view(table_name: str, profile: str | None = None) -> View:
    """Per cell of a paper table: ours − the paper's with its interval over seeds (report.paper_differences)."""
    quoted = paper_numbers()["tables"][table_name]
    table = paper_differences(load_runs(quoted.attrs["experiment"]), table_name, profile=profile)
    shown = table.attrs["profile"] or profile or "no runs yet"
    label = table_name.replace("table", "Table ")
    caption = (f"{label}, ours − the paper's per cell at the {shown} profile: the mean over seeds of our value "
               f"minus the quoted one, with its one-sample 95% t interval over seeds (none with one seed); an "
               f"interval that excludes 0 says our cell differs from the paper's, by about the estimate.")
    return View(f"{label}: ours − the paper's ({shown})", table, caption)


def classification_view() -> View:
    """C5 on MNIST at the largest profile with runs, the PCA-50 reference last."""
    df = load_runs("mnist")
    best = best_profile(df) if len(df) else None
    runs = df[df["profile"] == best] if best else df.iloc[0:0]
    table = classification_table(runs, pca_reference_runs("mnist", best) if best else None)
    caption = (f"C5: test accuracy of classifiers of the posterior means (latent 50), ours at the {best or '–'} "
               f"profile (mean ± std over seeds) beside the paper's, fitted and scored on the images each row's "
               f"split names (train/test; the paper: the whole splits, {whole_splits_text('mnist')}); the last row "
               f"fits the same "
               f"classifiers to the PCA-50 projection of the binarized pixels.")
    return View("Classification from the posterior means (C5)", table, caption)


def whole_splits_text(dataset: str) -> str:
    """'50,000/10,000': the whole training and test splits of `dataset`, from its data manifest."""
    from skipvae.data.manifest import split_sizes

    sizes = split_sizes(dataset)
    return f"{sizes['train']:,}/{sizes['test']:,}"


def remedy_views(dataset: str) -> list[View]:
    """The remedies on one dataset (report.remedies) at its largest profile: the table remedy x {plain, skip} and,
    once runs exist, the differences with their Welch intervals and the sentences generated from them (`said`)."""
    from skipvae.report import remedies

    runs = remedies.dataset_runs(load_runs("remedies"), dataset)
    title = remedies.DATASET_TITLES.get(dataset, dataset)
    views = [View(f"Remedies on {title}", remedies.remedy_table(runs), remedies.remedy_caption(runs, dataset))]
    diffs = remedies.remedy_differences(runs)
    if diffs:
        views.append(View(f"Remedies on {title}: differences", remedies.differences_table(diffs),
                          remedies.DIFFERENCES_CAPTION,
                          (remedies.remedy_summary(diffs, dataset), *remedies.remedy_sentences(diffs))))
    return views


def experiment_views(name: str) -> list[View]:
    """Every table of an experiment: ours; each paper table it rebuilds with keys, beside ours at every profile
    that has runs (the largest first; the largest alone before any run); and, for MNIST, the classification study."""
    experiment(name)
    views = [results_view(name)]
    profiles = sorted({p for p in load_runs(name).get("profile", pd.Series(dtype=str)).unique()
                       if PROFILE_RANK.get(p, 0) > 0}, key=PROFILE_RANK.get, reverse=True) or [None]
    for table_name, quoted in paper_tables(name).items():
        if "keys" in quoted.attrs and table_name != "classification_mnist":  # C5 has its own view, below
            views += [beside_view(table_name, profile=p) for p in profiles]
            if ours_rows(quoted):  # rows named by our models: a cell can be set against ours
                views += [differences_view(table_name, profile=p) for p in profiles if p is not None]
    if name == "mnist":
        views.append(classification_view())
    if name == "remedies":
        from skipvae.report import remedies

        views += [v for d in remedies.DATASETS for v in remedy_views(d)]
    return views
