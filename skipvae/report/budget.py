"""The compute budget: the planned runs of a plan (sweeps/cpu_plan.yaml, sweeps/scale_plan.yaml) against the records.

Each row of the plan is a sweep. Its runs are counted once (a run shared with an earlier row belongs to that row);
a run is done when a finished record of exactly its config is in results/ (any experiment's folder), and training
while its partial record is (results/<experiment>/partial/, skipvae.partial). A row's planned core-hours are the
wall times of its finished runs plus, for each run still to go, an estimate, the first that exists of:
  1. while it trains, its own median epoch time times its planned epochs (training only);
  2. the median wall time of the finished runs of its shape (the same config on another seed or dataset, e.g.
     Omniglot's runs by MNIST's);
  3. for a semi-amortized run, the wall time of its amortized counterpart (the VAE or Skip-VAE of the same config)
     times 1 + K c, with K its SVI steps and c the cost of one SVI step in VAE steps as the benchmarks measured it
     for its decoder and precision (results/bench/*.json, benchmarks/bench_models.py);
  4. the median projection (1.) of the runs of its shape still training;
  5. the median of the row's finished runs, else of the projections of the row's runs still training.
The spent core-hours are the sum of the finished records' wall times and the training time so far of the runs
still training (one run per single-thread lane), plus the lost core-hours: the training time of runs whose
checkpoints were lost before they finished (their last partial records, kept under results/*/partial/lost/).

A row may say why it is not run (`not_run:` in the plan): it is still sized, and left out of the total.

A single run or sweep at the paper profile on a machine without a GPU is refused unless confirmed
(check_long_runs): a run's estimate is the one above (without a row), else its model's cost per training example
at another scale, measured at its own precision and step (amp, compile_step), times its examples and epochs
(scaled_minutes); an estimate of its training alone gets its final IW-NLL added, priced by its model's seconds per
importance sample at another scale (nll_minutes). A run that no record prices has no estimate, and the estimate
says how many such runs there are, and why.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import pandas as pd
import yaml

from skipvae.config import model_name
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
    from skipvae.sweepfile import load_sweep

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


def full_config(config: dict) -> dict:
    """A record's config with every field, the ones added since it was written at their defaults (as
    RunConfig.from_dict reads it), so that an older record and a new config of the same run compare equal."""
    from skipvae.config import RunConfig
    from skipvae.errors import ConfigError

    try:
        return RunConfig.from_dict(config).to_dict()
    except (ConfigError, TypeError):
        return config


def cost_shape(config: dict) -> str:
    """What a run's cost depends on: its config (every field: full_config) apart from the seed and the dataset."""
    return json.dumps({k: v for k, v in full_config(config).items() if k not in ("seed", "dataset")}, sort_keys=True)


def minutes_by_shape(root: str | Path | None = None) -> dict[str, float]:
    """{cost_shape: median wall minutes} over every finished record in results/."""
    walls: dict[str, list[float]] = {}
    for record in finished_records(root):
        minutes = run_minutes(record)
        if minutes is not None:
            walls.setdefault(cost_shape(record["config"]), []).append(minutes)
    return {shape: median(m) for shape, m in walls.items()}


def partial_records(root: str | Path | None = None) -> dict[str, dict]:
    """{run name: partial record} of the runs still training (results/*/partial/*.json, skipvae.partial)."""
    return {path.stem: read_json(path) for path in sorted(results_root(root).glob("*/partial/*.json"))}


def lost_records(root: str | Path | None = None) -> list[dict]:
    """The last partial records of runs whose checkpoints were lost before they finished (a machine replaced
    between sessions): results/*/partial/lost/<run>.lost-at-epoch-<n>.json, the training time they cost."""
    return [read_json(path) for path in sorted(results_root(root).glob("*/partial/lost/*.json"))]


def projected_minutes(partial: dict) -> float | None:
    """A run still training: its median epoch time times its planned epochs, in minutes (training only)."""
    times = [h["time_s"] for h in partial.get("history", []) if h.get("time_s") is not None]
    return median(times) * partial["planned_epochs"] / 60 if times else None


def projected_by_shape(partials: dict[str, dict]) -> dict[str, float]:
    """{cost_shape: median projected minutes} over the runs still training."""
    walls: dict[str, list[float]] = {}
    for partial in partials.values():
        minutes = projected_minutes(partial)
        if minutes is not None:
            walls.setdefault(cost_shape(partial["config"]), []).append(minutes)
    return {shape: median(m) for shape, m in walls.items()}


