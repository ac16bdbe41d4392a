"""The claims ledger: the paper's own claims C1-C7 (book/paper_numbers.yaml, quoted from ../shared/REFERENCE.md),
each judged on our runs by checks with intervals over seeds and sanity gates.

A check compares two groups of runs on one metric (the skip model against its base, or a deep against a shallow
decoder), or one group against a level. It shows the paper's numbers and its own difference, ours (mean ± sd over n
seeds), the difference with its Welch 95% interval (`stats.welch`; a paired interval beside it where the seeds
correlate positively), whether our interval excludes the paper's effect, the collapsed seeds of each cell, the sanity
gates that failed, the profile it was judged on (the largest with MIN_SEEDS seeds for it), and one verdict:

    not claimed by the paper's table  the paper's own difference is not on the claimed side (e.g. a tie): not judged
    not tested at this scale  a gate failed (printed): these runs cannot show the effect
    inconclusive              fewer than MIN_SEEDS seeds on a side, or the interval contains the claimed bound
    smaller than the paper's effect  inconclusive, and the interval lies wholly on the near side of the paper's effect
    reproduced                the interval lies on the claimed side of the bound
    not reproduced            the interval lies on the other side

KL, MI, AU (and accuracy, silhouette) are a claim's primary checks; "similar ELBO" is a condition, shown beside them.
A claim's verdict, from its primary checks: reproduced when every tested one is; partly reproduced when some are
and others are not; not reproduced when at least one is and none is reproduced; smaller than the paper's effect when
none is decided and at least one is smaller; inconclusive otherwise; not tested at this scale when no check is
tested; not tested yet without runs.

Sanity gates (a failed gate makes the check "not tested at this scale"):
    smoke            smoke-profile runs (seconds of training) test the code, not the claim
    all active       an AU check where the base VAE keeps every unit active in every seed while the paper's VAE had
                     fewer: AU cannot separate the models at this scale
    MI ceiling       an MI check where either model's MI is within MI_CEILING_MARGIN nats of log N, the estimator's
                     ceiling for N test examples
    unigram floor    a text check where a decoder's NLL is not below the unigram model's by FLOOR_MARGIN (relative),
                     on the same documents: the decoder has not learned more than word frequencies
    SA encoder       a check on an SA model whose amortized encoder is collapsed (AU 0 at 0.01): the refined numbers,
                     which the claim is about, then come from SVI alone (both are shown)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from skipvae.config import NOT_IDENTITY, field_defaults
from skipvae.errors import DataError
from skipvae.report.stats import Interval, difference, level, paired
from skipvae.report.store import PROFILE_RANK, load_runs, load_theory, paper_numbers, reference_records
from skipvae.report.tables import (METRIC_LABELS, best_profile, classification_runs, fmt, fmt_mean_std,
                                   with_fixed)

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly reproduced", "not reproduced"
INCONCLUSIVE, NOT_AT_SCALE, NOT_YET = "inconclusive", "not tested at this scale", "not tested yet"
SMALLER, NOT_CLAIMED = "smaller than the paper's effect", "not claimed by the paper's table"
VERDICTS = (REPRODUCED, PARTLY, SMALLER, NOT_REPRODUCED, INCONCLUSIVE, NOT_AT_SCALE, NOT_CLAIMED, NOT_YET)
CHECK_VERDICTS = (REPRODUCED, SMALLER, INCONCLUSIVE, NOT_REPRODUCED, NOT_AT_SCALE, NOT_CLAIMED)  # counted per claim

# The rules' constants, fixed on 2026-12-01 before any run of the paper-aligned grids existed (see RULE_HISTORY).
MIN_SEEDS = 3
SIMILAR_ELBO = 0.01  # "similar ELBO": the skip model's ELBO is at most 1% of |ELBO| below its base model's
FLOOR_MARGIN = 0.02  # a text decoder must beat the unigram floor's NLL by 2% of it
MI_CEILING_MARGIN = 0.1  # nats below log N
COLLAPSED_KL = 0.1  # nats: "KL ~ 0" (C4; the paper's VAE: 0.005); also a collapsed seed (or AU 0)
# Fixed on 2026-12-02 (ledger v2), after the cpu results had been seen and before any paper-profile run existed:
COLLAPSED_MI = 0.1  # nats: C4's "the VAE collapses" also needs MI below this ...
COLLAPSED_AU = 0.5  # ... and AU (0.01) below this; 2 of the 3 level checks reproduced, none not reproduced

RULE_HISTORY = (
    "2026-12-01: the ledger moved from comparisons of seed means to intervals over seeds with sanity gates, and from "
    "paraphrased claims to the paper's own C1-C7. The cpu-profile runs of the earlier grids had been seen; the rules "
    "and constants above were fixed before any run of the paper-aligned grids (9 PixelCNN layers, Tables 1-4).",
    "2026-12-02 (ledger v2): Welch intervals replace the paired ones (a paired interval is shown beside only where "
    "the seeds correlate positively); every check is compared with the paper's own difference ('smaller than the "
    "paper's effect' when our interval lies wholly on the near side of it); a check whose effect the paper's table "
    "does not show is 'not claimed by the paper's table' and not judged; the all-active gate also covers the "
    "VAE-over-depth AU checks; KL, MI and AU are a claim's primary checks and 'similar ELBO' a condition shown "
    "beside them; C4's collapse is judged on KL, MI and AU together (COLLAPSED_MI, COLLAPSED_AU); collapsed seeds "
    "(KL < 0.1 nats or AU 0) are counted per cell; each check is judged on the largest profile with at least "
    "MIN_SEEDS seeds for it. The cpu-profile results had been seen when these rules were written; no paper-profile "
    "run existed.",
)


@dataclass
class Check:
    """One comparison: `a` and `b` are per-seed values (index: seed) of the two groups (b only for a difference)."""
    claim: str
    setting: str  # e.g. "latent 20"
    what: str  # e.g. "KL: Skip-VAE − VAE"
    claimed: str  # e.g. "> 0"
    paper: str
    ours: str
    interval: Interval | None
    gates: list[str] = field(default_factory=list)
    verdict: str = INCONCLUSIVE
    paper_effect: float | None = None  # the paper's own difference (or level) on the same scale as `interval`
    primary: bool = True  # KL, MI, AU, accuracy: the claim's verdict; False: a condition ("similar ELBO")
    paired: Interval | None = None  # shown beside the Welch interval where the seeds correlate positively
    collapsed: str = ""  # e.g. "VAE: 1 collapsed seed of 3"
    profile: str = ""

    def vs_paper(self) -> str:
        """Whether our interval excludes the paper's effect, and on which side."""
        iv = self.interval
        if iv is None or self.paper_effect is None or math.isnan(iv.low):
            return "–"
        if iv.high < self.paper_effect:
            return f"excludes it (smaller than {self.paper_effect:+.2f})"
        if iv.low > self.paper_effect:
            return f"excludes it (larger than {self.paper_effect:+.2f})"
        return f"includes {self.paper_effect:+.2f}"

    def row(self) -> dict:
        return {"claim": self.claim, "setting": self.setting, "check": f"{self.what} {self.claimed}",
                "kind": "primary" if self.primary else "condition", "profile": self.profile or "–",
                "paper": self.paper, "ours": self.ours,
                "difference [95% CI]": self.interval.text() if self.interval is not None else "–",
                "paired [95% CI]": self.paired.text() if self.paired is not None else "–",
                "vs the paper's effect": self.vs_paper(), "collapsed seeds": self.collapsed or "–",
                "gate": "; ".join(self.gates) or "–", "verdict": self.verdict}


