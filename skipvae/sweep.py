"""Sweeps: expand a YAML file into run configs and run the unfinished ones, here or on Slurm (submitit).

A sweep file names the runs (skipvae.sweepfile: its rules; it is read safely and expanded into validated
configs before anything runs).

`--jobs N` (local executor) trains N runs at once on this machine, each in its own process with its share of
the CPU threads (`threads_per_run`, default cpu_count // N) or, on a GPU, sharing the one device. A run's
numbers do not depend on N: each run is seeded by its config alone, and its thread count is set explicitly.

Every run trains in *pieces*: a piece stops cleanly at an epoch boundary before `time_budget_s` and the next
piece resumes from the checkpoint, so long trainings fit short job slots. Because a resumed run ends exactly
where an uninterrupted one would, the final record does not depend on how the run was cut into pieces.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import yaml

from skipvae.config import RunConfig
from skipvae.errors import ConfigError
from skipvae.params import check_out_dir
from skipvae.records import finished_record, inside
from skipvae.sweepfile import Sweep, expand_sweep, load_sweep  # noqa: F401 (the runner's input)
from skipvae.train import RECORD

EXECUTORS = ("local", "submitit-local", "slurm")


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
