"""Collapse over training: the 9-layer PixelCNN VAE and Skip-VAE (latent 20) with validation KL, MI and active units
after every epoch, for as many updates as the profile affords (Figure 1 left's mechanism; claim C3's premise)."""

from skipvae.experiments.declaration import CPU_PAPER_COMMAND, FORCE, Experiment, Param, Sweep, block, seeds_param

PARAMS = (
    seeds_param([0]),
    FORCE,
    Param("models", "models", ["vae", "skip-vae"], "the plain model and its skip version (9-layer PixelCNN, latent "
          "20)"),
    Param("n_train", "optional_positive_int", None, "training images (None: the profile's setting below)"),
    Param("epochs", "optional_positive_int", None, "training epochs (None: the profile's setting below)"),
    Param("clf_n_test", "optional_positive_int", None, "test images for the classifiers of the posterior means "
          "(None: the profile's setting below)"),
)

# What each profile trains: cpu, the whole training split for as many epochs as one session allows; paper, the
# paper's 100 epochs in bf16 (validated for this model in results/precision) with the IW-NLL on a random 1,000
# test images, its decoder in bf16 too (nll_amp: within 0.01 nats of fp32, results/bench/eval_cost_*.json); smoke,
# tiny sizes.
PROFILE_SETTINGS = {
    "smoke": {"n_train": 100, "epochs": 2, "clf_n_test": 100},
    "cpu": {"n_train": 50000, "epochs": 6, "clf_n_test": 10000},
    "paper": {"amp": True, "n_eval_nll": 1000, "nll_subset": "random", "nll_amp": True},
}


SIZES = ("n_train", "epochs", "clf_n_test")


def reduce(profile: str, p: dict) -> dict:
    """The parameters left at None take the profile's settings (still None where the profile keeps its own)."""
    return {**p, **{k: PROFILE_SETTINGS[profile].get(k) for k in SIZES if p[k] is None}}


def blocks(profile: str, p: dict) -> list:
    """pixelcnn: each model and seed with the profile's settings (the classifiers train on the same images as the
    model)."""
    settings = {k: v for k, v in PROFILE_SETTINGS[profile].items() if k not in SIZES}
    settings.update({k: p[k] for k in SIZES if p[k] is not None})
    if p["n_train"] is not None:
        settings["clf_n_train"] = p["n_train"]
    return [block("pixelcnn", {"dataset": "mnist", "profile": profile, "arch": "pixelcnn", **settings},
                  {"model": p["models"], "seed": p["seeds"]})]


EXPERIMENT = Experiment(
    "collapse", "Collapse over training", ("dataset", "arch", "latent_dim", "dec_layers", "model"),
    models=("vae", "skip-vae"), params=PARAMS, make_blocks=blocks, reduce=reduce,
    sweeps=(
        Sweep("collapse_curve", "cpu", "Collapse over training at the cpu profile: the 9-layer PixelCNN VAE and "
              "Skip-VAE (latent 20) on the whole 50k training split for 6 epochs, seed 0.",
              command="--jobs 2 --threads-per-run 1"),
        Sweep("paper_collapse_9layer", "paper", "The paper's headline cell at its own scale (issue 27): the 9-layer "
              "PixelCNN VAE and Skip-VAE at latent 20 on the whole 50k training split for 100 epochs (100,000 "
              "updates), bf16 training, validation KL, MI and AU after every epoch, the IW-NLL (K = 500, in bf16) on a "
              "random 1,000 test images, seeds 0-2, seed 0's pair first (a run takes many sessions).",
              params={"seeds": [0, 1, 2]}, order=("seed",),
              command=CPU_PAPER_COMMAND),
    ),
)
