"""Skips among the other collapse remedies (issue 29): on each dataset, one row per remedy and model (the VAE or the
Skip-VAE), the differences that say whether a remedy keeps information in z and at what cost in NLL, and whether
skips add to it; the published Yahoo numbers beside ours, with the differences of setup.

    row            the runs whose configs are equal but for the seed (tables.summary_table by objective and model,
                   which adds any other field that differs as a key): mean ± sd over the n seeds
    skip − plain   Δ = mean_s Skip-VAE(r) − mean_s VAE(r), for each remedy r (the plain ELBO included)
    − the VAE      Δ = mean_s model(r) − mean_s VAE(elbo), for every other row
    interval       the Welch 95% interval of Δ (stats.welch), judged as the ledger judges a check (claims.judge with
                   bound 0): above or below 0 when each side has claims.MIN_SEEDS seeds and the interval excludes 0,
                   else undecided; the ledger's smoke gate and, for MI, its ceiling gate (a mean MI within
                   claims.MI_CEILING_MARGIN nats of log N) make a difference "not tested at this scale".

    floor          on text, the ledger's unigram-floor gate (claims.gate_floor): the remedies' Yahoo runs score the
                   IW-NLL on a random subset of the test documents drawn with the run's seed (nll_subset random), so
                   each seed has its own floor on the same documents (runner.unigram_reference, stored as
                   results/remedies/reference/unigram-random-s<seed>.json); a side's mean NLL over its seeds is set
                   against the mean floor of those seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from skipvae.config import family
from skipvae.experiments.remedies import DATASETS  # the datasets of the page, in its order
from skipvae.names import OBJECTIVES
from skipvae.report.claims import (FLOOR_MARGIN, MI_CEILING_MARGIN, MIN_SEEDS, NAMES, NOT_AT_SCALE, NOT_REPRODUCED,
                                   REPRODUCED, Check, compare, gate_floor, gate_mi_ceiling, gate_smoke,
                                   unigram_floors)
from skipvae.report.store import paper_numbers
from skipvae.report.tables import (METRIC_LABELS, SETTING_LABELS, best_profile, digits_for, fmt_mean_std,
                                   summary_table)

DATASET_TITLES = {"yahoo": "Yahoo", "mnist": "MNIST", "omniglot": "Omniglot"}
UNITS = {"yahoo": "document", "mnist": "image", "omniglot": "image"}
PAIR = ("vae", "skip-vae")  # the plain model and the same model with skips
METRICS = ("nll", "elbo", "kl", "mi", "au_0.01")  # the table's columns (ELBO: the paper's, higher is better)
COMPARED = ("mi", "nll", "kl", "au_0.01", "elbo")  # the differences' columns, MI (information) and NLL (cost) first
PUBLISHED = "remedies_yahoo"  # the quoted table shown beside ours (book/paper_numbers.yaml)
REMEDY_NAMES = {"elbo": "the plain ELBO", "kl-anneal": "KL annealing", "cyclical": "cyclical annealing",
                "free-bits": "free bits", "beta": "the β-VAE", "bn-vae": "BN-VAE",
                "aggressive": "aggressive encoder training"}
PARAMETERS = {  # each remedy's own fields (skipvae.config.REMEDY_FIELDS) as its runs set them
    "kl-anneal": lambda c: f"β from {c['beta_start']:g} to 1 over {int(c['warmup_epochs'])} epochs",
    "cyclical": lambda c: f"M = {int(c['cycles'])} cycles, rising over R = {c['cycle_ratio']:g} of each",
    "free-bits": lambda c: f"λ = {c['free_bits']:g} nats per dimension",
    "beta": lambda c: f"β = {c['kl_beta']:g}",
    "bn-vae": lambda c: f"γ = {c['bn_gamma']:g}",
    "aggressive": lambda c: f"at most {int(c['aggressive_steps'])} encoder steps per decoder step",
}
ABOVE, BELOW, UNDECIDED, NOT_TESTED = "> 0", "< 0", "undecided", "not tested"


def remedy_label(objective: str, config=None) -> str:
    """The remedy's name with its parameters as `config` (a run's row) sets them, e.g. 'free bits (λ = 0.125 nats per
    dimension)'."""
    name = REMEDY_NAMES.get(objective, objective)
    if config is None or objective not in PARAMETERS:
        return name
    try:
        return f"{name} ({PARAMETERS[objective](config)})"
    except (KeyError, TypeError, ValueError):
        return name


