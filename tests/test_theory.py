"""Theorem 1 of the paper (claim 7) in linear-Gaussian decoders, against closed forms derived by hand.

The 1-D model: z ~ N(0, 1), h1 = a1 z + e_h, x = a2 h1 + b z + e_x, e_h ~ N(0, var_h), e_x ~ N(0, var_x). Then
x = g z + n with g = a1 a2 + b and Var n = N = a2^2 var_h + var_x, so I_p(x; z) = 0.5 log(1 + g^2 / N).
"""

import json
import math
from fractions import Fraction

import pytest
import torch

from skipvae import report
from skipvae.errors import ConfigError
from skipvae.linear_gaussian import (aligned_skip_weights, deep_linear_channel, deep_linear_mi, gaussian_channel_mi,
                                     half_log_text, proof_chain, random_deep_linear_weights, scalar_mi_ratios,
                                     scalar_skip_moments, skip_dominance_threshold, skip_failure_interval)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def hand_mi(a1, a2, b, var_h, var_x):
    """I_p(x; z) = 0.5 log(1 + g^2 / N), g = a1 a2 + b, N = a2^2 var_h + var_x (derived by hand)."""
    return 0.5 * math.log1p((a1 * a2 + b) ** 2 / (a2 ** 2 * var_h + var_x))


# ---------------------------------------------------------------------------------------------------------
# Theory: deep linear-Gaussian decoders with and without skips
# ---------------------------------------------------------------------------------------------------------

def test_gaussian_channel_mi_against_covariance_form():
    g = gen(19)
    M = torch.randn(5, 3, generator=g, dtype=torch.float64)
    L = torch.randn(5, 5, generator=g, dtype=torch.float64)
    C = L @ L.T + 0.1 * torch.eye(5, dtype=torch.float64)
    expected = 0.5 * (torch.logdet(M @ M.T + C) - torch.logdet(C)).item()
    assert gaussian_channel_mi(M, C) == pytest.approx(expected, rel=1e-10)
    # one noisy scalar layer: I = 0.5 log(1 + a^2 / noise^2)
    A, B = random_deep_linear_weights(0, 1, seed=3)
    assert deep_linear_mi(0, 1, noise=0.7, seed=3) == pytest.approx(0.5 * math.log1p(A[0].item() ** 2 / 0.49))
    assert deep_linear_mi(0, 2, skip_strength=5.0, seed=3) == deep_linear_mi(0, 2, seed=3)  # no layer to skip into


@pytest.mark.parametrize("dim", [1, 3, 8])
def test_deep_chain_without_skips_loses_information_with_depth(dim):
    for seed in range(5):
        mi = [deep_linear_mi(depth, dim, 0.0, noise=0.5, seed=seed) for depth in range(7)]
        assert all(b <= a + 1e-12 for a, b in zip(mi, mi[1:])), f"data-processing inequality broken: {mi}"
        assert mi[-1] < mi[0]


@pytest.mark.parametrize("dim, depth", [(1, 1), (2, 3), (4, 2), (8, 4)])
def test_skips_never_lower_mi_beyond_the_dominance_threshold(dim, depth):
    for seed in range(8):
        A, B = random_deep_linear_weights(depth, dim, seed)
        s0 = skip_dominance_threshold(A, B, noise=0.5)
        mi = [gaussian_channel_mi(*deep_linear_channel(A, B, s, 0.5)) for s in (0.0, s0, 1.5 * s0 + 0.1, 3 * s0 + 1)]
        assert all(b >= a - 1e-12 for a, b in zip(mi, mi[1:])), f"seed {seed}, s0={s0}: {mi}"


def test_skips_can_lower_mi_so_the_claim_needs_a_condition():
    # in one dimension the threshold is exact: 0 < s < s0 lowers I(x; z), whatever the seed
    lowered = 0
    for seed in range(20):
        A, B = random_deep_linear_weights(1, 1, seed)
        s0 = skip_dominance_threshold(A, B, noise=0.5)
        if s0 > 0:
            mi0 = gaussian_channel_mi(*deep_linear_channel(A, B, 0.0, 0.5))
            assert gaussian_channel_mi(*deep_linear_channel(A, B, 0.5 * s0, 0.5)) < mi0
            lowered += 1
    assert lowered >= 3
    # a skip that cancels the signal of the chain removes all information
    A, B = random_deep_linear_weights(1, 2, seed=0)
    B[1] = -A[1] @ A[0]
    assert deep_linear_mi(1, 2, seed=0) > 0.1
    assert gaussian_channel_mi(*deep_linear_channel(A, B, 1.0, 0.5)) == pytest.approx(0.0, abs=1e-12)


