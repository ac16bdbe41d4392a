"""The latent dimension (Table 1): the MNIST PixelCNN VAE and Skip-VAE at latent 2 to 100 (claim C1)."""

from skipvae.experiments.declaration import FORCE, Experiment, Param, Sweep, block, first_only, seeds_param

PARAMS = (
    seeds_param([0, 1, 2], "seeds per model and latent dimension"),
    FORCE,
    Param("models", "models", ["vae", "skip-vae"], "models with the gated PixelCNN decoder"),
    Param("latent_dims", "positive_ints", [2, 10, 20, 50, 100], "latent dimensions (Table 1: 2, 10, 20, 50, 100)"),
    Param("extra_seeds", "extra_seeds", {}, "more seeds at some latent dimensions only, e.g. {100: [1]} where the "
          "budget allows one"),
)


def reduce(profile: str, p: dict) -> dict:
    """The smoke profile only checks that the notebook runs: one seed, the smallest and largest latent
    dimensions."""
    if profile != "smoke":
        return p
    return {**first_only(p, "seeds"), "latent_dims": sorted({min(p["latent_dims"]), max(p["latent_dims"])})}


def blocks(profile: str, p: dict) -> list:
    """pixelcnn: every latent dimension x model x seed, plus the extra seeds."""
    seeds, dims = p["seeds"], p["latent_dims"]
    extra = {int(d): [s for s in more if s not in seeds] for d, more in p["extra_seeds"].items()}  # papermill: str keys
    return [block("pixelcnn", {"dataset": "mnist", "profile": profile, "arch": "pixelcnn"},
                  {"latent_dim": dims, "model": p["models"], "seed": seeds},
                  *({"latent_dim": [d], "model": p["models"], "seed": more} for d, more in extra.items() if d in dims))]


EXPERIMENT = Experiment(
    "latent_dim", "Latent dimension", ("dataset", "arch", "dec_layers", "model", "latent_dim"),
    models=("vae", "skip-vae"), source="ablation_latent_dim", params=PARAMS, make_blocks=blocks, reduce=reduce,
    sweeps=(Sweep("cpu_table1", "cpu", "Table 1 at the cpu profile: the MNIST PixelCNN VAE and Skip-VAE at latent "
                  "2, 10, 20, 50 and 100, seeds 0-2, a seed's runs before the next seed's.", order=("seed",)),),
)
