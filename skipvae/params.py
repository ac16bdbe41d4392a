"""One validation path for every parameter a user types: the CLI, sweep files and the notebooks' parameter cells.

    check_param("seeds", [0, 1], "seeds")           # returns the value, or raises ConfigError naming it
    check_fields(cfg)                               # the type and range of every RunConfig field (RunConfig.validate)
    check_notebook_parameters(given, SPEC)          # a notebook's parameters: unknown names and bad values refused
    check_device("cuda")                            # a torch device this machine has

Every error is one line: the parameter, the value given and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math

from skipvae.errors import ConfigError
from skipvae.names import DATASETS, MODELS, OBJECTIVES, PROFILES

SEED_MAX = 2**32 - 1


def _fail(name: str, value, allowed: str):
    raise ConfigError(f"{name}={value!r} is impossible: {allowed}.")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _int(name, v, lo=None, hi=None, allowed="an integer"):
    if not _is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        _fail(name, v, f"it must be {allowed}")
    return v


def _list_of(name, v, check_item, allowed):
    if not isinstance(v, (list, tuple)) or not v:
        _fail(name, v, f"it must be a non-empty list of {allowed}, e.g. {name}=[...]")
    for item in v:
        try:
            check_item(item)
        except ConfigError:
            _fail(name, v, f"it must be a non-empty list of {allowed}; {item!r} is not")
    return list(v)


def _choices(kind: str) -> tuple:
    return {"profile": PROFILES, "model": MODELS, "dataset": DATASETS, "objective": OBJECTIVES}[kind]


def _seed(name, v):
    return _int(name, v, 0, SEED_MAX, f"an integer in [0, {SEED_MAX}]")


def _choice(name, v, kind):
    choices = _choices(kind)
    if not isinstance(v, str) or v not in choices:
        _fail(name, v, f"valid choices: {', '.join(choices)}")
    return v


def _extra_seeds(name, v):
    """{int: [seeds]}, e.g. extra seeds per latent dimension (keys given as digit strings, as papermill's JSON
    passes them, become integers)."""
    if not isinstance(v, dict) or not all(_is_int(k) or (isinstance(k, str) and k.isdigit()) for k in v):
        _fail(name, v, "it must be a mapping of integers to lists of seeds, e.g. {64: [1, 2]}")
    for key, seeds in v.items():
        _list_of(f"{name}[{key}]", seeds, lambda s: _seed("seed", s), "non-negative integer seeds")
    return {int(k): list(seeds) for k, seeds in v.items()}


def _model_grid(name, v):
    """{model: [latent dimensions]}, e.g. Table 4's {'lm': [0], 'vae': [32], 'sa-vae': [32, 64]}."""
    if not isinstance(v, dict) or not v:
        _fail(name, v, "it must be a non-empty mapping of model names to lists of latent dimensions, "
                       "e.g. {'vae': [32], 'sa-vae': [32, 64]}")
    for model, dims in v.items():
        _choice(f"{name} key", model, "model")
        _list_of(f"{name}[{model!r}]", dims, lambda d: _int("latent_dim", d, 0), "non-negative integers")
    return {m: list(d) for m, d in v.items()}


# kind -> checker(name, value); the kinds of the notebooks' parameter cells and of RunConfig's fields.
CHECKS = {
    "int": lambda n, v: _int(n, v),
    "positive_int": lambda n, v: _int(n, v, 1, None, "a positive integer"),
    "nonneg_int": lambda n, v: _int(n, v, 0, None, "a non-negative integer"),
    "seed": _seed,
    "float": lambda n, v: v if _is_number(v) else _fail(n, v, "it must be a finite number"),
    "positive_float": lambda n, v: v if _is_number(v) and v > 0 else _fail(n, v, "it must be a finite number > 0"),
    "bool": lambda n, v: v if isinstance(v, bool) else _fail(n, v, "it must be true or false"),
    "str": lambda n, v: v if isinstance(v, str) else _fail(n, v, "it must be a string"),
    "dict": lambda n, v: v if isinstance(v, dict) else _fail(n, v, "it must be a mapping"),
    "profile": lambda n, v: _choice(n, v, "profile"),
    "dataset": lambda n, v: _choice(n, v, "dataset"),
    "model": lambda n, v: _choice(n, v, "model"),
    "models": lambda n, v: _list_of(n, v, lambda m: _choice("model", m, "model"),
                                    f"models ({', '.join(_choices('model'))})"),
    "datasets": lambda n, v: _list_of(n, v, lambda d: _choice("dataset", d, "dataset"),
                                      f"datasets ({', '.join(_choices('dataset'))})"),
    "objectives": lambda n, v: _list_of(n, v, lambda o: _choice("objective", o, "objective"),
                                        f"objectives ({', '.join(_choices('objective'))})"),
    "seeds": lambda n, v: _list_of(n, v, lambda s: _seed("seed", s), "non-negative integer seeds"),
    "positive_ints": lambda n, v: _list_of(n, v, lambda i: _int("value", i, 1), "positive integers"),
    "positive_ints_or_none": lambda n, v: [] if v == [] else _list_of(n, v, lambda i: _int("value", i, 1),
                                                                       "positive integers (or [] for none)"),
    "model_grid": _model_grid,
    "positive_floats": lambda n, v: _list_of(n, v, lambda x: x if _is_number(x) and x > 0 else _fail("value", x, ""),
                                             "finite numbers > 0"),
    "nonneg_float": lambda n, v: v if _is_number(v) and v >= 0 else _fail(n, v, "it must be a finite number >= 0"),
    "int_list": lambda n, v: _list_of(n, v, lambda i: _int("value", i), "integers"),
    "extra_seeds": _extra_seeds,
}


