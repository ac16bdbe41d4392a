"""`python tests/slow_runner.py SECONDS ARGS...`: the CLI on synthetic data, each validation SECONDS slower and
announced on stderr (`slow_runner: pid P validating`), so that a test can signal a run in the middle of an epoch.
The workers of `sweep --jobs N` do the same."""

import functools
import os
import sys
import time

import skipvae.data
import skipvae.sweep
import skipvae.train
from synthetic import load_synthetic


def slow(seconds: float) -> None:
    skipvae.data.load_dataset = load_synthetic
    real = skipvae.train.validate

    def validate(*args, **kwargs):
        print(f"slow_runner: pid {os.getpid()} validating", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return real(*args, **kwargs)
    skipvae.train.validate = validate


def job(seconds: float, *args):
    """The body of a `--jobs` worker (a spawned process): slow validations, then the real job."""
    slow(seconds)
    return skipvae.sweep._run_local_job(*args)


if __name__ == "__main__":
    from skipvae.cli import main

    seconds = float(sys.argv[1])
    slow(seconds)
    skipvae.sweep._run_local_job = functools.partial(job, seconds)
    sys.exit(main(sys.argv[2:]))
