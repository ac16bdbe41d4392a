"""Where results live and how they are read: the run records, the experiments, the quoted numbers.

    results/<experiment>/runs/<run_name>.json  one run (skipvae.train.finish; schema: skipvae.records.check_record)
    results/<experiment>/reference/<name>.json a result that is not a run (runner.reference_record)
    results/<experiment>/<experiment>.ipynb    the executed notebook (papermill), shown as it is
    results/<experiment>/figures/<name>.png    its figures, with <name>.json: {caption, profile, seeds, git_commit}
    results/theory/theory.json                 {"provenance": {...}, "rows": [{..., "mi_no_skip", "mi_skip"}], ...}

The results root is `$SKIPVAE_RESULTS` if set, else `results/` in the checkout; smoke runs go to runs/smoke-results/
so that they never reach the book. Sweep records (runs/<sweep>/<run>/record.json) reach the book through
`collect_sweep`. The numbers quoted from papers live in `book/paper_numbers.yaml`, the only place where numbers are
typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from skipvae.config import MODELS, model_name
from skipvae.errors import DataError
from skipvae.experiments import EXPERIMENTS, MAIN_EXPERIMENTS, Experiment, experiment  # noqa: F401 (re-exported)
from skipvae.records import (CONFIG_KEYS, REPO_ROOT, SCHEMA_VERSION, atomic_write_bytes, atomic_write_json,
                             check_record, inside, read_json)
from skipvae.results import results_dir, results_root  # noqa: F401 (re-exported: the reader's paths)

PAPER_NUMBERS = REPO_ROOT / "book" / "paper_numbers.yaml"

PROFILE_RANK = {"smoke": 0, "cpu": 1, "paper": 2}


# ---------------------------------------------------------------------------------------------- run records

def parse_record(path: Path):
    """The JSON of a run record file, as it is on disk (not yet checked)."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read run record {path}: {err}. Each results/<experiment>/runs/*.json must be "
                        f"one JSON object written by skipvae.train; delete or rewrite this file.") from err


def read_record(path: str | Path) -> dict:
    """One run record, checked (and migrated) by skipvae.records.check_record."""
    return check_record(parse_record(Path(path)), Path(path))


def flatten_record(record: dict) -> dict:
    """One table row: the run's top-level numbers, its config keys and metric keys as they are (nested metrics
    joined by '.', e.g. 'classification.logreg.acc'; a metric wins over a config key of the same name), and
    its provenance as 'provenance.<key>', and the per-epoch 'history' (a list) for the curves over training."""
    row = {k: record.get(k) for k in ("name", "status", "best_epoch", "epochs_completed", "train_time_s",
                                      "eval_time_s", "history")}
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
    folder = results_root(root) / name / "runs"
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


def load_partials(name: str, root: str | Path | None = None) -> pd.DataFrame:
    """The runs of an experiment still training (results/<name>/partial/*.json, skipvae.partial), one row per run:
    its config, 'epochs_completed', 'planned_epochs' and its per-epoch 'history' so far. Empty when there is none."""
    experiment(name)
    folder = results_root(root) / name / "partial"
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = read_json(path)
        rows.append({"experiment": name, "path": str(path), "name": record["name"], **record["config"],
                     "model": model_name(record["config"]["skip"], record["config"]["inference"]),
                     "epochs_completed": record["epochs_completed"], "planned_epochs": record["planned_epochs"],
                     "history": record["history"]})
    return pd.DataFrame(rows)


def load_theory(root: str | Path | None = None) -> dict | None:
    """results/theory/theory.json ({'provenance', 'rows'}), or None when the theory notebook has not run."""
    path = results_root(root) / "theory" / "theory.json"
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


def run_status(name: str, root: str | Path | None = None) -> dict:
    """What exists for an experiment: runs per profile, seeds and models, the notebook's models that have no
    run at any profile ('missing'), and whether its notebook has run."""
    folder = results_root(root) / name
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
    path = results_root(root) / name / f"{name}.ipynb"
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text()).get("metadata", {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read the executed notebook {path}: {err}; rerun it with papermill.") from err
    return (meta.get("papermill") or {}).get("parameters")


def _concat(frames) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["profile", *CONFIG_KEYS])


def all_runs(root: str | Path | None = None) -> pd.DataFrame:
    """The runs of every experiment in one table (column 'experiment' says which)."""
    return _concat(load_runs(n, root) for n in EXPERIMENTS if n != "theory")


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
                       "fixed": dict(spec.get("fixed") or {}), "setup": dict(spec.get("setup") or {})}
        tables[name] = table
    return {"sources": data["sources"], "claims": data["claims"], "tables": tables}


def paper_tables(experiment_name: str, path: str | Path | None = None) -> dict:
    """The quoted tables shown on one page."""
    return {k: t for k, t in paper_numbers(path)["tables"].items() if t.attrs["experiment"] == experiment_name}


def reference_records(experiment: str, profile: str, pattern: str = "*") -> list[dict]:
    """The results that are not runs (runner.reference_record: the unigram floor, the PCA reference) stored at
    <results>/<experiment>/reference/<pattern>.json for this profile, in file order."""
    folder = results_dir(experiment, profile) / "reference"
    records = [json.loads(p.read_text()) for p in sorted(folder.glob(f"{pattern}.json"))] if folder.is_dir() else []
    return [r for r in records if r.get("settings", {}).get("profile") == profile]