def judge(interval: Interval, direction: int, bound: float, n_min: int, gates: list[str],
          paper_effect: float | None = None, primary: bool = True) -> str:
    """The verdict of one check: `direction` +1 claims the estimate is above `bound`, -1 below it.

    A primary check whose `paper_effect` (the paper's own difference) is not on the claimed side of `bound` is not
    claimed by the paper's table; an inconclusive primary check whose interval lies wholly between the bound and the
    paper's effect is "smaller than the paper's effect"."""
    if primary and paper_effect is not None and not direction * (paper_effect - bound) > 0:
        return NOT_CLAIMED
    if gates:
        return NOT_AT_SCALE
    if n_min < MIN_SEEDS or math.isnan(interval.low):
        return INCONCLUSIVE
    above, below = interval.excludes_above(bound), interval.excludes_below(bound)
    verdict = (REPRODUCED if above else NOT_REPRODUCED if below else INCONCLUSIVE) if direction > 0 else \
        (REPRODUCED if below else NOT_REPRODUCED if above else INCONCLUSIVE)
    if verdict == INCONCLUSIVE and primary and paper_effect is not None:
        near = interval.high < paper_effect if direction > 0 else interval.low > paper_effect
        return SMALLER if near else verdict
    return verdict


def claim_verdict(checks: list[Check]) -> str:
    """The claim's verdict from its primary checks' (the conditions, e.g. "similar ELBO", are shown beside it)."""
    if not checks:
        return NOT_YET
    primary = [c for c in checks if c.primary] or checks
    tested = [c.verdict for c in primary if c.verdict not in (NOT_AT_SCALE, NOT_CLAIMED)]
    if not tested:
        return NOT_AT_SCALE
    if all(v == REPRODUCED for v in tested):
        return REPRODUCED
    if REPRODUCED in tested:
        return PARTLY
    if NOT_REPRODUCED in tested:
        return NOT_REPRODUCED
    if SMALLER in tested:
        return SMALLER
    return INCONCLUSIVE


def verdict_counts(checks: list[Check], primary: bool = True) -> dict:
    """{verdict: number of checks} of the primary checks (or the conditions), in CHECK_VERDICTS order."""
    got = [c.verdict for c in checks if c.primary == primary]
    return {v: got.count(v) for v in CHECK_VERDICTS if got.count(v)}


def counts_text(counts: dict) -> str:
    return ", ".join(f"{n} {v}" for v, n in counts.items()) or "none"


# ------------------------------------------------------------------------------------------- building checks

NAMES = {"vae": "VAE", "skip-vae": "Skip-VAE", "sa-vae": "SA-VAE", "skip-sa-vae": "Skip-SA-VAE", "lm": "LM"}


def values(runs: pd.DataFrame, metric: str, **where) -> pd.Series:
    """The metric per seed (index: seed) of the runs matching `where`; empty if none. The runs must share one
    config but for the seed (one_config): a check never pools different runs."""
    rows = matching(runs, **where)
    if metric not in rows.columns or rows.empty:
        return pd.Series(dtype=float)
    one_config(rows, metric, where)
    return pd.to_numeric(rows.set_index("seed")[metric], errors="coerce").dropna()


def matching(runs: pd.DataFrame, **where) -> pd.DataFrame:
    """The runs whose columns equal `where` (none where a column is missing)."""
    for k, v in where.items():
        runs = runs[runs[k] == v] if k in runs.columns else runs.iloc[:0]
    return runs