def svi_step_costs(root: str | Path | None = None) -> dict[tuple[str, str], float]:
    """{(arch, precision): median cost of one SVI step in VAE steps} over the SA workloads of results/bench/ (the
    decoder is the first word of a workload's name, as benchmarks/bench_models.py names them)."""
    costs: dict[tuple[str, str], list[float]] = {}
    for path in sorted((results_root(root) / "bench").glob("*.json")):
        for load in read_json(path).get("workloads", []):
            if load.get("svi_step_cost_in_vae_steps") is not None:
                key = (load["name"].split()[0], load["precision"])
                costs.setdefault(key, []).append(load["svi_step_cost_in_vae_steps"])
    return {key: median(c) for key, c in costs.items()}


def precision(config: dict) -> str:
    """'bf16' for a run trained under bf16 autocast (amp), else 'fp32'."""
    return "bf16" if config.get("amp") else "fp32"


def semi_amortized_minutes(config: dict, by_shape: dict[str, float], costs: dict) -> float | None:
    """A semi-amortized run's minutes from its amortized counterpart's: t_VAE (1 + K c); None unless both known."""
    if config.get("inference") != "semi-amortized":
        return None
    vae = {**config, "inference": "amortized", "model": model_name(config["skip"], "amortized")}
    c = costs.get((config["arch"], precision(config)))
    minutes = by_shape.get(cost_shape(vae))
    return None if c is None or minutes is None else minutes * (1 + config["svi_steps"] * c)


COLUMNS = ["what", "runs", "done", "training", "min/run", "planned core-h", "spent core-h", "lost core-h", "not run"]


def budget_table(plan: dict | None = None) -> pd.DataFrame:
    """One row per plan row: runs planned, done and still training, minutes per run and planned core-hours
    (measured where done, estimated where not: see the module), spent core-hours, and why a row is not run (None
    when it is). Planned is None while a run has no estimate."""
    from skipvae.results import reusable_record

    plan = plan or load_plan()
    measured, lost, rows = Measured.read(), lost_records(), []
    for row, configs in row_runs(plan):
        if configs is None:
            rows.append({"what": row["what"], "runs": None, "done": 0, "training": 0, "min/run": None,
                         "planned core-h": None, "spent core-h": 0.0, "lost core-h": 0.0,
                         "not run": row.get("not_run")})
            continue
        names = {c.run_name() for c in configs}
        lost_h = sum(p["train_time_s"] for p in lost if p["name"] in names) / 3600
        records = [reusable_record(c, row["experiment"])[0] for c in configs]
        training = [None if r else measured.partials.get(c.run_name()) for c, r in zip(configs, records)]
        walls = [m for m in (run_minutes(r) for r in records if r) if m is not None]
        ongoing = [m for m in (projected_minutes(p) for p in training if p) if m is not None]
        fallback = median(walls) if walls else median(ongoing) if ongoing else None
        minutes = [run_minutes(r) if r else estimate_minutes(c.to_dict(), measured, fallback, c.run_name())
                   for c, r in zip(configs, records)]
        planned = None if None in minutes else sum(minutes) / 60
        spent = sum(walls) + sum(p["train_time_s"] / 60 for p in training if p)
        rows.append({"what": row["what"], "runs": len(configs), "done": sum(r is not None for r in records),
                     "training": sum(p is not None for p in training),
                     "min/run": None if planned is None else 60 * planned / len(configs),
                     "planned core-h": planned, "spent core-h": spent / 60 + lost_h, "lost core-h": lost_h,
                     "not run": row.get("not_run")})
    return pd.DataFrame(rows, columns=COLUMNS)


@dataclass(frozen=True)
class Measured:
    """What the records say about run times (the module's estimates 1-4): the median minutes per shape of the
    finished runs, the SVI step costs, the projections of the runs still training and of their shapes."""
    by_shape: dict
    costs: dict
    partials: dict
    projected: dict

    @classmethod
    def read(cls, root: str | Path | None = None) -> "Measured":
        partials = partial_records(root)
        return cls(minutes_by_shape(root), svi_step_costs(root), partials, projected_by_shape(partials))