def migrate_results(root: str | Path | None = None) -> list[tuple[Path, Path]]:
    """Rewrite every run record under <root>/*/runs/ that has an older schema (skipvae.records.migrate) at its
    current name, removing the old file; returns (old path, new path) pairs. A record already current is untouched."""
    moved = []
    for path in sorted(results_root(root).glob("*/runs/*.json")):
        raw = parse_record(path)  # read once: checked and migrated below
        if isinstance(raw, dict) and raw.get("schema_version") == SCHEMA_VERSION:
            continue
        record = check_record(raw, path)
        new = path.with_name(f"{record['name']}.json")
        if new != path and new.exists():
            raise DataError(f"cannot migrate {path}: {new} exists already (two records of one run)")
        atomic_write_json(new, record)
        if new != path:
            path.unlink()
        moved.append((path, new))
    return moved


def rekey_run_tables(root: str | Path | None = None) -> list[Path]:
    """Rewrite the run names in every table keyed by run (results/<experiment>/*.csv with a 'run' column, e.g. the
    t-SNE coordinates) that still holds a name a record was re-keyed from (its migrations' old_name); returns the
    files rewritten. Every other cell is kept as the text it was (read and written as strings), and a record file
    that is not a run record is reported."""
    renamed = {}
    for path in sorted(results_root(root).glob("*/runs/*.json")):
        record = read_record(path)  # checked: a file that is not a run record is a DataError naming it
        for step in record.get("migrations") or []:
            if step.get("old_name"):
                renamed[step["old_name"]] = path.stem
    rewritten = []
    for path in sorted(results_root(root).glob("*/*.csv")):
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "run" in table.columns and table["run"].isin(list(renamed)).any():
            table["run"] = table["run"].replace(renamed)
            atomic_write_bytes(path, table.to_csv(index=False).encode())
            rewritten.append(path)
    return rewritten


def collect_sweep(sweep_dir: str | Path, experiment: str) -> list[Path]:
    """Copy the finished records of a sweep (runs/<sweep>/<run>/record.json, e.g. from a GPU or Slurm) into
    results/<experiment>/runs/ at their profile, where the book and the notebooks read them; returns the copies.
    A record already there with the same content is left untouched. Every record is checked first (check_collected):
    nothing is copied when one does not belong to `experiment`; a folder with no record is an error."""
    experiment_of = experiment if experiment in EXPERIMENTS else None
    if experiment_of is None:
        raise DataError(f"unknown experiment {experiment!r}; known experiments: {', '.join(EXPERIMENTS)}")
    folder = Path(sweep_dir)
    if not folder.is_dir():
        raise DataError(f"sweep_dir={str(folder)!r} is impossible: no such folder; give a sweep's folder, e.g. "
                        f"runs/mnist-paper")
    paths = sorted(folder.glob("*/record.json"))
    if not paths:
        raise DataError(f"sweep_dir={str(folder)!r} holds no run records (<run>/record.json); give a sweep's folder "
                        f"whose runs have finished, e.g. runs/mnist-paper")
    todo = []
    for path in paths:
        record = read_record(path)
        if record["status"] != "finished":
            continue
        runs = results_dir(experiment, str(record["config"]["profile"])) / "runs"
        out = inside(runs, f"{record['name']}.json", "record name")
        check_collected(record, experiment, path)
        todo.append((out, record))
    copied = []
    for out, record in todo:
        if not out.exists() or json.loads(out.read_text()) != record:
            atomic_write_json(out, record)
            copied.append(out)
    return copied


def check_collected(record: dict, experiment: str, path: Path) -> None:
    """DataError naming `path` when a finished record cannot be one of `experiment`'s runs: its config is not a
    valid run config (e.g. an unknown profile), its dataset is not the experiment's, or its model is not one that
    the experiment trains, or its name is not its config's run name."""
    from skipvae.config import RunConfig
    from skipvae.errors import ConfigError

    try:
        cfg = RunConfig.from_dict(record["config"]).validate()
    except (ConfigError, TypeError) as err:
        raise DataError(f"run record {path} cannot be collected: {' '.join(str(err).split())}") from None
    exp = EXPERIMENTS[experiment]
    if experiment in MAIN_EXPERIMENTS and cfg.dataset != experiment:
        raise DataError(f"run record {path} has dataset={cfg.dataset!r}, but experiment {experiment!r} holds "
                        f"{experiment} runs only; collect it with --experiment {cfg.dataset}")
    if exp.models and cfg.model not in exp.models:
        raise DataError(f"run record {path} has model={cfg.model!r}, but experiment {experiment!r} holds the "
                        f"models {', '.join(exp.models)}")
    if record["name"] != cfg.run_name():  # it would overwrite the record of the run it names
        raise DataError(f"run record {path} is named {record['name']!r}, but its config is run {cfg.run_name()!r}; "
                        f"a record is named by its config (RunConfig.run_name)")
