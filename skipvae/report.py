"""From `results/` to the book: run tables, summaries over seeds, the quoted numbers and the claims ledger.

The results format (every experiment notebook follows it; the book reads nothing else):

    results/<experiment>/runs/<run_name>.json  one run: {status: 'finished', name, config (RunConfig.to_dict()),
                                               metrics (skipvae.metrics.evaluate's keys, plus optional
                                               'classification': {'logreg': {'acc', 'se'}, 'knn5': {...}} with
                                               accuracies as fractions (or classification_accuracy's flat
                                               'logreg_accuracy', 'logreg_stderr', ...), and 'tsne_silhouette'),
                                               best_epoch,
                                               epochs_completed, history, train_time_s, eval_time_s, provenance}
    results/<experiment>/<experiment>.ipynb    the executed notebook (papermill), shown as it is
    results/<experiment>/figures/<name>.png    its figures; an optional <name>.json beside it may give
                                               {"caption": ..., "profile": ..., "seeds": [...]}
    results/theory/theory.json                 {"provenance": {...}, "rows": [{..., "mi_no_skip", "mi_skip"}]}

Experiments: mnist, omniglot, yahoo, latent_dim, depth, theory. The results folder is `$SKIPVAE_RESULTS` if set,
else `results/` in the checkout. The numbers quoted from papers live in `book/paper_numbers.yaml`, the only place
where numbers are typed by hand.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from skipvae.config import LATENT_MODELS, MODELS
from skipvae.errors import DataError

REPO_ROOT = Path(__file__).resolve().parent.parent
PAPER_NUMBERS = REPO_ROOT / "book" / "paper_numbers.yaml"

SKIP_PAIRS = (("vae", "skip-vae"), ("sa-vae", "skip-sa-vae"))  # (model, the same model with skips)
PROFILE_RANK = {"smoke": 0, "cpu": 1, "paper": 2}
METRICS = ("nll", "neg_elbo", "rec", "kl", "mi", "au_0.01", "au_0.02", "nll_per_word", "ppl")
TABLE_METRICS = ("nll", "neg_elbo", "kl", "mi", "au_0.01", "au_0.02")  # a page's table unless it asks for others
METRIC_LABELS = {"nll": "NLL", "neg_elbo": "-ELBO", "rec": "Rec.", "kl": "KL", "mi": "MI", "au_0.01": "AU (0.01)",
                 "au_0.02": "AU (0.02)", "nll_per_word": "NLL/word", "ppl": "PPL", "accuracy": "accuracy (%)",
                 "low": "low", "high": "high", "tsne_silhouette": "t-SNE silhouette", "elbo": "ELBO",
                 "tsne_knn5_accuracy": "t-SNE 5-NN accuracy",
                 "neg_elbo_nll_examples": "-ELBO (NLL docs)"}
SETTING_LABELS = {"dataset": "dataset", "arch": "decoder", "latent_dim": "latent dim", "dec_layers": "layers",
                  "model": "model", "profile": "profile"}
RECORD_KEYS = ("status", "name", "config", "metrics")
CONFIG_KEYS = ("dataset", "arch", "model", "profile", "seed", "latent_dim", "dec_layers")
NLL_TOLERANCE = 0.01  # claim 1: "similar NLL" = the skip model's NLL is at most 1% above its base model's
HIGH_LATENT = 64  # claim 5 is about 64 latent dimensions

SUPPORTED, NOT_SUPPORTED = "supported", "not supported"
NOT_AT_SCALE, NOT_YET = "not tested at this scale", "not tested yet"


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    by: tuple[str, ...]  # the config columns that, with the profile, identify a row of the experiment's table
    models: tuple[str, ...] = LATENT_MODELS  # the models its notebook trains (the rows shown before any run exists)
    source: str = ""  # the source notebook's stem when it is not the experiment's name

    @property
    def page(self) -> str:
        return f"experiments/{self.name}"

    @property
    def notebook(self) -> str:
        return f"notebooks/{self.source or self.name}.ipynb"


EXPERIMENTS = {e.name: e for e in (
    Experiment("mnist", "MNIST", ("arch", "latent_dim", "dec_layers", "model")),
    Experiment("omniglot", "Omniglot", ("arch", "latent_dim", "dec_layers", "model")),
    Experiment("yahoo", "Yahoo Answers", ("arch", "latent_dim", "dec_layers", "model"), models=MODELS),
    Experiment("latent_dim", "Latent dimension", ("dataset", "arch", "dec_layers", "model", "latent_dim"),
               models=("vae", "skip-vae"), source="ablation_latent_dim"),
    Experiment("depth", "Decoder depth", ("dataset", "arch", "latent_dim", "model", "dec_layers"),
               models=("vae", "skip-vae"), source="ablation_depth"),
    Experiment("theory", "Theory", (), models=()),
)}
MAIN_EXPERIMENTS = ("mnist", "omniglot", "yahoo")


def results_dir(root: str | Path | None = None) -> Path:
    """The results folder: `root`, else $SKIPVAE_RESULTS, else results/ in the checkout."""
    return Path(root or os.environ.get("SKIPVAE_RESULTS") or REPO_ROOT / "results")


def experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise DataError(f"unknown experiment {name!r}; known experiments: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


# ---------------------------------------------------------------------------------------------- run records

def read_record(path: str | Path) -> dict:
    """One run record, checked for the keys the book needs."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read run record {path}: {err}. Each results/<experiment>/runs/*.json must be "
                        f"one JSON object written by skipvae.train; delete or rewrite this file.") from err
    if not isinstance(record, dict):
        raise DataError(f"run record {path} holds a {type(record).__name__}, expected a JSON object")
    missing = [k for k in RECORD_KEYS if k not in record]
    missing += [f"config.{k}" for k in CONFIG_KEYS if k not in (record.get("config") or {})]
    if missing:
        raise DataError(f"run record {path} lacks {', '.join(missing)}; expected the keys {', '.join(RECORD_KEYS)} "
                        f"with config keys {', '.join(CONFIG_KEYS)} (see skipvae.report's docstring).")
    if not isinstance(record["metrics"], dict):
        raise DataError(f"run record {path}: 'metrics' must be a JSON object, got {type(record['metrics']).__name__}")
    return record