def one_config(rows: pd.DataFrame, metric: str = "", where: dict | None = None) -> None:
    """DataError when `rows` differ in a config field other than the seed (a missing field read as its default),
    naming the fields and the runs: a value over seeds of different configs would mean nothing."""
    defaults = field_defaults()
    fields = [f for f in defaults if f in rows.columns and f not in ("seed", *NOT_IDENTITY)]
    seen = pd.DataFrame({f: [repr(defaults[f] if _is_missing(v) else v) for v in rows[f]] for f in fields})
    varying = [f for f in fields if seen[f].nunique() > 1]
    if varying:
        names = ", ".join(map(str, rows["name"])) if "name" in rows.columns else f"{len(rows)} runs"
        raise DataError(f"{metric or 'a check'} at {where or {}} would pool runs of different configs (they differ "
                        f"in {', '.join(varying)}): {names}; keep one config per cell (remove or move the others' "
                        f"records) or judge each config apart")


def _is_missing(v) -> bool:
    """None or NaN (a field a record predates); lists and dicts are values."""
    return not isinstance(v, (list, tuple, dict)) and bool(pd.isna(v))


def _ms(x: pd.Series, digits: int = 2) -> str:
    return f"{fmt_mean_std(x.mean(), x.std(ddof=1) if len(x) > 1 else None, digits)} (n={len(x)})"


def compare(claim: str, setting: str, metric: str, a: pd.Series, b: pd.Series, names: tuple[str, str],
            direction: int = 1, bound: float = 0.0, paper: str = "–", gates=(), scale: float = 1.0,
            paper_effect: float | None = None, primary: bool = True, collapsed: str = "") -> Check | None:
    """The check that mean(b) - mean(a) lies on the `direction` side of `bound` (None when a group has no run), by
    its Welch interval, beside the paper's own difference `paper_effect`."""
    if a.empty or b.empty:
        return None
    a, b = a * scale, b * scale
    interval = difference(a, b)
    digits = 1 if metric.startswith("au") else 2
    label = "ELBO" if metric == "elbo" else METRIC_LABELS.get(metric, metric)
    claimed = f"{'>' if direction > 0 else '<'} {fmt(bound, 2) if bound else '0'}"
    gates = [g for g in gates if g]
    return Check(claim, setting, f"{label}: {names[1]} − {names[0]}", claimed, paper,
                 f"{_ms(a, digits)} → {_ms(b, digits)}", interval, gates,
                 judge(interval, direction, bound, min(len(a), len(b)), gates, paper_effect, primary),
                 paper_effect=paper_effect, primary=primary, paired=paired(a, b), collapsed=collapsed)


def compare_level(claim: str, setting: str, metric: str, a: pd.Series, name: str, direction: int, bound: float,
                  paper: str = "–", gates=()) -> Check | None:
    """The check that mean(a) lies on the `direction` side of `bound` (one-sample interval)."""
    if a.empty:
        return None
    interval = level(a)
    label = METRIC_LABELS.get(metric, metric)
    gates = [g for g in gates if g]
    return Check(claim, setting, f"{label} of {name}", f"{'>' if direction > 0 else '<'} {bound:g}", paper, _ms(a),
                 interval, gates, judge(interval, direction, bound, len(a), gates))


def paper_diff(table: pd.DataFrame, metric: str, base: str = "vae", skip: str = "skip-vae", **where) -> float | None:
    """The paper's own difference skip - base on `metric` from a quoted table, or None."""
    rows = table
    for k, v in where.items():
        rows = rows[rows[k] == v]
    got = [rows[rows["model"] == m][metric] for m in (base, skip)] if metric in rows.columns else []
    if len(got) < 2 or any(g.empty or g.isna().all() for g in got):
        return None
    return float(got[1].iloc[0]) - float(got[0].iloc[0])


def collapsed_seeds(runs: pd.DataFrame, models=("vae", "skip-vae"), **where) -> str:
    """'VAE: 1 collapsed seed of 3' for each model with a collapsed seed (KL < COLLAPSED_KL or AU 0) here."""
    parts = []
    for m in models:
        kl, au = values(runs, "kl", model=m, **where), values(runs, "au_0.01", model=m, **where)
        seeds = sorted(set(kl.index) | set(au.index))
        n = sum(1 for s in seeds if kl.get(s, math.inf) < COLLAPSED_KL or au.get(s, math.inf) == 0)
        if n:
            parts.append(f"{NAMES.get(m, m)}: {n} collapsed seed{'s' if n > 1 else ''} of {len(seeds)}")
    return "; ".join(parts)


def paper_pair(table: pd.DataFrame, metric: str, base: str = "vae", skip: str = "skip-vae", **where) -> str:
    """'VAE x → Skip-VAE y' from a quoted table, or '–'."""
    rows = table
    for k, v in where.items():
        rows = rows[rows[k] == v]
    got = {m: rows[rows["model"] == m][metric] for m in (base, skip)}
    if any(g.empty or g.isna().all() for g in got.values()):
        return "–"
    x, y = (float(got[m].iloc[0]) for m in (base, skip))
    return f"{fmt(x)} → {fmt(y)} ({y - x:+.2f})"


# ------------------------------------------------------------------------------------------------ the gates

def gate_smoke(profile: str) -> str | None:
    return "smoke profile: seconds of training test the code, not the claim" if profile == "smoke" else None


def gate_all_active(metric: str, base: pd.Series, dim: int, paper_base_au: float | None) -> str | None:
    if not metric.startswith("au") or base.empty or paper_base_au is None or not paper_base_au < dim:
        return None
    if (base >= dim).all():
        return f"all active: the VAE keeps all {dim} units in every seed (paper: {paper_base_au:g})"
    return None


def gate_mi_ceiling(metric: str, groups: list[pd.Series], n_examples: float | None) -> str | None:
    if metric != "mi" or not n_examples:
        return None
    ceiling = math.log(n_examples)
    if any(len(g) and g.mean() > ceiling - MI_CEILING_MARGIN for g in groups):
        return f"MI ceiling: an MI within {MI_CEILING_MARGIN} nats of log N = {ceiling:.2f}"
    return None


