"""One dataclass configures a run: data, model, training and evaluation.

`make_config(dataset, model, profile, **overrides)` starts from the paper's official hyperparameters
for the dataset's family, applies the profile (`smoke`, `cpu`, `paper`) and then the user's overrides,
and validates the result before anything is loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from skipvae.errors import ConfigError
from skipvae.names import (ARCHS, DATASETS, INFERENCES, LATENT_MODELS,  # noqa: F401 (the config's names)
                           MODEL_ALIASES, MODEL_AXES, MODELS, OBJECTIVES, PROFILES)
from skipvae.params import check_fields

# The training objective (skipvae.objectives): the ELBO, or a remedy for posterior collapse. A remedy changes the
# training loss only (bn-vae also the encoder's means); validation and test always report the true ELBO.
# OBJECTIVES (skipvae.names): elbo, kl-anneal, cyclical, free-bits, beta, bn-vae, aggressive.
# The fields of one remedy: they may differ from their defaults (the published ones) only when it is selected.
REMEDY_FIELDS = {"cycles": "cyclical", "cycle_ratio": "cyclical", "free_bits": "free-bits", "kl_beta": "beta",
                 "bn_gamma": "bn-vae", "aggressive_steps": "aggressive"}
# kl-anneal where the family has no warm-up (images): the official text code's 10 epochs from 0.1, at most half of
# the profile's epochs (kl_anneal_epochs), so that a reduced run (the cpu MLP's 10 epochs, the PixelCNN's 5) trains
# on the ELBO itself for its second half
KL_ANNEAL_EPOCHS = 10
OPTIMIZERS = ("adam", "sgd")
NLL_SUBSETS = ("first", "random")  # which test examples get the IW-NLL (skipvae.metrics.nll_examples_of)
ARCHS_FOR = {"mnist": ("pixelcnn", "mlp"), "omniglot": ("pixelcnn", "mlp"), "yahoo": ("lstm",)}


@dataclass
class RunConfig:
    # what
    dataset: str = "mnist"
    arch: str = "pixelcnn"
    # the model's identity (`model` is the name derived from these, e.g. skip-sa-vae)
    skip: bool = False  # z enters every decoder layer (generative skip connections)
    inference: str = "amortized"  # amortized q(z|x); semi-amortized: + SVI refinement (SA-VAE); none: no z
    objective: str = "elbo"
    profile: str = "paper"
    seed: int = 0
    latent_dim: int = 20
    # image encoder (ResNet) and decoder (gated PixelCNN / MLP)
    enc_channels: int = 64
    dec_layers: int = 8
    dec_channels: int = 32
    dec_kernels: list[int] | None = None  # one kernel size per PixelCNN layer; None: all 3
    mlp_hidden: int = 1024
    # text encoder and decoder (LSTM)
    emb_dim: int = 512
    enc_hidden: int = 1024
    dec_hidden: int = 1024
    dropout: float = 0.5
    max_len: int = 200
    init_uniform: float | None = None  # U(-a, a) init of all parameters (text); None: PyTorch default
    # semi-amortized inference (sa-vae, skip-sa-vae)
    svi_steps: int = 10  # the paper's 10 (the official README commands use 20)
    svi_lr: float = 1.0
    svi_momentum: float = 0.5
    svi_clip: float = 5.0
    # optimisation
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 50
    epochs: int = 100
    grad_clip: float = 5.0
    warmup_epochs: int = 0  # KL weight beta goes linearly from beta_start to 1 over these epochs
    beta_start: float = 0.1
    # collapse remedies (skipvae.objectives; each used only by its `objective`, defaults the published ones)
    cycles: int = 4  # cyclical: M cycles of the KL weight over the run's updates (Fu et al. 2019)
    cycle_ratio: float = 0.5  # cyclical: the weight rises over the first R of each cycle, then stays at 1
    free_bits: float = 0.125  # free-bits: lambda, nats per dimension (FB(4) on Yahoo's 32 dimensions: 4 / 32)
    kl_beta: float = 0.4  # beta: the KL weight beta < 1 (He et al. 2019's beta-VAE row, as quoted by BN-VAE)
    bn_gamma: float = 0.6  # bn-vae: the fixed scale of the batch-normalized posterior means (Zhu et al. 2020)
    aggressive_steps: int = 100  # aggressive: at most this many encoder updates before each decoder update
    lr_decay_after: int | None = None  # text: halve lr when validation stops improving after this epoch
    lr_decay: float = 0.5
    min_lr: float = 0.03  # stop once lr falls below this (text schedule)
    # data sizes (None: the whole split)
    n_train: int | None = None
    n_valid: int | None = None
    n_test: int | None = None
    # evaluation
    iw_samples: int = 500
    iw_chunk: int = 50
    n_eval_nll: int | None = None  # test examples that get the IW-NLL (None: all)
    # which of them: 'first' in the split's batch order (text batches are sorted by length: the shortest documents,
    # as the committed cpu records were scored), 'random' a subset drawn with the run's seed (skipvae.metrics)
    nll_subset: str = "first"
    # the IW-NLL's decoder under bf16 autocast (the log-likelihood and the importance weights stay fp32): within 0.01
    # nats of fp32 on the same weights (benchmarks/bench_metrics.py --eval-cost) and about 3x faster on the PixelCNN
    nll_amp: bool = False
    # classification of posterior means (labelled images): the classifiers are fitted on the means of the first
    # clf_n_train training images and tested on the first clf_n_test test images (None: the whole split, as the
    # paper), whatever n_train and n_test the VAE used
    clf_n_train: int | None = None
    clf_n_test: int | None = None
    clf_epochs: int = 20  # epochs of the paper's MLP classifier
    # bf16 autocast of the training step on CPU or CUDA (losses, KL, optimizer state and evaluation stay fp32)
    amp: bool = False
    # the training forward compiled by torch.compile (inductor, dynamic=False, eager's random stream) and Adam's
    # fused kernel: the same computation, up to rounding, in fewer kernels (benchmarks/bench_models.py --mlp-step)
    compile_step: bool = False
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def model(self) -> str:
        """The model's name, derived from (skip, inference): vae, skip-vae, sa-vae, skip-sa-vae or lm."""
        return model_name(self.skip, self.inference)

    @property
    def label(self) -> str:
        """The model's name with its objective when that is not the ELBO (tables, run names): e.g. vae+free-bits."""
        return self.model if self.objective == "elbo" else f"{self.model}+{self.objective}"

    @property
    def semi_amortized(self) -> bool:
        """True for SA-VAE and Skip-SA-VAE (SVI refinement of the encoder's output)."""
        return self.inference == "semi-amortized"

    @property
    def has_latent(self) -> bool:
        """False for the language model (no latent variable)."""
        return self.inference != "none"

    @property
    def kernels(self) -> list[int]:
        return list(self.dec_kernels) if self.dec_kernels is not None else [3] * self.dec_layers

    def validate(self) -> "RunConfig":
        check_fields(self)  # types and ranges of every field (skipvae.params)
        _choice("dataset", self.dataset, DATASETS)
        _choice("inference", self.inference, INFERENCES)
        _choice("objective", self.objective, OBJECTIVES)
        if not isinstance(self.skip, bool):
            raise ConfigError(f"skip={self.skip!r} is impossible: it must be true or false.")
        model_name(self.skip, self.inference)  # a combination that names no model (skips without z) is refused
        _choice("profile", self.profile, PROFILES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("nll_subset", self.nll_subset, NLL_SUBSETS)
        _choice("arch", self.arch, ARCHS_FOR[self.dataset], f" for dataset {self.dataset!r}")
        if not self.has_latent:
            if self.arch != "lstm":
                raise ConfigError(f"model 'lm' (no latent variable) exists for text only, got arch {self.arch!r}; "
                                  f"use --dataset yahoo.")
            if self.skip or self.latent_dim != 0:
                raise ConfigError(f"model 'lm' has no latent variable: it needs skip=False and latent_dim=0, got "
                                  f"skip={self.skip}, latent_dim={self.latent_dim}.")
        for name in ("latent_dim", "batch_size", "epochs", "enc_channels", "dec_channels", "mlp_hidden",
                     "emb_dim", "enc_hidden", "dec_hidden", "iw_samples", "iw_chunk", "max_len", "clf_epochs"):
            if name != "latent_dim" or self.has_latent:
                _positive(name, getattr(self, name))
        for name in SPLIT_SIZES:
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if self.dec_layers < 1:
            raise ConfigError(f"dec_layers={self.dec_layers}: the decoder needs at least 1 layer; "
                              f"use --dec-layers 1 or more.")
        if self.dec_kernels is not None:
            if len(self.dec_kernels) != self.dec_layers:
                raise ConfigError(f"dec_kernels has {len(self.dec_kernels)} sizes but dec_layers="
                                  f"{self.dec_layers}; give one kernel size per layer.")
            bad = [k for k in self.dec_kernels if k < 3 or k % 2 == 0]
            if bad:
                raise ConfigError(f"PixelCNN kernel sizes must be odd and >= 3, got {bad}.")
        if not isinstance(self.svi_steps, int) or self.svi_steps < 0:
            raise ConfigError(f"svi_steps={self.svi_steps!r} is impossible: it must be a non-negative integer "
                              f"(the SVI refinement steps of sa-vae models).")
        if self.semi_amortized and self.svi_steps < 1:
            raise ConfigError(f"model {self.model!r} needs svi_steps >= 1, got {self.svi_steps}; "
                              f"use --model {self.model.replace('sa-vae', 'vae')} for no refinement.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1).")
        if self.lr <= 0 or self.grad_clip <= 0 or self.svi_lr <= 0:
            raise ConfigError("lr, grad_clip and svi_lr must be positive.")
        if not 0.0 <= self.svi_momentum < 1.0:
            raise ConfigError(f"svi_momentum={self.svi_momentum} must be in [0, 1).")
        if self.warmup_epochs < 0 or not 0.0 <= self.beta_start <= 1.0:
            raise ConfigError("warmup_epochs must be >= 0 and beta_start in [0, 1].")
        self._validate_objective()
        from skipvae.data.manifest import check_split_sizes  # the package imports this module: look up when needed

        check_split_sizes(self)
        return self

    def _validate_objective(self) -> None:
        """The remedy's own parameters: in range, set only when it is selected, and a model it applies to."""
        defaults = field_defaults(type(self))
        for name, remedy in REMEDY_FIELDS.items():
            if getattr(self, name) != defaults[name] and self.objective != remedy:
                raise ConfigError(f"{name}={getattr(self, name)!r} is impossible with objective "
                                  f"{self.objective!r}: it is a parameter of objective {remedy!r} only.")
        if self.objective != "elbo" and not self.has_latent:
            raise ConfigError(f"objective={self.objective!r} is impossible for model 'lm' (no latent variable): "
                              f"it needs objective 'elbo'.")
        if self.objective == "kl-anneal" and self.warmup_epochs < 1:
            raise ConfigError(f"warmup_epochs={self.warmup_epochs} is impossible with objective 'kl-anneal': it "
                              f"must be >= 1 (the epochs of the linear rise from beta_start to 1).")
        if self.objective == "cyclical" and self.warmup_epochs != 0:
            raise ConfigError(f"warmup_epochs={self.warmup_epochs} is impossible with objective 'cyclical': it "
                              f"must be 0 (the cycles replace the warm-up).")
        if self.objective == "aggressive" and self.semi_amortized:
            raise ConfigError(f"objective 'aggressive' is impossible for model {self.model!r}: SVI already "
                              f"refines q(z|x); use model {self.model.replace('sa-vae', 'vae')!r}.")
        _positive("cycles", self.cycles)
        _positive("aggressive_steps", self.aggressive_steps)
        _in_range("cycle_ratio", self.cycle_ratio, 0.0, 1.0, "in (0, 1]", low_open=True)
        _in_range("free_bits", self.free_bits, 0.0, None, ">= 0 (nats per dimension)")
        _in_range("kl_beta", self.kl_beta, 0.0, 1.0, "in (0, 1) (1 is the elbo)", low_open=True, high_open=True)
        _in_range("bn_gamma", self.bn_gamma, 0.0, None, "> 0", low_open=True)

    def to_dict(self) -> dict:
        """Every field, plus the derived `model` name (so records can be read and grouped by it)."""
        return dataclasses.asdict(self) | {"model": self.model}

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """The config of a record or checkpoint; records written before the model axes existed carry only
        `model` (a name), which is mapped to (skip, inference)."""
        d = dict(d)
        name = d.pop("model", None)
        if name is not None:
            axes = model_axes(name)
            for key, value in axes.items():
                if d.setdefault(key, value) != value:
                    raise ConfigError(f"config says model {name!r} but {key}={d[key]!r}; they disagree.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; valid keys: {sorted(known)}")
        return cls(**d)

    def identity(self) -> dict:
        """What makes this run this run: the identity fields (IDENTITY: data, decoder, the model axes, profile, seed)
        and every other field whose value differs from its default; descriptive fields (NOT_IDENTITY) never count.
        A field added later with a default that reproduces the old behaviour therefore changes no existing key."""
        values, defaults = dataclasses.asdict(self), field_defaults(type(self))
        out = {k: values[k] for k in IDENTITY}
        out.update({k: v for k, v in values.items()
                    if k not in IDENTITY and k not in NOT_IDENTITY and v != defaults[k]})
        return out

    def key(self) -> str:
        """sha256 of the run's identity (12 hex digits): configs that describe the same run share one key."""
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def run_name(self) -> str:
        """A readable, unique directory and record name for this run: its main axes (the label: the model, and
        the objective unless it is the ELBO), then its key."""
        return (f"{self.dataset}-{self.arch}-{self.label}-z{self.latent_dim}-l{self.dec_layers}-s{self.seed}-"
                f"{self.key()}")

    def same_run(self, config: dict) -> bool:
        """Whether a stored config (a record's or a checkpoint's) describes this run: equal keys, after reading it
        with `from_dict` (so a record written before a field existed still matches)."""
        try:
            return type(self).from_dict(config).key() == self.key()
        except (ConfigError, TypeError, AttributeError):
            return False


# The fields that always enter a run's key, and those that never do (a description, not a setting). Never change a
# field's default: every record written before would then describe another run under the same key
# (tests/test_config.py pins the defaults).
IDENTITY = ("dataset", "arch", "skip", "inference", "objective", "profile", "seed")
NOT_IDENTITY = ("notes",)


def field_defaults(cls=None) -> dict:
    """Every field's default value (of RunConfig, or of `cls`, a subclass)."""
    return {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
            for f in dataclasses.fields(cls or RunConfig)}


def model_name(skip: bool, inference: str) -> str:
    """The display and CLI name of a model identity (the inverse of `model_axes`)."""
    for name, axes in MODEL_AXES.items():
        if axes == {"skip": skip, "inference": inference}:
            return name
    raise ConfigError(f"no model has skip={skip!r} and inference={inference!r}; valid models: "
                      + ", ".join(f"{n} ({a['inference']}{', skips' if a['skip'] else ''})"
                                  for n, a in MODEL_AXES.items()))


def model_axes(name: str) -> dict:
    """{'skip': bool, 'inference': str} of a model name (old spellings such as `skip_vae` accepted)."""
    name = MODEL_ALIASES.get(name, name) if isinstance(name, str) else name
    _choice("model", name, MODELS)
    return dict(MODEL_AXES[name])


def _choice(name: str, value, choices, context: str = "") -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}{context}; valid choices: {', '.join(choices)}")


