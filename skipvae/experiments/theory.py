"""Theory: Theorem 1's statement checked in closed form on linear-Gaussian decoders (claim C7). No training runs."""

from skipvae.experiments.declaration import Experiment, Param, force_param

PARAMS = (
    Param("seeds", "seeds", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "weight draws per setting of the deep chains"),
    Param("depths", "positive_ints", [1, 2, 3, 4, 5, 6, 7, 8], "hidden layers L of the deep decoders"),
    Param("skip_strengths", "positive_floats", [0.1, 0.3, 1.0, 3.0], "skip strengths s, each compared with no skips "
          "(s of 0)"),
    Param("dims", "positive_ints", [1, 8], "dimension of z and of every layer of the deep decoders"),
    Param("noise", "positive_float", 0.5, "standard deviation of the noise added in every layer of the deep "
          "decoders"),
    Param("counterexample", "dict", {"a1": 1, "a2": 1, "b": -1, "var_h": 0, "var_x": 1}, "the 1-D model (integers "
          "give exact arithmetic)"),
    Param("aligned_c", "nonneg_float", 1.0, "existence reading, skips c P along the gain P of the plain chain (c of "
          "0 adds none)"),
    force_param("rewrite theory.json even if it holds exactly these settings"),  # no runs: the study's one file
)


def reduce(profile: str, p: dict) -> dict:
    """The smoke profile only checks that the notebook runs: three seeds, three depths."""
    return {**p, "seeds": p["seeds"][:3], "depths": sorted(p["depths"])[:3]} if profile == "smoke" else p


EXPERIMENT = Experiment("theory", "Theory", (), models=(), params=PARAMS, reduce=reduce,
                        threads=False)


# ------------------------------------------------------------------------------- the study's data: theory.json

def deep_chain_rows(dims: list, depths: list, seeds: list, skip_strengths: list, noise: float) -> list[dict]:
    """One row per (dim, depth, seed, skip strength s) of the deep linear-Gaussian decoders: I_p(x; z) without and
    with skips of strength s (skipvae.linear_gaussian), the threshold s0 above which skips dominate (None when
    infinite) and whether s >= s0."""
    import math

    from skipvae.linear_gaussian import (deep_linear_channel, gaussian_channel_mi, random_deep_linear_weights,
                                         skip_dominance_threshold)

    rows = []
    for dim in dims:
        for depth in depths:
            for seed in seeds:
                A, B = random_deep_linear_weights(depth, dim, seed)
                mi_no_skip = gaussian_channel_mi(*deep_linear_channel(A, B, 0.0, noise))
                s0 = skip_dominance_threshold(A, B, noise)
                for s in skip_strengths:
                    rows.append({"dim": dim, "depth": depth, "seed": seed, "noise": noise, "skip_strength": s,
                                 "threshold": s0 if math.isfinite(s0) else None, "above_threshold": bool(s >= s0),
                                 "mi_no_skip": mi_no_skip,
                                 "mi_skip": gaussian_channel_mi(*deep_linear_channel(A, B, s, noise))})
    return rows