def gate_floor(nll: dict[str, pd.Series], floors: dict[int, float], notebook: str = "yahoo") -> str | None:
    """A failed gate where a side's mean NLL (`nll`: name -> NLL per seed) is not FLOOR_MARGIN below the unigram
    floor on the same documents: the mean of `floors` ({seed: the floor's NLL}, unigram_floors) over the sides'
    seeds; a gate naming the seeds that have no floor."""
    if not nll:
        return None
    seeds = sorted(set().union(*(x.index for x in nll.values())))
    missing = [s for s in seeds if s not in floors]
    if missing:
        return (f"unigram floor: none computed for seed{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(str, missing))} (execute the {notebook} notebook)")
    floor = sum(floors[s] for s in seeds) / len(seeds)
    worst = [f"{NAMES.get(m, m)} {x.mean():.1f}" for m, x in nll.items()
             if len(x) and x.mean() > (1 - FLOOR_MARGIN) * floor]
    if worst:
        return (f"unigram floor: NLL {', '.join(worst)} not {FLOOR_MARGIN:.0%} below the unigram model's "
                f"{floor:.1f} on the same documents")
    return None


def gate_sa_encoder(runs: pd.DataFrame, models: list[str], **where) -> str | None:
    bad = []
    for m in models:
        if not m.endswith("sa-vae"):
            continue
        au, mi = values(runs, "au_0.01_amortized", model=m, **where), values(runs, "mi_amortized", model=m, **where)
        if len(au) and au.mean() == 0:
            bad.append(f"{NAMES[m]} (amortized MI {mi.mean():.3f}, AU 0; refined AU "
                       f"{values(runs, 'au_0.01', model=m, **where).mean():.1f})")
    return f"SA encoder collapsed: {'; '.join(bad)}; the refined numbers come from SVI alone" if bad else None


# ------------------------------------------------------------------------------------------------ the claims

def _skip_vs_vae(claim: str, runs: pd.DataFrame, table: pd.DataFrame, setting: str, where: dict, dim: int,
                 metrics=("kl", "mi", "au_0.01"), elbo: bool = True, gates=()) -> list[Check]:
    """Skip-VAE above the VAE on each metric, and its ELBO similar (at most SIMILAR_ELBO below), at one setting."""
    checks = []
    paper_where = {k: v for k, v in where.items() if k in table.columns}
    vae_au = table[(table["model"] == "vae")]
    for k, v in paper_where.items():
        vae_au = vae_au[vae_au[k] == v]
    paper_base_au = float(vae_au["au_0.01"].iloc[0]) if len(vae_au) and "au_0.01" in vae_au else None
    n_examples = pd.to_numeric(matching(runs, **where).get("n_examples", pd.Series(dtype=float))).max()  # both models
    n_examples = None if pd.isna(n_examples) else n_examples
    collapsed = collapsed_seeds(runs, **where)
    for m in metrics:
        a, b = values(runs, m, model="vae", **where), values(runs, m, model="skip-vae", **where)
        checks.append(compare(claim, setting, m, a, b, ("VAE", "Skip-VAE"), paper=paper_pair(table, m, **paper_where),
                              gates=[*gates, gate_all_active(m, a, dim, paper_base_au),
                                     gate_mi_ceiling(m, [a, b], n_examples)],
                              paper_effect=paper_diff(table, m, **paper_where), collapsed=collapsed))
    if elbo:
        a, b = values(runs, "elbo", model="vae", **where), values(runs, "elbo", model="skip-vae", **where)
        bound = -SIMILAR_ELBO * abs(a.mean()) if len(a) else 0.0
        checks.append(compare(claim, setting, "elbo", a, b, ("VAE", "Skip-VAE"), bound=bound,
                              paper=paper_pair(table, "elbo", **paper_where), gates=gates,
                              paper_effect=paper_diff(table, "elbo", **paper_where), primary=False,
                              collapsed=collapsed))
    return [c for c in checks if c is not None]


def claim1(runs: pd.DataFrame, profile: str) -> list[Check]:
    """C1 (Table 1): at every latent dimension the Skip-VAE has higher KL, MI and AU than the VAE, at an ELBO at most
    1% lower."""
    table, runs = paper_numbers()["tables"]["table1"], with_fixed(runs, "table1")
    checks = []
    for dim in sorted(runs["latent_dim"].unique()) if len(runs) else []:
        checks += _skip_vs_vae("C1", runs, table, f"latent {dim}", {"latent_dim": dim}, int(dim),
                               gates=[gate_smoke(profile)])
    return checks