def measured_estimate(config: dict, measured: Measured, name: str = "") -> tuple[float | None, bool]:
    """A run to go by the records (the module's estimates 1-4), and whether its minutes hold its evaluation: its own
    projection while it trains (training only), else its shape's median wall time, else its semi-amortized
    estimate (both whole runs), else the projection of its shape's runs still training (training only); (None,
    False) when none exists. `name`: its run name, the key of its partial record while it trains."""
    partial = measured.partials.get(name)
    minutes = projected_minutes(partial) if partial else None
    if minutes is not None:
        return minutes, False
    for whole in (measured.by_shape.get(cost_shape(config)),
                  semi_amortized_minutes(config, measured.by_shape, measured.costs)):
        if whole is not None:
            return whole, True
    return measured.projected.get(cost_shape(config)), False


def estimate_minutes(config: dict, measured: Measured, fallback: float | None = None,
                     name: str = "") -> float | None:
    """A run to go: measured_estimate, else `fallback` (its row's median: of the row's finished runs, else of its
    runs' projections; see the module)."""
    minutes, _ = measured_estimate(config, measured, name)
    return fallback if minutes is None else minutes


def budget_display(plan_path: str | Path = PLAN) -> tuple[pd.DataFrame, str]:
    """The book's budget table of a plan (strings, with a total row) and its caption."""
    from skipvae.report.tables import fmt

    plan = load_plan(plan_path)
    df = budget_table(plan)
    run = df[df["not run"].isna()]  # the total leaves out the rows judged not to run
    unmeasured = run["planned core-h"].isna().any()  # then the total is a lower bound
    total = {"what": "total", "runs": run["runs"].sum(), "done": run["done"].sum(),
             "training": run["training"].sum(), "min/run": None,
             "planned core-h": run["planned core-h"].sum(min_count=1), "spent core-h": df["spent core-h"].sum(),
             "lost core-h": df["lost core-h"].sum()}
    df = pd.concat([df, pd.DataFrame([total])], ignore_index=True)
    df["not run"] = df["not run"].fillna("")
    df["runs"] = ["not sized yet" if pd.isna(v) else str(int(v)) for v in df["runs"]]
    for c in ("done", "training"):
        df[c] = [str(int(v)) for v in df[c]]
    df["min/run"] = [fmt(v, 1) for v in df["min/run"]]
    for c in ("planned core-h", "spent core-h", "lost core-h"):
        df[c] = [fmt(v, 1) for v in df[c]]
    if unmeasured and df["planned core-h"].iloc[-1] != fmt(None, 1):
        df.loc[df.index[-1], "planned core-h"] = f"≥ {df['planned core-h'].iloc[-1]}"
    lanes, target = plan["lanes"], plan["target_core_hours"]
    where = Path(plan_path).resolve()
    where = where.relative_to(REPO_ROOT) if where.is_relative_to(REPO_ROOT) else where
    caption = (f"{plan.get('title', 'The budget')} ({where}), in order of priority, against the committed records, "
               f"one run per single-thread lane: planned core-h = the wall times of the finished runs plus, for each "
               f"run to go, its own projection while it trains (median epoch time x planned epochs, training only), "
               f"else the median of the finished runs of the same config on another seed or dataset, else, for a "
               f"semi-amortized run, its VAE counterpart's times 1 + K c (K SVI steps, each costing c VAE steps in the "
               f"benchmarks), else the projection of the same config's runs still training, else the row's median "
               f"(of its finished runs, else of its runs' projections; '–' while a run has no estimate; the total is "
               f"then a lower bound), min/run = planned / runs, spent core-h = the finished runs' wall times plus the "
               f"training time so far of the runs still training (partial records) plus the lost core-h, the "
               f"training of runs whose checkpoints were lost before they finished (a machine replaced between "
               f"sessions; their last partial records are kept). A row with a reason under 'not "
               f"run' is sized but left out of the total. Aim: {target} core-hours in {lanes} lanes, about "
               f"{target / lanes:.0f} hours of wall time.")
    return df.astype(str), caption


LONG_PROFILES = ("paper",)  # profiles that take days on a CPU: refused there unless confirmed (check_long_runs)
STEP_KEYS = ("amp", "compile_step")  # how a training step runs (bf16 autocast, compiled): its price, not its model
SCALE_KEYS = {"profile", "seed", "dataset", "epochs", "n_train", "n_valid", "n_test", "iw_samples", "iw_chunk",
              "n_eval_nll", "nll_subset", "clf_n_train", "clf_n_test", "clf_epochs", "notes", "warmup_epochs",
              "lr_decay_after", "nll_amp"}  # what a profile scales, not what an example costs (nll_amp: the IW-NLL
