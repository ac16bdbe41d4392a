"""What every experiment notebook does first (`start`): check its parameters, set up plotting and threads.

    # first line of the parameters cell:     _names = set(globals())
    # the next cell:
    out_dir = start("mnist", globals(), SPEC, _names)

SPEC maps each parameter to its kind (`skipvae.params.CHECKS`); an unknown name (a typo in `papermill -p`) or a bad
value stops the notebook in its first cell with one line naming the parameter, the value and what is allowed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from skipvae.experiments import results_dir
from skipvae.params import notebook_parameters


def start(experiment: str, namespace: dict, spec: dict, before: set) -> Path:
    """Check the parameters (the names defined since `before`), set the plotting theme and torch's threads
    (`threads`, or 1 at the smoke profile); returns the experiment's results folder for this profile."""
    import seaborn as sns
    import torch

    params = notebook_parameters(namespace, spec, before)
    profile = namespace["profile"]
    sns.set_theme(style="whitegrid", context="notebook")
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets: plain bars
    threads = params.get("threads", namespace.get("threads")) or (1 if profile == "smoke" else 0)
    if threads:
        torch.set_num_threads(threads)
    return results_dir(experiment, profile)
