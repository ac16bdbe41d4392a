"""Omniglot: the PixelCNN models of Table 2's 9-layer rows (claims C2, C3)."""

from skipvae.experiments.declaration import (FORCE, SA_SEEDS, Experiment, Param, Sweep, block, first_only, seeds_param,
                                             with_sa_seeds)
from skipvae.experiments.mnist import split_sa

PARAMS = (
    seeds_param([0, 1, 2]),
    SA_SEEDS,
    FORCE,
    Param("models", "models", ["vae", "skip-vae", "sa-vae", "skip-sa-vae"],
          "models with the gated PixelCNN decoder (paper: 9 layers, latent 20)"),
)


def reduce(profile: str, p: dict) -> dict:
    """The SA models' seeds (with_sa_seeds); the smoke profile only checks that the notebook runs: one seed per
    model."""
    p = with_sa_seeds(profile, p)
    return first_only(p, "seeds", "sa_seeds") if profile == "smoke" else p


def blocks(profile: str, p: dict) -> list:
    """pixelcnn: every model at the profile's depth and latent dimension."""
    amortized, semi = split_sa(p["models"])
    return [block("pixelcnn", {"dataset": "omniglot", "profile": profile, "arch": "pixelcnn"},
                  {"model": amortized, "seed": p["seeds"]}, {"model": semi, "seed": p["sa_seeds"]})]


EXPERIMENT = Experiment(
    "omniglot", "Omniglot", ("arch", "latent_dim", "dec_layers", "model"), params=PARAMS, make_blocks=blocks,
    reduce=reduce,
    sweeps=(Sweep("cpu_sa_omniglot", "cpu", "SA-VAE and Skip-SA-VAE on Omniglot at the cpu profile, seed 0 (too "
                  "dear for the cpu budget: optional).", params={"models": ["sa-vae", "skip-sa-vae"]}),),
)
