"""Tables for the notebooks and the book: summaries over seeds, display strings, the paper's tables rebuilt beside
ours, the theory rows, provenance and timing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from skipvae.config import LATENT_MODELS, MODELS
from skipvae.errors import DataError
from skipvae.report.store import (PROFILE_RANK, all_runs, experiment, load_runs, load_theory, paper_numbers,
                                  reference_records)

METRICS = ("nll", "neg_elbo", "rec", "kl", "mi", "au_0.01", "au_0.02", "nll_per_word", "ppl")
TABLE_METRICS = ("nll", "neg_elbo", "kl", "mi", "au_0.01", "au_0.02")  # a page's table unless it asks for others
METRIC_LABELS = {"nll": "NLL", "neg_elbo": "-ELBO", "rec": "Rec.", "kl": "KL", "mi": "MI", "au_0.01": "AU (0.01)",
                 "au_0.02": "AU (0.02)", "nll_per_word": "NLL/word", "ppl": "PPL", "accuracy": "accuracy (%)",
                 "low": "low", "high": "high", "tsne_silhouette": "t-SNE silhouette", "elbo": "ELBO",
                 "tsne_knn5_accuracy": "t-SNE 5-NN accuracy",
                 "neg_elbo_nll_examples": "-ELBO (NLL docs)"}
SETTING_LABELS = {"dataset": "dataset", "arch": "decoder", "latent_dim": "latent dim", "dec_layers": "layers",
                  "model": "model", "profile": "profile", "config": "config", "skip": "skips"}


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The standard metrics present in `df` with at least one value."""
    return [m for m in METRICS if m in df.columns and df[m].notna().any()]


def varying_config_columns(df: pd.DataFrame, keys=()) -> list[str]:
    """The config fields (besides the seed, the description, the model's axes and `keys`) whose values differ
    between runs that agree on `keys`: grouping by them too keeps runs of different configs in different rows (e.g.
    KL warm-up on and off), while a field that the keys already determine (the MLP's width beside the decoder)
    adds no column."""
    from dataclasses import fields

    from skipvae.config import RunConfig

    skip = {"seed", "notes", "model", "skip", "inference", *keys}
    names = [f.name for f in fields(RunConfig) if f.name not in skip and f.name in df.columns]
    if df.empty or not names:
        return []
    groups = df.assign(**{n: df[n].map(repr) for n in names}).groupby(list(keys), dropna=False, sort=False)
    return [n for n in names if (groups[n].nunique(dropna=False) > 1).any()]


