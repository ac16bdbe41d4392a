"""Yahoo Answers: the LSTM language model and the text VAEs of Table 4 (claim C4)."""

from skipvae.config import MODELS
from skipvae.experiments.declaration import (FORCE, SA_SEEDS, Experiment, Param, Sweep, block, first_only, seeds_param,
                                             with_sa_seeds)

PARAMS = (
    seeds_param([0, 1, 2]),
    SA_SEEDS,
    FORCE,
    Param("grid", "model_grid", {"lm": [0], "vae": [32], "skip-vae": [32], "sa-vae": [32, 64],
                                 "skip-sa-vae": [32, 64]},
          "model -> latent dimensions (Table 4; lm has no latent variable: 0)"),
    Param("n_samples", "positive_int", 5, "sentences decoded from z ~ p(z), per model"),
    Param("n_docs", "positive_int", 3, "test documents reconstructed (greedy decoding from their posterior mean), "
          "per model"),
    Param("max_words", "positive_int", 30, "words per decoded sentence at most"),
)


def reduce(profile: str, p: dict) -> dict:
    """The SA models' seeds (with_sa_seeds); the smoke profile only checks that the notebook runs: one seed per
    model."""
    p = with_sa_seeds(profile, p)
    return first_only(p, "seeds", "sa_seeds") if profile == "smoke" else p


def blocks(profile: str, p: dict) -> list:
    """lstm: each model of `grid` at its latent dimensions (the language model has none)."""
    seeds, sa_seeds = p["seeds"], p["sa_seeds"]
    grids: dict[tuple, dict] = {}  # the models that share latent dimensions and seeds go in one mapping
    for m, dims in p["grid"].items():
        axes = {"seed": seeds} if m == "lm" else {"latent_dim": list(dims),
                                                  "seed": sa_seeds if m.endswith("sa-vae") else seeds}
        grids.setdefault(repr(axes), {"model": [], **axes})["model"].append(m)
    return [block("lstm", {"dataset": "yahoo", "profile": profile}, *grids.values())]


EXPERIMENT = Experiment(
    "yahoo", "Yahoo Answers", ("arch", "latent_dim", "dec_layers", "model"), models=MODELS, params=PARAMS,
    make_blocks=blocks, reduce=reduce,
    sweeps=(
        Sweep("cpu_table4_yahoo", "cpu", "Table 4 at the cpu profile: the LSTM language model, the VAE and the "
              "Skip-VAE (latent 32), seeds 0-2 (the SA models have their own sweep, cpu_table4_yahoo_sa).",
              params={"grid": {"lm": [0], "vae": [32], "skip-vae": [32]}}),
        Sweep("cpu_table4_yahoo_sa", "cpu", "Table 4's SA-VAE and Skip-SA-VAE at latent 32 and 64 at the cpu "
              "profile, seed 0.", params={"grid": {"sa-vae": [32, 64], "skip-sa-vae": [32, 64]}}),
        Sweep("yahoo_paper", "paper", "Table 4 at the paper's settings (a GPU), seeds 0-2 for every model.",
              command=""),
    ),
)
