"""What declares an experiment (one module per experiment in this package; no training here).

    Param     a notebook parameter: its kind (skipvae.params), its default and what it means
    Block     a part of the experiment's runs: the cartesian product of `grid` over `base`, as in a sweep file
    Sweep     a sweep file generated from some of the blocks at one profile (sweeps/<file>.yaml)
    Experiment  the whole declaration: the table's row columns, the parameters, the blocks per profile and its
              sweeps (the paper tables it rebuilds are named in book/paper_numbers.yaml, its claims in
              skipvae.report.claims.CLAIM_RULES: each is defined once, there)

`Experiment.blocks(profile, params)` is the one place where an experiment's runs are written: the notebook calls
it with its parameters, and `sweep_text` writes the sweep files from it with the defaults (`python -m skipvae
sweeps --write`; a test checks that every committed sweep file is what its declaration generates).
"""

from __future__ import annotations

import copy
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import yaml

from skipvae.config import LATENT_MODELS, RunConfig
from skipvae.errors import ConfigError
from skipvae.sweepfile import expand_sweep


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # a kind of skipvae.params.CHECKS
    default: object
    about: str


@dataclass(frozen=True)
class Block:
    """Runs of one part of an experiment: the product of each mapping of `grid` over `base` (the union over the
    mappings, in order), exactly as `grid` and `base` in a sweep file (skipvae.sweepfile)."""
    name: str
    base: dict
    grid: tuple[dict, ...]

    def configs(self) -> list[RunConfig]:
        return expand_sweep({"name": self.name, "base": self.base, "grid": list(self.grid)}).configs


def block(name: str, base: dict, *grids: dict) -> Block | None:
    """A Block of the non-empty grids (None when every grid has an empty axis: a part switched off by its
    parameters, e.g. no LSTM depths)."""
    kept = tuple(g for g in grids if all(g.values()))
    return Block(name, dict(base), kept) if kept else None


def force_param(about: str) -> Param:
    """`force`: redo what a finished result (`about` says which) would otherwise be reused for."""
    return Param("force", "bool", False, about)


# the parameters several experiments share, declared once
FORCE = force_param("retrain even if an identical finished run exists")
SA_SEEDS = Param("sa_seeds", "optional_seeds", None, "seeds of SA-VAE and Skip-SA-VAE (None: those of `seeds` at "
                 "the paper profile, the first at the reduced ones, where SVI makes them about 10x slower to train)")


def with_sa_seeds(profile: str, p: dict) -> dict:
    """`p` with sa_seeds None (SA_SEEDS) replaced: every seed of `seeds` at the paper profile, the first at the
    reduced ones."""
    if p["sa_seeds"] is not None:
        return p
    seeds = list(p["seeds"])
    return {**p, "sa_seeds": seeds if profile == "paper" else seeds[:1]}


def seeds_param(seeds: list, about: str = "seeds per model") -> Param:
    return Param("seeds", "seeds", seeds, about)


# how the project runs a paper-profile sweep on its two CPU lanes (--confirm-long: it knows it takes many hours)
CPU_PAPER_COMMAND = "--jobs 2 --threads-per-run 1 --piece-seconds 3600 --confirm-long"


def first_only(p: dict, *names: str) -> dict:
    """`p` with each named list parameter cut to its first value (the smoke profile's one seed, one depth)."""
    return {**p, **{n: list(p[n])[:1] for n in names}}