def summary_table(df: pd.DataFrame, by=("model",), metrics=None) -> pd.DataFrame:
    """Mean and standard deviation over seeds: one row per (profile, *by), with columns `n_seeds`, `seeds` and
    `<metric>_mean`, `<metric>_std` (sample std, ddof = 1; NaN for a single seed). The profile is always a key:
    runs at different scales are never averaged together. Rows: largest profile first, models in paper order."""
    keys = ["profile", *[k for k in by if k != "profile"]]
    missing = [k for k in keys if k not in df.columns]
    if missing and not df.empty:
        raise DataError(f"cannot group runs by {missing}: not a column of the runs table; "
                        f"choose among {sorted(df.columns)}")
    keys += varying_config_columns(df, keys)  # a row is the runs whose configs are equal except for the seed
    metrics = list(metrics) if metrics is not None else metric_columns(df)
    columns = keys + ["n_seeds", "seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    if df.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for values, group in df.groupby(keys, dropna=False, sort=False):
        row = dict(zip(keys, values))
        row["n_seeds"] = group["seed"].nunique()
        row["seeds"] = sorted(int(s) for s in group["seed"].unique())
        for m in metrics:
            x = pd.to_numeric(group[m], errors="coerce") if m in group.columns else pd.Series(dtype=float)
            row[f"{m}_mean"] = x.mean()
            row[f"{m}_std"] = x.std(ddof=1) if x.notna().sum() > 1 else np.nan
        rows.append(row)
    out = pd.DataFrame(rows, columns=columns)
    order = pd.DataFrame({"_profile": -out["profile"].map(PROFILE_RANK).fillna(-1)})
    for k in keys[1:]:
        order[k] = out[k].map({m: i for i, m in enumerate(MODELS)}) if k == "model" else out[k]
    out = out.loc[order.sort_values(list(order.columns), kind="stable").index]
    return out.reset_index(drop=True)


def fmt(value, digits: int = 2) -> str:
    """A number for a table cell; '–' for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def fmt_mean_std(mean, std, digits: int = 2) -> str:
    """'mean ± std', or just the mean when there is one seed."""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ± {fmt(std, digits)}"


def digits_for(metric: str) -> int:
    return 1 if metric.startswith("au") or metric in ("ppl",) else 2


def display_table(summary: pd.DataFrame, by, metrics) -> tuple[pd.DataFrame, dict]:
    """Strings for a page: 'profile', the `by` columns that vary, any other config field that differs between rows
    (summary_table's extra keys), 'seeds', then 'mean ± std' per metric.
    Returns (table, constants): the `by` columns with one value in every row go to `constants` (for the caption)."""
    keys = list(summary.columns[:summary.columns.get_loc("n_seeds")])  # summary_table's row keys
    varying = [k for k in keys if k not in by and k != "profile"]  # config fields that differ between rows
    by = [k for k in by if k != "profile" and k in summary.columns]
    constants = {k: summary[k].iloc[0] for k in by if len(summary) and summary[k].nunique(dropna=False) == 1
                 and k != "model"}
    shown = [k for k in by if k not in constants] + varying
    table = pd.DataFrame({
        "profile": summary["profile"],
        **{SETTING_LABELS.get(k, k): summary[k].astype(str) for k in shown},
        "seeds": summary["n_seeds"].astype(str),
        **{METRIC_LABELS.get(m, m): [fmt_mean_std(a, b, digits_for(m)) for a, b in
                                     zip(summary[f"{m}_mean"], summary[f"{m}_std"])] for m in metrics},
    })
    return table.reset_index(drop=True), constants


def experiment_table(name: str, root: str | Path | None = None, metrics=None,
                     runs: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """The results table of an experiment page (`display_table` of its summary) of `runs` (default: every record
    of the experiment). Before any run, one row per model the notebook trains, each marked 'not run yet'."""
    exp = experiment(name)
    df = load_runs(name, root) if runs is None else runs
    metrics = list(metrics) if metrics is not None else \
        [m for m in TABLE_METRICS if m in metric_columns(df)] or list(TABLE_METRICS)
    if df.empty:
        table = pd.DataFrame({"profile": ["–"] * len(exp.models), "model": list(exp.models), "seeds": "0",
                              **{METRIC_LABELS.get(m, m): "not run yet" for m in metrics}})
        return table, {}
    return display_table(summary_table(df, exp.by, metrics), exp.by, metrics)


def best_profile(df: pd.DataFrame) -> str | None:
    """The largest profile in `df` above smoke (paper, else cpu), or None."""
    profiles = [p for p in df.get("profile", pd.Series(dtype=str)).unique() if PROFILE_RANK.get(p, 0) > 0]
    return max(profiles, key=PROFILE_RANK.get) if profiles else None


def side_by_side(runs: pd.DataFrame, name: str, extra_rows: pd.DataFrame | None = None, where: dict | None = None,
                 path: str | Path | None = None, profile: str | None = None) -> pd.DataFrame:
    """A paper table (`paper_numbers()['tables'][name]`, e.g. 'table1') with the same rows and columns, each cell
    'paper | ours' where ours is mean ± sd over seeds of the runs whose key columns match the row and that share the
    table's fixed settings (e.g. 9 PixelCNN layers; not required of smoke runs, which test the code), at one profile:
    `profile`, else the largest in `runs`. Rows without runs say 'not yet run'. `extra_rows` (key columns + metric
    columns) are appended with an empty paper side, e.g. the unigram floor of a text table. `where` keeps the paper
    rows with these key values only (e.g. {'latent_dim': 20})."""
    attrs = dict(paper_numbers(path)["tables"][name].attrs)
    keys, columns = attrs["keys"], attrs["columns"]
    profile, mine, cells, split = paper_cells(runs, name, where, profile, path)
    rows = []
    for paper_row, match, row in cells:
        for c in columns:
            ours = pd.to_numeric(match[c], errors="coerce").dropna() if c in match.columns else pd.Series(dtype=float)
            mean_sd = fmt_mean_std(ours.mean(), ours.std(ddof=1) if len(ours) > 1 else None, digits_for(c))
            label = "ELBO" if c == "elbo" else METRIC_LABELS.get(c, c)
            row[f"{label} paper"] = fmt(paper_row.get(c), digits_for(c))
            row[f"{label} ours"] = mean_sd if len(ours) else ("not yet run" if not len(match) else "–")
        rows.append(row)
    for extra in ([] if extra_rows is None else extra_rows.to_dict("records")):
        row = {SETTING_LABELS.get(k, k): _key_text(extra.get(k)) for k in keys} | dict.fromkeys(split, "–") | \
            {"seeds": "–"}  # the floor has no config to split by
        for c in columns:
            label = "ELBO" if c == "elbo" else METRIC_LABELS.get(c, c)
            row[f"{label} paper"] = "–"
            row[f"{label} ours"] = fmt(extra.get(c), digits_for(c))
        rows.append(row)
    table = pd.DataFrame(rows)
    sizes = sorted(int(n) for n in mine["n_examples"].dropna().unique()) if "n_examples" in mine.columns else []
    table.attrs = attrs | {"profile": profile,  # None: no run has finished yet
                           "mi_ceiling": {n: math.log(n) for n in sizes} if "mi" in columns else {},
                           "nll_subset": nll_subset_text(mine)}
    return table


def nll_subset_text(runs: pd.DataFrame) -> str:
    """Which test examples the runs' IW-NLL (and perplexity) is computed on, e.g. '200 of the 500 test documents
    (the first in length order, the shortest), mean length 41.8 tokens against 64.2 over the whole test set';
    '' where every run scores the whole test set or the records do not say. Runs of several profiles get one
    part per profile, named ('at the paper profile, all 10,000 test examples; at the cpu profile, 500 of ...')."""
    if runs.empty or not {"nll_examples", "n_examples"} <= set(runs.columns):
        return ""
    text = "n_tokens" in runs.columns and runs["n_tokens"].notna().any()
    rule = runs["nll_subset"] if "nll_subset" in runs.columns else pd.Series("first", index=runs.index)
    profiles = runs["profile"] if "profile" in runs.columns else pd.Series("", index=runs.index)
    named = profiles.nunique() > 1
    if not named and (runs["nll_examples"] >= runs["n_examples"]).all():
        return ""
    parts = []
    groups = runs.assign(_rule=rule.fillna("first"), _profile=profiles).groupby(
        ["_profile", "nll_examples", "n_examples", "_rule"], sort=False)
    for (profile, k, n, how), g in sorted(groups, key=lambda item: -PROFILE_RANK.get(item[0][0], 0)):
        at = f"at the {profile} profile, " if named else ""
        if k >= n:
            parts.append(f"{at}all {int(n):,} test {'documents' if text else 'examples'}")
            continue
        which = ("a random subset drawn with each run's seed" if how == "random" else
                 "the first in length order, the shortest" if text else "the first of the split")
        part = f"{at}{int(k):,} of the {int(n):,} test {'documents' if text else 'examples'} ({which})"
        if text and {"nll_tokens", "n_tokens"} <= set(g.columns):
            part += (f", mean length {(g['nll_tokens'] / g['nll_examples']).mean():.1f} tokens against "
                     f"{(g['n_tokens'] / g['n_examples']).mean():.1f} over the whole test set")
        parts.append(part)
    return "; ".join(parts)


def beside_caption(table: pd.DataFrame) -> str:
    """The caption of a `side_by_side` table: the paper's setting, where its numbers are quoted from, and ours."""
    a = table.attrs
    ours = (f"mean ± standard deviation over seeds at the {a['profile']} profile" if a["profile"] else
            "no run has finished yet")
    ceiling = "; ".join(f"log {n:,} = {c:.2f}" for n, c in a.get("mi_ceiling", {}).items())
    ceiling = f" Our MI's ceiling is the log of our number of test examples: {ceiling}." if ceiling else ""
    text = "documents" in a.get("nll_subset", "")  # text tables: the ELBO on the same documents as the PPL
    rest = "the ELBO on the same documents, KL, MI and AU on the whole test set" if text else \
        "the ELBO, KL, MI and AU on the whole test set"
    subset = f" Our IW-NLL is computed on {a['nll_subset']}; {rest}." if a.get("nll_subset") else ""
    return f"{a['setting']} Paper: quoted from {a['source']} Ours: {ours}.{ceiling}{subset} Units: {a['units']}."


def floor_row(floor: dict | None) -> pd.DataFrame | None:
    """The unigram floor (a reference record's metrics) as an extra row of a text table for `side_by_side`."""
    if not floor:
        return None
    return pd.DataFrame([{"model": "unigram (floor)", "ppl": floor["ppl"], "elbo": -floor["nll"]}])


def paper_cells(runs: pd.DataFrame, name: str, where: dict | None, profile: str | None, path=None):
    """(profile, our runs at it that share the table's fixed settings, [(quoted row, its matching runs, the row's
    labels and seed count)], the labels of the config fields rows were split by) of paper table `name` with the
    rows matching `where`, at `profile` (else the largest in `runs`). A quoted row whose matching runs differ in
    another config field (e.g. the IW-NLL subset) gets one cell per config, labelled by those fields, as
    `summary_table` groups: runs of different configs are never averaged together."""
    quoted = paper_numbers(path)["tables"][name]
    keys = quoted.attrs["keys"]
    for k, v in (where or {}).items():
        quoted = quoted[quoted[k] == v]
    profile = profile or (best_profile(runs) if len(runs) else None)
    mine = with_fixed(runs[runs["profile"] == profile] if profile else runs, name, path)
    matches = [(paper_row, matching_runs(mine, paper_row, keys)) for _, paper_row in quoted.iterrows()]
    own = [k for k in keys if k in mine.columns]
    split = list(dict.fromkeys(c for _, match in matches for c in varying_config_columns(match, own)))
    cells = []
    for paper_row, match in matches:
        row = published_label(paper_row, keys) | {SETTING_LABELS.get(k, k): _key_text(paper_row.get(k)) for k in keys}
        groups = sorted((g for _, g in match.groupby([match[c].map(repr) for c in split], sort=False)),
                        key=lambda g: [_order(g[c].iloc[0]) for c in split]) if split and len(match) else [match]
        for group in groups:
            labels = {SETTING_LABELS.get(c, c): _key_text(group[c].iloc[0]) if len(group) else "–" for c in split}
            cells.append((paper_row, group, row | labels | {"seeds": str(group["seed"].nunique()) if len(group)
                                                             else "0"}))
    return profile, mine, cells, [SETTING_LABELS.get(c, c) for c in split]


def _order(value) -> tuple:
    """A sort key for config values of any type: numbers by value, before everything else by its text."""
    is_number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    return (0, float(value), "") if is_number else (1, 0.0, str(value))


def matching_runs(mine: pd.DataFrame, paper_row: pd.Series, keys) -> pd.DataFrame:
    """The runs of `mine` that match a quoted row on its key columns (a key the row leaves empty matches all)."""
    match = mine
    for k in keys:
        if k in paper_row and pd.notna(paper_row[k]) and k in mine.columns:
            match = match[match[k] == paper_row[k]]
    return match


def paper_differences(runs: pd.DataFrame, name: str, profile: str | None = None,
                      path: str | Path | None = None) -> pd.DataFrame:
    """Per cell of paper table `name`: ours − the paper's, the mean over seeds of (our value − the quoted value)
    with its one-sample 95% t interval (stats.level), at one profile (`profile`, else the largest in `runs`);
    'not yet run' where no run matches, '–' where the paper gives no number."""
    from skipvae.report.stats import level

    quoted = paper_numbers(path)["tables"][name]
    profile, _, cells, _ = paper_cells(runs, name, None, profile, path)
    rows = []
    for paper_row, match, row in cells:
        for c in quoted.attrs["columns"]:
            label = "ELBO" if c == "elbo" else METRIC_LABELS.get(c, c)
            ours = pd.to_numeric(match[c], errors="coerce").dropna() if c in match.columns else pd.Series(dtype=float)
            if pd.isna(paper_row.get(c)):
                row[f"{label}: ours − paper"] = "–"
            elif not len(ours):
                row[f"{label}: ours − paper"] = "not yet run" if not len(match) else "–"
            else:
                iv = level(ours - float(paper_row[c]))
                d = digits_for(c)
                row[f"{label}: ours − paper"] = (f"{iv.estimate:+.{d}f}" if math.isnan(iv.low) else
                                                f"{iv.estimate:+.{d}f} [{iv.low:+.{d}f}, {iv.high:+.{d}f}]")
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs = dict(quoted.attrs) | {"profile": profile}
    return table


def with_fixed(runs: pd.DataFrame, table: str, path: str | Path | None = None) -> pd.DataFrame:
    """The runs with the settings every row of a paper table shares (`fixed`, e.g. 9 layers; from the quotes at
    `path`, default book/paper_numbers.yaml); smoke runs, which test the code, need not have them."""
    if runs.empty or (runs["profile"] == "smoke").all():
        return runs
    for k, v in paper_numbers(path)["tables"][table].attrs["fixed"].items():
        runs = runs[runs[k] == v] if k in runs.columns else runs.iloc[:0]
    return runs


def classification_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the classification study (C5): latent 50 with the 9-layer PixelCNN or the 2-layer MLP decoder
    (at the smoke profile, whose decoders are smaller, the latent-50 runs, else every run)."""
    if runs.empty:
        return runs
    if (runs["profile"] == "smoke").all():
        at_50 = runs[runs["latent_dim"] == 50]
        return at_50 if len(at_50) else runs
    return runs[(runs["latent_dim"] == 50) & (((runs["arch"] == "pixelcnn") & (runs["dec_layers"] == 9))
                                              | ((runs["arch"] == "mlp") & (runs["dec_layers"] == 2)))]


def published_label(paper_row: pd.Series, keys) -> dict:
    """The quoted row's own name ('published') and whose run it is ('from'), where the keys that match it to our
    rows are not its name (e.g. a remedy and skip on or off)."""
    if "model" in keys:
        return {}
    label = {"published": _key_text(paper_row.get("model"))}
    if isinstance(paper_row.get("origin"), str):
        label["from"] = paper_row["origin"]
    return label


def _key_text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def theory_table(root: str | Path | None = None) -> pd.DataFrame:
    """The theory rows as a table, with the gain I_skip - I_no_skip (nats); empty before the notebook has run."""
    data = load_theory(root)
    if data is None:
        return pd.DataFrame(columns=["mi_no_skip", "mi_skip", "gain"])
    df = pd.DataFrame(data["rows"])
    df["gain"] = df["mi_skip"] - df["mi_no_skip"]
    return df


def theory_summary(root: str | Path | None = None) -> pd.DataFrame:
    """One row per setting (dimension, skip strength, ...; every column but depth, seed and the results): how many
    (depth, seed) draws there are, in how many skips do not lower I(x; z), and the mean and smallest gain (nats)."""
    df = theory_table(root)
    if df.empty:
        return df
    keys = [c for c in ("dim", "noise", "skip_strength") if c in df.columns]
    grouped = df.groupby(keys, sort=True) if keys else [((), df)]
    rows = []
    for values, g in grouped:
        values = values if isinstance(values, tuple) else (values,)
        rows.append({**dict(zip(keys, values)), "draws": len(g), "not lowered": int((g["gain"] >= 0).sum()),
                     "mean gain": g["gain"].mean(), "smallest gain": g["gain"].min()})
    return pd.DataFrame(rows)


PROVENANCE_KEYS = ("device", "python", "torch", "numpy", "scikit_learn", "git_commit")


def provenance_table(root: str | Path | None = None) -> pd.DataFrame:
    """Where the runs ran: one row per (profile, device, library versions, commit) with the number of runs."""
    df = all_runs(root)
    cols = ["profile", *PROVENANCE_KEYS, "runs"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    keys = ["profile"] + [f"provenance.{k}" for k in PROVENANCE_KEYS]
    for k in keys:
        if k not in df.columns:
            df[k] = "unknown"
    out = df.fillna({k: "unknown" for k in keys}).groupby(keys, sort=False).size().reset_index(name="runs")
    out.columns = cols
    return out


def timing_table(root: str | Path | None = None) -> pd.DataFrame:
    """Time per run: mean training and evaluation seconds per (experiment, profile, dataset, model), with epochs."""
    df = all_runs(root)
    cols = ["experiment", "profile", "dataset", "arch", "model", "runs", "epochs", "train_s", "eval_s"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    for k in ("epochs_completed", "train_time_s", "eval_time_s"):
        df[k] = pd.to_numeric(df.get(k), errors="coerce")
    out = df.groupby(["experiment", "profile", "dataset", "arch", "model"], sort=False).agg(
        runs=("seed", "size"), epochs=("epochs_completed", "mean"), train_s=("train_time_s", "mean"),
        eval_s=("eval_time_s", "mean")).reset_index()
    if not out["epochs"].isna().any() and (out["epochs"] % 1 == 0).all():
        out["epochs"] = out["epochs"].astype(int)  # the usual case: every run of a row trained as many epochs
    return out[cols]


def summary_value(summary, metric: str, **where) -> tuple[float, float]:
    """(mean, std) of `metric` in the one row of a `report.summary_table` that matches `where` (e.g. model='vae')."""
    rows = summary
    for key, value in where.items():
        rows = rows[rows[key] == value]
    if len(rows) != 1:
        raise DataError(f"{len(rows)} rows of the summary match {where}; expected exactly one. Give more keys "
                        f"among {[c for c in summary.columns if not c.endswith(('_mean', '_std'))]}.")
    row = rows.iloc[0]
    return float(row[f"{metric}_mean"]), float(row[f"{metric}_std"])


def summary_text(summary, metric: str, digits: int = 2, **where) -> str:
    """'mean ± std' of `metric` in the one row of a summary table that matches `where` (`summary_value`)."""
    return fmt_mean_std(*summary_value(summary, metric, **where), digits)


def information_kept(runs: pd.DataFrame, skip: dict, base: dict) -> str:
    """How much information the `skip` runs keep in z against the `base` runs (each a dict of key columns, e.g.
    model and latent_dim), at the largest profile in `runs`: the MI difference Δ = MI(skip) − MI(base) over seeds
    (`stats.difference`: the Welch 95% interval) as the phrase between the two models' names: 'keeps more
    (less) information in $z$ than' when the interval lies above (below) zero, else 'is not shown to keep more
    information in $z$ than'; with one seed, 'in one seed keeps more' only beyond the printed precision (0.01 nats),
    else 'in one seed keeps no more'. The interval follows in parentheses."""
    from skipvae.report.stats import difference

    profile = best_profile(runs)
    runs = runs[runs["profile"] == profile] if profile else runs

    def mi(where: dict) -> pd.Series:
        rows = runs
        for k, v in where.items():
            rows = rows[rows[k] == v]
        if rows["seed"].duplicated().any():
            raise DataError(f"information_kept: {where} selects more than one run per seed at the {profile} profile; "
                            f"pass only the runs of one setting")
        return rows.set_index("seed")["mi"]

    gain = difference(mi(base), mi(skip))
    if math.isnan(gain.low):
        verb = "in one seed keeps more" if gain.estimate > 0.005 else "in one seed keeps no more"
    else:
        verb = "keeps more" if gain.low > 0 else "keeps less" if gain.high < 0 else "is not shown to keep more"
    return f"{verb} information in $z$ (MI difference {gain.text()}) than"


def left_out_sentence(models, profile: str, among=LATENT_MODELS) -> str:
    """The interpretation's sentence on the models (of `among`) an execution did not train; '' if none."""
    left_out = [m for m in among if m not in models]
    if not left_out:
        return ""
    why = (": at the cpu profile an SA-VAE training step costs many VAE steps (`benchmarks/bench_models.py`), more "
           "than this machine's budget." if profile == "cpu" and any(m.endswith("sa-vae") for m in left_out) else ".")
    return (f"Not run in this execution (parameter `models`): {', '.join(left_out)}, so no claim is judged on "
            f"{'it' if len(left_out) == 1 else 'them'} here" + why)


def classification_table(runs: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """C5: accuracy (%) of each classifier of the posterior means, mean ± sd over seeds, one row per (decoder, model)
    of the latent-50 runs (the 9-layer PixelCNN and the 2-layer MLP decoder, or every run at the smoke profile), the
    paper's number beside, and the PCA-50 pixel reference (`reference`: one row per seed with the same
    'classification.<clf>.acc' columns) as the last row. 'MLP se' is the standard error over seeds."""
    from skipvae.metrics import CLASSIFIERS

    quoted = paper_numbers()["tables"]["classification_mnist"]
    runs = classification_runs(runs)
    groups = [(f"{arch} {model}", g, quoted[(quoted["arch"] == arch) & (quoted["model"] == model)]["accuracy"])
              for (arch, model), g in runs.groupby(["arch", "model"], sort=False)] if len(runs) else []
    if reference is not None and len(reference):
        groups.append(("PCA-50 of the pixels (reference)", reference, pd.Series(dtype=float)))
    rows = []
    for name, g, paper in groups:
        row = {"features": name, "seeds": g["seed"].nunique(), "split (train/test)": classifier_split(g),
               "paper (%)": fmt(paper.iloc[0]) if len(paper) else "–"}
        for clf, label in CLASSIFIERS.items():
            col = f"classification.{clf}.acc"
            acc = 100 * pd.to_numeric(g[col], errors="coerce").dropna() if col in g.columns else pd.Series(dtype=float)
            row[f"{label} (%)"] = fmt_mean_std(acc.mean(), acc.std() if len(acc) > 1 else None) if len(acc) else "–"
            if clf == "mlp":
                row["MLP se (seeds)"] = fmt(acc.std() / np.sqrt(len(acc))) if len(acc) > 1 else "–"
        rows.append(row)
    return pd.DataFrame(rows, columns=["features", "seeds", "split (train/test)", "paper (%)",
                                       *[f"{v} (%)" for v in CLASSIFIERS.values()], "MLP se (seeds)"])


def classifier_split(runs: pd.DataFrame) -> str:
    """The images the classifiers were fitted on and scored on, e.g. '50,000/10,000' (each split a row's runs
    used, when they differ; '–' where the records do not say)."""
    if not {"classification.n_train", "classification.n_test"} <= set(runs.columns):
        return "–"
    pairs = runs[["classification.n_train", "classification.n_test"]].dropna().astype(int).drop_duplicates()
    return ", ".join(f"{a:,}/{b:,}" for a, b in sorted(pairs.itertuples(index=False))) or "–"


def pca_reference_runs(experiment: str, profile: str) -> pd.DataFrame:
    """The stored PCA-50 reference records of an experiment at a profile (experiments.pca_reference), one row per
    seed with 'classification.<clf>.acc' columns; empty if none."""
    return pd.DataFrame([{"seed": r["settings"]["seed"],
                          **{f"classification.{k}": v for k, v in r["metrics"].items() if k in ("n_train", "n_test")},
                          **{f"classification.{k}.acc": v["acc"]
                             for k, v in r["metrics"].items() if isinstance(v, dict)}}
                         for r in reference_records(experiment, profile, "pca50-s*")])
