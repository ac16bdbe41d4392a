"""`python tests/fault_runner.py POINT ARGS...`: the CLI on synthetic data, killed by SIGKILL at POINT.

POINT (how many times the moment passes before the kill, e.g. `validate:2`):
    none          no kill
    validate:N    at the N-th validation (the end of an epoch's training pass: a kill during an epoch)
    save:N        in the N-th torch.save, after half of the file is written (a kill during a checkpoint write)
    rotate:N      at the N-th checkpoint rotation, after last.pt became last.prev.pt and before the new last.pt
    evaluate:N    at the N-th test evaluation (a kill during the final evaluation)
    record:N      while the N-th JSON record is written, half of it on disk (a kill during a record write)
    fail-run:S    no kill: the `sweep --jobs N` run of seed S raises TrainingError (a run that fails while the others
                  train: synthetic.run_local_job_failing_on_request)
    crash-run:S   no kill of the driver: the worker of the `sweep --jobs N` run of seed S dies (SIGKILL) before it
                  trains (a worker killed, e.g. out of memory: the pool breaks)
"""

import os
import signal
import sys

import torch

import skipvae.data
import skipvae.metrics
import skipvae.records
import skipvae.sweep
import skipvae.train
import synthetic
from synthetic import load_synthetic


def kill_on(n: int, then):
    """A function that calls `then(*args)` on every call and SIGKILLs this process on the n-th."""
    calls = {"n": 0}

    def hook(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            then(*args, **kwargs, dying=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return then(*args, **kwargs)
    return hook


def install(point: str) -> None:
    if point == "none":
        return
    what, n = point.split(":")
    if what in ("fail-run", "crash-run"):
        os.environ[synthetic.FAIL_SEED] = n  # read by the spawned workers
        os.environ[synthetic.FAIL_HOW] = what
        skipvae.sweep._run_local_job = synthetic.run_local_job_failing_on_request
        return
    n = int(n)
    if what == "validate":
        real = skipvae.train.validate
        skipvae.train.validate = kill_on(n, lambda *a, dying=False, **k: None if dying else real(*a, **k))
    elif what == "evaluate":
        real = skipvae.metrics.evaluate
        skipvae.metrics.evaluate = kill_on(n, lambda *a, dying=False, **k: None if dying else real(*a, **k))
    elif what == "save":
        real = torch.save

        def save(obj, f, *a, dying=False, **k):
            real(obj, f, *a, **k)
            if dying:  # cut the file as a kill in the middle of the write would
                os.truncate(f, os.path.getsize(f) // 2)
        skipvae.records.torch.save = kill_on(n, save)
    elif what == "rotate":
        real = os.replace

        def replace(src, dst, dying=False):
            real(src, dst)
        rotations = kill_on(n, replace)
        skipvae.records.os.replace = lambda src, dst: (rotations if str(dst).endswith(".prev.pt") else real)(src, dst)
    elif what == "record":
        real = skipvae.records.atomic_write_bytes

        def write(path, data, dying=False):
            if dying:  # a temporary file with half of the record, as a kill during the write leaves
                tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.killed.tmp")
                with open(tmp, "wb") as f:
                    f.write(data[: len(data) // 2])
                return None
            return real(path, data)
        skipvae.records.atomic_write_bytes = kill_on(n, write)
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    from skipvae.cli import main

    skipvae.data.load_dataset = load_synthetic
    install(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