def flatten_record(record: dict) -> dict:
    """One table row: the run's top-level numbers, its config keys and metric keys as they are (nested metrics
    joined by '.', e.g. 'classification.logreg.acc'; a metric wins over a config key of the same name), and
    its provenance as 'provenance.<key>'."""
    row = {k: record.get(k) for k in ("name", "status", "best_epoch", "epochs_completed", "train_time_s",
                                      "eval_time_s")}
    row.update(record["config"])
    row.update(_classification_aliases(_flatten(record["metrics"])))
    row["elbo"] = paper_elbo(record)
    row.update({f"provenance.{k}": v for k, v in (record.get("provenance") or {}).items()})
    return row


def paper_elbo(record: dict) -> float | None:
    """The ELBO as the paper reports it (higher is better): the single-sample ELBO on the test set; for text, on the
    documents that also get the IW-NLL, so that ELBO and PPL describe the same documents."""
    m = record.get("metrics") or {}
    text = (record.get("config") or {}).get("dataset") == "yahoo"
    value = m.get("neg_elbo_nll_examples") if text and m.get("neg_elbo_nll_examples") is not None else m.get("neg_elbo")
    return None if value is None else -float(value)


def _classification_aliases(metrics: dict) -> dict:
    """Also accept skipvae.metrics.classification_accuracy's flat names under 'classification':
    'classification.<clf>_accuracy' / '_stderr' become 'classification.<clf>.acc' / '.se'."""
    out = dict(metrics)
    for key, value in metrics.items():
        if key.startswith("classification.") and key.endswith(("_accuracy", "_stderr")):
            clf, _, what = key.removeprefix("classification.").rpartition("_")
            out.setdefault(f"classification.{clf}.{'acc' if what == 'accuracy' else 'se'}", value)
    return out


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_runs(name: str, root: str | Path | None = None, include_unfinished: bool = False) -> pd.DataFrame:
    """All run records of an experiment as a DataFrame, one row per run (`flatten_record`), sorted by profile,
    config and seed. Empty (with the config columns) when the experiment has not been run."""
    experiment(name)
    folder = results_dir(root) / name / "runs"
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = read_record(path)
        if record["status"] == "finished" or include_unfinished:
            rows.append({"experiment": name, "path": str(path), **flatten_record(record)})
    df = pd.DataFrame(rows, columns=None if rows else ["experiment", "path", "name", "status", *CONFIG_KEYS])
    if df.empty:
        return df
    df["_rank"] = df["profile"].map(PROFILE_RANK)
    df["_model"] = df["model"].map({m: i for i, m in enumerate(MODELS)})
    df = df.sort_values(["_rank", "dataset", "arch", "latent_dim", "dec_layers", "_model", "seed"],
                        ascending=[False, True, True, True, True, True, True])
    return df.drop(columns=["_rank", "_model"]).reset_index(drop=True)


def load_theory(root: str | Path | None = None) -> dict | None:
    """results/theory/theory.json ({'provenance', 'rows'}), or None when the theory notebook has not run."""
    path = results_dir(root) / "theory" / "theory.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read {path}: {err}; the theory notebook writes it, rerun it.") from err
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"mi_skip", "mi_no_skip"} <= r.keys()
                                             for r in rows):
        raise DataError(f"{path} must hold {{'provenance': {{...}}, 'rows': [{{..., 'mi_no_skip', 'mi_skip'}}]}}; "
                        f"rerun notebooks/theory.ipynb to rewrite it.")
    return data


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


# ------------------------------------------------------------------------------------------------ summaries

def metric_columns(df: pd.DataFrame) -> list[str]:
    """The standard metrics present in `df` with at least one value."""
    return [m for m in METRICS if m in df.columns and df[m].notna().any()]