def dataset_runs(runs: pd.DataFrame, dataset: str, profile: str | None = None) -> pd.DataFrame:
    """The runs of one dataset at one profile: `profile`, else the largest above smoke that it has, else smoke."""
    sub = runs[runs["dataset"] == dataset] if len(runs) else runs
    profile = profile or best_profile(sub) or ("smoke" if len(sub) else None)
    return sub[sub["profile"] == profile].reset_index(drop=True) if profile else sub.iloc[:0]


def remedy_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per config but the seed of one dataset's runs at one profile (summary_table by objective and model:
    n_seeds, <metric>_mean, <metric>_std of METRICS), the remedies in OBJECTIVES order, the VAE before the Skip-VAE."""
    summary = summary_table(runs, by=("objective", "model"), metrics=METRICS)
    if summary.empty:
        return summary
    rank = summary["objective"].map({o: i for i, o in enumerate(OBJECTIVES)}).fillna(len(OBJECTIVES)) * 10 \
        + summary["model"].map({m: i for i, m in enumerate(PAIR)}).fillna(len(PAIR))
    return summary.loc[rank.sort_values(kind="stable").index].reset_index(drop=True)


def row_keys(summary: pd.DataFrame) -> list[str]:
    """The columns that identify a row of `remedy_rows` (profile, objective, model and any field that differs)."""
    return list(summary.columns[:summary.columns.get_loc("n_seeds")])


def select(runs: pd.DataFrame, where: dict) -> pd.DataFrame:
    """The runs whose columns equal `where` (a missing value matches a missing value)."""
    keep = pd.Series(True, index=runs.index)
    for k, v in where.items():
        col = runs[k] if k in runs.columns else pd.Series(math.nan, index=runs.index)
        keep &= (col.isna() if pd.isna(v) else col == v)
    return runs[keep]


def seed_values(runs: pd.DataFrame, where: dict, metric: str) -> pd.Series:
    """`metric` per seed (index: seed) of the runs matching `where`; empty if none."""
    rows = select(runs, where)
    if rows.empty or metric not in rows.columns:
        return pd.Series(dtype=float)
    return pd.to_numeric(rows.set_index("seed")[metric], errors="coerce").dropna()


@dataclass
class Difference:
    """One difference of a row against another: `against` 'plain' (the same remedy without skips) or 'vae' (the
    VAE trained with the plain ELBO); `check` holds the interval and the ledger's verdict."""
    objective: str
    model: str
    against: str
    metric: str
    check: Check

    @property
    def decision(self) -> str:
        """ABOVE or BELOW 0 (the ledger's 'reproduced' / 'not reproduced' of a claim '> 0'), NOT_TESTED (a gate
        failed), else UNDECIDED."""
        return {REPRODUCED: ABOVE, NOT_REPRODUCED: BELOW, NOT_AT_SCALE: NOT_TESTED}.get(self.check.verdict, UNDECIDED)

    @property
    def why(self) -> str:
        """Why it is not decided: the failed gates, too few seeds, or an interval that contains 0; '' if decided."""
        if self.decision in (ABOVE, BELOW):
            return ""
        if self.check.gates:
            return "; ".join(self.check.gates)
        n = self.check.interval.n
        if n < MIN_SEEDS:
            return f"{n} seed{'' if n == 1 else 's'} on a side, the rule needs {MIN_SEEDS}"
        return "the interval contains 0"