def claim2(runs: pd.DataFrame, profile: str) -> list[Check]:
    """C2 (Table 2, Figure 1 right): at 1, 3, 6 and 9 layers the Skip-VAE has higher KL, MI and AU than the VAE at an
    ELBO at most 1% lower; its MI gain over the VAE is larger at the deepest than at the shallowest decoder; the
    VAE's KL, MI and AU are lower at the deepest than at the shallowest."""
    table, runs = paper_numbers()["tables"]["table2"], with_fixed(runs, "table2")
    checks, smoke = [], gate_smoke(profile)
    for dataset in sorted(runs["dataset"].unique()) if len(runs) else []:
        sub = runs[runs["dataset"] == dataset]
        depths = sorted(d for d in sub["dec_layers"].unique() if profile == "smoke" or d in (1, 3, 6, 9))
        for d in depths:
            setting = f"{dataset}, {d} layer{'s' if d > 1 else ''}"
            checks += _skip_vs_vae("C2", sub, table[table["dataset"] == dataset], setting, {"dec_layers": d},
                                   int(sub["latent_dim"].iloc[0]), gates=[smoke])
        if len(depths) < 2:
            continue
        lo, hi = depths[0], depths[-1]
        q = table[table["dataset"] == dataset]
        gain = {d: values(sub, "mi", model="skip-vae", dec_layers=d) - values(sub, "mi", model="vae", dec_layers=d)
                for d in (lo, hi)}
        paper_gain = {d: paper_pair(q, "mi", dec_layers=d) for d in (lo, hi)}
        gains = [paper_diff(q, "mi", dec_layers=d) for d in (lo, hi)]
        checks.append(compare("C2", f"{dataset}, {lo} → {hi} layers", "mi", gain[lo].dropna(), gain[hi].dropna(),
                              (f"gain at {lo}", f"gain at {hi}"), paper=f"{paper_gain[lo]}; {paper_gain[hi]}",
                              gates=[smoke], paper_effect=None if None in gains else gains[1] - gains[0]))
        dim = int(sub["latent_dim"].iloc[0])
        for m in ("kl", "mi", "au_0.01"):
            a, b = values(sub, m, model="vae", dec_layers=lo), values(sub, m, model="vae", dec_layers=hi)
            pa = q[(q["model"] == "vae") & q["dec_layers"].isin([lo, hi])].set_index("dec_layers")[m]
            both = lo in pa and hi in pa
            paper = f"{fmt(pa.get(lo))} → {fmt(pa.get(hi))}" if both else "–"
            checks.append(compare("C2", f"{dataset}, VAE {lo} → {hi} layers", m, a, b,
                                  (f"{lo} layers", f"{hi} layers"), direction=-1, paper=paper,
                                  gates=[smoke, gate_all_active(m, b, dim, float(pa[hi]) if both else None)],
                                  paper_effect=float(pa[hi] - pa[lo]) if both else None,
                                  collapsed=collapsed_seeds(sub, ("vae",), dec_layers=hi)))
    return [c for c in checks if c is not None]


def claim3(runs: pd.DataFrame, profile: str) -> list[Check]:
    """C3 (Table 3): with the weak MLP model (latent 50) at 2, 3 and 4 decoder layers the Skip-VAE has more active
    units and a higher KL than the VAE at an ELBO at most 1% lower (MI sits at its ceiling and is not judged)."""
    table, runs = paper_numbers()["tables"]["table3"], with_fixed(runs[runs["arch"] == "mlp"], "table3")
    checks = []
    for d in sorted(runs["dec_layers"].unique()) if len(runs) else []:
        checks += _skip_vs_vae("C3", runs, table, f"{d} decoder layers", {"dec_layers": d},
                               int(runs["latent_dim"].iloc[0]), metrics=("kl", "au_0.01"), gates=[gate_smoke(profile)])
    return checks


def claim4(runs: pd.DataFrame, profile: str, floors: dict[int, float]) -> list[Check]:
    """C4 (Table 4, Yahoo): the VAE collapses (KL below 0.1 nats); the Skip-VAE has more MI than the VAE; SA-VAE
    uses the latent space (AU above 0.5); Skip-SA-VAE has more MI than SA-VAE at an ELBO at most 1% lower, at 32 and
    64 dimensions; from 32 to 64 dimensions SA-VAE's MI and AU fall while Skip-SA-VAE's rise; Skip-SA-VAE uses all
    64 units (AU above 63.5)."""
    table, runs = paper_numbers()["tables"]["table4"], with_fixed(runs, "table4")
    if runs.empty:
        return []
    smoke = gate_smoke(profile)

    def gates(models, **where):
        nll = {m: values(runs, "nll", model=m, **where) for m in models}
        return [smoke, gate_floor({m: x for m, x in nll.items() if len(x)}, floors),
                gate_sa_encoder(runs, list(models), **where)]

    def paper(metric, model, dim):
        row = table[(table["model"] == model) & (table["latent_dim"] == dim)]
        return fmt(row[metric].iloc[0]) if len(row) else "–"

    checks = [vae_collapses(runs, paper, gates(["vae"], latent_dim=32)),
              compare("C4", "latent 32", "mi", values(runs, "mi", model="vae", latent_dim=32),
                      values(runs, "mi", model="skip-vae", latent_dim=32), ("VAE", "Skip-VAE"),
                      paper=paper_pair(table, "mi", latent_dim=32), gates=gates(["vae", "skip-vae"], latent_dim=32),
                      paper_effect=paper_diff(table, "mi", latent_dim=32),
                      collapsed=collapsed_seeds(runs, latent_dim=32)),
              compare_level("C4", "latent 32", "au_0.01", values(runs, "au_0.01", model="sa-vae", latent_dim=32),
                            "SA-VAE", 1, 0.5, paper("au_0.01", "sa-vae", 32), gates(["sa-vae"], latent_dim=32))]
    for dim in (32, 64):
        pair = ("sa-vae", "skip-sa-vae")
        a, b = (values(runs, "mi", model=m, latent_dim=dim) for m in pair)
        checks.append(compare("C4", f"latent {dim}", "mi", a, b, ("SA-VAE", "Skip-SA-VAE"),
                              paper=paper_pair(table, "mi", *pair, latent_dim=dim), gates=gates(pair, latent_dim=dim),
                              paper_effect=paper_diff(table, "mi", *pair, latent_dim=dim)))
        a, b = (values(runs, "elbo", model=m, latent_dim=dim) for m in pair)
        checks.append(compare("C4", f"latent {dim}", "elbo", a, b, ("SA-VAE", "Skip-SA-VAE"),
                              bound=-SIMILAR_ELBO * abs(a.mean()) if len(a) else 0.0,
                              paper=paper_pair(table, "elbo", *pair, latent_dim=dim),
                              gates=gates(pair, latent_dim=dim), primary=False))
    for model, direction in (("sa-vae", -1), ("skip-sa-vae", 1)):
        for m in ("mi", "au_0.01"):
            quoted = [table[(table["model"] == model) & (table["latent_dim"] == d)][m] for d in (32, 64)]
            effect = float(quoted[1].iloc[0] - quoted[0].iloc[0]) if all(len(x) for x in quoted) else None
            checks.append(compare("C4", f"{NAMES[model]} 32 → 64", m, values(runs, m, model=model, latent_dim=32),
                                  values(runs, m, model=model, latent_dim=64), ("32", "64"), direction=direction,
                                  paper=f"{paper(m, model, 32)} → {paper(m, model, 64)}", paper_effect=effect,
                                  gates=[*gates([model], latent_dim=32), *gates([model], latent_dim=64)]))
    checks.append(compare_level("C4", "latent 64", "au_0.01", values(runs, "au_0.01", model="skip-sa-vae",
                                                                     latent_dim=64),
                                "Skip-SA-VAE", 1, 63.5, paper("au_0.01", "skip-sa-vae", 64),
                                gates(["skip-sa-vae"], latent_dim=64)))
    for c in checks:
        if c is not None:
            c.gates = list(dict.fromkeys(c.gates))  # a gate shared by both settings once
    return [c for c in checks if c is not None]


