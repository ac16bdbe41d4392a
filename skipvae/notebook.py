"""What every experiment notebook does first (`start`): check its parameters, set up plotting and threads.

    # the parameters cell:
    _names = set(globals())
    profile = default_profile()
    threads = 0
    globals().update(experiment(EXPERIMENT).defaults())   # declared once, in skipvae/experiments/<name>.py
    # the next cell:
    out_dir, params = start(EXPERIMENT, globals(), _names)

The kind of each parameter is declared with it (`skipvae.experiments.Param`, checked by `skipvae.params.CHECKS`);
an unknown name (a typo in `papermill -p`) or a bad value stops the notebook in its first cell with one line
naming the parameter, the value and what is allowed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from skipvae.experiments import experiment
from skipvae.params import notebook_parameters
from skipvae.results import results_dir


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
    params = {p: given[p] for p in experiment(name).defaults()}
    display(parameters_table(name, params))
    return results_dir(name, profile), params