def test_deep_linear_errors():
    with pytest.raises(ConfigError, match="depth"):
        deep_linear_mi(-1, 2)
    with pytest.raises(ConfigError, match="noise"):
        deep_linear_mi(2, 2, noise=0.0)
    with pytest.raises(ConfigError, match="gain"):
        gaussian_channel_mi(torch.zeros(3, 2), torch.eye(2))


# ---------------------------------------------------------------------------------------------------------
# Theorem 1: the smallest counterexample, exactly
# ---------------------------------------------------------------------------------------------------------

def test_smallest_counterexample_paper_setting_is_exact():
    # h1 = z (deterministic, as the paper's h1 = f0(z)), x = h1 - z + e_x: the skip cancels the signal
    vae, skip = scalar_mi_ratios(1, 1, 0, 0, 1), scalar_mi_ratios(1, 1, -1, 0, 1)
    assert vae["x;z"] == Fraction(2) and skip["x;z"] == Fraction(1)  # I_vae = ½ log 2, I_skip = 0
    assert half_log_text(vae["x;z"]) == "½ log(2)" and half_log_text(skip["x;z"]) == "0"
    chain = proof_chain(1, 1, -1, 0, 1)
    assert chain["values"]["I_vae(x; z)"] == pytest.approx(0.5 * math.log(2), rel=1e-15)
    assert chain["values"]["I_skip(x; z)"] == 0.0 and not chain["conclusion_holds"]


def test_counterexample_with_a_noisy_hidden_layer_matches_the_deep_chain():
    # var_h = var_x = 1: N = 2, g = 1 without the skip, 0 with it: I_vae = ½ log(3/2), I_skip = 0
    assert scalar_mi_ratios(1, 1, 0, 1, 1)["x;z"] == Fraction(3, 2)
    assert scalar_mi_ratios(1, 1, -1, 1, 1)["x;z"] == Fraction(1)
    A, B = [torch.ones(1, 1, dtype=torch.float64)] * 2, [torch.zeros(1, 1, dtype=torch.float64),
                                                          -torch.ones(1, 1, dtype=torch.float64)]
    assert gaussian_channel_mi(*deep_linear_channel(A, B, 0.0, 1.0)) == pytest.approx(0.5 * math.log(1.5))
    assert gaussian_channel_mi(*deep_linear_channel(A, B, 1.0, 1.0)) == pytest.approx(0.0, abs=1e-15)


def test_scalar_mutual_information_against_hand_formula_and_monte_carlo():
    g = gen(3)
    for _ in range(20):
        a1, a2, b = torch.randn(3, generator=g, dtype=torch.float64).tolist()
        var_h, var_x = (0.1 + torch.rand(2, generator=g, dtype=torch.float64)).tolist()
        ratios = scalar_mi_ratios(a1, a2, b, var_h, var_x)
        assert 0.5 * math.log(ratios["x;z"]) == pytest.approx(hand_mi(a1, a2, b, var_h, var_x), rel=1e-12)
    # the second moments against samples of the generative model (so the I_p of x; h1 is right too)
    a1, a2, b, var_h, var_x = 0.8, -1.3, 0.6, 0.5, 0.4
    z, eh, ex = torch.randn(3, 200_000, generator=gen(4), dtype=torch.float64)
    h1 = a1 * z + var_h ** 0.5 * eh
    x = a2 * h1 + b * z + var_x ** 0.5 * ex
    m = scalar_skip_moments(a1, a2, b, var_h, var_x)
    emp = torch.cov(torch.stack([z, h1, x]))
    for (i, j), key in {(1, 1): "var_h", (2, 2): "var_x", (0, 1): "cov_zh", (0, 2): "cov_zx", (1, 2): "cov_hx"}.items():
        assert emp[i, j].item() == pytest.approx(m[key], abs=0.03)


