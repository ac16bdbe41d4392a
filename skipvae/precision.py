"""Validations of a change to how runs train that should not change what they compute: the same runs before and
after, several seeds each, compared. Two are declared (VALIDATIONS):

    precision   fp32 against bf16 autocast training, seeds 0-2: the PixelCNN (on PIXELCNN_CUT), LSTM and MLP VAEs;
    step        the eager against the compiled training step (compile_step, torch.compile) of the 9-layer PixelCNN
                VAE in bf16 on PIXELCNN_CUT, seeds 3-5: both sides trained on one machine, side by side.

    python -m skipvae.precision run [--validation step]     # train what is missing (resumable), records in RECORDS
    python -m skipvae.precision report                      # the comparison tables

For every metric m and seed s, d_s = m(after, s) - m(before, s). Reported: the per-seed differences, their mean
d, the seed standard deviation of each side (sample sd, ddof = 1), and the paired 95% interval
d +- t_{0.975, n-1} sd(d) / sqrt(n) (scipy). The after side *agrees* on a metric when |d| is at most the larger
seed sd (the difference is within seed noise); for the validation ELBO curve the same test is made at every epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from scipy import stats

from skipvae.config import WHOLE, RunConfig, make_config
from skipvae.records import REPO_ROOT

RUNS = REPO_ROOT / "runs" / "precision"  # checkpoints (git-ignored)
SEEDS = (0, 1, 2)
STEP_SEEDS = (3, 4, 5)  # the step validation's own seeds: its eager side is trained beside its compiled side
METRICS = ("neg_elbo", "kl", "mi", "au_0.01", "nll")


# The PixelCNN validation runs (session 3) used this cut of the cpu profile of the time; kept so that their
# records still match their configs.
PIXELCNN_CUT = dict(n_train=3000, n_valid=500, n_test=2000, epochs=4, iw_samples=20, n_eval_nll=200,
                    clf_n_train=WHOLE, clf_n_test=WHOLE,
                    notes="cpu profile, ablation cut: the paper's architecture on a smaller subset of the training "
                          "images for fewer epochs, with fewer importance samples")


def records_dir() -> Path:
    """Where the validation records are kept (committed, small JSON): $SKIPVAE_RESULTS or results/, precision/runs."""
    return Path(os.environ.get("SKIPVAE_RESULTS") or REPO_ROOT / "results") / "precision" / "runs"


def family_configs(family: str, amp: bool, seed: int) -> RunConfig:
    """The validated run of a model family at one precision and seed (all VAEs; cpu profile)."""
    if family == "pixelcnn":  # the paper's depth (9 layers) on the validation's own small cut
        return make_config("mnist", "vae", "cpu", dec_layers=9, amp=amp, seed=seed, **PIXELCNN_CUT)
    if family == "mlp":
        return make_config("mnist", "vae", "cpu", arch="mlp", amp=amp, seed=seed)
    if family == "lstm":
        return make_config("yahoo", "vae", "cpu", amp=amp, seed=seed)
    raise ValueError(f"unknown family {family!r}; valid: pixelcnn, mlp, lstm")


FAMILIES = ("pixelcnn", "lstm", "mlp")


def step_configs(family: str, compiled: bool, seed: int) -> RunConfig:
    """The step validation's run: the 9-layer PixelCNN VAE in bf16 on PIXELCNN_CUT, eager or compiled."""
    if family != "pixelcnn":
        raise ValueError(f"unknown family {family!r} for the step validation; valid: pixelcnn")
    return make_config("mnist", "vae", "cpu", dec_layers=9, amp=True, compile_step=compiled, seed=seed,
                       **PIXELCNN_CUT)


