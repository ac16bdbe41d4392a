"""The decoder depth (Table 2 and Figure 1): the PixelCNN VAE and Skip-VAE at 1 to 9 decoder layers on MNIST and
Omniglot, optionally the LSTM depths on Yahoo (claim C2)."""

from skipvae.experiments.declaration import FORCE, Experiment, Param, Sweep, block, first_only, seeds_param

PARAMS = (
    seeds_param([0, 1, 2], "seeds at the depths of Table 2"),
    FORCE,
    Param("models", "models", ["vae", "skip-vae"], "the plain model and its skip version"),
    Param("depths", "positive_ints", [1, 2, 3, 4, 5, 6, 7, 8, 9], "MNIST PixelCNN layers (Figure 1 right: every "
          "depth from 1 to 9)"),
    Param("table_depths", "positive_ints_or_none", [1, 3, 6, 9], "the depths of Table 2: these get every seed of "
          "`seeds`"),
    Param("figure_seeds", "seeds", [0], "seeds at the other depths of `depths` (the figure only)"),
    Param("omniglot_depths", "positive_ints_or_none", [1, 3, 6, 9], "Omniglot PixelCNN layers (Table 2); empty: no "
          "Omniglot runs"),
    Param("lstm_depths", "positive_ints_or_none", [], "LSTM layers on Yahoo (not in the paper; an extension); "
          "empty: no text runs"),
)


def reduce(profile: str, p: dict) -> dict:
    """The smoke profile only checks that the notebook runs: one seed, two MNIST depths (one of Table 2, one
    figure-only), one Omniglot and one LSTM depth."""
    p = {**p, **{k: p[k] or [] for k in ("table_depths", "omniglot_depths", "lstm_depths")}}
    if profile != "smoke":
        return p
    shortest = {k: sorted(p[k])[:n] for k, n in (("depths", 2), ("table_depths", 1), ("omniglot_depths", 1),
                                                 ("lstm_depths", 1))}
    return {**first_only(p, "seeds", "figure_seeds"), **shortest}


def blocks(profile: str, p: dict) -> list:
    """mnist (Table 2's depths with every seed, the figure's other depths with `figure_seeds`), omniglot and
    lstm."""
    seeds, figure_seeds, depths = p["seeds"], p["figure_seeds"], p["depths"]
    table, omniglot, lstm = p["table_depths"], p["omniglot_depths"], p["lstm_depths"]
    others = sorted(set(depths) - set(table))
    models = p["models"]
    return [block("mnist", {"dataset": "mnist", "profile": profile, "arch": "pixelcnn"},
                  {"dec_layers": sorted(table), "model": models, "seed": seeds},
                  {"dec_layers": others, "model": models, "seed": figure_seeds}),
            block("omniglot", {"dataset": "omniglot", "profile": profile, "arch": "pixelcnn"},
                  {"dec_layers": omniglot, "model": models, "seed": seeds}),
            block("lstm", {"dataset": "yahoo", "profile": profile, "arch": "lstm"},
                  {"dec_layers": lstm, "model": models, "seed": seeds})]


EXPERIMENT = Experiment(
    "depth", "Decoder depth", ("dataset", "arch", "latent_dim", "model", "dec_layers"), models=("vae", "skip-vae"),
    source="ablation_depth", params=PARAMS, make_blocks=blocks, reduce=reduce,
    sweeps=(
        Sweep("cpu_table2_mnist", "cpu", "Table 2 (MNIST) and Figure 1 at the cpu profile: the PixelCNN VAE and "
              "Skip-VAE at 1, 3, 6 and 9 decoder layers with seeds 0-2 and at the other depths with seed 0 (the "
              "9-layer runs are Table 1's at latent 20: a run is trained once, whichever sweep has it first).",
              blocks=("mnist",), order=("seed",)),
        Sweep("cpu_table2_omniglot", "cpu", "Table 2 (Omniglot) at the cpu profile: the PixelCNN VAE and Skip-VAE "
              "at 1, 3, 6 and 9 decoder layers, seeds 0-2.", blocks=("omniglot",), order=("seed",)),
    ),
)