def test_failure_interval_in_one_dimension():
    assert skip_failure_interval(1, 1) == (-2, 0)
    assert skip_failure_interval(Fraction(1, 2), -3) == (0, 3)
    assert skip_failure_interval(0, 5) is None  # I_vae = 0: nothing to lower
    for a1, a2, var_h, var_x in ((1.0, 1.0, 0.0, 1.0), (0.5, -3.0, 0.3, 0.2), (-2.0, 0.7, 1.0, 0.5)):
        lo, hi = skip_failure_interval(a1, a2)
        vae = hand_mi(a1, a2, 0.0, var_h, var_x)
        for t in torch.linspace(-1.0, 2.0, 61).tolist():
            b = lo + t * (hi - lo)
            skip = hand_mi(a1, a2, b, var_h, var_x)
            if 0 < t < 1:
                assert skip < vae, (a1, a2, b)
            elif t < 0 or t > 1:
                assert skip > vae, (a1, a2, b)
            else:
                assert skip == pytest.approx(vae)  # the endpoints: b = 0 and b = -2 a1 a2
        assert hand_mi(a1, a2, -a1 * a2, var_h, var_x) == 0.0  # the midpoint cancels the signal


def test_failure_interval_is_the_dominance_threshold_in_one_dimension():
    # a 1-D chain of depth 1 with noise n in both layers: b = s B_2, so I drops iff 0 < s < -2 a1 a2 / B_2
    for seed in range(10):
        A, B = random_deep_linear_weights(1, 1, seed)
        a1, a2, beta = A[0].item(), A[1].item(), B[1].item()
        interval = skip_failure_interval(a1, a2)
        expected = max(0.0, interval[0] / beta, interval[1] / beta)
        assert skip_dominance_threshold(A, B, noise=0.5) == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------------------------------------
# The proof sketch: which link breaks
# ---------------------------------------------------------------------------------------------------------

def test_proof_chain_breaks_at_the_passage_between_models():
    chain = proof_chain(1, 1, -1, 0, 1)  # the paper's setting: h1 = f0(z)
    assert [link["holds"] for link in chain["links"]] == [True, False, True] and chain["broken"] == [2]
    assert chain["links"][1]["lhs"] == "I_skip(x; h1)" and chain["links"][1]["rhs"] == "I_vae(x; h1)"
    assert chain["exact"] == {"I_skip(x; z)": "0", "I_skip(x; h1)": "0", "I_vae(x; h1)": "½ log(2)",
                              "I_vae(x; z)": "½ log(2)"}
    # a noisy hidden layer: x depends on h1 given z, so the first link (the data-processing step) fails as well
    noisy = proof_chain(1, 1, -1, 1, 1)
    assert noisy["broken"] == [1, 2]
    assert noisy["exact"] == {"I_skip(x; z)": "0", "I_skip(x; h1)": "½ log(4/3)", "I_vae(x; h1)": "½ log(3)",
                              "I_vae(x; z)": "½ log(3/2)"}


def test_with_a_deterministic_hidden_layer_only_the_passage_can_fail():
    g = gen(5)
    for _ in range(50):
        a1, a2, b = torch.randn(3, generator=g, dtype=torch.float64).tolist()
        chain = proof_chain(a1, a2, b, 0.0, 0.3)
        links = chain["links"]
        assert links[0]["holds"] and links[2]["holds"]  # h1 is an invertible function of z: equalities
        assert links[0]["lhs_nats"] == pytest.approx(links[0]["rhs_nats"], rel=1e-9)
        assert links[1]["holds"] == chain["conclusion_holds"]
        lo, hi = skip_failure_interval(a1, a2)
        assert chain["conclusion_holds"] == (not lo < b < hi)
    with pytest.raises(ConfigError, match="var_x"):
        proof_chain(1, 1, -1, 0, 0)


