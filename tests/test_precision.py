"""skipvae.precision: the paired fp32 / bf16 comparison on synthetic records."""

import math

import pytest

from skipvae import precision
from skipvae.precision import STEP, compare, paired, table


def record(amp, seed, neg_elbo, curve, arch="mlp", compiled=False):
    return {"config": {"arch": arch, "amp": amp, "seed": seed, "compile_step": compiled},
            "train_time_s": 10.0 if amp or compiled else 20.0,
            "metrics": {"neg_elbo": neg_elbo, "kl": 5.0 + seed, "mi": 2.0, "au_0.01": 10, "nll": neg_elbo - 3},
            "history": [{"val_neg_elbo": v} for v in curve]}


def test_paired_differences_interval_and_seed_sd():
    p = paired({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.5, 1: 2.5, 2: 3.2})
    assert p["diffs"] == pytest.approx([0.5, 0.5, 0.2])
    assert p["mean_diff"] == pytest.approx(0.4)
    sd = math.sqrt(((0.1) ** 2 * 2 + 0.2 ** 2) / 2)
    assert p["ci95"] == pytest.approx([0.4 - 4.302653 * sd / math.sqrt(3), 0.4 + 4.302653 * sd / math.sqrt(3)])
    assert p["sd_before"] == pytest.approx(1.0) and p["within_seed_noise"]
    assert not paired({0: 1.0, 1: 1.1}, {0: 5.0, 1: 5.1})["within_seed_noise"]


def test_compare_agrees_only_within_seed_noise_on_metrics_and_curve():
    close = [record(amp, s, 90 + s + (0.1 if amp else 0), [100 + s, 95 + s]) for amp in (0, 1) for s in range(3)]
    c = compare(close)["mlp"]
    assert c["agrees"] and c["n_pairs"] == 3 and len(c["curve"]) == 2
    assert c["train_seconds"] == {"fp32": 20.0, "bf16": 10.0}
    far_curve = [record(amp, s, 90 + s, [100 + s + (9 if amp else 0), 95 + s]) for amp in (0, 1) for s in range(3)]
    assert not compare(far_curve)["mlp"]["agrees"]
    rows = table(compare(close))
    assert {r["metric"] for r in rows} >= {"neg_elbo", "kl", "mi", "au_0.01", "nll", "val -ELBO curve (worst epoch)"}


def test_the_step_validation_pairs_eager_and_compiled_bf16_runs_of_its_own_seeds():
    """The compiled step is judged on its own seeds (3-5), bf16 eager against bf16 compiled; the precision
    validation's records (seeds 0-2, fp32 or bf16, eager) are not part of it, nor it of theirs."""
    step = [record(1, s, 90 + s + (0.05 if c else 0), [100 + s], arch="pixelcnn", compiled=c)
            for c in (False, True) for s in (3, 4, 5)]
    others = [record(amp, s, 90 + s, [100 + s], arch="pixelcnn") for amp in (0, 1) for s in range(3)]
    c = compare(step + others, STEP)["pixelcnn"]
    assert c["n_pairs"] == 3 and c["metrics"]["neg_elbo"]["seeds"] == [3, 4, 5] and c["agrees"]
    assert c["train_seconds"] == {"eager": 10.0, "compiled": 10.0}
    assert precision.one_signed(c) == ["neg_elbo higher", "nll higher"]  # +0.05 in every seed; kl, mi, au tie
    assert compare(step + others)["pixelcnn"]["metrics"]["neg_elbo"]["seeds"] == [0, 1, 2]
    rows = table(compare(step, STEP), STEP)
    assert {"eager", "compiled", "compiled - eager", "seed sd eager"} <= set(rows[0])
    assert [cfg.compile_step for _, cfg in STEP.planned()] == [False, True] * 3
    assert {cfg.amp for _, cfg in STEP.planned()} == {True} and {cfg.seed for _, cfg in STEP.planned()} == {3, 4, 5}