def _in_range(name: str, value, lo, hi, allowed: str, low_open: bool = False, high_open: bool = False) -> None:
    """ConfigError unless lo <(=) value <(=) hi (hi None: no upper bound)."""
    too_low = value <= lo if low_open else value < lo
    too_high = hi is not None and (value >= hi if high_open else value > hi)
    if too_low or too_high:
        raise ConfigError(f"{name}={value!r} is impossible: it must be {allowed}.")


def _positive(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name}={value!r} is impossible: it must be a positive integer.")


# The paper's hyperparameters of each family (../shared/REFERENCE.md): the paper where it says, else the official
# code. Differences from the official code: 9 PixelCNN layers (code: 8), 10 SVI steps (README commands: 20), the
# weak MLP model with 2 x 512 units and latent 50 (code: 1024, unused), text NLL with K = 200 importance samples.
# compile_step (not a hyperparameter: the same step, faster) where it measured faster: the MLP (issue 25).
PAPER = {
    ("image", "pixelcnn"): dict(latent_dim=20, enc_channels=64, dec_layers=9, dec_channels=32, optimizer="adam",
                                lr=1e-3, batch_size=50, epochs=100, grad_clip=5.0, warmup_epochs=0, svi_steps=10,
                                iw_samples=500),
    # MLP decoder layers = the hidden (h -> h) ReLU layers that each get a skip, as the official MLPVAE counts them
    # (`num_layers`); the decoder also has Linear(z -> h) in front and Linear(h -> 784) at the output.
    ("image", "mlp"): dict(latent_dim=50, mlp_hidden=512, dec_layers=2, optimizer="adam", lr=1e-3,
                           batch_size=50, epochs=100, grad_clip=5.0, warmup_epochs=0, svi_steps=10, iw_samples=500,
                           compile_step=True),
    ("text", "lstm"): dict(latent_dim=32, emb_dim=512, enc_hidden=1024, dec_hidden=1024, dec_layers=1,
                           dropout=0.5, optimizer="sgd", lr=1.0, batch_size=32, epochs=30, grad_clip=5.0,
                           warmup_epochs=10, beta_start=0.1, lr_decay_after=15, lr_decay=0.5, min_lr=0.03,
                           init_uniform=0.1, max_len=200, svi_steps=10, iw_samples=200),
}