@dataclass(frozen=True)
class Validation:
    """Runs before and after a change, paired by seed: `config(family, after, seed)` plans them, `side(record)` says
    which side a record is on (False before, True after; None: not this validation's)."""
    name: str
    before: str
    after: str
    families: tuple
    seeds: tuple
    config: Callable[[str, bool, int], RunConfig]
    side: Callable[[dict], bool | None]

    def planned(self, families=None, seeds=None) -> list[tuple[str, RunConfig]]:
        """(family, config) of every run, seeds interleaved with the sides (pairs finish together)."""
        return [(f, self.config(f, after, s)) for f in families or self.families for s in seeds or self.seeds
                for after in (False, True)]


def _precision_side(record: dict) -> bool | None:
    c = record["config"]
    return None if c.get("compile_step") or c["seed"] not in SEEDS else bool(c.get("amp"))


def _step_side(record: dict) -> bool | None:
    c = record["config"]
    ok = c.get("arch") == "pixelcnn" and c.get("amp") and c["seed"] in STEP_SEEDS
    return bool(c.get("compile_step")) if ok else None


PRECISION = Validation("precision", "fp32", "bf16", FAMILIES, SEEDS, family_configs,
                       _precision_side)
STEP = Validation("step", "eager", "compiled", ("pixelcnn",), STEP_SEEDS, step_configs, _step_side)
VALIDATIONS = {v.name: v for v in (PRECISION, STEP)}


def cpu_profile_uses_bf16(family: str) -> bool:
    """Whether the cpu profile trains this family under bf16 autocast (its `amp` default in skipvae.config)."""
    dataset, arch = ("yahoo", "lstm") if family == "lstm" else ("mnist", family)
    return make_config(dataset, "vae", "cpu", arch=arch).amp


def planned(families=FAMILIES, seeds=SEEDS) -> list[tuple[str, RunConfig]]:
    """(family, config) of every precision validation run (PRECISION.planned)."""
    return PRECISION.planned(families, seeds)


def run(families=None, seeds=None, records: Path | None = None, runs: Path = RUNS,
        validation: Validation = PRECISION) -> None:
    """Train every planned run of `validation` that has no record yet (one at a time; each resumes from its
    checkpoint)."""
    from skipvae.train import train

    records = records or records_dir()
    records.mkdir(parents=True, exist_ok=True)
    for fam, cfg in validation.planned(families, seeds):
        path = records / f"{cfg.run_name()}.json"
        if path.exists():
            continue
        record = train(cfg, runs / cfg.run_name(), progress=False)
        path.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
        print(f"{validation.name} {fam} {validation.after if validation.side(record) else validation.before} "
              f"seed={cfg.seed}: -elbo {record['metrics']['neg_elbo']:.2f} ({record['wall_time_s']:.0f} s)",
              flush=True)


def family_of(record: dict) -> str:
    return record["config"]["arch"]


def load(records: Path | None = None) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(records or records_dir()).glob("*.json"))]


def paired(before: dict[int, float], after: dict[int, float]) -> dict:
    """Per-seed differences after - before over the seeds present in both, their mean, paired 95% interval
    (scipy's t), and the seed sd of each side."""
    seeds = sorted(set(before) & set(after))
    diffs = [after[s] - before[s] for s in seeds]
    n = len(diffs)
    out = {"seeds": seeds, "diffs": diffs, "mean_diff": statistics.fmean(diffs) if n else math.nan,
           "before_mean": statistics.fmean(before[s] for s in seeds) if n else math.nan,
           "after_mean": statistics.fmean(after[s] for s in seeds) if n else math.nan,
           "sd_before": statistics.stdev([before[s] for s in seeds]) if n > 1 else math.nan,
           "sd_after": statistics.stdev([after[s] for s in seeds]) if n > 1 else math.nan}
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else math.nan
    out["ci95"] = [out["mean_diff"] - half, out["mean_diff"] + half]
    noise = max(out["sd_before"], out["sd_after"])
    out["within_seed_noise"] = bool(n > 1 and abs(out["mean_diff"]) <= noise)
    return out