def vae_collapses(runs: pd.DataFrame, paper, gates) -> Check | None:
    """C4's "the VAE collapses" at latent 32, judged on KL, MI and AU together: level checks KL < COLLAPSED_KL,
    MI < COLLAPSED_MI and AU (0.01) < COLLAPSED_AU; reproduced when at least two are and none is not reproduced,
    not reproduced when at least two are not."""
    parts = [compare_level("C4", "latent 32", m, values(runs, m, model="vae", latent_dim=32), "VAE", -1, bound,
                           paper(m, "vae", 32), gates)
             for m, bound in (("kl", COLLAPSED_KL), ("mi", COLLAPSED_MI), ("au_0.01", COLLAPSED_AU))]
    parts = [c for c in parts if c is not None]
    if not parts:
        return None
    got = [c.verdict for c in parts]
    if any(v == NOT_AT_SCALE for v in got):
        verdict = NOT_AT_SCALE
    elif got.count(REPRODUCED) >= 2 and NOT_REPRODUCED not in got:
        verdict = REPRODUCED
    elif got.count(NOT_REPRODUCED) >= 2:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    return Check("C4", "latent 32", "VAE collapsed: KL, MI, AU (0.01)",
                 f"< {COLLAPSED_KL:g}, {COLLAPSED_MI:g}, {COLLAPSED_AU:g}", "; ".join(c.paper for c in parts),
                 "; ".join(f"{c.what.split(' of ')[0]} {c.ours} {c.interval.text()}" for c in parts), None,
                 list(dict.fromkeys(g for c in parts for g in c.gates)), verdict,
                 collapsed=collapsed_seeds(runs, ("vae",), latent_dim=32))


def claim5(runs: pd.DataFrame, profile: str) -> list[Check]:
    """C5 (classification): the paper's MLP classifier on the posterior means is more accurate for the Skip-VAE than
    for the VAE, with the 9-layer PixelCNN (latent 50) and with the MLP model (latent 50, 2 decoder layers)."""
    quoted = paper_numbers()["tables"]["classification_mnist"]
    smoke = gate_smoke(profile)
    studied = classification_runs(runs)
    groups = {arch: studied[studied["arch"] == arch] for arch in ("pixelcnn", "mlp")}
    checks = []
    for arch, sub in groups.items():
        metric = "classification.mlp.acc"
        a, b = values(sub, metric, model="vae"), values(sub, metric, model="skip-vae")
        q = quoted[quoted["arch"] == arch].set_index("model")["accuracy"]
        paper = f"{fmt(q['vae'])} → {fmt(q['skip-vae'])} ({q['skip-vae'] - q['vae']:+.2f})"
        check = compare("C5", f"{arch}, latent 50", "accuracy", a, b, ("VAE", "Skip-VAE"), paper=paper,
                        gates=[smoke], scale=100.0, paper_effect=float(q["skip-vae"] - q["vae"]))
        if check is not None:
            check.what = "MLP classifier accuracy (%): Skip-VAE − VAE"
            checks.append(check)
    return checks


def claim6(runs: pd.DataFrame, profile: str) -> list[Check]:
    """C6 (Figure 2): the t-SNE of the Skip-VAE's test-set posterior means (9-layer PixelCNN, latent 50) separates the
    digits better than the VAE's: a higher silhouette under the true labels and a higher 5-NN accuracy in 2-D."""
    sub = runs[(runs["arch"] == "pixelcnn") & (runs["latent_dim"] == 50)
               & ((runs["dec_layers"] == 9) | (profile == "smoke"))]  # smoke: its smaller decoder
    checks = []
    for metric in ("tsne_silhouette", "tsne_knn5_accuracy"):
        checks.append(compare("C6", "pixelcnn, latent 50", metric, values(sub, metric, model="vae"),
                              values(sub, metric, model="skip-vae"), ("VAE", "Skip-VAE"),
                              paper="the Skip-VAE's means cluster by digit, the VAE's are spread out (a figure)",
                              gates=[gate_smoke(profile)]))
    return [c for c in checks if c is not None]


