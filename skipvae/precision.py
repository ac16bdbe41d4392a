"""Validation of bf16 autocast training: the same runs in fp32 and bf16, several seeds each, compared.

    python -m skipvae.precision run        # train what is missing (resumable), copy the records to RECORDS
    python -m skipvae.precision report     # the comparison table

For every metric m and seed s, d_s = m(bf16, s) - m(fp32, s). Reported: the per-seed differences, their mean
d, the seed standard deviation of each precision (sample sd, ddof = 1), and the paired 95% interval
d +- t_{0.975, n-1} sd(d) / sqrt(n). bf16 *agrees* on a metric when |d| is at most the larger seed sd (the
difference is within seed noise); for the validation ELBO curve the same test is made at every epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from pathlib import Path

from skipvae.config import WHOLE, RunConfig, make_config
from skipvae.records import REPO_ROOT

RUNS = REPO_ROOT / "runs" / "precision"  # checkpoints (git-ignored)
SEEDS = (0, 1, 2)
METRICS = ("neg_elbo", "kl", "mi", "au_0.01", "nll")
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


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


def cpu_profile_uses_bf16(family: str) -> bool:
    """Whether the cpu profile trains this family under bf16 autocast (its `amp` default in skipvae.config)."""
    dataset, arch = ("yahoo", "lstm") if family == "lstm" else ("mnist", family)
    return make_config(dataset, "vae", "cpu", arch=arch).amp


def planned(families=FAMILIES, seeds=SEEDS) -> list[tuple[str, RunConfig]]:
    """(family, config) of every validation run, seeds interleaved with precisions (pairs finish together)."""
    return [(f, family_configs(f, amp, s)) for f in families for s in seeds for amp in (False, True)]


def run(families=FAMILIES, seeds=SEEDS, records: Path | None = None, runs: Path = RUNS) -> None:
    """Train every planned run that has no record yet (one at a time; each resumes from its checkpoint)."""
    from skipvae.train import train

    records = records or records_dir()
    records.mkdir(parents=True, exist_ok=True)
    for fam, cfg in planned(families, seeds):
        path = records / f"{cfg.run_name()}.json"
        if path.exists():
            continue
        record = train(cfg, runs / cfg.run_name(), progress=False)
        path.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
        print(f"{fam} amp={cfg.amp} seed={cfg.seed}: -elbo {record['metrics']['neg_elbo']:.2f} "
              f"({record['wall_time_s']:.0f} s)", flush=True)


def family_of(record: dict) -> str:
    return record["config"]["arch"]


def load(records: Path | None = None) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(records or records_dir()).glob("*.json"))]


def paired(fp32: dict[int, float], bf16: dict[int, float]) -> dict:
    """Per-seed differences bf16 - fp32 over the seeds present in both, their mean, paired 95% interval, and
    the seed sd of each precision."""
    seeds = sorted(set(fp32) & set(bf16))
    diffs = [bf16[s] - fp32[s] for s in seeds]
    n = len(diffs)
    out = {"seeds": seeds, "diffs": diffs, "mean_diff": statistics.fmean(diffs) if n else math.nan,
           "fp32_mean": statistics.fmean(fp32[s] for s in seeds) if n else math.nan,
           "bf16_mean": statistics.fmean(bf16[s] for s in seeds) if n else math.nan,
           "sd_fp32": statistics.stdev([fp32[s] for s in seeds]) if n > 1 else math.nan,
           "sd_bf16": statistics.stdev([bf16[s] for s in seeds]) if n > 1 else math.nan}
    half = T975[n - 1] * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else math.nan
    out["ci95"] = [out["mean_diff"] - half, out["mean_diff"] + half]
    noise = max(out["sd_fp32"], out["sd_bf16"])
    out["within_seed_noise"] = bool(n > 1 and abs(out["mean_diff"]) <= noise)
    return out


def compare(records: list[dict]) -> dict:
    """{family: {'metrics': {metric: paired(...)}, 'curve': [paired(...) per epoch], 'agrees': bool,
    'seconds': {'fp32': mean wall s, 'bf16': ...}}} from the validation records."""
    by = {}
    for r in records:
        amp = bool(r["config"].get("amp"))
        by.setdefault(family_of(r), {False: {}, True: {}})[amp][r["config"]["seed"]] = r
    out = {}
    for fam, runs in sorted(by.items()):
        metrics = {}
        for m in METRICS:
            vals = {amp: {s: r["metrics"][m] for s, r in runs[amp].items() if r["metrics"].get(m) is not None}
                    for amp in (False, True)}
            metrics[m] = paired(vals[False], vals[True])
        epochs = min((len(r["history"]) for amp in runs for r in runs[amp].values()), default=0)
        curve = [paired({s: r["history"][e]["val_neg_elbo"] for s, r in runs[False].items()},
                        {s: r["history"][e]["val_neg_elbo"] for s, r in runs[True].items()}) for e in range(epochs)]
        agrees = len(metrics["neg_elbo"]["seeds"]) > 1 and all(
            p["within_seed_noise"] for p in list(metrics.values()) + curve if p["seeds"])
        seconds = {name: statistics.fmean(r["train_time_s"] for r in runs[amp].values()) if runs[amp] else math.nan
                   for name, amp in (("fp32", False), ("bf16", True))}
        out[fam] = {"metrics": metrics, "curve": curve, "agrees": agrees, "train_seconds": seconds,
                    "n_pairs": len(metrics["neg_elbo"]["seeds"])}
    return out


def table(comparison: dict) -> list[dict]:
    """One row per (family, metric) for the book: means, difference, interval and seed sds (numbers rounded)."""
    rows = []
    for fam, c in comparison.items():
        items = list(c["metrics"].items())
        if c["curve"]:
            worst = max(c["curve"], key=lambda p: abs(p["mean_diff"]) / max(p["sd_fp32"], p["sd_bf16"], 1e-12))
            items.append(("val -ELBO curve (worst epoch)", worst))
        for m, p in items:
            if not p["seeds"]:
                continue
            rows.append({"model": f"{fam} VAE", "metric": m, "seeds": len(p["seeds"]), "fp32": p["fp32_mean"],
                         "bf16": p["bf16_mean"], "per seed": ", ".join(f"{d:+.3g}" for d in p["diffs"]),
                         "bf16 - fp32": p["mean_diff"],
                         "95% interval": f"[{p['ci95'][0]:.3g}, {p['ci95'][1]:.3g}]",
                         "seed sd fp32": p["sd_fp32"], "seed sd bf16": p["sd_bf16"],
                         "within seed noise": "yes" if p["within_seed_noise"] else "no"})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("run", "report"))
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.action == "run":
        import torch

        torch.set_num_threads(args.threads)
        run(tuple(args.families))
    else:
        comparison = compare(load())
        for row in table(comparison):
            print(row)
        for fam, c in comparison.items():
            print(f"{fam}: {c['n_pairs']} seed pairs, agrees: {c['agrees']}, train s {c['train_seconds']}")


if __name__ == "__main__":
    main()