@dataclass(frozen=True)
class Sweep:
    """sweeps/<file>.yaml: the runs of `blocks` (all when empty) at `profile`, with the parameters `params`
    changed from their defaults, axes ordered `order` first (outermost) when given."""
    file: str
    profile: str
    about: str
    blocks: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    order: tuple[str, ...] = ()
    command: str = "--jobs 2 --threads-per-run 1 --piece-seconds 3600"

    @property
    def name(self) -> str:
        return self.file.replace("_", "-")

    def commands(self, experiment: str) -> list[str]:
        """How the project runs it and collects its records into results/<experiment>/."""
        return [f"python -m skipvae sweep sweeps/{self.file}.yaml {self.command}".rstrip(),
                f"python -m skipvae collect runs/{self.name} --experiment {experiment}"]


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    by: tuple[str, ...]  # the config columns that, with the profile, identify a row of the experiment's table
    models: tuple[str, ...] = LATENT_MODELS  # the models its notebook trains (the rows shown before any run exists)
    source: str = ""  # the source notebook's stem when it is not the experiment's name
    params: tuple[Param, ...] = ()
    make_blocks: Callable[[str, dict], list] | None = None  # (profile, parameters) -> [Block | None]
    reduce: Callable[[str, dict], dict] | None = None  # (profile, parameters) -> the parameters the profile uses
    threads: bool = True  # whether its notebook takes `threads` (torch's CPU threads): the ones that train
    sweeps: tuple[Sweep, ...] = ()

    @property
    def page(self) -> str:
        return f"experiments/{self.name}"

    @property
    def notebook(self) -> str:
        return f"notebooks/{self.source or self.name}.ipynb"

    @property
    def spec(self) -> dict[str, str]:
        """{parameter: kind} of the notebook's parameters (profile and threads included)."""
        return {"profile": "profile", **{p.name: p.kind for p in self.params},
                **({"threads": "nonneg_int"} if self.threads else {})}

    def default(self, name: str):
        """The declared default of parameter `name` (a copy)."""
        if name not in self.defaults():
            raise self._unknown(repr(name))
        return self.defaults()[name]

    def defaults(self) -> dict:
        """{parameter: its default} (copies: a notebook may change its lists without changing the declaration)."""
        return {p.name: copy.deepcopy(p.default) for p in self.params}

    def parameters(self, profile: str, params: dict | None = None) -> dict:
        """Every parameter's value at `profile`: `params`, the defaults for the ones not given, then the profile's
        reductions (the smoke profile's one seed, ...)."""
        for name, value in (params or {}).items():
            if name not in self.defaults():
                raise self._unknown(f"{name}={value!r}")
        values = {**self.defaults(), **(params or {})}
        return self.reduce(profile, values) if self.reduce else values

    def _unknown(self, given: str) -> ConfigError:
        """The error for `given` (a parameter, with its value where there is one) that the experiment does not
        declare."""
        return ConfigError(f"unknown parameter {given} of experiment {self.name!r}; valid parameters: "
                           f"{', '.join(self.defaults()) or 'none'}.")

    def blocks(self, profile: str, params: dict | None = None) -> dict[str, Block]:
        """{block name: Block} of the runs at `profile` with `params` (the defaults for the ones not given)."""
        if self.make_blocks is None:
            return {}
        found = self.make_blocks(profile, self.parameters(profile, params))
        return {b.name: b for b in found if b is not None}

    def configs(self, profile: str, params: dict | None = None) -> dict[str, list[RunConfig]]:
        """{block name: its configs} at `profile` with `params`."""
        return {name: b.configs() for name, b in self.blocks(profile, params).items()}

    def all_configs(self, profile: str, params: dict | None = None) -> list[RunConfig]:
        """Every run of the experiment at `profile`, each once (a run in two blocks is trained once)."""
        runs = {}
        for configs in self.configs(profile, params).values():
            runs.update({c.run_name(): c for c in configs if c.run_name() not in runs})
        return list(runs.values())


# ------------------------------------------------------------------------------------------------ sweep files

def _ordered(grid: dict, order: tuple[str, ...]) -> dict:
    return {**{k: grid[k] for k in order if k in grid}, **{k: v for k, v in grid.items() if k not in order}}


def sweep_spec(exp: Experiment, sweep: Sweep) -> dict:
    """{name, base, grid} of `sweep`: the options every chosen block shares go to `base`, the rest to the grid
    (one mapping per block mapping, an option of a block's own base as a one-value list)."""
    blocks = exp.blocks(sweep.profile, sweep.params)
    for name in sweep.blocks:
        if name not in blocks:
            raise ConfigError(f"sweep {sweep.file}: unknown block {name!r} of experiment {exp.name!r} at profile "
                              f"{sweep.profile!r}; its blocks there: {', '.join(blocks) or 'none'}.")
    chosen = [blocks[n] for n in sweep.blocks] if sweep.blocks else list(blocks.values())
    if not chosen:
        raise ConfigError(f"sweep {sweep.file}: experiment {exp.name!r} has no runs at profile {sweep.profile!r} "
                          f"with parameters {sweep.params!r}; a sweep needs at least one block.")
    bases = [b.base | {"profile": sweep.profile} for b in chosen]
    shared = {k: v for k, v in bases[0].items() if all(k in b and b[k] == v for b in bases)}
    grids = [_ordered({**{k: [v] for k, v in base.items() if k not in shared}, **g}, sweep.order)
             for b, base in zip(chosen, bases) for g in b.grid]
    return {"name": sweep.name, "base": shared, "grid": grids[0] if len(grids) == 1 else grids}


def _flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()


def sweep_text(exp: Experiment, sweep: Sweep) -> str:
    """The text of sweeps/<file>.yaml: a generated header (what it runs and how), then name, base and grid."""
    spec = sweep_spec(exp, sweep)
    n = len(expand_sweep(spec).configs)
    about = f"{sweep.about} {n} runs."
    lines = [f"# Generated from skipvae/experiments/{exp.name}.py (python -m skipvae sweeps --write): edit that, "
             "not this.",
             *textwrap.wrap(about, 116, initial_indent="# ", subsequent_indent="# "),
             *(f"#   {line}" for line in sweep.commands(exp.name)),
             f"name: {spec['name']}", f"base: {_flow(spec['base'])}", "grid:"]
    grids = spec["grid"]
    if isinstance(grids, dict):
        lines += [f"  {k}: {_flow(v)}" for k, v in grids.items()]
    else:
        lines += [f"  - {_flow(g)}" for g in grids]
    return "\n".join(lines) + "\n"