# in bf16 is priced at the fp32 records' rate, an upper bound)


def model_shape(config: dict, step: bool = True) -> str:
    """What a run's cost per example depends on: its config (full_config) apart from its scale (SCALE_KEYS), apart
    from the SVI settings for an amortized model, and apart from how its training step runs (STEP_KEYS) unless
    `step`."""
    config = full_config(config)
    unused = SCALE_KEYS | ({"svi_steps", "svi_lr"} if config.get("inference") != "semi-amortized" else set())
    unused |= set() if step else set(STEP_KEYS)
    return json.dumps({k: v for k, v in config.items() if k not in unused}, sort_keys=True)


def step_settings(config: dict) -> str:
    """How a run's training step runs, in words (STEP_KEYS): 'fp32 eager', 'bf16 compiled', ..."""
    return f"{precision(config)} {'compiled' if full_config(config).get('compile_step') else 'eager'}"


def finished_records(root: str | Path | None = None) -> list[dict]:
    """Every finished record in results/ (results/*/runs/*.json)."""
    records = (read_json(path) for path in sorted(results_root(root).glob("*/runs/*.json")))
    return [r for r in records if r.get("status") == "finished"]


def seconds_per_example(records: list[dict]) -> dict[str, float]:
    """{model_shape (step settings included): median seconds per training example of an epoch (training and
    validation)} over the history of finished records."""
    costs: dict[str, list[float]] = {}
    for record in records:
        rates = [h["examples_per_s"] for h in record.get("history", []) if h.get("examples_per_s")]
        if rates:
            costs.setdefault(model_shape(record["config"]), []).append(1 / median(rates))
    return {shape: median(c) for shape, c in costs.items()}


def nll_sample_seconds(record: dict) -> float | None:
    """A finished record's seconds per importance sample of one test example in its IW-NLL (metrics.timing.nll over
    nll_examples x iw_samples); None when it has no IW-NLL or no timing of it."""
    metrics = record.get("metrics") or {}
    seconds = (metrics.get("timing") or {}).get("nll")
    examples, k = metrics.get("nll_examples"), metrics.get("iw_samples")
    return seconds / (examples * k) if seconds is not None and examples and k else None


def seconds_per_nll_sample(records: list[dict]) -> dict[str, float]:
    """{model_shape without step settings (the evaluation runs eagerly in fp32): median nll_sample_seconds} over
    finished records."""
    costs: dict[str, list[float]] = {}
    for record in records:
        seconds = nll_sample_seconds(record)
        if seconds is not None:
            costs.setdefault(model_shape(record["config"], step=False), []).append(seconds)
    return {shape: median(c) for shape, c in costs.items()}


@dataclass(frozen=True)
class Rates:
    """What the finished records say about a model's costs at any scale: seconds per training example (`training`,
    by model_shape), the step settings measured of each model (`steps`, by model_shape without them) and seconds
    per importance sample of the final IW-NLL (`nll`, by model_shape without step settings)."""
    training: dict
    steps: dict
    nll: dict

    @classmethod
    def read(cls, root: str | Path | None = None) -> "Rates":
        records = finished_records(root)
        steps: dict[str, set[str]] = {}
        for record in records:
            steps.setdefault(model_shape(record["config"], step=False), set()).add(step_settings(record["config"]))
        return cls(seconds_per_example(records), steps, seconds_per_nll_sample(records))


def scaled_minutes(config: dict, per_example: dict[str, float]) -> float | None:
    """A run's training minutes from its model's cost per example at another scale, at its own step settings:
    epochs x its training examples (the whole split when n_train is None) x seconds per example; None when no
    record has its model at those settings."""
    from skipvae.data.manifest import split_sizes

    cost = per_example.get(model_shape(config))
    if cost is None:
        return None
    examples = config.get("n_train") or split_sizes(config["dataset"])["train"]
    return config["epochs"] * examples * cost / 60