# Reduced scales. `cpu` is what two CPU cores train in well under an hour per notebook. The notes say what kind
# of reduction it is; `skipvae.runner.profile_reductions` lists every setting that differs from the paper,
# and each record holds its whole config. amp=True (bf16 autocast training) where it agreed with fp32 within seed
# noise (skipvae.precision; the book's Reproducibility page): the PixelCNN and LSTM models, not the MLP.
REDUCED = {
    # 1,000 updates (issue 15): the collapse curve (results/collapse) shows the 9-layer VAE keeping every unit far
    # beyond what two cores can afford per run, so every PixelCNN run (tables, ablations, classification) shares
    # this one pre-collapse budget; classification uses the run's own splits.
    ("cpu", "image", "pixelcnn"): dict(amp=True, n_train=10000, n_valid=1000, n_test=2000, epochs=5, svi_steps=3,
                                       iw_samples=50, n_eval_nll=500, clf_n_train=10000, clf_n_test=2000,
                                       notes="cpu profile: the paper's architecture on a subset of the training "
                                             "images for a few epochs (before the VAE collapses), with fewer SVI "
                                             "steps and importance samples"),
    # compile_step=False: the committed cpu records were trained eagerly (compiling costs about a minute a run)
    ("cpu", "image", "mlp"): dict(compile_step=False, n_train=10000, n_valid=1000, n_test=2000, epochs=10,
                                  svi_steps=3, iw_samples=50, n_eval_nll=500,
                                  notes="cpu profile: the paper's weak MLP model on a subset of the training images "
                                        "for a few epochs, with fewer importance samples"),
    # Yahoo (issue 15): every training document (the 9k left of the validation split) cut no shorter than the test
    # documents' mean length, and as many epochs as a 3-seed table affords, so that the language model can beat the
    # unigram floor; the per-epoch validation curve of the LM run shows whether it does.
    ("cpu", "text", "lstm"): dict(amp=True, emb_dim=128, enc_hidden=256, dec_hidden=256, n_train=None, n_valid=None,
                                  n_test=500, max_len=80, epochs=8, warmup_epochs=3, lr_decay_after=6,
                                  svi_steps=3, iw_samples=50, n_eval_nll=200,
                                  notes="cpu profile: a smaller LSTM on every training document, cut to the test "
                                        "documents' mean length, for a few epochs, with fewer SVI steps and "
                                        "importance samples"),
    ("smoke", "image", "pixelcnn"): dict(n_train=100, n_valid=50, n_test=50, epochs=1, latent_dim=4,
                                         enc_channels=8, dec_layers=2, dec_channels=8, svi_steps=2,
                                         iw_samples=4, iw_chunk=2, batch_size=25, clf_n_train=200, clf_n_test=100,
                                         clf_epochs=2, notes="smoke profile: seconds"),
    ("smoke", "image", "mlp"): dict(compile_step=False, n_train=100, n_valid=50, n_test=50, epochs=1, latent_dim=4,
                                    mlp_hidden=32, svi_steps=2, iw_samples=4, iw_chunk=2, batch_size=25,
                                    clf_n_train=200, clf_n_test=100, clf_epochs=2, notes="smoke profile: seconds"),
    ("smoke", "text", "lstm"): dict(n_train=64, n_valid=32, n_test=32, epochs=1, latent_dim=4, emb_dim=16,
                                    enc_hidden=16, dec_hidden=16, max_len=20, warmup_epochs=1, lr_decay_after=1,
                                    svi_steps=2, iw_samples=4, iw_chunk=2, batch_size=16,
                                    notes="smoke profile: seconds"),
}