def claim7(data: dict | None) -> list[Check]:
    """C7 (Theorem 1), in closed form (`data`: results/theory/theory.json): not reproduced when a model and the same
    model with its skips taken out give I_p^skip < I_p^vae, in the smallest counterexample or in the sweep of deep
    linear-Gaussian decoders (the theorem as stated: for all weights); inconclusive where none is found, since no
    finite search proves a statement for all weights. The existence reading and the broken link of the proof sketch
    are shown beside it."""
    if data is None:
        return []
    checks = []
    what, claimed = "I_p(x; z): skip − the same model without skips", ">= 0 for all weights"
    if "counterexample" in data:
        c = data["counterexample"]
        shown = (f"1-D model a1 = {c['a1']:g}, a2 = {c['a2']:g}, b = {c['b']:g}, Var e_h = {c['var_h']:g}: I_skip = "
                 f"{c.get('mi_skip_exact', fmt(c['mi_skip'], 3))}, "
                 f"I_vae = {c.get('mi_vae_exact', fmt(c['mi_vae'], 3))}")
        links = (data.get("proof_chain") or {}).get("links", [])
        broken = [f"link {x['link']} {x['lhs']} ≥ {x['rhs']} ({fmt(x['lhs_nats'], 3)} vs {fmt(x['rhs_nats'], 3)})"
                  for x in links if not x["holds"]]
        if broken:
            shown += "; the proof sketch breaks at " + "; ".join(broken)
        e = data.get("existence")
        if e:
            shown += (f"; existence reading {'holds' if e['holds'] else 'fails'} (aligned skips keep I_p in "
                      f"{e['aligned_not_lowered']} of {e['draws']} plain models)")
        checks.append(Check("C7", "smallest counterexample, closed form", what, claimed, "Theorem 1", shown, None, [],
                            NOT_REPRODUCED if c["mi_skip"] < c["mi_vae"] else INCONCLUSIVE))
    rows = pd.DataFrame(data.get("rows") or [])
    if len(rows):
        lowered = int((rows["mi_skip"] < rows["mi_no_skip"] - 1e-12).sum())
        checks.append(Check("C7", "deep linear-Gaussian sweep, closed form", what, claimed, "Theorem 1",
                            f"skips lower I_p in {lowered} of {len(rows)} settings", None, [],
                            NOT_REPRODUCED if lowered else INCONCLUSIVE))
    return checks


# ------------------------------------------------------------------------------------------------ the ledger

CLAIM_RULES = {"C1": ("latent_dim", claim1), "C2": ("depth", claim2), "C3": ("mnist", claim3),
               "C4": ("yahoo", claim4), "C5": ("mnist", claim5), "C6": ("mnist", claim6), "C7": ("theory", None)}


def unigram_floor_record(profile: str, experiment: str = "yahoo") -> dict | None:
    """The metrics of <results>/<experiment>/reference/unigram.json at this profile (runner.unigram_reference: the
    floor on the first n_eval_nll test documents)."""
    found = reference_records(experiment, profile, "unigram")
    return found[0]["metrics"] if found else None


def unigram_floors(runs: pd.DataFrame, profile: str, experiment: str = "yahoo") -> dict[int, float]:
    """The unigram floor's NLL for each seed of `runs` at `profile`, on the documents those runs score: with
    nll_subset 'first' the one floor on the first test documents (reference 'unigram'), with 'random' each seed's
    own (references 'unigram-random-s<seed>'); seeds without a floor are left out (gate_floor names them)."""
    subsets = set(runs["nll_subset"].fillna("first")) if "nll_subset" in runs.columns else {"first"}
    if len(subsets) > 1:
        raise DataError(f"the {experiment} runs at profile {profile!r} score their NLL on different documents "
                        f"(nll_subset {sorted(subsets)}): one floor gate cannot judge them together")
    seeds = sorted(int(s) for s in runs["seed"].unique()) if len(runs) else []
    if subsets == {"first"}:
        first = unigram_floor_record(profile, experiment)
        return {s: float(first["nll"]) for s in seeds} if first else {}
    return {int(r["settings"]["seed"]): float(r["metrics"]["nll"])
            for r in reference_records(experiment, profile, "unigram-random-s*")}


def claim_checks(claim: str, runs: pd.DataFrame | None = None, root=None) -> tuple[list[Check], str | None]:
    """The checks of one claim on `runs` (default: every record of its experiment) at their largest profile, and
    that profile."""
    if claim not in CLAIM_RULES:
        raise DataError(f"unknown claim {claim!r}; the claims are {', '.join(CLAIM_RULES)}")
    experiment, rule = CLAIM_RULES[claim]
    if rule is None:
        data = load_theory(root)
        return claim7(data), (data or {}).get("provenance", {}).get("profile")
    runs = load_runs(experiment, root) if runs is None else runs
    profile = best_profile(runs) or ("smoke" if len(runs) else None)  # smoke only: checks with the smoke gate
    if profile is None:
        return [], None
    ranked = [p for p in ("paper", "cpu") if p in set(runs["profile"])] or [profile]
    chosen: dict = {}
    for p in ranked:  # each check from the largest profile with MIN_SEEDS seeds for it, else the largest it has
        sub = runs[runs["profile"] == p]
        got = rule(sub, p, unigram_floors(with_fixed(sub, "table4"), p)) if claim == "C4" else rule(sub, p)
        for c in got:
            c.profile = p
            old = chosen.get((c.setting, c.what))
            if old is None or (_seeds(old) < MIN_SEEDS <= _seeds(c)):
                chosen[(c.setting, c.what)] = c
    return list(chosen.values()), ranked[0]


def page_checks(claim: str, runs: pd.DataFrame, profile: str) -> tuple[list[Check], str | None]:
    """The checks of `claim` as an experiment page shows them: the ledger's own (`claim_checks` on every committed
    record of its experiment, so that a page never says other than the claims page), or, at the smoke profile,
    the notebook's own `runs` (CI checks the wiring, not the ledger)."""
    return claim_checks(claim, runs if profile == "smoke" else None)


def _seeds(check: Check) -> int:
    return check.interval.n if check.interval is not None else MIN_SEEDS


