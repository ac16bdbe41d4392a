"""Each experiment declared once, one module each: its notebook's parameters, its runs per profile and the sweep
files generated from them (skipvae.experiments.declaration). No training here: the runner is skipvae.runner.

    from skipvae.experiments import experiment
    experiment("latent_dim").configs("cpu")        # {block: [RunConfig, ...]} of Table 1 at the cpu profile
"""

from __future__ import annotations

from skipvae.errors import DataError
from skipvae.experiments import collapse, depth, latent_dim, mnist, omniglot, remedies, theory, yahoo
from skipvae.experiments.declaration import Block, Experiment, Param, Sweep, sweep_spec, sweep_text

EXPERIMENTS = {m.EXPERIMENT.name: m.EXPERIMENT
               for m in (mnist, omniglot, yahoo, latent_dim, depth, collapse, remedies, theory)}
MAIN_EXPERIMENTS = ("mnist", "omniglot", "yahoo")

__all__ = ["EXPERIMENTS", "MAIN_EXPERIMENTS", "Block", "Experiment", "Param", "Sweep", "experiment", "sweep_spec",
           "sweep_text", "sweep_files"]


def experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise DataError(f"unknown experiment {name!r}; known experiments: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def sweep_files() -> dict[str, str]:
    """{file stem: text} of every sweep file the experiments declare (sweeps/<stem>.yaml)."""
    files = {}
    for exp in EXPERIMENTS.values():
        for sweep in exp.sweeps:
            if sweep.file in files:
                raise ValueError(f"sweep file {sweep.file} is declared twice")
            files[sweep.file] = sweep_text(exp, sweep)
    return files