# The semi-amortized models' own cut of a reduced profile, applied on top of it. At the cpu profile's Yahoo sizes
# an SA-VAE step with its 3 SVI steps costs 12-15 VAE steps (benchmarks/bench_models.py --sa-text), so a Table 4
# SA run at the VAE's budget would take about 7 hours. SA-VAE and Skip-SA-VAE share this smaller budget (about an
# hour of training each); the claims that concern them (C4) compare them with each other, never with the VAE rows.
SEMI_AMORTIZED_CUT = {
    ("cpu", "text", "lstm"): dict(n_train=2000, epochs=4, warmup_epochs=2, lr_decay_after=3,
                                  notes="cpu profile, semi-amortized models: a smaller LSTM on 2,000 training "
                                        "documents cut to the test documents' mean length, for 4 epochs, with "
                                        "fewer SVI steps and importance samples"),
}


# Sizes of a split that may be the whole split (stored as None). In overrides, where None means "not given",
# WHOLE asks for the whole split: make_config(..., clf_n_train="all"), `--n-train all`, `n_train: all` in a sweep.
SPLIT_SIZES = ("n_train", "n_valid", "n_test", "n_eval_nll", "clf_n_train", "clf_n_test")
WHOLE = "all"


def _override(name: str, value):
    """An override's stored value: WHOLE -> None for a split size; refused for any other field."""
    if isinstance(value, str) and value == WHOLE:
        if name not in SPLIT_SIZES:
            raise ConfigError(f"{name}={WHOLE!r} is impossible: only the split sizes {', '.join(SPLIT_SIZES)} can "
                              f"be {WHOLE!r} (the whole split).")
        return None
    return value