# ---------------------------------------------------------------------------------------------------------
# The existence reading: some skip model has at least the plain model's I_p
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dim, depth", [(1, 1), (2, 2), (4, 3), (8, 2)])
def test_aligned_skips_never_lower_mi(dim, depth):
    for seed in range(5):
        A, _ = random_deep_linear_weights(depth, dim, seed)
        P, C = deep_linear_channel(A, [torch.zeros_like(a) for a in A], 0.0, 0.5)
        mi_vae = gaussian_channel_mi(P, C)
        for c in (0.1, 1.0, 3.0):
            B = aligned_skip_weights(A, c)
            assert skip_dominance_threshold(A, B, noise=0.5) == 0.0
            mi_skip = gaussian_channel_mi(*deep_linear_channel(A, B, 1.0, 0.5))
            # closed form: the gain is (1 + c) P with the same noise C
            assert mi_skip == pytest.approx(gaussian_channel_mi((1 + c) * P, C), rel=1e-10)
            assert mi_skip > mi_vae
    with pytest.raises(ConfigError, match="hidden layer"):
        aligned_skip_weights(random_deep_linear_weights(0, 2)[0])


def test_existence_for_every_skip_direction_beyond_the_threshold():
    # for random (full-rank) skips the threshold is finite, and at s0 and beyond I_skip >= I_vae
    for dim, depth in ((1, 1), (3, 2), (8, 4)):
        for seed in range(5):
            A, B = random_deep_linear_weights(depth, dim, seed)
            s0 = skip_dominance_threshold(A, B, noise=0.5)
            assert math.isfinite(s0)
            mi_vae = gaussian_channel_mi(*deep_linear_channel(A, B, 0.0, 0.5))
            for s in (s0, 2 * s0 + 1):
                assert gaussian_channel_mi(*deep_linear_channel(A, B, s, 0.5)) >= mi_vae - 1e-12


# ---------------------------------------------------------------------------------------------------------
# The claim-7 verdict from the stored results
# ---------------------------------------------------------------------------------------------------------

def write_theory_json(root, **extra):
    path = root / "theory" / "theory.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"depth": 1, "mi_no_skip": 1.0, "mi_skip": 1.2}, {"depth": 2, "mi_no_skip": 0.5, "mi_skip": 0.9}]
    path.write_text(json.dumps({"provenance": {"profile": "cpu"}, "rows": rows, **extra}))


def test_claim7_verdict_separates_the_two_readings(tmp_path):
    chain = proof_chain(1, 1, -1, 0, 1)
    counterexample = {"a1": 1, "a2": 1, "b": -1, "var_h": 0, "var_x": 1,
                      "mi_vae": chain["values"]["I_vae(x; z)"], "mi_skip": chain["values"]["I_skip(x; z)"],
                      "mi_vae_exact": "½ log(2)", "mi_skip_exact": "0", "failure_interval": [-2, 0]}
    existence = {"draws": 10, "aligned_not_lowered": 10, "threshold_not_lowered": 10, "holds": True}
    write_theory_json(tmp_path, counterexample=counterexample, proof_chain=chain, existence=existence)
    checks, profile = report.claim_checks("C7", root=tmp_path)
    assert report.claim_verdict(checks) == report.NOT_REPRODUCED and profile == "cpu"
    first = checks[0].ours
    assert "½ log(2)" in first and "link 2" in first and "I_skip(x; h1) ≥ I_vae(x; h1)" in first
    assert "existence reading holds" in first
    assert checks[1].verdict == report.INCONCLUSIVE  # the sweep's rows: no counterexample there proves nothing
    failed = {**existence, "holds": False, "aligned_not_lowered": 9}
    write_theory_json(tmp_path, counterexample=counterexample, proof_chain=chain, existence=failed)
    assert "existence reading fails" in report.claim_checks("C7", root=tmp_path)[0][0].ours
    # without the counterexample records the sweep's rows decide: no lowering found is not a proof
    write_theory_json(tmp_path)
    assert report.claim_verdict(report.claim_checks("C7", root=tmp_path)[0]) == report.INCONCLUSIVE
    write_theory_json(tmp_path, rows=[{"depth": 1, "mi_no_skip": 1.0, "mi_skip": 0.4}])
    assert report.claim_verdict(report.claim_checks("C7", root=tmp_path)[0]) == report.NOT_REPRODUCED
