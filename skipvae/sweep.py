"""Sweeps: expand a YAML file into run configs and run the unfinished ones, here or on Slurm (submitit).

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

`--jobs N` (local executor) trains N runs at once on this machine, each in its own process with its share of
the CPU threads (`threads_per_run`, default cpu_count // N) or, on a GPU, sharing the one device. A run's
numbers do not depend on N: each run is seeded by its config alone, and its thread count is set explicitly.

Every run trains in *pieces*: a piece stops cleanly at an epoch boundary before `time_budget_s` and the next
piece resumes from the checkpoint, so long trainings fit short job slots. Because a resumed run ends exactly
where an uninterrupted one would, the final record does not depend on how the run was cut into pieces.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from skipvae.config import RunConfig, make_config
from skipvae.errors import ConfigError
from skipvae.params import check_out_dir
from skipvae.records import finished_record, inside, safe_name
from skipvae.train import RECORD

EXECUTORS = ("local", "submitit-local", "slurm")


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


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; every run's config is checked before anything runs. Files that are not
    small UTF-8 YAML without tags, or that expand past MAX_NODES values through aliases, are refused."""
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


def is_finished(cfg: RunConfig, run_dir: Path) -> bool:
    return finished_record(cfg, run_dir / RECORD) is not None


def run_piece(cfg_dict: dict, run_dir: str, time_budget_s: float | None, data_dir=None,
              max_epochs: int | None = None) -> dict:
    """Train one piece of a run (a job's body); returns {'status': 'finished'|'paused', ...}."""
    from skipvae.train import train

    cfg = RunConfig.from_dict(cfg_dict).validate()
    record = train(cfg, Path(run_dir), data_dir=data_dir, progress=False, time_budget_s=time_budget_s,
                   max_epochs=max_epochs)
    return {"status": record["status"], "epochs_completed": record["epochs_completed"], "run_dir": str(run_dir)}


def run_to_completion(cfg: RunConfig, run_dir: Path, time_budget_s: float | None, data_dir=None,
                      max_epochs: int | None = None) -> int:
    """Run pieces one after another in this process until the run finishes; returns the number of pieces."""
    pieces = 0
    while True:
        pieces += 1
        out = run_piece(cfg.to_dict(), str(run_dir), time_budget_s, data_dir, max_epochs)
        if out["status"] == "finished":
            return pieces


def _set_threads(threads: int) -> None:
    """The torch CPU threads of this process (a parallel sweep's worker, or a sequential sweep's own process)."""
    import torch

    torch.set_num_threads(threads)


_WORKER = {"stopped": False, "busy": False}  # a --jobs worker told to stop starts no further run


def _run_local_job(cfg_dict: dict, run_dir: str, time_budget_s, data_dir, max_epochs) -> tuple[str, int]:
    from skipvae.errors import Interrupted

    if _WORKER["stopped"]:
        raise Interrupted(f"{Path(run_dir).name} not started: the sweep is stopping", 15)
    cfg = RunConfig.from_dict(cfg_dict)
    _WORKER["busy"] = True
    try:
        return run_dir, run_to_completion(cfg, Path(run_dir), time_budget_s, data_dir, max_epochs)
    except (Interrupted, KeyboardInterrupt):
        _WORKER["stopped"] = True
        raise
    finally:
        _WORKER["busy"] = False


def _init_worker(threads: int, parent: int) -> None:
    """A `--jobs` worker: its threads, and it stops (SIGTERM: at the end of its epoch, last.pt written) when the
    driver dies, even by kill -9: PR_SET_PDEATHSIG on Linux, and a watchdog of the parent pid everywhere."""
    import signal
    import threading

    _set_threads(threads)
    for signum in (signal.SIGINT, signal.SIGTERM):  # between runs (a run's training has its own handlers)
        signal.signal(signum, lambda *_: _WORKER.update(stopped=True))
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)  # the run stops at the end of its epoch (last.pt written) ...
        while _WORKER["busy"]:
            time.sleep(0.2)
        os._exit(143)  # ... and then the worker, which would otherwise wait for jobs from a dead driver

    threading.Thread(target=watch, name="skipvae-parent-watchdog", daemon=True).start()