def kl_anneal_epochs(epochs: int) -> int:
    """kl-anneal's warm-up where the family has none, for a profile that trains `epochs`: KL_ANNEAL_EPOCHS, at most
    half of them (at least 1)."""
    return max(1, min(KL_ANNEAL_EPOCHS, epochs // 2))


def objective_defaults(objective: str, values: dict) -> dict:
    """What an objective sets on top of the profile (the user's overrides still win): kl-anneal gets
    kl_anneal_epochs of warm-up where the family has none (images), cyclical none (its cycles replace it)."""
    if objective == "kl-anneal" and not values.get("warmup_epochs"):
        return {"warmup_epochs": kl_anneal_epochs(values["epochs"])}
    if objective == "cyclical":
        return {"warmup_epochs": 0}
    return {}


def family(dataset: str) -> str:
    return "text" if dataset == "yahoo" else "image"


def default_arch(dataset: str) -> str:
    return "lstm" if dataset == "yahoo" else "pixelcnn"


def make_config(dataset: str = "mnist", model: str = "vae", profile: str = "paper", arch: str | None = None,
                **overrides) -> RunConfig:
    """The config of one run: paper defaults, then the profile's reductions (and the semi-amortized models' own
    cut of them, SEMI_AMORTIZED_CUT), then `overrides`.

    `model` is a name of MODELS (it sets the identity fields skip and inference; `lm` also sets latent_dim = 0);
    `skip=...` or `inference=...` in `overrides` set an axis directly; an override of None is no override, and
    a split size (SPLIT_SIZES) of WHOLE ("all") is the whole split; `objective=...` selects a collapse remedy
    (OBJECTIVES; objective_defaults). Raises ConfigError, listing the valid choices, for an unknown name or an
    impossible value.
    """
    _choice("dataset", dataset, DATASETS)
    _choice("profile", profile, PROFILES)
    axes = model_axes(model)
    arch = arch or default_arch(dataset)
    _choice("arch", arch, ARCHS_FOR[dataset], f" for dataset {dataset!r}")
    known = {f.name for f in dataclasses.fields(RunConfig)} - {"dataset", "arch", "profile"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown config option(s) {unknown}; valid options: {sorted(known)}")
    values = dict(PAPER[(family(dataset), arch)])
    if profile != "paper":
        values.update(REDUCED[(profile, family(dataset), arch)])
        if (overrides.get("inference") or axes["inference"]) == "semi-amortized":
            values.update(SEMI_AMORTIZED_CUT.get((profile, family(dataset), arch), {}))
    if axes["inference"] == "none":
        values["latent_dim"] = 0
    values.update(axes)
    explicit = {k: _override(k, v) for k, v in overrides.items() if v is not None}
    values.update(objective_defaults(overrides.get("objective") or "elbo", values | explicit))  # the run's epochs
    values.update(explicit)
    return RunConfig(dataset=dataset, arch=arch, profile=profile, **values).validate()