def compare(records: list[dict], validation: Validation = PRECISION) -> dict:
    """{family: {'metrics': {metric: paired(...)}, 'curve': [paired(...) per epoch], 'agrees': bool,
    'train_seconds': {before label: mean s, after label: ...}, 'n_pairs'}} from the records on a side of
    `validation` (the others are left out)."""
    by = {}
    for r in records:
        side = validation.side(r)
        if side is not None:
            by.setdefault(family_of(r), {False: {}, True: {}})[side][r["config"]["seed"]] = r
    out = {}
    for fam, runs in sorted(by.items()):
        metrics = {}
        for m in METRICS:
            vals = {side: {s: r["metrics"][m] for s, r in runs[side].items() if r["metrics"].get(m) is not None}
                    for side in (False, True)}
            metrics[m] = paired(vals[False], vals[True])
        epochs = min((len(r["history"]) for side in runs for r in runs[side].values()), default=0)
        curve = [paired({s: r["history"][e]["val_neg_elbo"] for s, r in runs[False].items()},
                        {s: r["history"][e]["val_neg_elbo"] for s, r in runs[True].items()}) for e in range(epochs)]
        agrees = len(metrics["neg_elbo"]["seeds"]) > 1 and all(
            p["within_seed_noise"] for p in list(metrics.values()) + curve if p["seeds"])
        seconds = {label: statistics.fmean(r["train_time_s"] for r in runs[side].values()) if runs[side] else math.nan
                   for label, side in ((validation.before, False), (validation.after, True))}
        out[fam] = {"metrics": metrics, "curve": curve, "agrees": agrees, "train_seconds": seconds,
                    "n_pairs": len(metrics["neg_elbo"]["seeds"])}
    return out


def one_signed(family: dict) -> list[str]:
    """The test metrics of one family's comparison on which every seed pair differs with the same sign, e.g.
    ['kl lower', 'mi lower']: a direction that the seed-noise rule of three pairs cannot tell from noise."""
    out = []
    for m, p in family["metrics"].items():
        d = p["diffs"]
        if len(d) > 1 and (all(x > 0 for x in d) or all(x < 0 for x in d)):
            out.append(f"{m} {'higher' if d[0] > 0 else 'lower'}")
    return out


def table(comparison: dict, validation: Validation = PRECISION) -> list[dict]:
    """One row per (family, metric) for the book: means, difference, interval and seed sds (numbers rounded)."""
    b, a = validation.before, validation.after
    rows = []
    for fam, c in comparison.items():
        items = list(c["metrics"].items())
        if c["curve"]:
            worst = max(c["curve"], key=lambda p: abs(p["mean_diff"]) / max(p["sd_before"], p["sd_after"], 1e-12))
            items.append(("val -ELBO curve (worst epoch)", worst))
        for m, p in items:
            if not p["seeds"]:
                continue
            rows.append({"model": f"{fam} VAE", "metric": m, "seeds": len(p["seeds"]), b: p["before_mean"],
                         a: p["after_mean"], "per seed": ", ".join(f"{d:+.3g}" for d in p["diffs"]),
                         f"{a} - {b}": p["mean_diff"],
                         "95% interval": f"[{p['ci95'][0]:.3g}, {p['ci95'][1]:.3g}]",
                         f"seed sd {b}": p["sd_before"], f"seed sd {a}": p["sd_after"],
                         "within seed noise": "yes" if p["within_seed_noise"] else "no"})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("run", "report"))
    ap.add_argument("--validation", choices=sorted(VALIDATIONS), default="precision")
    ap.add_argument("--families", nargs="+", default=None, help="default: every family of the validation")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    validation = VALIDATIONS[args.validation]
    if args.action == "run":
        import torch

        torch.set_num_threads(args.threads)
        run(tuple(args.families) if args.families else None, validation=validation)
    else:
        comparison = compare(load(), validation)
        for row in table(comparison, validation):
            print(row)
        for fam, c in comparison.items():
            print(f"{fam}: {c['n_pairs']} seed pairs, agrees: {c['agrees']}, train s {c['train_seconds']}")


if __name__ == "__main__":
    main()