def remedy_differences(runs: pd.DataFrame, floors: dict[int, float] | None = None) -> list[Difference]:
    """Every difference of one dataset's runs at one profile (`dataset_runs`): each Skip-VAE row against the VAE row
    of the same remedy, and every row but the plain VAE's against the VAE with the plain ELBO, on COMPARED. On text
    the floor gate uses `floors` ({seed: unigram NLL}; default: the stored ones, claims.unigram_floors)."""
    summary = remedy_rows(runs)
    if summary.empty:
        return []
    keys = row_keys(summary)
    profile = str(summary["profile"].iloc[0])
    text = family(str(runs["dataset"].iloc[0])) == "text"
    if text and floors is None:
        floors = unigram_floors(runs, profile, "remedies")
    n_examples = pd.to_numeric(runs["n_examples"], errors="coerce").max() if "n_examples" in runs.columns else None
    rows = {tuple(r[k] for k in keys) for _, r in summary.iterrows()}
    out = []
    for _, r in summary.iterrows():
        where = {k: r[k] for k in keys}
        bases = []
        if r["model"] == "skip-vae":
            bases.append(("plain", where | {"model": "vae"}))
        if (r["objective"], r["model"]) not in (("elbo", "vae"), ("elbo", "skip-vae")):
            bases.append(("vae", where | {"objective": "elbo", "model": "vae"}))
        for against, base in bases:
            if tuple(base[k] for k in keys) not in rows:
                continue
            names = (row_name(base), row_name(where))
            floor = gate_floor(dict(zip(names, (seed_values(runs, base, "nll"), seed_values(runs, where, "nll")))),
                               floors, "remedies") if text else None
            for metric in COMPARED:
                a, b = seed_values(runs, base, metric), seed_values(runs, where, metric)
                gates = [gate_smoke(profile), gate_mi_ceiling(metric, [a, b], n_examples), floor]
                check = compare("remedies", remedy_label(r["objective"]), metric, a, b, names, gates=gates)
                if check is not None:
                    check.profile = profile
                    out.append(Difference(r["objective"], r["model"], against, metric, check))
    return out


def row_name(where: dict) -> str:
    """'Skip-VAE + free bits', 'VAE' (the plain ELBO)."""
    model = NAMES.get(where["model"], where["model"])
    remedy = REMEDY_NAMES.get(where["objective"], where["objective"]).removeprefix("the ")
    return model if where["objective"] == "elbo" else f"{model} + {remedy}"


# ------------------------------------------------------------------------------------------------ the tables

