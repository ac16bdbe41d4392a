"""The claims ledger (skipvae.report.claims) on synthetic records where the answer is known: the intervals against
scipy, each verdict, each sanity gate, and how checks add up to a claim's verdict."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from skipvae import report
from skipvae.config import make_config
from skipvae.errors import DataError
from skipvae.report.claims import (INCONCLUSIVE, MIN_SEEDS, NOT_AT_SCALE, NOT_CLAIMED, NOT_REPRODUCED, NOT_YET,
                                   PARTLY, REPRODUCED, SMALLER, Check, claim_checks, claim_verdict, gate_floor, judge,
                                   verdict_counts)
from skipvae.report.stats import difference, level, paired


# ------------------------------------------------------------------------------------------- intervals

def test_the_primary_interval_is_welch_even_when_seeds_pair_and_paired_is_shown_beside_it():
    a = pd.Series([1.0, 2.0, 4.0, 3.5], index=[0, 1, 2, 3])
    b = pd.Series([1.6, 2.1, 4.9, 4.4], index=[0, 1, 2, 3]).iloc[[3, 1, 2, 0]]  # order does not matter: seeds pair
    got = difference(a, b)
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert got.method == "Welch" and (got.low, got.high) == pytest.approx((ci.low, ci.high))
    beside = paired(a, b)  # the seeds correlate positively here
    ci = stats.ttest_rel(b.sort_index(), a.sort_index()).confidence_interval(0.95)
    assert beside.method == "paired" and beside.n == 4
    assert (beside.low, beside.high) == pytest.approx((ci.low, ci.high))
    assert beside.estimate == pytest.approx((b - a).mean())
    assert paired(a, pd.Series([4.0, 3.5, 1.0, 2.0])) is None  # negatively correlated seeds: no pairing shown
    assert paired(a.iloc[:2], b.iloc[:2]) is None  # fewer than 3 pairs


def test_welch_interval_is_scipys_when_seeds_differ():
    a = pd.Series([1.0, 2.0, 4.0], index=[0, 1, 2])
    b = pd.Series([3.0, 3.5, 5.0, 4.0], index=[0, 1, 2, 3])
    got = difference(a, b)
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert got.method == "Welch" and (got.low, got.high) == pytest.approx((ci.low, ci.high))


def test_no_spread_gives_a_point_and_one_seed_no_interval():
    a, b = pd.Series([20.0] * 3, index=[0, 1, 2]), pd.Series([12.0] * 3, index=[0, 1, 2])
    got = difference(a, b)
    assert (got.estimate, got.low, got.high) == (-8.0, -8.0, -8.0)
    one = difference(a.iloc[:1], b.iloc[:1])
    assert math.isnan(one.low) and "no interval" in one.text()
    lv = level(pd.Series([0.0, 0.1, 0.2]))
    assert lv.estimate == pytest.approx(0.1) and lv.low < 0.1 < lv.high
    # the textbook one-sample interval: mean 2, sd 1, n 3: 2 ± t(0.975, 2) / sqrt(3) = 2 ± 4.3027 / 1.7321
    known = level(pd.Series([1.0, 2.0, 3.0]))
    assert (known.low, known.high) == (pytest.approx(2 - 2.4841, abs=1e-4), pytest.approx(2 + 2.4841, abs=1e-4))
    flat = level(pd.Series([4.0, 4.0, 4.0]))
    assert (flat.low, flat.high) == (4.0, 4.0)


# ------------------------------------------------------------------------------------------- verdicts

@pytest.mark.parametrize("low,high,direction,bound,n,gates,expected", [
    (0.1, 0.5, 1, 0.0, 3, [], REPRODUCED),
    (-0.5, -0.1, 1, 0.0, 3, [], NOT_REPRODUCED),
    (-0.1, 0.5, 1, 0.0, 3, [], INCONCLUSIVE),
    (0.1, 0.5, 1, 0.0, MIN_SEEDS - 1, [], INCONCLUSIVE),  # too few seeds, however clear
    (0.1, 0.5, 1, 0.0, 3, ["a gate"], NOT_AT_SCALE),
    (-0.5, -0.1, -1, 0.0, 3, [], REPRODUCED),  # a claimed fall
    (-0.9, -0.6, 1, -1.0, 3, [], REPRODUCED),  # "similar ELBO": above -1% of it
    (-1.5, -1.2, 1, -1.0, 3, [], NOT_REPRODUCED),
])
def test_judge(low, high, direction, bound, n, gates, expected):
    interval = report.Interval((low + high) / 2, low, high, "paired", n)
    assert judge(interval, direction, bound, n, gates) == expected


@pytest.mark.parametrize("low,high,direction,paper,primary,expected", [
    (-0.29, 0.45, 1, 1.71, True, SMALLER),  # Omniglot 9 layers KL: the paper's +1.71 lies above our whole interval
    (-0.29, 1.90, 1, 1.71, True, INCONCLUSIVE),  # the paper's effect inside our interval
    (0.10, 0.45, 1, 1.71, True, REPRODUCED),  # on the claimed side, though smaller (shown in vs_paper)
    (-0.5, 0.5, 1, 0.0, True, NOT_CLAIMED),  # the paper's table ties (C2 at 1 layer)
    (-0.5, 0.5, 1, -0.3, True, NOT_CLAIMED),  # the paper's own difference has the other sign
    (-0.5, 0.5, 1, 0.0, False, INCONCLUSIVE),  # a condition is judged whatever the paper's difference
    (-0.5, 0.5, -1, -2.0, True, SMALLER),  # a claimed fall that is smaller than the paper's
])
def test_judge_against_the_papers_effect(low, high, direction, paper, primary, expected):
    interval = report.Interval((low + high) / 2, low, high, "Welch", 3)
    assert judge(interval, direction, 0.0, 3, [], paper, primary) == expected
    assert judge(interval, direction, 0.0, 3, ["gate"], paper, primary) == (
        NOT_CLAIMED if expected == NOT_CLAIMED else NOT_AT_SCALE)


def test_claim_verdict_comes_from_primary_checks_only():
    elbo = Check("C2", "s", "ELBO", "> -1", "–", "–", None, [], REPRODUCED, primary=False)
    kl = Check("C2", "s", "KL", "> 0", "–", "–", None, [], INCONCLUSIVE)
    assert claim_verdict([elbo, kl]) == INCONCLUSIVE  # passing conditions alone do not make a claim partly hold
    assert claim_verdict([elbo, kl, Check("C2", "s", "MI", "> 0", "–", "–", None, [], SMALLER)]) == SMALLER
    assert claim_verdict([elbo, Check("C2", "s", "AU", "> 0", "–", "–", None, [], NOT_CLAIMED)]) == NOT_AT_SCALE
    assert verdict_counts([elbo, kl]) == {INCONCLUSIVE: 1} and verdict_counts([elbo, kl], False) == {REPRODUCED: 1}


def check(verdict):
    return Check("C1", "s", "w", "> 0", "–", "–", None, [], verdict)


@pytest.mark.parametrize("verdicts,expected", [
    ([], NOT_YET),
    ([NOT_AT_SCALE, NOT_AT_SCALE], NOT_AT_SCALE),
    ([REPRODUCED, REPRODUCED, NOT_AT_SCALE], REPRODUCED),  # untested checks do not count
    ([REPRODUCED, INCONCLUSIVE], PARTLY),
    ([REPRODUCED, NOT_REPRODUCED], PARTLY),
    ([NOT_REPRODUCED, INCONCLUSIVE], NOT_REPRODUCED),
    ([INCONCLUSIVE, INCONCLUSIVE, NOT_AT_SCALE], INCONCLUSIVE),
])
def test_claim_verdict_adds_up_the_checks(verdicts, expected):
    assert claim_verdict([check(v) for v in verdicts]) == expected


# ------------------------------------------------------------------------------------------- gates, end to end

def write(root, experiment, dataset, model, seed, profile="cpu", arch=None, **values):
    cfg_keys = {k: values.pop(k) for k in ("latent_dim", "dec_layers", "nll_subset") if k in values}
    cfg = make_config(dataset, model, profile, arch=arch, seed=seed, **cfg_keys)
    metrics = {"nll": 90.0, "neg_elbo": 92.0, "kl": 2.0, "mi": 1.0, "au_0.01": 3, "n_examples": 2000} | values
    record = {"status": "finished", "name": cfg.run_name(), "config": cfg.to_dict(), "metrics": metrics}
    path = root / experiment / "runs" / f"{cfg.run_name()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def table1_runs(root, seeds=(0, 1, 2), dim=10, vae=None, skip=None):
    for s in seeds:
        jitter = 0.01 * s
        write(root, "latent_dim", "mnist", "vae", s, latent_dim=dim, **{"kl": 3.0 + jitter, "mi": 2.0 + jitter,
                                                                        "au_0.01": 5, "neg_elbo": 100.0 + jitter,
                                                                        **(vae or {})})
        write(root, "latent_dim", "mnist", "skip-vae", s, latent_dim=dim, **{"kl": 5.0 - jitter, "mi": 3.0,
                                                                             "au_0.01": 8, "neg_elbo": 100.3,
                                                                             **(skip or {})})


def by_check(checks):
    return {c.what.split(":")[0]: c for c in checks}


def test_c1_reproduced_when_the_skip_model_is_clearly_above(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))
    table1_runs(tmp_path)
    checks, profile = claim_checks("C1")
    got = by_check(checks)
    assert profile == "cpu" and set(got) == {"KL", "MI", "AU (0.01)", "ELBO"}
    assert all(c.verdict == REPRODUCED for c in checks), [c.row() for c in checks]
    assert got["KL"].paper == "8.29 → 9.41 (+1.12)" and got["KL"].interval.method == "Welch"
    assert "(n=3)" in got["KL"].ours
    assert claim_verdict(checks) == REPRODUCED


def test_c1_not_reproduced_inconclusive_and_too_few_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))
    table1_runs(tmp_path, skip={"kl": 1.0}, vae={"mi": 2.0})  # skip KL below; MI: skip 3.0 vs 2.0 stays above
    got = by_check(claim_checks("C1")[0])
    assert got["KL"].verdict == NOT_REPRODUCED and got["MI"].verdict == REPRODUCED
    table1_runs(tmp_path, skip={"neg_elbo": 102.0})  # 2 nats worse on an ELBO of -100: beyond the 1% margin
    assert by_check(claim_checks("C1")[0])["ELBO"].verdict == NOT_REPRODUCED
    for p in (tmp_path / "latent_dim" / "runs").glob("*-s2-*"):
        p.unlink()  # two seeds left
    assert {c.verdict for c in claim_checks("C1")[0]} == {INCONCLUSIVE}


def test_a_check_never_pools_runs_of_different_configs(tmp_path, monkeypatch):
    """A seed of another config in a cell (here the NLL scored on other documents) is an error naming the field and
    the runs, not a fourth seed of the cell."""
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))
    table1_runs(tmp_path)
    write(tmp_path, "latent_dim", "mnist", "vae", 3, latent_dim=10, nll_subset="random")
    with pytest.raises(DataError, match=r"would pool runs of different configs \(they differ in nll_subset\): "
                                        r"mnist-pixelcnn-vae-z10-l9-s0-"):
        claim_checks("C1")


def test_gate_all_units_active_and_mi_ceiling(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))
    # dimension 10: our VAE keeps 10 of 10 units in every seed, the paper's VAE had 9
    table1_runs(tmp_path, vae={"au_0.01": 10, "mi": 2.25, "n_examples": 10}, skip={"au_0.01": 10, "n_examples": 10})
    got = by_check(claim_checks("C1")[0])
    assert got["AU (0.01)"].verdict == NOT_AT_SCALE and "all active" in got["AU (0.01)"].gates[0]
    assert got["MI"].verdict == NOT_AT_SCALE and "log N = 2.30" in got["MI"].gates[0]  # 2.25 > log 10 - 0.1
    assert got["KL"].verdict == REPRODUCED  # the other checks stand


def test_smoke_runs_test_the_code_not_the_claim(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))
    for s in range(3):
        for model, kl in (("vae", 1.0), ("skip-vae", 2.0 + s)):
            write(tmp_path, "latent_dim", "mnist", model, s, profile="smoke", kl=kl)
    checks, profile = claim_checks("C1")
    assert profile == "smoke" and checks and {c.verdict for c in checks} == {NOT_AT_SCALE}
    assert claim_verdict(checks) == NOT_AT_SCALE


def yahoo_runs(root, nll=300.0, amortized_au=5):
    for s in range(3):
        for model, dim, mi in (("vae", 32, 0.0), ("skip-vae", 32, 0.3), ("sa-vae", 32, 2.0), ("skip-sa-vae", 32, 4.0),
                               ("sa-vae", 64, 1.0), ("skip-sa-vae", 64, 5.0)):
            write(root, "yahoo", "yahoo", model, s, latent_dim=dim, nll=nll + s, mi=mi + 0.01 * s,
                  kl=0.01 if model == "vae" else 3.0, **{"au_0.01": 64 if model == "skip-sa-vae" and dim == 64 else 0 if model == "vae" else 3,
                                                         "au_0.01_amortized": amortized_au, "mi_amortized": 0.5})


def floor(root, nll):
    path = root / "yahoo" / "reference" / "unigram.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": {"profile": "cpu"}, "metrics": {"nll": nll, "ppl": 500.0, "n_docs": 200}}))


def test_c4_unigram_floor_and_sa_encoder_gates(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))
    yahoo_runs(tmp_path)
    checks, _ = claim_checks("C4")
    assert checks and all(c.verdict == NOT_AT_SCALE for c in checks)
    assert all("none computed" in c.gates[0] for c in checks)  # no floor: nothing can be judged
    floor(tmp_path, 301.0)  # the decoders are not 2% below it
    checks, _ = claim_checks("C4")
    assert all(any("unigram floor" in g for g in c.gates) for c in checks)
    floor(tmp_path, 400.0)  # the decoders beat it clearly
    checks, _ = claim_checks("C4")
    assert not any("unigram floor" in g for c in checks for g in c.gates)
    got = {(c.setting, c.what): c.verdict for c in checks}
    assert got[("latent 32", "VAE collapsed: KL, MI, AU (0.01)")] == REPRODUCED  # KL, MI and AU all near 0
    assert got[("latent 64", "AU (0.01) of Skip-SA-VAE")] == REPRODUCED  # all 64 units, every seed
    assert got[("SA-VAE 32 → 64", "MI: 64 − 32")] == REPRODUCED  # SA-VAE's MI falls from 32 to 64
    yahoo_runs(tmp_path, amortized_au=0)  # the SA models' encoders collapsed: their checks are not tested
    checks, _ = claim_checks("C4")
    sa = [c for c in checks if "SA" in c.what or "SA" in c.setting]
    assert sa and all(any("SA encoder collapsed" in g for g in c.gates) for c in sa)
    assert by_check(checks)["VAE collapsed"].verdict == REPRODUCED  # the VAE's check has no SA gate


def test_the_floor_of_a_random_subset_is_each_seeds_own(tmp_path, monkeypatch):
    """Runs scored on a seeded random subset (nll_subset random) are set against the floor on their own seed's
    documents (unigram-random-s<seed>), never the floor on the first documents; runs of both kinds are refused."""
    from skipvae.report.claims import unigram_floors

    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))
    runs = pd.DataFrame({"seed": [0, 1, 2], "nll_subset": ["random"] * 3})
    floor(tmp_path, 400.0)  # on the first documents: not these runs' floor
    assert unigram_floors(runs, "cpu") == {}
    for seed in (0, 1):
        path = tmp_path / "yahoo" / "reference" / f"unigram-random-s{seed}.json"
        path.write_text(json.dumps({"settings": {"profile": "cpu", "seed": seed}, "metrics": {"nll": 300.0 + seed}}))
    assert unigram_floors(runs, "cpu") == {0: 300.0, 1: 301.0}
    assert unigram_floors(runs.assign(nll_subset="first"), "cpu") == {0: 400.0, 1: 400.0, 2: 400.0}
    with pytest.raises(DataError, match=r"nll_subset \['first', 'random'\]"):
        unigram_floors(runs.assign(nll_subset=["first", "random", "random"]), "cpu")
    nll = {"vae": pd.Series([290.0, 296.0, 300.0], index=[0, 1, 2])}
    assert gate_floor(nll, {0: 300.0, 1: 301.0}) == "unigram floor: none computed for seed 2 (execute the yahoo notebook)"
    assert gate_floor(nll, {0: 300.0, 1: 301.0, 2: 302.0}) == ("unigram floor: NLL VAE 295.3 not 2% below the "
                                                               "unigram model's 301.0 on the same documents")
    assert gate_floor(nll, {0: 310.0, 1: 310.0, 2: 310.0}) is None and gate_floor({}, {}) is None


def test_the_ledger_renders_every_claim_from_records(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path))
    table1_runs(tmp_path)
    ledger = report.claims_ledger().set_index("claim")
    assert list(ledger.index) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    assert ledger.loc["C1", "verdict"] == REPRODUCED and ledger.loc["C1", "source"] == "Table 1"
    assert (ledger.drop(index="C1")["verdict"] == NOT_YET).all()
    table = report.checks_table(ledger.loc["C1", "checks"])
    assert list(table.columns) == ["claim", "setting", "check", "kind", "profile", "paper", "ours",
                                   "difference [95% CI]", "paired [95% CI]", "vs the paper's effect",
                                   "collapsed seeds", "gate", "verdict"]
    assert table["difference [95% CI]"].str.contains("Welch, n = 3").all()
    assert set(table["profile"]) == {"cpu"} and set(table["kind"]) == {"primary", "condition"}
    assert "at every latent dimension" in ledger.loc["C1", "rule"]
    assert np.isfinite([c.interval.low for c in ledger.loc["C1", "checks"]]).all()


def test_sweep_records_reach_the_results_folder_like_notebook_runs(tmp_path, monkeypatch, capsys):
    """`python -m skipvae collect runs/<sweep> --experiment latent_dim`: finished records land in results/, where the
    ledger reads them; unfinished ones do not, and a second collect changes nothing."""
    from skipvae.cli import main

    monkeypatch.setenv("SKIPVAE_RESULTS", str(tmp_path / "results"))
    table1_runs(tmp_path / "staging")
    sweep = tmp_path / "runs" / "sweep"
    for i, path in enumerate(sorted((tmp_path / "staging" / "latent_dim" / "runs").glob("*.json"))):
        record = json.loads(path.read_text())
        (sweep / record["name"]).mkdir(parents=True)
        (sweep / record["name"] / "record.json").write_text(json.dumps(record))
    paused = sweep / "paused-run"
    paused.mkdir()
    (paused / "record.json").write_text(json.dumps({**record, "name": "paused-run", "status": "paused"}))
    assert main(["collect", str(sweep), "--experiment", "latent_dim"]) == 0
    assert "6 new or changed record(s)" in capsys.readouterr().out
    assert claim_verdict(claim_checks("C1")[0]) == REPRODUCED
    assert main(["collect", str(sweep), "--experiment", "latent_dim"]) == 0
    assert "0 new or changed" in capsys.readouterr().out


def test_a_claim_summary_names_the_profile_of_each_check():
    from skipvae.report.claims import Check, claim_summary, profiles_text

    def check(profile):
        return Check("C3", f"setting {profile}", "KL", "> 0", "Table 3", "", None, verdict=INCONCLUSIVE,
                     profile=profile)

    assert profiles_text([check("cpu"), check("cpu")]) == "the cpu-profile runs"
    mixed = [check("paper"), check("cpu"), check("cpu")]
    assert profiles_text(mixed) == ("the runs of each check's largest profile with enough seeds (paper: 1 check, "
                                    "cpu: 2 checks)")
    assert "C3 on the runs of each check's largest profile" in claim_summary("C3", mixed, "paper")


def test_the_ledger_names_the_profiles_its_checks_were_judged_on():
    from skipvae.report.claims import Check, checked_profiles

    def check(profile, primary=True):
        return Check("C3", "s", "KL", "> 0", "Table 3", "", None, primary=primary, profile=profile)

    assert checked_profiles([check("cpu"), check("cpu")], "paper") == "cpu"  # paper runs exist, no check uses them
    assert checked_profiles([check("cpu"), check("paper")]) == "paper, cpu"
    assert checked_profiles([check("cpu"), check("paper", primary=False)]) == "cpu"
