"""Small synthetic datasets with the loaders' interface (ImageData, TextData), so that the tests of logic (the
trainer, the resume, the sweeps, the metrics) need no data folder. Only tests/test_data.py and the notebooks read
the real files.

    use_synthetic_data(monkeypatch)            # in a test: every load_dataset(cfg) returns synthetic data
    python tests/synthetic.py train ...        # the CLI on synthetic data (for tests that run a subprocess)
"""

from __future__ import annotations

import functools
import os
import sys

import numpy as np

import skipvae.data
from skipvae.data import ImageData, TextData, Vocab
from skipvae.sweep import run_piece as _run_piece

SIZES = {"train": 200, "valid": 100, "test": 100}  # more than any smoke profile keeps


@functools.lru_cache(maxsize=None)
def _image_splits() -> dict:
    """Gray images [N, 28, 28] in [0, 1]: one random prototype per class (10 classes) plus noise."""
    rng = np.random.default_rng(0)
    prototypes = rng.random((10, 28, 28)) ** 3
    splits = {}
    for split, n in SIZES.items():
        labels = rng.integers(0, 10, n)
        gray = np.clip(prototypes[labels] + 0.1 * rng.standard_normal((n, 28, 28)), 0, 1).astype(np.float32)
        splits[split] = (gray, labels)
    return splits


@functools.lru_cache(maxsize=None)
def _text_splits() -> tuple[Vocab, dict]:
    """Documents of 2-25 words from a 40-word vocabulary, each drawn from one of 4 topics."""
    rng = np.random.default_rng(0)
    vocab = Vocab([f"w{i}" for i in range(39)] + ["_UNK"])
    topics = rng.dirichlet(np.full(40, 0.2), size=4)
    splits = {}
    for split, n in SIZES.items():
        docs = [rng.choice(40, size=rng.integers(2, 26), p=topics[rng.integers(4)]) + 3 for _ in range(n)]
        splits[split] = [d.astype(np.int64) for d in docs]
    return vocab, splits


def load_synthetic(cfg, data_dir=None):
    """What `skipvae.data.load_dataset` returns, on synthetic data of the config's family."""
    sizes = dict(n_train=cfg.n_train, n_valid=cfg.n_valid, n_test=cfg.n_test)
    if cfg.dataset == "yahoo":
        vocab, splits = _text_splits()
        cut = {s: [d[:cfg.max_len] for d in docs] for s, docs in splits.items()}
        return TextData("synthetic-text", vocab, cut, notes="synthetic text (tests)", **sizes)
    return ImageData(f"synthetic-{cfg.dataset}", _image_splits(), num_classes=10, notes="synthetic images (tests)",
                     **sizes)


def use_synthetic_data(monkeypatch) -> None:
    monkeypatch.setattr(skipvae.data, "load_dataset", load_synthetic)


def run_piece_on_synthetic_data(*args, **kwargs):
    """`skipvae.sweep.run_piece` on synthetic data (a job body for submitit's executors, in another process)."""
    skipvae.data.load_dataset = load_synthetic
    return _run_piece(*args, **kwargs)


FAIL_SEED = "SKIPVAE_TEST_FAIL_SEED"  # the seed of the run that run_piece_failing_on_request fails
FAIL_HOW = "SKIPVAE_TEST_FAIL_HOW"  # run_local_job_failing_on_request: 'fail-run' (it raises) or 'crash-run' (killed)


def run_piece_failing_on_request(cfg_dict, run_dir, *args, **kwargs):
    """run_piece_on_synthetic_data, except that the run whose seed is $SKIPVAE_TEST_FAIL_SEED fails (TrainingError)
    once it has a last.pt: its first piece trains, its second fails (a job body for submitit's executors)."""
    from pathlib import Path

    from skipvae.errors import TrainingError

    if str(cfg_dict["seed"]) == os.environ.get(FAIL_SEED) and (Path(run_dir) / "last.pt").exists():
        raise TrainingError(f"injected failure of seed {cfg_dict['seed']} (tests)")
    return run_piece_on_synthetic_data(cfg_dict, run_dir, *args, **kwargs)


def run_local_job_on_synthetic_data(*args, **kwargs):
    """`skipvae.sweep._run_local_job` on synthetic data (the body of a `--jobs N` worker, in a spawned process)."""
    import skipvae.sweep

    skipvae.data.load_dataset = load_synthetic
    return skipvae.sweep._run_local_job(*args, **kwargs)


def run_local_job_failing_on_request(cfg_dict, *args, **kwargs):
    """run_local_job_on_synthetic_data, except that the run whose seed is $SKIPVAE_TEST_FAIL_SEED fails
    (TrainingError) before it trains, or with $SKIPVAE_TEST_FAIL_HOW 'crash-run' its worker is killed (the body of
    a `--jobs N` worker, in a spawned process)."""
    import signal

    from skipvae.errors import TrainingError

    if str(cfg_dict["seed"]) == os.environ.get(FAIL_SEED) and os.environ.get(FAIL_HOW) == "crash-run":
        os.kill(os.getpid(), signal.SIGKILL)
    if str(cfg_dict["seed"]) == os.environ.get(FAIL_SEED):
        raise TrainingError(f"injected failure of seed {cfg_dict['seed']} (tests)")
    return run_local_job_on_synthetic_data(cfg_dict, *args, **kwargs)


if __name__ == "__main__":
    from skipvae.cli import main

    skipvae.data.load_dataset = load_synthetic
    sys.exit(main(sys.argv[1:]))