def remedy_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One dataset's rows as a page shows them: remedy (with its parameters), model, any other field that differs,
    seeds (n), then mean ± sd of METRICS. Before any run: every remedy x model, 'not run yet'."""
    labels = {"remedy": [], "model": []}
    summary = remedy_rows(runs)
    if summary.empty:
        grid = [(o, m) for o in OBJECTIVES for m in PAIR]
        return pd.DataFrame({"remedy": [remedy_label(o) for o, _ in grid], "model": [m for _, m in grid],
                             "seeds": "0", **{METRIC_LABELS.get(m, m): "not run yet" for m in METRICS}})
    keys = row_keys(summary)
    extra = [k for k in keys if k not in ("profile", "objective", "model")]
    for _, r in summary.iterrows():
        first = select(runs, {k: r[k] for k in keys}).iloc[0]
        labels["remedy"].append(remedy_label(r["objective"], first))
        labels["model"].append(r["model"])
    return pd.DataFrame({**labels, **{SETTING_LABELS.get(k, k): summary[k].astype(str) for k in extra},
                         "seeds": summary["n_seeds"].astype(str),
                         **{METRIC_LABELS.get(m, m): [fmt_mean_std(a, b, digits_for(m)) for a, b in
                                                      zip(summary[f"{m}_mean"], summary[f"{m}_std"])]
                            for m in METRICS}})


def difference_cell(d: Difference) -> str:
    """'+1.20 [+0.40, +2.00] > 0': the difference, its Welch interval and the decision."""
    iv, digits = d.check.interval, 1 if d.metric.startswith("au") else 2
    if math.isnan(iv.low):
        return f"{iv.estimate:+.{digits}f} (no interval) {d.decision}"
    return f"{iv.estimate:+.{digits}f} [{iv.low:+.{digits}f}, {iv.high:+.{digits}f}] {d.decision}"


def differences_table(diffs: list[Difference]) -> pd.DataFrame:
    """One row per comparison (e.g. 'Skip-VAE + free bits − VAE + free bits'): seeds (the smaller side), one column
    per metric of COMPARED (difference [95% interval] and decision) and the gates that failed."""
    groups: dict = {}
    for d in diffs:
        groups.setdefault((d.objective, d.model, d.against), []).append(d)
    rows = []
    for (objective, model, against), ds in groups.items():
        by_metric = {d.metric: d for d in ds}
        rows.append({"remedy": remedy_label(objective), "comparison": ds[0].check.what.split(": ", 1)[1],
                     "seeds": str(min(d.check.interval.n for d in ds)),
                     **{f"Δ {METRIC_LABELS.get(m, m)}": difference_cell(by_metric[m]) if m in by_metric else "–"
                        for m in COMPARED},
                     "gate": "; ".join(dict.fromkeys(g for d in ds for g in d.check.gates)) or "–"})
    return pd.DataFrame(rows, columns=["remedy", "comparison", "seeds",
                                       *[f"Δ {METRIC_LABELS.get(m, m)}" for m in COMPARED], "gate"])


def row_constants(runs: pd.DataFrame) -> str:
    """The settings every run of the table shares, e.g. 'decoder mlp, latent dim 50, layers 3'."""
    parts = []
    for k in ("arch", "latent_dim", "dec_layers"):
        if k in runs.columns and runs[k].nunique(dropna=False) == 1:
            parts.append(f"{SETTING_LABELS.get(k, k)} {runs[k].iloc[0]}")
    return ", ".join(parts)


def remedy_caption(runs: pd.DataFrame, dataset: str) -> str:
    """The caption of `remedy_table`: the profile, what the cells are, the units and the shared settings."""
    title = DATASET_TITLES.get(dataset, dataset)
    if runs.empty:
        return (f"{title}: every remedy without skips (vae) and with them (skip-vae); no run has been committed "
                f"yet.")
    shared = row_constants(runs)
    return (f"{title} at the {runs['profile'].iloc[0]} profile: every remedy without skips (vae) and with them "
            f"(skip-vae), mean ± standard deviation over the seeds (column seeds) on the test set; NLL, ELBO (the "
            f"single-sample ELBO, higher is better), KL and MI in nats per {UNITS.get(dataset, 'example')}, AU in "
            f"dimensions (threshold 0.01)" + (f"; every row: {shared}" if shared else "") + ".")


DIFFERENCES_CAPTION = (
    "Differences of means over seeds with their Welch 95% intervals: each Skip-VAE row against the VAE row of the same "
    "remedy, and every row against the VAE trained with the plain ELBO (same units as the table above). '> 0' or "
    f"'< 0': the interval lies on that side of 0 with at least {MIN_SEEDS} seeds on each side (the ledger's rule); "
    "'undecided' otherwise; 'not tested': a gate failed (column gate: the smoke profile, an MI within "
    f"{MI_CEILING_MARGIN} nats of its ceiling log N, or on Yahoo a decoder whose NLL is not {FLOOR_MARGIN:.0%} below "
    "the unigram floor's on the same documents).")


# --------------------------------------------------------------------------------------------- the sentences

INFORMATION = ("keeps more information in $z$ than the plain VAE", "keeps less information in $z$ than the plain VAE",
               "cannot be said to keep more or less information in $z$ than the plain VAE")
SKIPS = ("skips add information to it", "skips take information from it",
         "whether skips add information to it cannot be decided")
COST = ("at a higher NLL", "at a lower NLL", "with no decided change of NLL")


def phrase(d: Difference | None, words: tuple[str, str, str]) -> str:
    """words[0] when `d` lies above 0, words[1] below, else words[2] with the reason; its interval follows."""
    if d is None:
        return ""
    label = METRIC_LABELS.get(d.metric, d.metric)
    shown = f"{label} {d.check.interval.text(digits_for(d.metric))}"
    if d.decision == ABOVE:
        return f"{words[0]} ({shown})"
    if d.decision == BELOW:
        return f"{words[1]} ({shown})"
    test = "not tested at this scale: " if d.decision == NOT_TESTED else ""
    return f"{words[2]} ({test}{d.why}; {shown})"


def find(diffs: list[Difference], objective: str, model: str, against: str, metric: str) -> Difference | None:
    return next((d for d in diffs if (d.objective, d.model, d.against, d.metric) == (objective, model, against,
                                                                                    metric)), None)


def remedy_sentences(diffs: list[Difference]) -> list[str]:
    """One sentence per remedy, from the intervals: whether it keeps more information in z (MI) than the plain VAE
    and at what NLL, and whether skips add information to it (Skip-VAE − VAE of the same remedy) and at what NLL."""
    lines = []
    for objective in dict.fromkeys(d.objective for d in diffs):
        name = remedy_label(objective)
        parts = []
        if objective != "elbo":
            info = phrase(find(diffs, objective, "vae", "vae", "mi"), INFORMATION)
            if info:
                parts.append(f"{name[0].upper()}{name[1:]} {info} "
                             f"{phrase(find(diffs, objective, 'vae', 'vae', 'nll'), COST)}".strip())
        words = SKIPS if objective != "elbo" else tuple(w.replace("to it", "to the plain VAE").replace(
            "from it", "from the plain VAE") for w in SKIPS)
        skips = phrase(find(diffs, objective, "skip-vae", "plain", "mi"), words)
        if skips:
            skips = f"{skips} {phrase(find(diffs, objective, 'skip-vae', 'plain', 'nll'), COST)}".strip()
            parts.append(skips if parts else f"{skips[0].upper()}{skips[1:]}")
        if parts:
            lines.append("; ".join(parts) + ".")
    return lines


def remedy_summary(diffs: list[Difference], dataset: str) -> str:
    """The remedies grouped by the decision on MI: which keep more (less) information in z than the plain VAE, to
    which skips add information (take it from), and where the rule cannot decide; '' without differences."""
    if not diffs:
        return ""
    info, skips = ({ABOVE: [], BELOW: [], UNDECIDED: []} for _ in range(2))
    for objective in dict.fromkeys(d.objective for d in diffs):
        for groups, model, against in ((info, "vae", "vae"), (skips, "skip-vae", "plain")):
            d = find(diffs, objective, model, against, "mi")
            if d is not None:
                groups[d.decision if d.decision in (ABOVE, BELOW) else UNDECIDED].append(remedy_label(objective))
    parts = []
    for words, groups in ((("more information in $z$ than the plain VAE", "less", "not decided"), info),
                          (("skips add information to", "skips take information from", "skips not decided for"),
                           skips)):
        parts += [f"{w}: {', '.join(groups[k])}" for w, k in zip(words, (ABOVE, BELOW, UNDECIDED)) if groups[k]]
    title = DATASET_TITLES.get(dataset, dataset)
    return f"On {title} at the {diffs[0].check.profile} profile, judged on MI: " + "; ".join(parts) + "."


# ------------------------------------------------------------------------------ the published numbers beside

SETUP_LABELS = {"n_train": "training documents", "n_test": "test documents", "enc_hidden": "encoder LSTM units",
                "dec_hidden": "decoder LSTM units", "latent_dim": "latent dimension",
                "iw_samples": "importance samples (NLL)"}


def whole_split_text(name: str, dataset: str = "yahoo") -> str:
    """What 'the whole split' (a split size of None) is for Yahoo's training and test documents."""
    from skipvae.data.manifest import split_sizes
    from skipvae.data.yahoo import N_HOLDOUT

    sizes = split_sizes(dataset)
    if name == "n_train":
        return (f"all: {sizes['valid'] - N_HOLDOUT:,} without the 100k training file (the validation file less the "
                f"{N_HOLDOUT:,}-document hold-out), {sizes['train']:,} with it")
    return f"all: {sizes['test']:,}"