def run_parallel(todo: list[tuple[RunConfig, Path]], jobs: int, threads_per_run: int | None, time_budget_s,
                 data_dir, max_epochs) -> None:
    """Train the runs of `todo`, `jobs` at a time, each in a fresh process (spawned: no state shared with this
    one) with `threads_per_run` CPU threads (default: cpu_count // jobs, at least 1).

    SIGINT or SIGTERM to the driver: runs not started are dropped, the running ones are told (SIGTERM) to stop at
    the end of their epoch, and Interrupted says how to resume. Workers stop when the driver dies (_init_worker)."""
    import multiprocessing
    import signal
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from skipvae.errors import Interrupted
    from skipvae.train import stop_requests

    threads = threads_per_run or max(1, (os.cpu_count() or 1) // jobs)
    with stop_requests() as stop, ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
            initargs=(threads, os.getpid())) as pool:
        pending = {pool.submit(_run_local_job, cfg.to_dict(), str(d), time_budget_s, data_dir, max_epochs)
                   for cfg, d in todo}
        told = False
        while pending:
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                if future.cancelled():
                    continue
                try:
                    run_dir, pieces = future.result()  # re-raises a run's error
                except (Interrupted, BrokenProcessPool):
                    if stop["signal"] is None:
                        raise
                    continue
                print(f"finished {Path(run_dir).name} in {pieces} piece(s)")
            if stop["signal"] is not None and not told:
                told = True
                for future in pending:
                    future.cancel()
                for process in list(getattr(pool, "_processes", {}).values()):
                    with contextlib.suppress(OSError):
                        os.kill(process.pid, signal.SIGTERM)
        if stop["signal"] is not None:
            raise Interrupted(f"sweep stopped by {signal.Signals(stop['signal']).name}: each running run stopped at "
                              f"the end of an epoch; run the same command again to resume.", stop["signal"])


def make_executor(kind: str, folder: Path, time_budget_s: float | None, slurm: dict | None = None):
    """A submitit executor: 'slurm' (a cluster; time limit set a little above the piece budget) or
    'submitit-local' (submitit's LocalExecutor: same code path, on this machine)."""
    import submitit

    if kind == "submitit-local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=max(1, int((time_budget_s or 3600) / 60) + 5))
        return executor
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = {"timeout_min": max(1, int((time_budget_s or 3600) / 60) + 5), "gpus_per_node": 1,
              "cpus_per_task": 8, "slurm_signal_delay_s": 120}
    params.update(_coerce(slurm or {}))
    executor.update_parameters(**params)
    return executor


def _coerce(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        try:
            out[key] = yaml.safe_load(value) if isinstance(value, str) else value
        except yaml.YAMLError:
            out[key] = value
    return out


def run_sweep(path: str | Path, executor: str = "local", out: str | Path = "runs", data_dir=None,
              dry_run: bool = False, time_budget_s: float | None = 540.0, slurm: dict | None = None,
              max_epochs: int | None = None, poll_s: float = 5.0, jobs: int = 1,
              threads_per_run: int | None = None) -> list[dict]:
    """Run every unfinished run of a sweep; returns a status row per run.

    local: pieces one after another in this process, or with jobs > 1 `jobs` runs at once (run_parallel).
    submitit-local / slurm: one job per piece; the driver
    waits and submits the next piece of each paused run until all are finished.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; valid choices: {', '.join(EXECUTORS)}")
    for name, value in (("jobs", jobs), ("threads_per_run", threads_per_run)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"{name}={value!r} is impossible: it must be a positive integer.")
    sweep = load_sweep(path) if not isinstance(path, Sweep) else path
    check_out_dir("out", out)
    root = inside(out, sweep.name, "sweep name")
    runs = [(cfg, inside(root, cfg.run_name(), "run name")) for cfg in sweep.configs]
    todo = [(cfg, d) for cfg, d in runs if not is_finished(cfg, d)]
    print(f"sweep {sweep.name}: {len(runs)} runs, {len(runs) - len(todo)} finished, {len(todo)} to run")
    if dry_run or not todo:
        return [{"run": d.name, "finished": is_finished(cfg, d)} for cfg, d in runs]
    if executor == "local" and jobs > 1:
        run_parallel(todo, jobs, threads_per_run, time_budget_s, data_dir, max_epochs)
    elif executor == "local":
        if threads_per_run is not None:  # one run at a time in this process, on exactly this many threads
            _set_threads(threads_per_run)
        for cfg, run_dir in todo:
            pieces = run_to_completion(cfg, run_dir, time_budget_s, data_dir, max_epochs)
            print(f"finished {run_dir.name} in {pieces} piece(s)")
    else:
        ex = make_executor(executor, root / "_submitit", time_budget_s, slurm)
        pending = {d: ex.submit(run_piece, cfg.to_dict(), str(d), time_budget_s, data_dir, max_epochs)
                   for cfg, d in todo}
        configs = {d: cfg for cfg, d in todo}
        while pending:
            time.sleep(poll_s)
            for run_dir, job in list(pending.items()):
                if not job.done():
                    continue
                result = job.result()  # re-raises the job's error
                if result["status"] == "finished":
                    print(f"finished {run_dir.name}")
                    del pending[run_dir]
                else:
                    pending[run_dir] = ex.submit(run_piece, configs[run_dir].to_dict(), str(run_dir),
                                                 time_budget_s, data_dir, max_epochs)
    return [{"run": d.name, "finished": is_finished(cfg, d)} for cfg, d in runs]
