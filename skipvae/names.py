"""The names a config chooses among (datasets, decoders, inference, models, profiles): a leaf module, imported by
the config and by the parameter checks (skipvae.params) alike, so that neither imports the other."""

DATASETS = ("mnist", "omniglot", "yahoo")
ARCHS = ("pixelcnn", "mlp", "lstm")
INFERENCES = ("amortized", "semi-amortized", "none")  # none: no latent variable (the language model)
# A model's identity is three independent config fields; its name is derived from them, for display and the CLI.
MODEL_AXES = {
    "vae": dict(skip=False, inference="amortized"),
    "skip-vae": dict(skip=True, inference="amortized"),
    "sa-vae": dict(skip=False, inference="semi-amortized"),
    "skip-sa-vae": dict(skip=True, inference="semi-amortized"),
    "lm": dict(skip=False, inference="none"),  # the decoder alone, no z (the baseline row of Table 4)
}
MODELS = tuple(MODEL_AXES)
LATENT_MODELS = tuple(m for m, axes in MODEL_AXES.items() if axes["inference"] != "none")  # all but lm
MODEL_ALIASES = {"skip_vae": "skip-vae", "sa_vae": "sa-vae", "skip_sa_vae": "skip-sa-vae", "savae": "sa-vae",
                 "skip-savae": "skip-sa-vae", "skipvae": "skip-vae"}
PROFILES = ("smoke", "cpu", "paper")
# The training objective (skipvae.objectives): the ELBO, or a remedy for posterior collapse (skipvae.config).
OBJECTIVES = ("elbo", "kl-anneal", "cyclical", "free-bits", "beta", "bn-vae", "aggressive")