def setup_differences(runs: pd.DataFrame, table: str = PUBLISHED, profile: str | None = None) -> pd.DataFrame:
    """setting | published | ours: each setting the quoted table's `setup` names, ours from the configs of the runs
    (their values, joined when they differ), or before any run from make_config('yahoo', 'vae', profile or 'cpu')."""
    from skipvae.config import make_config

    quoted = paper_numbers()["tables"][table].attrs["setup"]
    runs = runs[runs["dataset"] == "yahoo"] if len(runs) else runs
    profile = profile or best_profile(runs) or "cpu"
    mine = runs[runs["profile"] == profile] if len(runs) else runs
    config = make_config("yahoo", "vae", profile)
    rows = []
    for key, published in quoted.items():
        values = sorted({None if pd.isna(v) else v for v in mine[key]}, key=str) if len(mine) and key in mine else \
            [getattr(config, key)]
        ours = "; ".join(whole_split_text(key) if v is None else f"{int(v):,}" for v in values)
        rows.append({"setting": SETUP_LABELS.get(key, key), "published": f"{int(published):,}",
                     f"ours ({profile})": ours})
    return pd.DataFrame(rows, columns=["setting", "published", f"ours ({profile})"])


def setup_caption(table: pd.DataFrame) -> str:
    source = paper_numbers()["tables"][PUBLISHED].attrs["source"]
    column = table.columns[-1]
    return (f"Yahoo: every setting the published remedies' numbers state (quoted from {source}) beside ours, from "
            f"the configs of our Yahoo runs at the {column.removeprefix('ours ').strip('()')} profile (before any "
            f"run: that profile's config); values joined by ';' differ between our runs.")


