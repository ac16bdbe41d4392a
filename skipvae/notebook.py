"""What every experiment notebook does first (`start`): check its parameters, set up plotting and threads.

    # the parameters cell, generated from the declaration (`parameters_cell`; a test checks it):
    _names = set(globals())
    profile: str = default_profile()  # ...
    seeds: list = EXP.default("seeds")  # seeds per model
    ...
    # the next cell:
    out_dir, params = start(EXPERIMENT, globals(), _names)

Each parameter's kind, default and meaning are declared once, in skipvae/experiments/<name>.py (`Param`, checked
by `skipvae.params.CHECKS`); the cell names them so that papermill (`papermill --help-notebook`) knows them. An
unknown name (a typo in `papermill -p`) or a bad value stops the notebook in its first cell with one line naming
the parameter, the value and what is allowed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from skipvae.errors import ConfigError
from skipvae.experiments import experiment
from skipvae.params import notebook_parameters
from skipvae.results import results_dir


PROFILE_LINE = ("profile: str = default_profile()  # smoke (seconds; chosen automatically when CI is set or "
                "SKIPVAE_PROFILE is smoke), cpu (2 CPU cores, reduced), paper (the paper's settings; GPU)")
THREADS_LINE = ("threads: int = 0  # torch CPU threads (0: torch default; 1 is much faster on a busy shared machine, "
                "and the smoke profile uses 1)")
# the annotation of a parameter whose default is None, by its kind
OPTIONAL_TYPES = {"optional_positive_int": "int | None", "optional_seeds": "list | None"}


def parameters_cell(name: str) -> str:
    """The source of the notebook's parameters cell: each declared parameter at its declared default, with its
    meaning as the comment papermill shows."""
    exp = experiment(name)
    lines = ["_names = set(globals())  # the names defined before the parameters: `start` checks the rest",
             PROFILE_LINE]
    for p in exp.params:
        lines.append(f'{p.name}: {annotation(name, p)} = EXP.default("{p.name}")  # {p.about}')
    if exp.threads:
        lines.append(THREADS_LINE)
    return "\n".join(lines)


def annotation(name: str, p) -> str:
    """The type annotation of parameter `p` (a Param of experiment `name`) in the parameters cell."""
    if p.default is not None:
        return type(p.default).__name__
    if p.kind not in OPTIONAL_TYPES:
        raise ConfigError(f"parameter {p.name!r} of experiment {name!r} has default None and kind={p.kind!r}; a "
                          f"default of None needs one of the kinds {', '.join(OPTIONAL_TYPES)}.")
    return OPTIONAL_TYPES[p.kind]


def parameters_table(name: str, params: dict):
    """The notebook's parameters: value, declared default (when it differs) and meaning, one row each."""
    import pandas as pd

    rows = [{"parameter": p.name, "value": repr(params[p.name]),
             "default": "" if params[p.name] == p.default else repr(p.default), "meaning": p.about}
            for p in experiment(name).params]
    return pd.DataFrame(rows, columns=["parameter", "value", "default", "meaning"])


def start(name: str, namespace: dict, before: set) -> tuple[Path, dict]:
    """Check the parameters (the names defined since `before`) against the experiment's declaration, set the
    plotting theme and torch's threads (`threads`, or 1 at the smoke profile) and show the parameters; returns
    (the experiment's results folder for this profile, {parameter: value} of the declared parameters)."""
    import seaborn as sns
    import torch
    from IPython.display import display

    given = notebook_parameters(namespace, experiment(name).spec, before)
    profile = given["profile"]
    sns.set_theme(style="whitegrid", context="notebook")
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets: plain bars
    threads = given.get("threads") or (1 if profile == "smoke" else 0)
    if threads:
        torch.set_num_threads(threads)
    params = experiment(name).parameters(profile, {p: given[p] for p in experiment(name).defaults()})
    display(parameters_table(name, params))
    return results_dir(name, profile), params
