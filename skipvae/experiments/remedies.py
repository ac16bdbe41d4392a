"""Skips among the other remedies for posterior collapse (issue 29): the plain ELBO and each remedy (a value of the
objective axis, skipvae.objectives), with and without skips, on Yahoo (LSTM) and on MNIST with Table 3's MLP model
(3 decoder layers, latent 50). Each remedy at its published default; no hyperparameter grid."""

from skipvae.config import make_config
from skipvae.errors import ConfigError
from skipvae.experiments.declaration import FORCE, Experiment, Param, Sweep, block, first_only, seeds_param
from skipvae.names import OBJECTIVES

# What each dataset fixes for every row. Yahoo: fp32 (the LSTM has no bf16 kernel on every CPU), the IW-NLL on a
# seeded random subset of the test documents, no KL warm-up but KL annealing's own; MNIST: the MLP model of Table 3.
SETTINGS = {"yahoo": {"dataset": "yahoo", "amp": False, "nll_subset": "random", "warmup_epochs": 0},
            "mnist": {"dataset": "mnist", "arch": "mlp", "dec_layers": 3, "latent_dim": 50}}
DATASETS = tuple(SETTINGS)  # the datasets of the remedies, in the page's order (skipvae.report.remedies)
GRID_PROFILE = "cpu"  # the profile the grid was made for: the notebook runs the same grid at every profile
SMOKE_OBJECTIVES = ("elbo", "free-bits", "bn-vae")  # the smoke grid (MNIST, one seed): seconds

PARAMS = (
    seeds_param([0, 1, 2], "seeds per remedy and model"),
    FORCE,
    Param("datasets", "datasets", list(DATASETS), "the settings: Yahoo (LSTM) and MNIST with the MLP model of "
          "Table 3"),
    Param("objectives", "objectives", list(OBJECTIVES), "the plain ELBO and the remedies"),
    Param("n_samples", "positive_int", 3, "Yahoo: sentences decoded from z ~ p(z), per remedy and model"),
    Param("max_words", "positive_int", 25, "words per decoded sentence at most"),
)


def reduce(profile: str, p: dict) -> dict:
    """The smoke profile only checks that the notebook runs: MNIST only, the plain ELBO and two remedies, one
    seed. ConfigError for a dataset that has no remedies setting (SETTINGS)."""
    unknown = [d for d in p["datasets"] if d not in DATASETS]
    if unknown:
        raise ConfigError(f"datasets={p['datasets']!r} is impossible: the remedies have no setting for "
                          f"{', '.join(map(repr, unknown))}; valid datasets: {', '.join(DATASETS)}.")
    if profile != "smoke":
        return p
    return {**first_only(p, "seeds"), "datasets": ["mnist"],
            "objectives": [o for o in p["objectives"] if o in SMOKE_OBJECTIVES]}


def setting_warmup_epochs(dataset: str) -> int:
    """KL annealing's warm-up in `dataset`'s setting, one value at every profile: what make_config gives objective
    kl-anneal at GRID_PROFILE (skipvae.config.objective_defaults: Yahoo the profile's text warm-up, MNIST half of the
    MLP's epochs), which the setting's own warmup_epochs (Yahoo's 0, for the other rows) would otherwise replace."""
    settings = {k: v for k, v in SETTINGS[dataset].items() if k not in ("dataset", "warmup_epochs")}
    return make_config(dataset, "vae", GRID_PROFILE, objective="kl-anneal", **settings).warmup_epochs


def blocks(profile: str, p: dict) -> list:
    """One block per dataset: every objective x {vae, skip-vae} x seed (KL annealing with its warm-up)."""
    models, seeds = ["vae", "skip-vae"], p["seeds"]
    plain = [o for o in p["objectives"] if o != "kl-anneal"]
    annealed = [o for o in p["objectives"] if o == "kl-anneal"]
    return [block(d, {**SETTINGS[d], "profile": profile}, {"objective": plain, "model": models, "seed": seeds},
                  {"objective": annealed, "warmup_epochs": [setting_warmup_epochs(d)], "model": models, "seed": seeds})
            for d in p["datasets"]]


EXPERIMENT = Experiment(
    "remedies", "Skips among the remedies", ("dataset", "arch", "latent_dim", "dec_layers", "objective", "model"),
    models=("vae", "skip-vae"), params=PARAMS, make_blocks=blocks, reduce=reduce,
    sweeps=(
        Sweep("cpu_remedies_yahoo", "cpu", "Skips among the remedies on Yahoo at the cpu profile (issue 29): the "
              "plain ELBO, KL annealing, cyclical annealing, free bits, beta < 1, BN-VAE and aggressive encoder "
              "training, each with and without skips, seeds 0-2, each remedy at its published default.",
              blocks=("yahoo",)),
        Sweep("cpu_remedies_mnist", "cpu", "Skips among the remedies on MNIST with Table 3's MLP model (3 decoder "
              "layers, latent 50) at the cpu profile (issue 29): the same grid as on Yahoo.", blocks=("mnist",)),
    ),
)