def checks_table(checks: list[Check]) -> pd.DataFrame:
    """The checks as a table (one row each), for a notebook or a page."""
    return pd.DataFrame([c.row() for c in checks],
                        columns=["claim", "setting", "check", "kind", "profile", "paper", "ours",
                                 "difference [95% CI]", "paired [95% CI]", "vs the paper's effect", "collapsed seeds",
                                 "gate", "verdict"])


def rule_text(claim: str) -> str:
    """The rule of a claim in words: the first paragraph of its function's docstring."""
    rule = CLAIM_RULES[claim][1] or claim7
    return " ".join(rule.__doc__.split("\n\n")[0].split())


def claims_ledger(root: str | Path | None = None) -> pd.DataFrame:
    """One row per claim: claim (C1...), source, text (the paper's statement), verdict, profile, checks (list of
    Check), rule (in words), pages."""
    rows = []
    for c in paper_numbers()["claims"]:
        if c["id"] not in CLAIM_RULES:
            raise DataError(f"claim {c['id']!r} of paper_numbers.yaml has no rule in skipvae.report.claims")
        checks, profile = claim_checks(c["id"], root=root)
        seeds = sorted({c.interval.n for c in checks if c.interval is not None and c.primary})
        rows.append({"claim": c["id"], "source": c.get("source", ""), "text": c["text"],
                     "verdict": claim_verdict(checks), "profile": checked_profiles(checks, profile), "checks": checks,
                     "primary": counts_text(verdict_counts(checks)),
                     "conditions": counts_text(verdict_counts(checks, primary=False)),
                     "seeds": "–" if not seeds else (f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"),
                     "rule": rule_text(c["id"]), "pages": c["pages"]})
    return pd.DataFrame(rows, columns=["claim", "source", "text", "verdict", "profile", "checks", "primary",
                                       "conditions", "seeds", "rule", "pages"])


README_START, README_END = "<!-- verdicts:start (python -m skipvae verdicts --write README.md) -->", \
    "<!-- verdicts:end -->"


def verdict_table(root: str | Path | None = None) -> str:
    """The verdicts at a glance, as a Markdown table (claim, source, verdict, primary checks, conditions, profile,
    seeds), generated from the ledger: the README's results summary and the book's intro show it."""
    ledger = claims_ledger(root)
    lines = ["| claim | source | verdict | primary checks | conditions | profile | seeds |",
             "|---|---|---|---|---|---|---|"]
    for r in ledger.itertuples(index=False):
        lines.append(f"| {r.claim} | {r.source} | **{r.verdict}** | {r.primary} | {r.conditions} | "
                     f"{r.profile or '–'} | {r.seeds} |")
    return "\n".join(lines)


def readme_with_verdicts(text: str, table: str) -> str:
    """`text` (the README) with the block between README_START and README_END replaced by `table`."""
    if README_START not in text or README_END not in text:
        raise DataError(f"the README has no verdict block: add the lines {README_START!r} and {README_END!r}")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_START}\n{table}\n{README_END}{tail}"


def claim_summary(claim: str, checks: list[Check], profile: str | None) -> str:
    """One sentence for a notebook's interpretation: the claim's verdict on these runs and its checks' counts."""
    if not checks:
        return f"{claim}: these runs give no check."
    primary = [c for c in checks if c.primary]
    noun = "primary check" if len(primary) == 1 else "primary checks"
    conditions = verdict_counts(checks, primary=False)
    beside = f"; conditions: {counts_text(conditions)}" if conditions else ""
    return (f"{claim} on {profiles_text(checks, profile)}: **{claim_verdict(checks)}** ({len(primary)} {noun}: "
            f"{counts_text(verdict_counts(checks))}{beside}).")


def checked_profiles(checks: list[Check], fallback: str | None = None) -> str | None:
    """The profiles the primary checks were judged on, largest first ('cpu', or 'paper, cpu' when checks come from
    both): not merely the largest profile that has runs."""
    found = {c.profile or fallback for c in checks if c.primary} - {None, ""}
    return ", ".join(sorted(found, key=lambda p: -PROFILE_RANK.get(p, -1))) or fallback


def profiles_text(checks: list[Check], fallback: str | None = None) -> str:
    """Where the checks were judged: 'the cpu-profile runs', or, when checks come from different profiles (each
    from the largest with enough seeds for it), the count per profile."""
    found = Counter(c.profile or fallback for c in checks)
    if len(found) == 1:
        return f"the {next(iter(found))}-profile runs"
    order = sorted(found, key=lambda p: -PROFILE_RANK.get(p, -1))
    return "the runs of each check's largest profile with enough seeds (" + ", ".join(
        f"{p}: {found[p]} {'check' if found[p] == 1 else 'checks'}" for p in order) + ")"


__all__ = ["REPRODUCED", "PARTLY", "NOT_REPRODUCED", "INCONCLUSIVE", "NOT_AT_SCALE", "NOT_YET", "VERDICTS", "SMALLER",
           "NOT_CLAIMED", "CHECK_VERDICTS", "COLLAPSED_MI", "COLLAPSED_AU", "verdict_counts", "counts_text",
           "profiles_text", "checked_profiles", "paper_diff", "collapsed_seeds", "verdict_table",
           "readme_with_verdicts", "MIN_SEEDS", "SIMILAR_ELBO", "FLOOR_MARGIN", "MI_CEILING_MARGIN", "COLLAPSED_KL",
           "RULE_HISTORY", "Check", "judge", "claim_verdict", "values", "compare", "compare_level", "CLAIM_RULES",
           "claim_checks", "page_checks", "claim7", "checks_table", "rule_text", "claims_ledger", "claim_summary",
           "unigram_floor_record", "unigram_floors"]