# ----------------------------------------------------------------------------------------------- the figure

def plot_mi_nll(runs: pd.DataFrame):
    """(figure, caption): MI against NLL, one point per run, remedies as colours, skips as marker shape, one panel per
    dataset (plots.plot_points)."""
    from skipvae.report.plots import plot_points, points_caption

    hue_order = [o for o in OBJECTIVES if o in set(runs["objective"])]
    style_order = [m for m in PAIR if m in set(runs["model"])]
    order = [d for d in DATASETS if d in set(runs["dataset"])] + sorted(set(runs["dataset"]) - set(DATASETS))
    fig = plot_points(runs, "nll", "mi", hue="objective", style="model", panel="dataset", hue_order=hue_order,
                      style_order=style_order, panel_order=order)
    caption = points_caption(runs, "nll", "mi", hue="objective", style="model", panel="dataset",
                             hue_order=hue_order, style_order=style_order, panel_order=order)
    for ax, dataset in zip(fig.axes, order):
        ax.set(title=DATASET_TITLES.get(dataset, dataset), xlabel=f"NLL (nats per {UNITS.get(dataset, 'example')})",
               ylabel="MI (nats)")
    units = "; ".join(f"{DATASET_TITLES.get(d, d)}: nats per {UNITS.get(d, 'example')}" for d in order)
    return fig, f"{caption} NLL ({units}) and MI in nats, on the test set."