def check_param(name: str, value, kind: str):
    """`value` if it is a valid `kind` (a key of CHECKS; 'optional_<kind>' also allows None), else ConfigError."""
    if kind.startswith("optional_"):
        if value is None:
            return None
        kind = kind[len("optional_"):]
    if kind not in CHECKS:
        raise ConfigError(f"{name}={value!r} has the unknown parameter kind {kind!r}; valid kinds: "
                          f"{', '.join(CHECKS)} (each also as optional_<kind>).")
    return CHECKS[kind](name, value)


# RunConfig field annotations -> kinds (fields not listed here are checked by RunConfig.validate itself)
ANNOTATION_KINDS = {"int": "int", "float": "float", "str": "str", "bool": "bool", "dict": "dict",
                    "int | None": "optional_int", "float | None": "optional_float",
                    "list[int] | None": "optional_int_list"}
FIELD_KINDS = {"seed": "seed", "lr": "positive_float"}  # fields with a stricter kind than their annotation


def check_fields(cfg) -> None:
    """The type of every field of a RunConfig (ints are ints, not bools or strings; floats finite), seed >= 0,
    lr > 0, and a batch size no larger than the training split."""
    for f in dataclasses.fields(cfg):
        kind = FIELD_KINDS.get(f.name) or ANNOTATION_KINDS.get(str(f.type))
        if kind:
            check_param(f.name, getattr(cfg, f.name), kind)
    if _is_int(cfg.n_train) and cfg.n_train > 0 and _is_int(cfg.batch_size) and cfg.batch_size > cfg.n_train:
        raise ConfigError(f"batch_size={cfg.batch_size} is impossible with n_train={cfg.n_train}: a batch cannot "
                          f"be larger than the training split; use --batch-size {cfg.n_train} or less.")


def check_notebook_parameters(given: dict, spec: dict) -> dict:
    """The parameters of a notebook, checked against `spec` ({name: kind}); returns them.

    Unknown names (a typo in `papermill -p`) and bad values raise one ConfigError that names the parameter,
    the value and what is allowed."""
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ConfigError(f"unknown notebook parameter(s) {unknown}; valid parameters: {', '.join(spec)}.")
    return {name: check_param(name, value, spec[name]) for name, value in given.items()}


def notebook_parameters(namespace: dict, spec: dict, before: set) -> dict:
    """check_notebook_parameters on the names a parameters cell (and papermill's injected cell) defined:
    the public names of `namespace` (a notebook's globals()) that are not in `before` (the names that
    existed before the parameters cell). Typical use, first line of the parameters cell:
    `_names = set(globals())`; then, in the next cell: `notebook_parameters(globals(), SPEC, _names)`."""
    given = {k: v for k, v in namespace.items() if not k.startswith("_") and k not in before}
    return check_notebook_parameters(given, spec)


def check_device(device) -> "str | None":
    """None (pick automatically) or a torch device string that this machine has; else ConfigError."""
    if device is None:
        return None
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    allowed = f"cpu, cuda, cuda:0 ... cuda:{n - 1}" if n else "cpu (this machine has no CUDA device)"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        _fail("device", device, f"valid devices on this machine: {allowed}")
    if dev.type == "cpu":
        return str(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count():
            _fail("device", device, f"valid devices on this machine: {allowed}")
        return str(device)
    if dev.type == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return str(device)
    _fail("device", device, f"valid devices on this machine: {allowed}")


def check_out_dir(name: str, path, _parents_only: bool = False) -> str:
    """`path` if it is, or can become, a folder (it and every existing parent are folders); else ConfigError."""
    from pathlib import Path

    given = Path(path)
    for part in given.parents if _parents_only else (given, *given.parents):
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                what = "is a file" if part == given else f"is inside {part}, which is a file"
                _fail(name, str(path), f"it {what}; give a folder (it is created if missing)")
            break
    return str(path)


def check_out_file(name: str, path) -> str:
    """`path` if a file can be written there (not a folder, its parent a folder or missing); else ConfigError."""
    from pathlib import Path

    if Path(path).is_dir() or str(path).endswith(("/", "\\")):
        _fail(name, str(path), "it is a folder; give the path of a file to write, e.g. metrics.json")
    return check_out_dir(name, path, _parents_only=True)