def nll_samples(config: dict) -> int:
    """The importance samples of a run's final IW-NLL over all its examples: its IW-NLL examples (n_eval_nll, at most
    its test split; all of it when None) times K (1 without a latent variable, as skipvae.metrics.evaluate takes)."""
    from skipvae.data.manifest import split_sizes

    test = config.get("n_test") or split_sizes(config["dataset"])["test"]
    examples = test if config.get("n_eval_nll") is None else min(config["n_eval_nll"], test)
    return examples * (1 if config.get("latent_dim") == 0 else config["iw_samples"])


def nll_minutes(config: dict, per_sample: dict[str, float]) -> float | None:
    """A run's final IW-NLL in minutes: nll_samples x its model's seconds per sample at another scale; None when no
    record measured its model's IW-NLL."""
    cost = per_sample.get(model_shape(config, step=False))
    return None if cost is None else nll_samples(config) * cost / 60


def unpriced_reason(config: dict, rates: Rates) -> str:
    """Why no record prices a run's training, as a clause after 'N run(s)': no record of its model, or records of
    it only at other step settings."""
    measured = rates.steps.get(model_shape(config, step=False))
    if not measured:
        return "with no record of their model at any scale"
    if step_settings(config) in measured:  # records at these settings, none with a training rate
        return f"whose model's records in {step_settings(config)} hold no training rate (examples per second)"
    return f"whose model was measured only in {' and '.join(sorted(measured))}, never in {step_settings(config)}"


def run_estimate(cfg, measured: Measured, rates: Rates) -> tuple[float | None, str | None]:
    """A run's minutes on one CPU thread, its training and its final IW-NLL, and None with why where the records
    cannot price it: measured_estimate (a whole run's wall time, or a projection of its training), else
    scaled_minutes, plus nll_minutes when that is training only."""
    config = cfg.to_dict()
    minutes, whole = measured_estimate(config, measured, cfg.run_name())
    if minutes is None:
        minutes = scaled_minutes(config, rates.training)
    if minutes is None:
        return None, unpriced_reason(config, rates)
    if whole:
        return minutes, None
    nll = nll_minutes(config, rates.nll)
    return (None, "whose model's IW-NLL no record measured") if nll is None else (minutes + nll, None)


def run_minutes_estimates(configs: list) -> list[tuple[float | None, str | None]]:
    """Each run's (minutes, None) on one CPU thread by the records in results/ (run_estimate), else (None, why)."""
    measured, rates = Measured.read(), Rates.read()
    return [run_estimate(cfg, measured, rates) for cfg in configs]


def hours_text(minutes: float) -> str:
    """'35 min', '7.5 h' or '4.2 days'."""
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h" if minutes < 48 * 60 else f"{minutes / 1440:.1f} days"


def long_run_estimate(configs: list) -> str:
    """The budget model's estimate of runs, in words: 'N run(s) at the paper profile: about X on one CPU thread
    ...', or, where some runs have no estimate, at least the others' X and how many have none, and why."""
    estimates = run_minutes_estimates(configs)
    known = [m for m, _ in estimates if m is not None]
    reasons = Counter(why for m, why in estimates if m is None)
    why = "; ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
    profiles = "/".join(sorted({c.profile for c in configs}))
    text = f"{len(configs)} run(s) at the {profiles} profile"
    if not known:
        return f"{text}: no estimate for any ({why}), likely days on a CPU"
    total = f"{hours_text(sum(known))} on one CPU thread by the budget model (training and the final IW-NLL"
    if not reasons:
        return f"{text}: about {total})"
    return (f"{text}: at least {total} of the {len(known)} run(s) with an estimate); no estimate for "
            f"{len(configs) - len(known)} run(s) ({why})")


def check_long_runs(configs: list, on_gpu: bool, confirmed: bool, flag: str = "--confirm-long") -> str | None:
    """Runs of a long profile (LONG_PROFILES) about to start on a machine without a GPU: ConfigError (one line: the
    estimate, and the flag to give) unless `confirmed`, else the line to print; None when there is none."""
    from skipvae.errors import ConfigError

    long = [c for c in configs if c.profile in LONG_PROFILES]
    if not long or on_gpu:
        return None
    text = f"profile={long[0].profile!r} on a machine without a GPU: {long_run_estimate(long)}"
    if not confirmed:
        raise ConfigError(f"{text}; give {flag} to start anyway, or run on a GPU.")
    return f"{text}; starting ({flag})"
