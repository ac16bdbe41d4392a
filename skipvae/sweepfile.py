"""Sweep files: a YAML file read safely and expanded into validated run configs (no training here; the runner is
skipvae.sweep, and the budget reads plans through this module).

A sweep file:

    name: mnist-paper            # runs go to OUT/<name>/<run_name>
    base: {dataset: mnist, profile: paper}
    grid:                        # the cartesian product of these lists, each applied over `base`
      model: [vae, skip-vae]
      seed: [0, 1, 2]

`grid` may also be a list of such mappings: the union of their products, in order (e.g. three seeds at some
depths and one at the others). A grid names at least one option (one run: `grid: {seed: [0]}`); `name` is a plain
folder name (letters, digits, '.', '_', '-'). Files that are not small plain UTF-8 YAML (tags such as !!python,
more than 100 aliases, more than 100,000 values once expanded) are refused before anything runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

from skipvae.config import RunConfig, make_config
from skipvae.errors import ConfigError
from skipvae.records import safe_name


@dataclass
class Sweep:
    name: str
    configs: list[RunConfig]


MAX_SWEEP_BYTES = 1 << 20  # a sweep file is a few lines; anything near this is not one
MAX_ALIASES = 100  # YAML aliases (*name) in a sweep file; nested ones multiply ("billion laughs")
MAX_NODES = 100_000  # values of the expanded file


class _SweepLoader(yaml.SafeLoader):
    """safe_load with a cap on aliases, so that nested aliases cannot blow up what the file expands to."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases_seen = getattr(self, "aliases_seen", 0) + 1
            if self.aliases_seen > MAX_ALIASES:
                raise ConfigError(f"sweep file {self.name} has more than {MAX_ALIASES} YAML aliases (*name); "
                                  f"write the values out instead.")
        return super().compose_node(parent, index)


def _count_nodes(obj) -> None:
    """Walk `obj` (an alias counted each time it occurs), ConfigError once it has more than MAX_NODES values."""
    stack, seen = [obj], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ConfigError(f"a sweep file expands to more than {MAX_NODES} values (nested aliases?); write a "
                              f"smaller file.")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _yaml_error(path: Path, err: yaml.YAMLError) -> str:
    """A YAML error in one line: what and where."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = " ".join(str(getattr(err, "problem", None) or err).split())
    return f"{path} is not valid YAML: {what}{where} (a sweep file is plain YAML: no tags such as !!python)"


def load_sweep(path: str | Path, profile: str | None = None) -> Sweep:
    """Read and validate a sweep file; every run's config is checked before anything runs. Files that are not
    small UTF-8 YAML without tags, or that expand past MAX_NODES values through aliases, are refused. `profile`
    replaces the file's `base.profile` (the same grid at another scale, e.g. a notebook's profile)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no sweep file at {path}; see sweeps/ for examples")
    if path.stat().st_size > MAX_SWEEP_BYTES:
        raise ConfigError(f"{path} is not a sweep file: {path.stat().st_size} bytes, at most {MAX_SWEEP_BYTES}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not a sweep file: not UTF-8 text (byte {err.start} is "
                          f"{err.object[err.start]:#04x})") from None
    loader = _SweepLoader(text)
    loader.name = str(path)
    try:
        spec = loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_error(path, err)) from None
    finally:
        loader.dispose()
    _count_nodes(spec)
    if profile is not None and isinstance(spec, dict) and isinstance(spec.get("base") or {}, dict):
        spec = {**spec, "base": {**(spec.get("base") or {}), "profile": profile}}
    return expand_sweep(spec, default_name=path.stem)


def expand_sweep(spec: dict, default_name: str = "sweep") -> Sweep:
    """The cartesian product of `grid` (or the union over a list of grids) over `base`, as validated RunConfigs
    (duplicates removed, first occurrence kept)."""
    if not isinstance(spec, dict) or not set(spec) <= {"name", "base", "grid"}:
        raise ConfigError("a sweep file is a mapping with keys name, base and grid; got "
                          f"{sorted(map(str, spec)) if isinstance(spec, dict) else type(spec).__name__}")
    if not isinstance(spec.get("base") or {}, dict):
        raise ConfigError(f"sweep base={spec['base']!r} is impossible: it must be a mapping of config options to "
                          "values, e.g. base: {model: vae, seed: 0}")
    grids = spec.get("grid")
    grids = grids if isinstance(grids, list) else [grids]
    if not grids or not all(isinstance(g, dict) and g for g in grids):
        raise ConfigError(f"sweep grid={spec.get('grid')!r} is impossible: it must be a mapping of config options to "
                          "lists of values, e.g. grid: {model: [vae, skip-vae]}, or a list of such mappings "
                          "(one run: grid: {seed: [0]})")
    if not isinstance(spec.get("name", ""), (str, type(None))):
        raise ConfigError(f"sweep name={spec['name']!r} is impossible: it must be a string")
    base = dict(spec.get("base") or {})
    configs, seen = [], set()
    for grid in grids:
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"grid entry {key!r} must be a non-empty list, got {values!r}")
        for combo in itertools.product(*grid.values()):
            values = base | dict(zip(grid, combo))
            dataset = values.pop("dataset", "mnist")
            model = values.pop("model", "vae")
            profile = values.pop("profile", "paper")
            try:
                cfg = make_config(dataset, model, profile, **values)
            except ConfigError as err:
                raise ConfigError(f"sweep run {dict(zip(grid, combo)) or base}: {err}") from None
            if cfg.key() not in seen:
                seen.add(cfg.key())
                configs.append(cfg)
    return Sweep(name=safe_name(str(spec.get("name") or default_name), "sweep name"), configs=configs)