def summary_table(df: pd.DataFrame, by=("model",), metrics=None) -> pd.DataFrame:
    """Mean and standard deviation over seeds: one row per (profile, *by), with columns `n_seeds`, `seeds` and
    `<metric>_mean`, `<metric>_std` (sample std, ddof = 1; NaN for a single seed). The profile is always a key:
    runs at different scales are never averaged together. Rows: largest profile first, models in paper order."""
    keys = ["profile", *[k for k in by if k != "profile"]]
    metrics = list(metrics) if metrics is not None else metric_columns(df)
    columns = keys + ["n_seeds", "seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    if df.empty:
        return pd.DataFrame(columns=columns)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise DataError(f"cannot group runs by {missing}: not a column of the runs table; "
                        f"choose among {sorted(df.columns)}")
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
    """Strings for a page: 'profile', the `by` columns that vary, 'seeds', then 'mean ± std' per metric.
    Returns (table, constants): the `by` columns with one value in every row go to `constants` (for the caption)."""
    by = [k for k in by if k != "profile" and k in summary.columns]
    constants = {k: summary[k].iloc[0] for k in by if len(summary) and summary[k].nunique(dropna=False) == 1
                 and k != "model"}
    shown = [k for k in by if k not in constants]
    table = pd.DataFrame({
        "profile": summary["profile"],
        **{SETTING_LABELS.get(k, k): summary[k].astype(str) for k in shown},
        "seeds": summary["n_seeds"].astype(str),
        **{METRIC_LABELS.get(m, m): [fmt_mean_std(a, b, digits_for(m)) for a, b in
                                     zip(summary[f"{m}_mean"], summary[f"{m}_std"])] for m in metrics},
    })
    return table.reset_index(drop=True), constants


def experiment_table(name: str, root: str | Path | None = None, metrics=None) -> tuple[pd.DataFrame, dict]:
    """The results table of an experiment page (`display_table` of its summary). Before any run, one row per
    model the notebook trains, each marked 'not run yet'."""
    exp = experiment(name)
    df = load_runs(name, root)
    metrics = list(metrics) if metrics is not None else \
        [m for m in TABLE_METRICS if m in metric_columns(df)] or list(TABLE_METRICS)
    if df.empty:
        table = pd.DataFrame({"profile": ["–"] * len(exp.models), "model": list(exp.models), "seeds": "0",
                              **{METRIC_LABELS.get(m, m): "not run yet" for m in metrics}})
        return table, {}
    return display_table(summary_table(df, exp.by, metrics), exp.by, metrics)


def run_status(name: str, root: str | Path | None = None) -> dict:
    """What exists for an experiment: runs per profile, seeds and models, the notebook's models that have no
    run at any profile ('missing'), and whether its notebook has run."""
    folder = results_dir(root) / name
    if name == "theory":
        data = load_theory(root)
        prov = (data or {}).get("provenance") or {}
        return {"n_runs": 0 if data is None else 1, "profiles": [prov["profile"]] if prov.get("profile") else [],
                "by_profile": {}, "missing": [], "notebook": (folder / "theory.ipynb").exists(),
                "ran": data is not None}
    df = load_runs(name, root)
    by_profile = {p: {"runs": len(g), "seeds": sorted(int(s) for s in g["seed"].unique()),
                      "models": [m for m in MODELS if m in set(g["model"])]}
                  for p, g in df.groupby("profile", sort=False)} if len(df) else {}
    trained = set(df["model"]) if len(df) else set()
    return {"n_runs": len(df), "profiles": list(by_profile), "by_profile": by_profile,
            "missing": [m for m in experiment(name).models if m not in trained],
            "notebook": (folder / f"{name}.ipynb").exists(), "ran": len(df) > 0}


def notebook_parameters(name: str, root: str | Path | None = None) -> dict | None:
    """The parameters papermill passed to the executed notebook results/<name>/<name>.ipynb (None: no such
    notebook, or not executed by papermill); the others kept the source notebook's defaults."""
    path = results_dir(root) / name / f"{name}.ipynb"
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text()).get("metadata", {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read the executed notebook {path}: {err}; rerun it with papermill.") from err
    return (meta.get("papermill") or {}).get("parameters")


# ------------------------------------------------------------------------------------------- quoted numbers

def paper_numbers(path: str | Path | None = None) -> dict:
    """The numbers quoted from the papers (book/paper_numbers.yaml): {'sources': {key: citation},
    'claims': [{id, text, pages, ...}], 'tables': {name: DataFrame}}; each table's `attrs` hold its experiment,
    source (the citation), setting, units and columns."""
    path = Path(path or PAPER_NUMBERS)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DataError(f"cannot read the quoted numbers {path}: {err}") from err
    for key in ("sources", "claims", "tables"):
        if not isinstance(data, dict) or key not in data:
            raise DataError(f"{path} must have the sections sources, claims and tables; {key!r} is missing")
    tables = {}
    for name, spec in data["tables"].items():
        if spec.get("source") not in data["sources"]:
            raise DataError(f"{path}: table {name!r} cites {spec.get('source')!r}, not one of the sources "
                            f"{sorted(data['sources'])}")
        table = pd.DataFrame(spec["rows"])
        table.attrs = {"experiment": spec["experiment"], "source": data["sources"][spec["source"]],
                       "setting": spec.get("setting", ""), "units": spec.get("units", ""),
                       "columns": list(spec["columns"]), "keys": list(spec.get("keys", ["model"])),
                       "fixed": dict(spec.get("fixed") or {})}
        tables[name] = table
    return {"sources": data["sources"], "claims": data["claims"], "tables": tables}


def paper_tables(experiment_name: str, path: str | Path | None = None) -> dict:
    """The quoted tables shown on one page."""
    return {k: t for k, t in paper_numbers(path)["tables"].items() if t.attrs["experiment"] == experiment_name}


def side_by_side(runs: pd.DataFrame, name: str, extra_rows: pd.DataFrame | None = None, where: dict | None = None,
                 path: str | Path | None = None) -> pd.DataFrame:
    """A paper table (`paper_numbers()['tables'][name]`, e.g. 'table1') with the same rows and columns, each cell
    'paper | ours' where ours is mean ± sd over seeds of the runs whose key columns match the row and that share the
    table's fixed settings (e.g. 9 PixelCNN layers; not required of smoke runs, which test the code), at one profile:
    the largest in `runs`. Rows without runs say 'not yet run'. `extra_rows` (key columns + metric columns) are
    appended with an empty paper side, e.g. the unigram floor of a text table. `where` keeps the paper rows with
    these key values only (e.g. {'latent_dim': 20})."""
    quoted = paper_numbers(path)["tables"][name]
    attrs = dict(quoted.attrs)
    for k, v in (where or {}).items():
        quoted = quoted[quoted[k] == v]
    keys, columns = attrs["keys"], attrs["columns"]
    profile = best_profile(runs) if len(runs) else None
    mine = runs[runs["profile"] == profile] if profile else runs
    if profile != "smoke":
        for k, v in attrs["fixed"].items():
            mine = mine[mine[k] == v] if k in mine.columns else mine.iloc[:0]
    rows = []
    for _, paper_row in quoted.iterrows():
        match = mine
        for k in keys:
            if k in paper_row and pd.notna(paper_row[k]) and k in mine.columns:
                match = match[match[k] == paper_row[k]]
        row = {SETTING_LABELS.get(k, k): _key_text(paper_row.get(k)) for k in keys}
        row["seeds"] = str(match["seed"].nunique()) if len(match) else "0"
        for c in columns:
            ours = pd.to_numeric(match[c], errors="coerce").dropna() if c in match.columns else pd.Series(dtype=float)
            mean_sd = fmt_mean_std(ours.mean(), ours.std(ddof=1) if len(ours) > 1 else None, digits_for(c))
            label = "ELBO" if c == "elbo" else METRIC_LABELS.get(c, c)
            row[f"{label} paper"] = fmt(paper_row.get(c), digits_for(c))
            row[f"{label} ours"] = mean_sd if len(ours) else ("not yet run" if not len(match) else "–")
        rows.append(row)
    for extra in ([] if extra_rows is None else extra_rows.to_dict("records")):
        row = {SETTING_LABELS.get(k, k): _key_text(extra.get(k)) for k in keys} | {"seeds": "–"}
        for c in columns:
            label = "ELBO" if c == "elbo" else METRIC_LABELS.get(c, c)
            row[f"{label} paper"] = "–"
            row[f"{label} ours"] = fmt(extra.get(c), digits_for(c))
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs = attrs | {"profile": profile or "–"}
    return table


def _key_text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# ------------------------------------------------------------------------------------------- claims ledger

@dataclass
class Check:
    """One comparison behind a verdict: the numbers as text, and whether the rule holds."""
    ok: bool
    text: str


@dataclass
class Verdict:
    verdict: str
    evidence: list[str] = field(default_factory=list)
    profile: str | None = None


def best_profile(df: pd.DataFrame) -> str | None:
    """The largest profile in `df` above smoke (paper, else cpu), or None."""
    profiles = [p for p in df.get("profile", pd.Series(dtype=str)).unique() if PROFILE_RANK.get(p, 0) > 0]
    return max(profiles, key=PROFILE_RANK.get) if profiles else None


def judge(df: pd.DataFrame, compare, what: str) -> Verdict:
    """The verdict rule shared by every claim.

    `compare(runs of one profile) -> list[Check]`. Profiles are tried from the largest down, smoke excluded: the
    first with at least one check decides: 'supported' if every check holds, else 'not supported'. If only the
    smoke profile (seconds of training: a test of the code, not of the claim) yields checks: 'not tested at this
    scale'. If no run gives a check: 'not tested yet'. `what` names the runs the rule needs."""
    if df.empty:
        return Verdict(NOT_YET, [f"no runs yet: needs {what}."])
    for profile in sorted(df["profile"].unique(), key=lambda p: -PROFILE_RANK.get(p, 0)):
        checks = compare(df[df["profile"] == profile])
        if not checks:
            continue
        evidence = [f"{c.text} → {'holds' if c.ok else 'fails'}" for c in checks]
        if profile == "smoke":
            return Verdict(NOT_AT_SCALE, ["only smoke-profile runs (seconds of training) give this comparison; "
                                          "run the cpu or paper profile.", *evidence], profile)
        return Verdict(SUPPORTED if all(c.ok for c in checks) else NOT_SUPPORTED, evidence, profile)
    return Verdict(NOT_YET, [f"the runs found do not include {what}."])


def _means(df: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """The mean of each metric over seeds per `keys` (NaN for a metric no run has), and 'n_seeds'."""
    values = df.reindex(columns=[*keys, "seed", *metrics])
    values[metrics] = values[metrics].apply(pd.to_numeric, errors="coerce")
    grouped = values.groupby(keys, dropna=False)
    out = grouped[metrics].mean()
    out["n_seeds"] = grouped["seed"].nunique()
    return out


def _seeds(base: pd.Series, skip: pd.Series) -> str:
    n, m = int(base["n_seeds"]), int(skip["n_seeds"])
    return f"{n} seed{'s' * (n > 1)}" if n == m else f"{n} and {m} seeds"


def _setting(keys: list[str], values: tuple) -> str:
    d = dict(zip(keys, values))
    parts = [str(d.pop("dataset")) if "dataset" in d else ""]
    parts += [f"{SETTING_LABELS.get(k, k)} {v}" for k, v in d.items()]
    return ", ".join(p for p in parts if p)


def _pairs(means: pd.DataFrame, keys: list[str]):
    """(setting values (a tuple), base model, skip model, base row, skip row) for every setting with both models."""
    for values, group in means.groupby(level=keys, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        group = group.droplevel(keys)
        for base, skip in SKIP_PAIRS:
            if base in group.index and skip in group.index:
                yield values, base, skip, group.loc[base], group.loc[skip]


def claim1_rule(df: pd.DataFrame) -> list[Check]:
    """Claim 1: in each setting (dataset, decoder, latent dim, layers) with a model and its skip version, the
    skip model has higher MI and KL, at least as many active units (0.01), and an NLL at most NLL_TOLERANCE
    above the base model's."""
    keys = ["dataset", "arch", "latent_dim", "dec_layers"]
    means = _means(df, keys + ["model"], ["nll", "kl", "mi", "au_0.01"])
    checks = []
    for values, base, skip, b, s in _pairs(means, keys):
        ok = bool(s["mi"] > b["mi"] and s["kl"] > b["kl"] and s["au_0.01"] >= b["au_0.01"]
                  and s["nll"] <= b["nll"] * (1 + NLL_TOLERANCE))
        checks.append(Check(ok, f"{_setting(keys, values)} ({_seeds(b, s)}), "
                                f"{skip} vs {base}: MI {fmt(s['mi'])} vs {fmt(b['mi'])}, KL {fmt(s['kl'])} vs "
                                f"{fmt(b['kl'])}, AU {fmt(s['au_0.01'], 1)} vs {fmt(b['au_0.01'], 1)}, "
                                f"NLL {fmt(s['nll'])} vs {fmt(b['nll'])}"))
    return checks


def claim2_rule(df: pd.DataFrame) -> list[Check]:
    """Claim 2: across latent dimensions (at least two), the skip model's MI and AU (0.01) at the largest
    dimension are at least those at the smallest ('hold or grow'), and its base model's MI or AU is lower at the
    largest than at the smallest ('degrade')."""
    keys = ["dataset", "arch", "dec_layers"]
    means = _means(df, keys + ["model", "latent_dim"], ["mi", "au_0.01"])
    checks = []
    for values, group in means.groupby(level=keys, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        group = group.droplevel(keys)  # index: (model, latent_dim)
        models = set(group.index.get_level_values("model"))
        for base, skip in SKIP_PAIRS:
            if not {base, skip} <= models:
                continue
            b, s = group.xs(base, level="model"), group.xs(skip, level="model")  # index: latent_dim
            if len(b) < 2 or len(s) < 2:
                continue
            b0, b1, s0, s1 = b.loc[b.index.min()], b.loc[b.index.max()], s.loc[s.index.min()], s.loc[s.index.max()]
            holds = s1["mi"] >= s0["mi"] and s1["au_0.01"] >= s0["au_0.01"]
            degrades = b1["mi"] < b0["mi"] or b1["au_0.01"] < b0["au_0.01"]
            checks.append(Check(bool(holds and degrades),
                                f"{_setting(keys, values)}: {skip} MI {fmt(s0['mi'])} → {fmt(s1['mi'])}, AU "
                                f"{fmt(s0['au_0.01'], 1)} → {fmt(s1['au_0.01'], 1)} (latent {s.index.min()} → "
                                f"{s.index.max()}); {base} MI {fmt(b0['mi'])} → {fmt(b1['mi'])}, AU "
                                f"{fmt(b0['au_0.01'], 1)} → {fmt(b1['au_0.01'], 1)} (latent {b.index.min()} → "
                                f"{b.index.max()})"))
    return checks


def _layers(n) -> str:
    return f"{n} layer" + ("" if n == 1 else "s")


def claim3_rule(df: pd.DataFrame) -> list[Check]:
    """Claim 3: the MI gain of skips (skip model's MI minus its base model's) is larger at the deepest decoder
    than at the shallowest (at least two depths run with both models)."""
    keys = ["dataset", "arch", "latent_dim"]
    means = _means(df, keys + ["dec_layers", "model"], ["mi", "au_0.01"])
    gains: dict = {}
    for values, base, skip, b, s in _pairs(means, keys + ["dec_layers"]):
        *setting, depth = values
        gains.setdefault((tuple(setting), base, skip), {})[depth] = (s["mi"] - b["mi"], s["au_0.01"] - b["au_0.01"])
    checks = []
    for (setting, base, skip), by_depth in gains.items():
        if len(by_depth) < 2:
            continue
        lo, hi = min(by_depth), max(by_depth)
        checks.append(Check(bool(by_depth[hi][0] > by_depth[lo][0]),
                            f"{_setting(keys, setting)}, {skip} minus {base}: MI gain {fmt(by_depth[lo][0])} at "
                            f"{_layers(lo)}, {fmt(by_depth[hi][0])} at {_layers(hi)} (AU gain "
                            f"{fmt(by_depth[lo][1], 1)} → {fmt(by_depth[hi][1], 1)})"))
    return checks


CLASSIFIERS = {"logreg": "logistic regression", "knn5": "5-NN"}


def claim4_rule(df: pd.DataFrame, quoted: pd.DataFrame | None = None) -> list[Check]:
    """Claim 4: for each decoder (PixelCNN, MLP) and each classifier of the posterior means, the Skip-VAE's test
    accuracy is higher than the VAE's. The paper's numbers are quoted beside ours."""
    keys = ["arch"]
    cols = [f"classification.{c}.acc" for c in CLASSIFIERS]
    means = _means(df, keys + ["model"], cols)
    checks = []
    for values, base, skip, b, s in _pairs(means, keys):
        if base != "vae":
            continue
        arch, paper = values[0], ""
        if quoted is not None:
            q = quoted[quoted["arch"] == arch].set_index("model")["accuracy"]
            if {base, skip} <= set(q.index):
                paper = f" (paper: {fmt(q[skip])} vs {fmt(q[base])})"
        for clf, label in CLASSIFIERS.items():
            col = f"classification.{clf}.acc"
            if pd.isna(s[col]) or pd.isna(b[col]):
                continue
            checks.append(Check(bool(s[col] > b[col]), f"{arch}, {label}: {skip} {fmt(100 * s[col])}% vs {base} "
                                                       f"{fmt(100 * b[col])}%{paper}"))
    return checks


def claim5_rule(df: pd.DataFrame) -> list[Check]:
    """Claim 5: on Yahoo, at each latent dimension run with both, Skip-SA-VAE's MI is higher than SA-VAE's; at
    HIGH_LATENT latent dimensions or more, Skip-SA-VAE's active units (0.01) equal the latent dimension; and
    SA-VAE's MI or AU is lower at its largest dimension (at least HIGH_LATENT) than at its smallest."""
    df = df[(df["dataset"] == "yahoo") & df["model"].isin(["sa-vae", "skip-sa-vae"])]
    means = _means(df, ["model", "latent_dim"], ["mi", "au_0.01"])
    if not {"sa-vae", "skip-sa-vae"} <= set(means.index.get_level_values("model")):
        return []
    sa, skip = means.xs("sa-vae", level="model"), means.xs("skip-sa-vae", level="model")
    checks = [Check(bool(skip.loc[d, "mi"] > sa.loc[d, "mi"]),
                    f"latent {d}: skip-sa-vae MI {fmt(skip.loc[d, 'mi'])} vs sa-vae {fmt(sa.loc[d, 'mi'])}")
              for d in sorted(set(sa.index) & set(skip.index))]
    for d in sorted(x for x in skip.index if x >= HIGH_LATENT):
        checks.append(Check(bool(skip.loc[d, "au_0.01"] >= d),
                            f"latent {d}: skip-sa-vae uses {fmt(skip.loc[d, 'au_0.01'], 1)} of {d} dimensions"))
    dims = sorted(sa.index)
    if len(dims) >= 2 and dims[-1] >= HIGH_LATENT:
        lo, hi = sa.loc[dims[0]], sa.loc[dims[-1]]
        checks.append(Check(bool(hi["mi"] < lo["mi"] or hi["au_0.01"] < lo["au_0.01"]),
                            f"sa-vae from latent {dims[0]} to {dims[-1]}: MI {fmt(lo['mi'])} → {fmt(hi['mi'])}, "
                            f"AU {fmt(lo['au_0.01'], 1)} → {fmt(hi['au_0.01'], 1)}"))
    return checks


def claim6_rule(df: pd.DataFrame) -> list[Check]:
    """Claim 6: the silhouette score (true labels) of the 2-D t-SNE of MNIST test posterior means is higher for the
    Skip-VAE than for the VAE: better separated clusters. Needs the metric 'tsne_silhouette' in the records."""
    means = _means(df, ["arch", "model"], ["tsne_silhouette"])
    return [Check(bool(s["tsne_silhouette"] > b["tsne_silhouette"]),
                  f"{values[0]}: t-SNE silhouette {skip} {fmt(s['tsne_silhouette'])} vs {base} "
                  f"{fmt(b['tsne_silhouette'])}")
            for values, base, skip, b, s in _pairs(means, ["arch"])
            if base == "vae" and not (pd.isna(s["tsne_silhouette"]) or pd.isna(b["tsne_silhouette"]))]


def claim5_verdict(df: pd.DataFrame) -> Verdict:
    """`judge` with `claim5_rule`, except that a decision without any Skip-SA-VAE run at HIGH_LATENT dimensions or
    more becomes 'not tested at this scale' (the claim is about 64 dimensions)."""
    verdict = judge(df, claim5_rule, "Yahoo sa-vae and skip-sa-vae runs")
    if verdict.verdict in (SUPPORTED, NOT_SUPPORTED):
        runs = df[(df["profile"] == verdict.profile) & (df["model"] == "skip-sa-vae") & (df["dataset"] == "yahoo")]
        if not (runs["latent_dim"] >= HIGH_LATENT).any():
            return Verdict(NOT_AT_SCALE, [f"no Yahoo skip-sa-vae run with {HIGH_LATENT} or more latent dimensions "
                                          f"at the {verdict.profile} profile; what was run:", *verdict.evidence],
                           verdict.profile)
    return verdict


def claim7_rule(theory: pd.DataFrame, data: dict | None = None) -> list[Check]:
    """Claim 7: Theorem 1 as stated, for all weights: in every setting of the theory notebook I_p(x; z) with skips
    is at least I_p(x; z) of the same weights without them (1e-9 nats of slack for round-off; strictly larger in at
    least one), and so is it in the notebook's smallest counterexample, where every link of the paper's proof
    sketch is checked; the existence reading (some skip model has at least the plain model's I_p) is shown beside.

    `theory`: the rows of theory.json; `data`: the whole file, whose optional 'counterexample', 'proof_chain' and
    'existence' records (written by notebooks/theory.ipynb) add one check each. The existence check holds or fails
    on its own and never makes the claim as stated supported."""
    checks = []
    if not theory.empty:
        gain = theory["mi_skip"] - theory["mi_no_skip"]
        settings = [c for c in theory.columns if c not in ("mi_skip", "mi_no_skip", "gain", "threshold",
                                                            "above_threshold")]
        worst = gain.idxmin()
        where = ", ".join(f"{c} {theory.at[worst, c]:g}" for c in settings)  # :g prints integer settings as such
        checks.append(Check(bool((gain >= -1e-9).all() and (gain > 1e-9).any()),
                            f"I(x;z) with skips ≥ without in {int((gain >= -1e-9).sum())} of {len(theory)} settings; "
                            f"smallest gain {fmt(gain.min(), 3)} nats ({where}), largest {fmt(gain.max(), 3)} nats"))
    data = data or {}
    if "counterexample" in data:
        c = data["counterexample"]
        lo, hi = c["failure_interval"] if c.get("failure_interval") else (None, None)
        interval = f"; every skip weight b in ({lo:g}, {hi:g}) lowers it" if lo is not None else ""
        checks.append(Check(bool(c["mi_skip"] >= c["mi_vae"] - 1e-12),
                            f"smallest counterexample (1-D z, h1 = a1 z + e_h, x = a2 h1 + b z + e_x with a1 = "
                            f"{c['a1']:g}, a2 = {c['a2']:g}, b = {c['b']:g}, Var e_h = {c['var_h']:g}, Var e_x = "
                            f"{c['var_x']:g}): I_skip(x; z) = {c['mi_skip_exact']} = {fmt(c['mi_skip'], 3)} nats, "
                            f"I_vae(x; z) = {c['mi_vae_exact']} = "
                            f"{fmt(c['mi_vae'], 3)} nats{interval}"))
    if "proof_chain" in data:
        links = data["proof_chain"]["links"]
        steps = [f"link {link['link']} {link['lhs']} ≥ {link['rhs']} ({link['step']}): {fmt(link['lhs_nats'], 3)} vs "
                 f"{fmt(link['rhs_nats'], 3)} nats, {'holds' if link['holds'] else 'fails'}" for link in links]
        checks.append(Check(all(link["holds"] for link in links),
                            "the proof sketch in that counterexample: " + "; ".join(steps)))
    if "existence" in data:
        e = data["existence"]
        checks.append(Check(bool(e["holds"]),
                            f"existence reading: skips aligned with the plain chain's gain do not lower I_p in "
                            f"{e['aligned_not_lowered']} of {e['draws']} plain models, skips of strength s0 (the "
                            f"dominance threshold of random skip weights) in {e['threshold_not_lowered']} of "
                            f"{e['draws']}"))
    return checks


def claim7_verdict(root: str | Path | None = None) -> Verdict:
    """Claim 7 from results/theory/theory.json: closed-form mutual information, so no scale applies. The verdict is
    that of the for-all reading (the theorem as stated); with the notebook's counterexample and existence records the
    first line of evidence says how each of the two readings fares."""
    data = load_theory(root)
    if data is None:
        return Verdict(NOT_YET, ["no results/theory/theory.json yet: run notebooks/theory.ipynb."])
    checks = claim7_rule(theory_table(root), data)
    if not checks:
        return Verdict(NOT_YET, ["results/theory/theory.json has no rows."])
    profile = (data.get("provenance") or {}).get("profile")
    existence = data.get("existence")
    for_all = [c for c in checks if not c.text.startswith("existence reading")]
    evidence = [f"{c.text} → {'holds' if c.ok else 'fails'}" for c in checks]
    holds = all(c.ok for c in for_all)
    if existence is not None:
        evidence.insert(0, f"{'supported' if holds else 'not supported'} as stated (for-all reading: adding skips to "
                           f"a given model never lowers I_p(x; z)); the existence reading (for every plain model some "
                           f"skip model has at least its I_p) {'holds' if existence['holds'] else 'fails'}")
    return Verdict(SUPPORTED if holds else NOT_SUPPORTED, evidence, profile)


RULES = {1: claim1_rule, 2: claim2_rule, 3: claim3_rule, 4: claim4_rule, 5: claim5_rule, 6: claim6_rule,
         7: claim7_rule}


def _concat(frames) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["profile", *CONFIG_KEYS])


def claims_ledger(root: str | Path | None = None, numbers: str | Path | None = None) -> pd.DataFrame:
    """One row per claim of the paper: claim (id), text, verdict, profile (of the runs that decided), evidence
    (list of strings with our numbers), rule (in words) and pages (docnames of the book pages with the runs).

    Verdicts follow `judge` with each claim's rule (`claim1_rule` ... `claim7_rule`, documented there)."""
    quoted = paper_numbers(numbers)
    runs = {name: load_runs(name, root) for name in EXPERIMENTS if name != "theory"}
    classification = quoted["tables"].get("classification_mnist")
    verdicts = {
        1: judge(_concat(runs[n] for n in MAIN_EXPERIMENTS), claim1_rule,
                 "a model and its skip version in the same setting (mnist, omniglot or yahoo)"),
        2: judge(runs["latent_dim"], claim2_rule, "a model and its skip version at two or more latent dimensions"),
        3: judge(runs["depth"], claim3_rule, "a model and its skip version at two or more decoder depths"),
        4: judge(runs["mnist"], lambda d: claim4_rule(d, classification),
                 "MNIST vae and skip-vae runs with 'classification' metrics"),
        5: claim5_verdict(_concat([runs["yahoo"], runs["latent_dim"]])),
        6: judge(runs["mnist"], claim6_rule, "MNIST vae and skip-vae runs with the 'tsne_silhouette' metric"),
        7: claim7_verdict(root),
    }
    unknown = sorted({c["id"] for c in quoted["claims"]} - set(verdicts))
    if unknown:
        raise DataError(f"claims {unknown} in paper_numbers.yaml have no verdict rule in skipvae.report")
    rows = [{"claim": c["id"], "text": c["text"], "verdict": verdicts[c["id"]].verdict,
             "profile": verdicts[c["id"]].profile, "evidence": verdicts[c["id"]].evidence, "rule": rule_text(c["id"]),
             "pages": c["pages"]} for c in quoted["claims"]]
    return pd.DataFrame(rows, columns=["claim", "text", "verdict", "profile", "evidence", "rule", "pages"])


def rule_text(claim: int) -> str:
    """The verdict rule of a claim, in words: the first paragraph of its rule's docstring."""
    doc = " ".join(RULES[claim].__doc__.split("\n\n")[0].split()).split(": ", 1)[1]
    doc = doc.replace("NLL_TOLERANCE", f"{NLL_TOLERANCE:.0%}").replace("HIGH_LATENT", str(HIGH_LATENT))
    return doc[:1].upper() + doc[1:]


# --------------------------------------------------------------------------------- provenance and timing

def all_runs(root: str | Path | None = None) -> pd.DataFrame:
    """The runs of every experiment in one table (column 'experiment' says which)."""
    return _concat(load_runs(n, root) for n in EXPERIMENTS if n != "theory")


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


# ---------------------------------------------------------------------------------------------- figures

def plot_summary(summary: pd.DataFrame, metrics=("kl", "mi", "au_0.01"), label_by=("arch", "model")):
    """Bars of mean ± std over seeds, one panel per metric, one bar per row of `summary` (one profile)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [" / ".join(str(r[k]) for k in label_by if k in summary.columns and summary[k].nunique() > 1
                         or k == "model") for _, r in summary.iterrows()]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.2), squeeze=False)
    colors = ["#4c72b0" if not str(m).startswith("skip") else "#dd8452" for m in summary["model"]]
    for ax, m in zip(axes[0], metrics):
        ax.bar(range(len(summary)), summary[f"{m}_mean"], yerr=summary[f"{m}_std"].fillna(0), color=colors,
               capsize=3)
        ax.set_xticks(range(len(summary)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_title(METRIC_LABELS.get(m, m))
    fig.tight_layout()
    return fig


def plot_ablation(summary: pd.DataFrame, x: str, metrics=("mi", "au_0.01", "nll")):
    """Lines of a metric against `x` (latent_dim or dec_layers), one line per (dataset, decoder, model)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
    groups = [k for k in ("dataset", "arch", "model") if k in summary.columns]
    for ax, m in zip(axes[0], metrics):
        for key, g in summary.groupby(groups, sort=False):
            g = g.sort_values(x)
            style = "-o" if not str(g["model"].iloc[0]).startswith("skip") else "--s"
            ax.errorbar(g[x], g[f"{m}_mean"], yerr=g[f"{m}_std"].fillna(0), fmt=style, capsize=3,
                        label=" / ".join(map(str, key)))
        ax.set_xlabel(SETTING_LABELS.get(x, x))
        ax.set_title(METRIC_LABELS.get(m, m))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig
