"""Sweeps: expand a YAML file into run configs and run the unfinished ones, here or on Slurm (submitit).

A sweep file names the runs (skipvae.sweepfile: its rules; it is read safely and expanded into validated
configs before anything runs).

`--jobs N` (local executor) trains N runs at once on this machine, each in its own process with its share of
the CPU threads (`threads_per_run`, default cpu_count // N) or, on a GPU, sharing the one device. A run's
numbers do not depend on N: each run is seeded by its config alone, and its thread count is set explicitly. Each
run is reported as it finishes or fails (one line; its traceback in its run folder, ERROR_LOG) while the others
go on.

Every run trains in *pieces*: a piece stops cleanly at an epoch boundary before `time_budget_s` and the next
piece resumes from the checkpoint, so long trainings fit short job slots. Because a resumed run ends exactly
where an uninterrupted one would, the final record does not depend on how the run was cut into pieces. Locally a
piece has no limit unless one is given.

`slurm` / `submitit-local` submit the unfinished runs as one job array (submitit). A job's time limit is
`--slurm timeout_min=...`, else its partition's limit (sinfo), else DEFAULT_JOB_MINUTES; its piece stops at an
epoch boundary a margin before it (job_margin_s). A piece that stops there, or a job that reaches its time limit
(Slurm's warning signal), is requeued by submitit's checkpointing (PieceJob.checkpoint) and resumes the run from its
own last.pt, so no driver needs to stay alive. The driver waits and reports each run as it finishes, pauses (a job
that ended at its budget without being requeued) or fails (one line with the error and where its log is) while the
others go on; a rerun skips the finished runs, leaves alone those whose job is still queued or running
(_submitit/jobs.json) and resubmits the others, each resuming from its last.pt.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import submitit
import yaml

from skipvae.config import RunConfig
from skipvae.errors import ConfigError
from skipvae.params import check_out_dir
from skipvae.records import atomic_write_json, finished_record, inside, read_json
from skipvae.results import committed_record
from skipvae.sweepfile import Sweep, expand_sweep, load_sweep  # noqa: F401 (the runner's input)
from skipvae.train import RECORD

EXECUTORS = ("local", "submitit-local", "slurm")
DEFAULT_JOB_MINUTES = 240  # a job's time limit when neither --slurm timeout_min nor the partition (sinfo) gives one
SIGNAL_DELAY_S = 120  # Slurm warns a job (submitit's USR2) this long before its time limit
MAX_REQUEUES = 1000  # of one job (submitit's max_num_timeout): each piece trains an epoch at least
JOBS = "jobs.json"  # {run name: job id} of the last submission, in the sweep's _submitit folder
ERROR_LOG = "error.log"  # a failed run's traceback in its run folder (local --jobs); run_piece removes it once the
# run finishes
ACTIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
                 "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING"}


def is_finished(cfg: RunConfig, run_dir: Path) -> bool:
    """Its finished record is in its run folder, or committed under results/ (a fresh machine: runs/ is empty)."""
    return finished_record(cfg, run_dir / RECORD) is not None or committed_record(cfg) is not None


def run_piece(cfg_dict: dict, run_dir: str, time_budget_s: float | None, data_dir=None,
              max_epochs: int | None = None) -> dict:
    """Train one piece of a run (a job's body); returns {'status': 'finished'|'paused', ...}."""
    from skipvae.train import train

    cfg = RunConfig.from_dict(cfg_dict).validate()
    record = train(cfg, Path(run_dir), data_dir=data_dir, progress=False, time_budget_s=time_budget_s,
                   max_epochs=max_epochs)
    if record["status"] == "finished":  # however it was run (--jobs, one by one, submitit): no stale failure
        (Path(run_dir) / ERROR_LOG).unlink(missing_ok=True)
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
                 data_dir, max_epochs) -> dict[str, dict]:
    """Train the runs of `todo`, `jobs` at a time, each in a fresh process (spawned: no state shared with this
    one) with `threads_per_run` CPU threads (default: cpu_count // jobs, at least 1), reporting each run as it
    finishes or fails (run_failed) while the others go on; {run name: {'error': line, 'log': path}} of the runs
    that failed.

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
        runs = {pool.submit(_run_local_job, cfg.to_dict(), str(d), time_budget_s, data_dir, max_epochs): d
                for cfg, d in todo}
        order = {future: i for i, future in enumerate(runs)}
        pending, failed, told = set(runs), {}, False
        while pending:
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=order.get):  # in the sweep's order when several end at once
                if future.cancelled():
                    continue
                run_dir = runs[future]
                try:
                    _, pieces = future.result()  # re-raises a run's error
                except (Interrupted, BrokenProcessPool) as err:
                    if stop["signal"] is not None:
                        continue
                    if isinstance(err, Interrupted):
                        raise
                    # a worker died (killed, out of memory): the pool is broken and every run not finished fails
                    # with this error, each reported; a rerun resumes them from their last.pt
                    failed[run_dir.name] = run_failed(run_dir, err)
                    continue
                except Exception as err:  # noqa: BLE001  the run's own failure: reported, the others go on
                    failed[run_dir.name] = run_failed(run_dir, err)
                    continue
                print(f"finished {run_dir.name} in {pieces} piece(s)")
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
    return failed


def error_line(err: BaseException) -> str:
    """An exception in one line: 'TrainingError: non-finite loss at epoch 3'."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def run_failed(run_dir: Path, err: BaseException) -> dict:
    """A run of a local --jobs sweep that raised: its traceback (the worker's, which the pool passes on) written to
    run_dir/ERROR_LOG, one line on stderr; returns {'error': line, 'log': its path}."""
    import traceback

    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / ERROR_LOG
    log.write_text("".join(traceback.format_exception(err)))
    print(f"failed {run_dir.name}: {error_line(err)}; its traceback: {log}", file=sys.stderr)
    return {"error": error_line(err), "log": str(log)}


class PieceJob(submitit.helpers.Checkpointable):
    """A sweep's run as a submitit job: trains one piece (`piece`: run_piece, or a test's stand-in); when the piece
    stops at its budget, or the job reaches its time limit, submitit requeues the job through checkpoint() and the
    requeued job resumes the run from its own last.pt. Returns run_piece's dict once the run is finished."""

    def __init__(self, piece=None):
        self.piece = piece

    def __call__(self, cfg_dict: dict, run_dir: str, time_budget_s, data_dir=None, max_epochs=None) -> dict:
        out = (self.piece or run_piece)(cfg_dict, run_dir, time_budget_s, data_dir, max_epochs)
        if out["status"] == "paused":
            requeue_this_job()
        return out

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """The same call again: the run resumes from its last.pt, so the resubmission carries no other state."""
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def requeue_this_job() -> None:
    """A piece that stopped at its budget takes submitit's time-limit path (its USR2 handler: checkpoint(), requeue,
    exit), as the job would at its time limit; does nothing outside a submitit job."""
    import signal

    try:
        submitit.JobEnvironment()
    except RuntimeError:  # not in a submitit job
        return
    os.kill(os.getpid(), signal.Signals["SIG" + submitit.JobEnvironment.USR_SIG])
    time.sleep(60)  # the handler exits this process
    raise RuntimeError("submitit did not requeue the paused job")


def slurm_minutes(text: str) -> float | None:
    """Minutes of a Slurm time limit (sinfo's %l: 'days-hours:minutes:seconds' and its shorter forms, 'minutes',
    'minutes:seconds'); None for 'infinite', 'UNLIMITED' or anything else."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        return None
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # days-hours[:minutes[:seconds]]
        return days * 1440 + a * 60 + (b or 0) + (c or 0) / 60
    if c is not None:  # hours:minutes:seconds
        return a * 60 + b + c / 60
    return a + (b or 0) / 60  # minutes[:seconds]


def sinfo_limits(partition: str | None) -> list[str]:
    """sinfo's 'partition limit' lines (the default partition's name ends with '*'); [] without sinfo."""
    cmd = ["sinfo", "--noheader", "--format=%P %l"] + (["--partition", partition] if partition else [])
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []


def partition_minutes(partition: str | None) -> float | None:
    """The time limit in minutes of a Slurm partition (None: the default one); None when unknown or unlimited."""
    for line in sinfo_limits(partition):
        name, _, limit = line.strip().partition(" ")
        if partition is None and not name.endswith("*"):
            continue
        return slurm_minutes(limit)
    return None


def job_margin_s(limit_s: float, signal_delay_s: float) -> float:
    """How long before its job's time limit a piece stops: a tenth of the limit, at least the signal delay and 5
    minutes (the last epoch's overrun, the final evaluation), at most half the limit."""
    return min(limit_s / 2, max(signal_delay_s + 300, limit_s / 10))


def job_plan(executor: str, piece_seconds: float | None, slurm: dict | None) -> tuple[float, float, str]:
    """(piece budget in seconds, job time limit in minutes, where the limit comes from) of a submitit executor.

    The limit: --slurm timeout_min, else (slurm) the partition's, else DEFAULT_JOB_MINUTES; the piece stops
    job_margin_s before it. A --piece-seconds given alone sets the limit to the piece plus its margin."""
    params = _coerce(slurm or {})
    delay = params.get("slurm_signal_delay_s", SIGNAL_DELAY_S)
    given = params.get("timeout_min")
    if given is not None and (not isinstance(given, (int, float)) or isinstance(given, bool) or given <= 0):
        raise ConfigError(f"--slurm timeout_min={given!r} is impossible: give the job's time limit in minutes, "
                          f"a number > 0.")
    partition = params.get("slurm_partition", params.get("partition"))
    known = (float(given), "--slurm timeout_min") if given is not None else (None, None)
    if known[0] is None and executor == "slurm":
        minutes = partition_minutes(partition)
        if minutes is not None:
            known = (minutes, f"the time limit of partition {partition or '(default)'}")
    if piece_seconds is None:
        limit, source = known if known[0] is not None else (float(DEFAULT_JOB_MINUTES), "the default")
        return limit * 60 - job_margin_s(limit * 60, delay), limit, source
    if given is None:
        want = math.ceil(max(piece_seconds + delay + 300, piece_seconds * 10 / 9) / 60)
        if known[0] is not None and want > known[0]:
            raise ConfigError(f"piece_seconds={piece_seconds:g} is impossible: with its margin a job needs {want} "
                              f"minutes, more than {known[1]} ({known[0]:g} min); give a smaller --piece-seconds "
                              f"or leave it out.")
        return piece_seconds, float(want), "--piece-seconds and its margin"
    if piece_seconds >= given * 60 - delay:
        raise ConfigError(f"piece_seconds={piece_seconds:g} is impossible: a piece must stop before the job's time "
                          f"limit less its warning ({given:g} min - {delay} s); give a smaller --piece-seconds or "
                          f"leave it out.")
    return piece_seconds, float(given), known[1]


def make_executor(kind: str, folder: Path, timeout_min: float, slurm: dict | None = None):
    """A submitit executor whose jobs have `timeout_min` minutes and are requeued up to MAX_REQUEUES times at
    their time limit: 'slurm' (a cluster; `slurm`: more submitit parameters) or 'submitit-local' (submitit's
    LocalExecutor: the same code path on this machine; it restarts a job 6 times at most)."""
    if kind == "submitit-local":
        executor = submitit.LocalExecutor(folder=folder, max_num_timeout=MAX_REQUEUES)
        executor.update_parameters(timeout_min=timeout_min)
        return executor
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=MAX_REQUEUES)
    except RuntimeError as err:  # no srun here
        raise ConfigError(f"executor='slurm' is impossible here: {err}; run the sweep on the cluster's login node, "
                          f"or give --executor local.") from None
    params = {"gpus_per_node": 1, "cpus_per_task": 8, "slurm_signal_delay_s": SIGNAL_DELAY_S}
    params.update(_coerce(slurm or {}))
    params["timeout_min"] = math.ceil(timeout_min)
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


def job_active(kind: str, folder: Path, job_id: str) -> bool:
    """Whether a job of an earlier driver is still queued or running: Slurm's state of it (sacct), or, for
    submitit-local, whether its controller process lives."""
    if kind == "slurm":
        with contextlib.suppress(Exception):
            return submitit.SlurmJob(folder=folder, job_id=job_id).state.split()[0] in ACTIVE_STATES
        return False
    try:
        with open(f"/proc/{int(job_id)}/cmdline", "rb") as f:
            return b"submitit" in f.read()
    except (OSError, ValueError):
        return False


def failure_line(text: str) -> str:
    """One line for a failed job: the last line of its traceback, the exception's module left out
    ('TrainingError: non-finite loss ...')."""
    parts = text.split("-" * 22)
    trace = parts[1] if len(parts) >= 3 else text
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    last = lines[-1] if lines else text.strip()
    return re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=\w+(?::|$))", "", last)


NOT_REQUEUED = "Job not requeued because"  # submitit's UncompletedJobError once a job's requeues are spent


def job_outcome(job, run_dir: Path) -> dict:
    """The state of a done job's run: {'state': 'finished'}; {'state': 'paused', 'epoch': k} when its last piece
    stopped at its budget or time limit and submitit did not requeue it (its requeues spent: the job fails with
    NOT_REQUEUED; k from the run's last.pt); else {'state': 'failed', 'error': one line, 'log': the job's log}."""
    try:
        out = job.result()
    except submitit.core.utils.FailedJobError as err:
        epoch = saved_epoch(run_dir) if NOT_REQUEUED in str(err) else None
        if epoch is not None:
            return {"state": "paused", "epoch": epoch}
        return {"state": "failed", "error": failure_line(str(err)), "log": str(job.paths.stderr)}
    except submitit.core.utils.UncompletedJobError:
        return {"state": "failed", "error": f"job {job.job_id} ended without a result (state {job.state})",
                "log": str(job.paths.stderr)}
    if out["status"] == "paused":  # a piece run outside a submitit job returns instead of requeueing
        return {"state": "paused", "epoch": out["epochs_completed"]}
    return {"state": "finished"}


def saved_epoch(run_dir: Path) -> int | None:
    """The epochs completed in a run folder's last.pt; None without a readable one."""
    from skipvae.errors import DataError
    from skipvae.train import LAST, load_checkpoint

    if not (Path(run_dir) / LAST).is_file():
        return None
    try:
        return int(load_checkpoint(Path(run_dir) / LAST, keys=("state",))["state"]["epoch"])
    except DataError:
        return None


def submit_runs(kind: str, todo: list[tuple[RunConfig, Path]], root: Path, time_budget_s, data_dir, max_epochs,
                slurm, poll_s: float, wait: bool) -> dict[str, dict]:
    """Submit the runs of `todo` whose job (of an earlier driver) is not still active as one job array, and wait
    for them (unless not `wait`), reporting each as it finishes, pauses or fails; {run name: {'job': id, 'error':
    line, 'log': path, 'paused_at': epoch}} of the runs not finished here (error and paused_at None while still
    running)."""
    folder = root / "_submitit"
    piece_s, timeout_min, source = job_plan(kind, time_budget_s, slurm)
    known = read_json(folder / JOBS) if (folder / JOBS).is_file() else {}
    left = {d.name: {"job": known[d.name], "error": None} for _, d in todo
            if d.name in known and job_active(kind, folder, known[d.name])}
    for name, row in left.items():
        print(f"{name}: still queued or running as job {row['job']} (submitted earlier); not resubmitted")
    todo = [(cfg, d) for cfg, d in todo if d.name not in left]
    if not todo:
        return left
    ex = make_executor(kind, folder, timeout_min, slurm)
    jobs = ex.map_array(PieceJob(run_piece), [cfg.to_dict() for cfg, _ in todo], [str(d) for _, d in todo],
                        [piece_s] * len(todo), [data_dir] * len(todo), [max_epochs] * len(todo))
    pending = {d.name: job for (_, d), job in zip(todo, jobs)}
    folders = {d.name: d for _, d in todo}
    epochs = {d.name: cfg.epochs for cfg, d in todo}
    atomic_write_json(folder / JOBS, {**known, **{name: job.job_id for name, job in pending.items()}})
    print(f"submitted {len(jobs)} run(s) as a job array ({kind}): jobs of {timeout_min:g} min ({source}), pieces "
          f"of {piece_s / 60:.0f} min; a piece that stops at its budget or reaches the time limit is requeued")
    if not wait:
        return left | {name: {"job": job.job_id, "error": None} for name, job in pending.items()}
    try:
        while pending:
            time.sleep(poll_s)
            for name, job in list(pending.items()):
                if not job.done():
                    continue
                del pending[name]
                outcome = job_outcome(job, folders[name])
                if outcome["state"] == "finished":
                    print(f"finished {name}")
                elif outcome["state"] == "paused":
                    left[name] = {"job": job.job_id, "error": None, "paused_at": outcome["epoch"]}
                    print(f"paused {name} at epoch {outcome['epoch']} of {epochs[name]}: its job ended without "
                          f"being requeued", file=sys.stderr)
                else:
                    left[name] = {"job": job.job_id, "error": outcome["error"], "log": outcome["log"]}
                    print(f"failed {name}: {outcome['error']}; its log: {outcome['log']}", file=sys.stderr)
    except KeyboardInterrupt:
        from skipvae.errors import Interrupted

        raise Interrupted(f"sweep driver stopped; the {len(pending)} job(s) still queued or running go on: run the "
                          f"same command again to see them (finished runs are skipped).", 2) from None
    return left


def run_sweep(path: str | Path, executor: str = "local", out: str | Path = "runs", data_dir=None,
              dry_run: bool = False, time_budget_s: float | None = None, slurm: dict | None = None,
              max_epochs: int | None = None, poll_s: float = 5.0, jobs: int = 1,
              threads_per_run: int | None = None, wait: bool = True, before_start=None) -> list[dict]:
    """Run every unfinished run of a sweep; returns a status row per run (status_row).

    local: pieces one after another in this process (no limit to a piece unless `time_budget_s`), or with
    jobs > 1 `jobs` runs at once (run_parallel). submitit-local / slurm: a job array that requeues itself
    (submit_runs); the driver waits (unless not `wait`) and reports each run. `before_start(configs)` sees the
    configs to run before anything starts (the CLI's --confirm-long check).
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
    left = {}
    if todo and not dry_run and before_start is not None:
        before_start([cfg for cfg, _ in todo])
    if dry_run or not todo:
        pass
    elif executor == "local" and jobs > 1:
        left = run_parallel(todo, jobs, threads_per_run, time_budget_s, data_dir, max_epochs)
    elif executor == "local":
        if threads_per_run is not None:  # one run at a time in this process, on exactly this many threads
            _set_threads(threads_per_run)
        for cfg, run_dir in todo:
            pieces = run_to_completion(cfg, run_dir, time_budget_s, data_dir, max_epochs)
            print(f"finished {run_dir.name} in {pieces} piece(s)")
    else:
        left = submit_runs(executor, todo, root, time_budget_s, data_dir, max_epochs, slurm, poll_s, wait)
    return [status_row(cfg, d, left.get(d.name)) for cfg, d in runs]


def status_row(cfg: RunConfig, run_dir: Path, left: dict | None) -> dict:
    """A run's row: {'run', 'finished'}, and while it is not finished: 'error' and 'log' (where its error is) for a
    run that failed, 'paused_at' (an epoch) for one whose job ended paused, else 'job' for one whose job is still
    queued or running."""
    row = {"run": run_dir.name, "finished": is_finished(cfg, run_dir)}
    if left and not row["finished"]:
        state = {k: left[k] for k in ("error", "log", "paused_at") if left.get(k) is not None}
        row.update(state or {"job": left["job"]})
    return row
